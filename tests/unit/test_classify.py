"""Frame classifiers of port security (packet/classify.py): DHCP server messages (PS-04), router advertisements
and redirects (PS-05); tags, IPv4 options, IPv6 extension headers, fragments and truncated frames."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pyvswitch.packet.classify import is_dhcp_server_message, is_router_message, l3_start, l4_header
from pyvswitch.packet.frame import ETH_P_8021AD, ETH_P_ARP, ETH_P_IPV4, ETH_P_IPV6
from pyvswitch.testing.frames import BCAST, eth, icmp, ipv4, ipv6, udp

A = "02:00:00:00:00:0a"
V4 = ("10.0.0.1", "10.0.0.2")
V6 = ("fe80::1", "ff02::1")
UDP, ICMP, ICMPV6 = 17, 1, 58
HOP_BY_HOP, DEST_OPTS, FRAGMENT = 0, 60, 44


def v4(proto: int, payload: bytes, **kw: object) -> bytes:
    return eth(BCAST, A, ipv4(*V4, proto, payload, **kw), pad=False)  # type: ignore[arg-type]


def v6(nh: int, payload: bytes) -> bytes:
    return eth(BCAST, A, ipv6(*V6, nh, payload), ethertype=ETH_P_IPV6, pad=False)


def ext(nh: int, length_units: int = 0) -> bytes:
    """A hop-by-hop / destination-options header of (length_units + 1) * 8 bytes announcing ``nh``."""
    return bytes([nh, length_units]) + bytes(6 + 8 * length_units)


def frag(nh: int, offset: int = 0, more: bool = True) -> bytes:
    return struct.pack(">BBHI", nh, 0, offset | int(more), 7)


OFFER = v4(UDP, udp(67, 68, b"\x02" + bytes(239)))
DISCOVER = v4(UDP, udp(68, 67, b"\x01" + bytes(239)))
ADVERTISE = v6(UDP, udp(547, 546, b"\x02" + bytes(3)))
SOLICIT = v6(UDP, udp(546, 547, b"\x01" + bytes(3)))
REDIRECT4 = v4(ICMP, icmp(5, 1, bytes(4) + ipv4(*V4, UDP, udp(9, 9))))
ROUTER_ADV4 = v4(ICMP, icmp(9, 0, bytes(12)))
RA6 = v6(ICMPV6, icmp(134, 0, bytes(12)))
REDIRECT6 = v6(ICMPV6, icmp(137, 0, bytes(36)))


def tagged(frame: bytes, vid: int = 10, tpid: int = 0x8100) -> bytes:
    return frame[:12] + struct.pack(">HH", tpid, vid) + frame[12:]


# ---------------------------------------------------------------- PS-04


@pytest.mark.parametrize("frame", [OFFER, ADVERTISE], ids=["dhcpv4-offer", "dhcpv6-advertise"])
def test_dhcp_server_messages_match_PS04(frame: bytes) -> None:
    assert is_dhcp_server_message(frame)
    assert not is_router_message(frame)


@pytest.mark.parametrize(
    "frame",
    [
        DISCOVER,
        SOLICIT,
        v4(UDP, udp(547, 546)),  # DHCPv6's server port over IPv4 is not DHCP
        v6(UDP, udp(67, 68)),  # and DHCPv4's over IPv6 neither
        v4(6, udp(67, 68)),  # TCP from port 67
        eth(BCAST, A, bytes(28), ethertype=ETH_P_ARP),
    ],
    ids=["discover", "solicit", "547-over-v4", "67-over-v6", "tcp", "arp"],
)
def test_clients_and_other_traffic_do_not_match_PS04(frame: bytes) -> None:
    assert not is_dhcp_server_message(frame)


def test_ipv4_options_are_skipped_by_ihl_PS04() -> None:
    frame = v4(UDP, udp(67, 68), options=b"\x94\x04\x00\x00")  # router alert: IHL 6
    assert frame[14] == 0x46
    assert is_dhcp_server_message(frame)
    with_options = v4(ICMP, icmp(9), options=bytes(40))  # the longest header: IHL 15
    assert with_options[14] == 0x4F and is_router_message(with_options)


@pytest.mark.parametrize("tpids", [(0x8100,), (ETH_P_8021AD, 0x8100)], ids=["802.1q", "qinq"])
def test_inline_tags_are_skipped(tpids: tuple[int, ...]) -> None:
    offer, ra = OFFER, RA6
    for tpid in reversed(tpids):
        offer, ra = tagged(offer, tpid=tpid), tagged(ra, tpid=tpid)
    assert is_dhcp_server_message(offer)
    assert is_router_message(ra)


def test_three_tags_are_not_parsed() -> None:
    frame = tagged(tagged(tagged(OFFER)))
    assert l3_start(frame)[0] == -1 and not is_dhcp_server_message(frame)


def test_fragments_only_first_matches() -> None:
    assert is_dhcp_server_message(v4(UDP, udp(67, 68), more_fragments=True))
    assert not is_dhcp_server_message(v4(UDP, udp(67, 68), frag_offset=8))
    assert is_router_message(v6(FRAGMENT, frag(ICMPV6) + icmp(134)))
    assert not is_router_message(v6(FRAGMENT, frag(ICMPV6, offset=8) + icmp(134)))


# ---------------------------------------------------------------- PS-05


@pytest.mark.parametrize(
    "frame", [REDIRECT4, ROUTER_ADV4, RA6, REDIRECT6], ids=["icmp4-5", "icmp4-9", "icmp6-134", "icmp6-137"]
)
def test_router_messages_match_PS05(frame: bytes) -> None:
    assert is_router_message(frame)
    assert not is_dhcp_server_message(frame)


@pytest.mark.parametrize(
    "frame",
    [
        v4(ICMP, icmp(8)),  # echo request
        v4(ICMP, icmp(10)),  # router solicitation: hosts send it
        v4(ICMP, icmp(134)),  # the ICMPv6 type number over ICMPv4
        v6(ICMPV6, icmp(133)),  # router solicitation
        v6(ICMPV6, icmp(135)),  # neighbour solicitation
        v6(ICMPV6, icmp(136)),  # neighbour advertisement
        v6(ICMPV6, icmp(5)),  # the ICMPv4 type number over ICMPv6
        v6(UDP, udp(134, 134)),
    ],
)
def test_other_icmp_does_not_match_PS05(frame: bytes) -> None:
    assert not is_router_message(frame)


def test_ra_behind_extension_headers_is_found_PS05() -> None:
    """RFC 7113: an RA guard that looks only at the first next header is evaded with extension headers."""
    assert is_router_message(v6(HOP_BY_HOP, ext(ICMPV6) + icmp(134)))
    assert is_router_message(v6(DEST_OPTS, ext(DEST_OPTS, 2) + ext(ICMPV6) + icmp(134)))
    assert is_dhcp_server_message(v6(HOP_BY_HOP, ext(UDP) + udp(547, 546)))
    chain = ext(ICMPV6)
    for _ in range(8):
        chain = ext(DEST_OPTS) + chain
    # Nine headers are beyond the walk's limit: not matched (and not an error).
    assert l4_header(v6(DEST_OPTS, chain[8:] + icmp(134))) is not None
    assert l4_header(v6(DEST_OPTS, chain + icmp(134))) is None


# ---------------------------------------------------------------- malformed and truncated


@pytest.mark.parametrize(
    ("frame", "needed"),
    [
        (OFFER, 14 + 20 + 2),
        (ADVERTISE, 14 + 40 + 2),
        (REDIRECT4, 14 + 20 + 1),
        (RA6, 14 + 40 + 1),
        (tagged(OFFER), 18 + 20 + 2),
        (v6(HOP_BY_HOP, ext(ICMPV6) + icmp(134)), 14 + 40 + 8 + 1),
    ],
)
def test_truncated_frames_never_match_and_never_raise(frame: bytes, needed: int) -> None:
    """A header cut short is simply not matched; from the byte the question needs on, it is."""
    for n in range(len(frame) + 1):
        cut = frame[:n]
        matched = is_dhcp_server_message(cut) or is_router_message(cut)
        assert matched == (n >= needed), n
        assert is_dhcp_server_message(memoryview(cut)) == is_dhcp_server_message(cut)


def test_bad_version_or_header_length_is_not_ip() -> None:
    assert l4_header(OFFER) == (4, UDP, 34)
    bad_version = OFFER[:14] + b"\x65" + OFFER[15:]
    short_ihl = OFFER[:14] + b"\x44" + OFFER[15:]
    v4_in_v6 = eth(BCAST, A, OFFER[14:], ethertype=ETH_P_IPV6)
    v6_in_v4 = eth(BCAST, A, RA6[14:], ethertype=ETH_P_IPV4)
    for frame in (bad_version, short_ihl, v4_in_v6, v6_in_v4):
        assert l4_header(frame) is None
        assert not is_dhcp_server_message(frame) and not is_router_message(frame)


@given(st.binary(max_size=200))
def test_random_bytes_never_raise(data: bytes) -> None:
    is_dhcp_server_message(data)
    is_router_message(data)


@given(st.sampled_from([OFFER, ADVERTISE, REDIRECT4, RA6]), st.binary(max_size=80), st.integers(0, 120))
def test_corrupted_headers_never_raise(frame: bytes, noise: bytes, at: int) -> None:
    corrupted = frame[:at] + noise + frame[at + len(noise) :]
    is_dhcp_server_message(corrupted)
    is_router_message(bytearray(corrupted))
