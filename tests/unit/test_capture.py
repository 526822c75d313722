"""Capture filter (TR-02 fields: EtherType, IP addresses, IP protocols, MACs) and capture-session bookkeeping."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pyvswitch.errors import ConfigError
from pyvswitch.observe.capture import CaptureFilter, CaptureSession, build_taps
from pyvswitch.packet.frame import ETH_P_ARP, ETH_P_IPV4, ETH_P_IPV6, UNTAGGED, Packet
from pyvswitch.testing.frames import BCAST, eth, ipv4, ipv6, udp
from pyvswitch.testing.pcapng import read_pcapng

A = "02:00:00:00:00:0a"
B = "02:00:00:00:00:0b"


def udp4(src: str, dst: str, payload: bytes = b"x" * 10) -> bytes:
    return eth(B, A, ipv4(src, dst, 17, udp(1000, 53, payload)))


def v6(src: str, dst: str, nh: int, payload: bytes, ext: bool = False) -> bytes:
    """IPv6 in Ethernet; ``ext`` puts an 8-byte destination-options header before the payload."""
    if ext:
        payload, nh = bytes([nh, 0]) + bytes(6) + payload, 60
    return eth(B, A, ipv6(src, dst, nh, payload), ethertype=ETH_P_IPV6)


# ---------------------------------------------------------------- filter


def test_empty_filter_matches_everything_even_runts() -> None:
    f = CaptureFilter()
    assert f.empty
    assert f.matches(b"")
    assert f.matches(udp4("10.0.0.1", "10.0.0.2"))


def test_ethertype_by_number_hex_or_name_and_out_of_band_tag() -> None:
    f = CaptureFilter.parse(ethertypes=["0x0806", "ipv6"])
    arp = eth(BCAST, A, bytes(28), ethertype=ETH_P_ARP)
    assert f.matches(arp)
    assert f.matches(v6("fd00::1", "fd00::2", 17, bytes(8)))
    assert not f.matches(udp4("10.0.0.1", "10.0.0.2"))
    # An inline tag is skipped: the EtherType after it counts.
    assert f.matches(eth(BCAST, A, bytes(28), ethertype=ETH_P_ARP, vlan=10))
    # 0x8100 matches a frame tagged inline or out of band.
    vlan = CaptureFilter.parse(ethertypes=[0x8100])
    assert vlan.matches(udp4("10.0.0.1", "10.0.0.2"), tci=10)
    assert vlan.matches(eth(BCAST, A, bytes(28), ethertype=ETH_P_ARP, vlan=10))
    assert not vlan.matches(udp4("10.0.0.1", "10.0.0.2"), tci=UNTAGGED)


def test_ip_addresses_match_either_end_with_prefixes_and_both_families() -> None:
    f = CaptureFilter.parse(ips=["10.0.0.2", "192.168.0.0/16", "fd00::/64"])
    assert f.matches(udp4("10.0.0.1", "10.0.0.2"))  # destination
    assert f.matches(udp4("10.0.0.2", "10.9.9.9"))  # source
    assert f.matches(udp4("192.168.44.1", "10.9.9.9"))  # prefix
    assert not f.matches(udp4("10.0.0.1", "10.0.0.3"))
    assert f.matches(v6("fd00::1", "2001:db8::1", 17, bytes(8)))
    assert not f.matches(v6("fd01::1", "2001:db8::1", 17, bytes(8)))
    assert not f.matches(eth(BCAST, A, bytes(28), ethertype=ETH_P_ARP))  # not IP
    only_v6 = CaptureFilter.parse(ips=["fd00::1"])
    assert not only_v6.matches(udp4("10.0.0.1", "10.0.0.2"))


def test_protocols_v4_and_v6_behind_extension_headers() -> None:
    f = CaptureFilter.parse(protocols=["udp", "58"])
    assert f.matches(udp4("10.0.0.1", "10.0.0.2"))
    assert not f.matches(eth(B, A, ipv4("10.0.0.1", "10.0.0.2", 6, bytes(20))))
    assert f.matches(v6("fd00::1", "fd00::2", 58, bytes(8)))
    # Destination-options header (8 bytes) before UDP: the upper-layer protocol is found.
    assert f.matches(v6("fd00::1", "fd00::2", 17, bytes(8), ext=True))
    assert not f.matches(v6("fd00::1", "fd00::2", 6, bytes(20), ext=True))


def test_macs_match_either_end_and_fields_are_anded() -> None:
    f = CaptureFilter.parse(macs=["02-00-00-00-00-0A"])
    assert f.matches(udp4("10.0.0.1", "10.0.0.2"))  # A is the source
    assert f.matches(eth(A, B, bytes(46)))  # and the destination
    assert not f.matches(eth(B, "02:00:00:00:00:0c", bytes(46)))
    both = CaptureFilter.parse(macs=[A], protocols=["tcp"])
    assert not both.matches(udp4("10.0.0.1", "10.0.0.2"))  # MAC matches, protocol does not


def test_truncated_ip_header_does_not_match_an_ip_field() -> None:
    f = CaptureFilter.parse(protocols=["udp"])
    frame = udp4("10.0.0.1", "10.0.0.2")
    assert not f.matches(frame[:20])
    assert not f.matches(frame[:10])


def test_parse_names_every_bad_value() -> None:
    with pytest.raises(ConfigError) as e:
        CaptureFilter.parse(
            ethertypes=["0x10000", "ipx"], ips=["10.0.0.300"], protocols=["tcp", 300], macs=["x"]
        )
    fields = [f for f, _ in e.value.problems]
    assert fields == ["ethertypes[0]", "ethertypes[1]", "ips[0]", "protocols[1]", "macs[0]"]
    with pytest.raises(ConfigError) as renamed:
        CaptureFilter.parse(ips=["nope"], fields={"ips": "ip_addresses"})
    assert renamed.value.problems[0][0] == "ip_addresses[0]"


def test_describe_is_normalised() -> None:
    f = CaptureFilter.parse(
        ethertypes=["ipv4"], ips=["10.0.0.1/32", "10.1.0.0/16"], protocols=["tcp"], macs=[A]
    )
    assert f.describe() == {
        "ethertypes": ["0x0800"],
        "ips": ["10.0.0.1", "10.1.0.0/16"],
        "protocols": [6],
        "macs": [A],
    }


@given(data=st.binary(max_size=200), tci=st.sampled_from([UNTAGGED, 10, 0x2005]))
def test_matches_never_raises(data: bytes, tci: int) -> None:
    f = CaptureFilter.parse(
        ethertypes=["ipv4", "0x8100"], ips=["10.0.0.0/8", "fd00::1"], protocols=[17], macs=[A]
    )
    f.matches(data, tci)
    f.matches(memoryview(data), tci)


# ---------------------------------------------------------------- session


def packets(*frames: bytes, tci: int = UNTAGGED) -> list[Packet]:
    return [Packet(f, tci) for f in frames]


def test_session_records_in_and_out_truncated_with_tags(tmp_path: Path) -> None:
    path = tmp_path / "c.pcapng"
    s = CaptureSession("1", path, snaplen=128)
    assert s.attach("sw", "vm1", "pv0001")
    assert s.attach("sw", "vm1", "pv0001")  # already described: no second interface
    big = udp4("10.0.0.1", "10.0.0.2", bytes(1558))  # 1600 bytes
    s.record("vm1", "in", packets(big), None, 1_000)
    s.record("vm1", "out", packets(big), [0x2000 | 10], 2_000)  # PCP 1, VID 10
    s.record("nobody", "in", packets(big), None, 3_000)  # not attached: ignored
    s.close()
    assert (s.captured, s.filtered, s.dropped) == (2, 0, 0)
    cap = read_pcapng(path)
    assert [(i.name, i.description, i.snaplen) for i in cap.interfaces] == [("sw/vm1", "pv0001", 128)]
    rin, rout = cap.records
    assert (rin.direction, len(rin.data), rin.orig_len, rin.timestamp_ns) == ("in", 128, 1600, 1_000)
    assert (rout.direction, len(rout.data), rout.orig_len) == ("out", 128, 1604)
    assert rout.data[12:16] == struct.pack(">HH", 0x8100, 0x2000 | 10)
    assert rout.data[16:] == big[12:124]
    status = s.status()
    assert status["state"] == "stopped" and status["interfaces"] == ["sw/vm1"]
    assert status["files"] == [str(path)] and status["bytes"] == path.stat().st_size


def test_session_counts_filtered_and_size_capped(tmp_path: Path) -> None:
    s = CaptureSession(
        "2", tmp_path / "c.pcapng", filter=CaptureFilter.parse(protocols=["udp"]), max_bytes=1024, snaplen=0
    )
    s.attach("sw", "p", "eth9")
    udp = udp4("10.0.0.1", "10.0.0.2", bytes(200))
    tcp = eth(B, A, ipv4("10.0.0.1", "10.0.0.2", 6, bytes(200)))
    s.record("p", "in", packets(udp, tcp, udp, udp, udp, udp), None, 1)
    s.close()
    assert s.filtered == 1
    assert s.captured + s.dropped == 5 and s.dropped >= 1
    assert len(read_pcapng(tmp_path / "c.pcapng").records) == s.captured


def test_session_ring_files(tmp_path: Path) -> None:
    s = CaptureSession("3", tmp_path / "r.pcapng", snaplen=0, max_bytes=2048, ring_files=2)
    s.attach("sw", "p", "eth9")
    frame = udp4("10.0.0.1", "10.0.0.2", bytes(400))
    for i in range(20):
        s.record("p", "out", packets(frame), [UNTAGGED], i)
    s.close()
    files = [Path(f) for f in s.status()["files"]]
    assert len(files) == 2 and all(f.exists() for f in files)
    assert sorted(p.name for p in tmp_path.iterdir()) == [f.name for f in files]  # the oldest were deleted
    assert files[0].name > "r_00001.pcapng"
    assert s.captured == 20 and s.dropped == 0
    # Every ring file has the interface description again; the newest records are kept, in order.
    caps = [read_pcapng(f) for f in files]
    assert all(c.interfaces[0].name == "sw/p" for c in caps)
    kept = [r.timestamp_ns for c in caps for r in c.records]
    assert kept == list(range(20 - len(kept), 20))


def test_write_error_stops_the_session_without_raising(tmp_path: Path) -> None:
    s = CaptureSession("4", tmp_path / "c.pcapng")
    s.attach("sw", "p", "eth9")

    def broken(*args: object, **kwargs: object) -> bool:
        raise OSError(28, "No space left on device")

    s._writer.write_batch = broken  # type: ignore[method-assign]
    frame = udp4("10.0.0.1", "10.0.0.2")
    s.record("p", "in", packets(frame, frame), None, 1)
    assert s.error and "No space left" in s.error and s.status()["state"] == "failed"
    s.record("p", "in", packets(frame), None, 2)
    assert (s.captured, s.dropped) == (0, 3)
    assert not s.active
    s.close()


def test_moved_port_gets_a_new_interface(tmp_path: Path) -> None:
    s = CaptureSession("5", tmp_path / "c.pcapng")
    s.attach("sw1", "p", "eth9")
    s.record("p", "in", packets(udp4("10.0.0.1", "10.0.0.2")), None, 1)
    s.attach("sw2", "p", "eth9")
    s.record("p", "in", packets(udp4("10.0.0.1", "10.0.0.2")), None, 2)
    s.close()
    cap = read_pcapng(tmp_path / "c.pcapng")
    assert [i.name for i in cap.interfaces] == ["sw1/p", "sw2/p"]
    assert [r.interface for r in cap.records] == [0, 1]


def test_build_taps_only_for_covered_ports_and_directions(tmp_path: Path) -> None:
    ports = [("sw", "a", "ea"), ("sw", "b", "eb")]
    assert build_taps([], ports) is None
    only_c = CaptureSession("6", tmp_path / "c.pcapng", ports=["c"])
    assert build_taps([only_c], ports) is None  # covers no connected port: the engine pays nothing
    rx_a = CaptureSession("7", tmp_path / "a.pcapng", ports=["a"], direction="in")
    every = CaptureSession("8", tmp_path / "all.pcapng")
    taps = build_taps([only_c, rx_a, every], ports, now_ns=lambda: 42)
    assert taps is not None
    assert set(taps.rx) == {"a", "b"} and taps.rx["a"] == (rx_a, every)
    assert set(taps.tx) == {"a", "b"} and taps.tx["a"] == (every,)
    frame = udp4("10.0.0.1", "10.0.0.2")
    taps.received("a", packets(frame))
    taps.sent("b", packets(frame), [5])
    for s in (only_c, rx_a, every):
        s.close()
    assert (rx_a.captured, every.captured) == (1, 2)
    assert [r.timestamp_ns for r in read_pcapng(tmp_path / "all.pcapng").records] == [42, 42]


def test_bad_session_arguments() -> None:
    with pytest.raises(ValueError, match="direction"):
        CaptureSession("9", "/nonexistent/x", direction="sideways")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="snaplen"):
        CaptureSession("9", "/nonexistent/x", snaplen=-1)
    with pytest.raises(OSError):
        CaptureSession("9", "/nonexistent/dir/x.pcapng")


def test_ipv4_helper_is_what_we_think() -> None:
    frame = udp4("10.0.0.1", "10.0.0.2")
    assert struct.unpack_from(">H", frame, 12)[0] == ETH_P_IPV4
