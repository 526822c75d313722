"""DSCP marking: IPv4 with an incrementally updated header checksum (RFC 1624), IPv6 traffic class, ECN kept."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pyvswitch.packet.checksum import internet_checksum
from pyvswitch.packet.dscp import get_dscp, set_dscp
from pyvswitch.packet.frame import ETH_P_ARP, ETH_P_IPV6
from pyvswitch.testing.frames import eth, ipv4, ipv6, udp

A, B = "02:00:00:00:00:01", "02:00:00:00:00:02"


def v4(tos: int, options: bytes = b"", ttl: int = 64, ident: int = 1) -> bytes:
    frame = bytearray(eth(B, A, ipv4("10.0.0.1", "10.0.0.2", 17, udp(1, 2, b"payload"), options=options)))
    frame[15] = tos
    frame[18:20] = struct.pack(">H", ident)
    frame[22] = ttl
    ihl = (frame[14] & 0xF) * 4
    frame[24:26] = b"\0\0"
    frame[24:26] = struct.pack(">H", internet_checksum(bytes(frame[14 : 14 + ihl])))
    return bytes(frame)


def v6(tc: int, flow: int = 0) -> bytes:
    frame = bytearray(eth(B, A, ipv6("fd00::1", "fd00::2", 17, udp(1, 2)), ethertype=ETH_P_IPV6))
    frame[14:18] = struct.pack(">I", (6 << 28) | (tc << 20) | flow)
    return bytes(frame)


def header_ok(frame: bytes | bytearray) -> bool:
    ihl = (frame[14] & 0xF) * 4
    return internet_checksum(bytes(frame[14 : 14 + ihl])) == 0


def test_ipv4_dscp_set_ecn_kept_checksum_valid() -> None:
    frame = v4(tos=0b000000_11)  # DSCP 0, ECN CE
    out = set_dscp(frame, 46)  # EF
    assert out is not None and isinstance(out, bytearray)
    assert out[15] == (46 << 2) | 0b11
    assert get_dscp(out) == 46
    assert header_ok(out)
    assert out[:15] == frame[:15] and out[16:24] == frame[16:24] and out[26:] == frame[26:]
    assert get_dscp(frame) == 0  # the input is not changed


@given(
    tos=st.integers(0, 255),
    dscp=st.integers(0, 63),
    ttl=st.integers(0, 255),
    ident=st.integers(0, 0xFFFF),
    options=st.sampled_from([b"", bytes(4), b"\x94\x04\x00\x00", bytes(range(1, 41))]),
)
def test_ipv4_incremental_checksum_equals_full_recompute(
    tos: int, dscp: int, ttl: int, ident: int, options: bytes
) -> None:
    frame = v4(tos, options, ttl, ident)
    out = set_dscp(frame, dscp)
    assert out is not None
    ihl = (out[14] & 0xF) * 4
    header = bytearray(out[14 : 14 + ihl])
    got = struct.unpack_from(">H", header, 10)[0]
    header[10:12] = b"\0\0"
    assert got == internet_checksum(bytes(header))
    assert out[15] & 0x03 == tos & 0x03
    assert get_dscp(out) == dscp
    assert set_dscp(out, tos >> 2) == bytearray(frame)  # and back


def test_ipv4_wrong_checksum_stays_wrong() -> None:
    frame = bytearray(v4(0))
    frame[24] ^= 0x10
    out = set_dscp(frame, 10)
    assert out is not None and not header_ok(out)
    assert set_dscp(out, 0) == frame


@given(tc=st.integers(0, 255), flow=st.integers(0, 0xFFFFF), dscp=st.integers(0, 63))
def test_ipv6_traffic_class(tc: int, flow: int, dscp: int) -> None:
    frame = v6(tc, flow)
    assert get_dscp(frame) == tc >> 2
    out = set_dscp(memoryview(frame), dscp)
    assert out is not None
    word = struct.unpack_from(">I", out, 14)[0]
    assert word >> 28 == 6
    assert (word >> 20) & 0xFF == (dscp << 2) | (tc & 0x03)  # ECN kept
    assert word & 0xFFFFF == flow  # flow label kept
    assert out[:14] == frame[:14] and out[18:] == frame[18:]


def test_inline_tag_is_skipped() -> None:
    frame = eth(B, A, ipv4("10.0.0.1", "10.0.0.2", 17, udp(1, 2)), vlan=10, pcp=5)
    out = set_dscp(frame, 26)
    assert out is not None and get_dscp(out) == 26
    assert out[14:16] == frame[14:16]  # the TCI is not the DSCP
    assert internet_checksum(bytes(out[18:38])) == 0


@pytest.mark.parametrize(
    "frame",
    [
        eth(B, A, bytes(28), ethertype=ETH_P_ARP),
        eth(B, A, bytes(46), ethertype=0x8906),
        v4(0)[:33],  # IPv4 header cut short
        v4(0, options=bytes(8))[: 14 + 24],  # cut inside the options
        v6(0)[:53],
        eth(B, A, b"\x65" + bytes(45)),  # EtherType IPv4, version 6
        eth(B, A, b"\x44" + bytes(45)),  # IHL 4
        eth(B, A, b"\x45" + bytes(45), ethertype=ETH_P_IPV6),  # EtherType IPv6, version 4
        bytes(13),
        b"",
    ],
)
def test_not_ip(frame: bytes) -> None:
    assert set_dscp(frame, 10) is None
    assert get_dscp(frame) is None


@pytest.mark.parametrize("dscp", [-1, 64, 255])
def test_bad_dscp_raises(dscp: int) -> None:
    with pytest.raises(ValueError):
        set_dscp(v4(0), dscp)


@given(st.binary(max_size=80), st.integers(0, 63))
def test_random_bytes_never_raise(data: bytes, dscp: int) -> None:
    out = set_dscp(data, dscp)
    assert (out is None) == (get_dscp(data) is None)
    if out is not None:
        assert len(out) == len(data) and get_dscp(out) == dscp
