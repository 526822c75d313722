"""Devices on real interfaces: AF_PACKET rings (tags out of band, big frames, TX tagging) and TAP."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator

import pytest

from pyvswitch.datapath.afpacket import AfPacketDevice
from pyvswitch.datapath.tap import TapDevice
from pyvswitch.errors import DeviceError
from pyvswitch.lab.traffic import Capture
from pyvswitch.packet.frame import UNTAGGED, Packet
from pyvswitch.testing.frames import eth
from pyvswitch.testing.netns import NetnsPool, sh, unique, wait_for
from tests.system.conftest import SEND_RAW, ns_python

pytestmark = pytest.mark.system

A = "02:00:00:00:0a:01"
B = "02:00:00:00:0a:02"


@pytest.fixture
def port(pool: NetnsPool) -> Iterator[tuple[AfPacketDevice, str]]:
    """An AF_PACKET device on a veth whose other end is eth0 in a quiet namespace."""
    ns = pool.netns("pvd", ipv6=False)
    ifname = unique("pvd")
    pool.veth(ifname, "eth0", b_ns=ns)
    dev = AfPacketDevice(ifname)
    try:
        yield dev, ns
    finally:
        dev.close()


def collect(dev: AfPacketDevice, want: int, timeout_s: float = 5.0) -> list[tuple[bytes, int, bytes | None]]:
    got: list[tuple[bytes, int, bytes | None]] = []

    def more() -> bool:
        got.extend((bytes(p.data), p.tci, p.vnet) for p in dev.recv(256))
        dev.release()
        return len(got) >= want

    wait_for(more, timeout_s=timeout_s, what=f"{want} frames on {dev.name}")
    return got


def test_rx_ring_recovers_8021q_tag_out_of_band(port: tuple[AfPacketDevice, str]) -> None:
    """VL-02: the kernel strips the tag on veth; the ring's tp_vlan_tci gives it back."""
    dev, ns = port
    frames = f"[Ether(dst='{B}', src='{A}')/Dot1Q(vlan=42, prio=5)/IP()/UDP(), Ether(dst='{B}', src='{A}')/IP()/UDP()]"
    ns_python(ns, SEND_RAW.format(iface="eth0", frames=frames))
    got = collect(dev, 2)
    (d1, tci1, v1), (_, tci2, _) = got
    assert tci1 == (5 << 13) | 42 and tci2 == UNTAGGED
    assert d1[12:14] == b"\x08\x00"  # tag is out of band, not in the data
    assert v1 is None  # a raw frame from scapy carries no offload state, so no header is kept


def test_received_frames_are_read_only_views_of_the_ring(port: tuple[AfPacketDevice, str]) -> None:
    """A filter extension cannot write into the receive ring (issue 16, Extension API: received data is
    read-only; Gate.replace makes new bytes): the view refuses the write."""
    dev, ns = port
    ns_python(ns, SEND_RAW.format(iface="eth0", frames=f"[Ether(dst='{B}', src='{A}')/IP()/UDP()]"))
    pkts: list[Packet] = []
    wait_for(lambda: bool(pkts.extend(dev.recv(16)) or pkts), timeout_s=5, what="a frame")
    try:
        assert isinstance(pkts[0].data, memoryview) and pkts[0].data.readonly
        with pytest.raises(TypeError):
            pkts[0].data[0] = 0  # type: ignore[index]
    finally:
        pkts.clear()
        dev.release()


def test_tx_inserts_tags_and_frames_arrive(port: tuple[AfPacketDevice, str]) -> None:
    dev, ns = port
    cap = Capture(ns, "eth0", "ether src " + A)
    try:
        pkts = [Packet(eth(B, A, b"x" * 100)), Packet(eth(B, A, b"y" * 100))]
        dev.send(pkts, [UNTAGGED, (3 << 13) | 7])
        lines = cap.wait_lines(2)
    finally:
        cap.stop()
    assert "vlan 7" not in lines[0] and "vlan 7, p 3" in lines[1]
    assert dev.counters.tx_frames == 2


def test_big_frames_take_the_copy_path_in_order(pool: NetnsPool) -> None:
    """Frames larger than a ring slot (jumbo MTU here; GSO super-frames in TCP) arrive whole and in order."""
    ns = pool.netns("pvd", ipv6=False)
    ifname = unique("pvd")
    pool.veth(ifname, "eth0", b_ns=ns)
    sh("ip", "link", "set", ifname, "mtu", "9000")
    sh("ip", "link", "set", "eth0", "mtu", "9000", netns=ns)
    dev = AfPacketDevice(ifname)
    try:
        sizes = [100, 8000, 200, 5000, 60]
        frames = "[" + ",".join(f"Ether(dst='{B}', src='{A}')/IP()/UDP()/Raw(b'z'*{n})" for n in sizes) + "]"
        ns_python(
            ns,
            SEND_RAW.format(iface="eth0", frames=frames).replace(
                "sendp(", "from scapy.all import Raw\nsendp("
            ),
        )
        got = collect(dev, len(sizes))
        assert [len(d) - 42 for d, _, _ in got] == sizes
        # and the other way: a big frame goes out through the TX socket, after the small one before it
        cap = Capture(ns, "eth0", "ether src " + A)
        try:
            dev.send([Packet(eth(B, A, b"s" * 50)), Packet(eth(B, A, b"b" * 7000))], [UNTAGGED, UNTAGGED])
            lines = cap.wait_lines(2)
        finally:
            cap.stop()
        assert "length 64" in lines[0] and "length 7014" in lines[1]
    finally:
        dev.close()


def test_missing_interface_is_a_device_error() -> None:
    with pytest.raises(DeviceError, match="nonexistent0"):
        AfPacketDevice("nonexistent0")


def test_tap_device_carries_traffic_from_a_namespace(pool: NetnsPool) -> None:
    """A TAP whose kernel side lives in a namespace: frames from its stack reach the switch side and back."""
    name = unique("pvt")
    dev = TapDevice(name)
    try:
        ns = pool.netns("pvd", ipv6=False)
        sh("ip", "link", "set", name, "netns", ns)
        sh("ip", "addr", "add", "10.77.0.1/24", "dev", name, netns=ns)
        sh("ip", "link", "set", name, "up", netns=ns)
        sh("ip", "neigh", "add", "10.77.0.2", "lladdr", B, "dev", name, netns=ns)
        ping = subprocess.Popen(
            ["ip", "netns", "exec", ns, "ping", "-c", "1", "-W", "5", "10.77.0.2"], stdout=subprocess.PIPE
        )
        got: list[Packet] = []
        wait_for(
            lambda: bool(got.extend(p for p in dev.recv(8) if p.data[12:14] == b"\x08\x00") or got),
            what="ICMP on TAP",
        )
        req = bytes(got[0].data)
        assert req[0:6] == bytes.fromhex(B.replace(":", ""))
        # answer the echo request: swap MACs and IPs, type 0, fix checksum
        reply = bytearray(req)
        reply[0:6], reply[6:12] = req[6:12], req[0:6]
        reply[26:30], reply[30:34] = req[30:34], req[26:30]
        reply[34] = 0
        reply[36:38] = b"\x00\x00"
        s = sum(int.from_bytes(reply[i : i + 2], "big") for i in range(34, len(reply) - 1, 2))
        if (len(reply) - 34) % 2:
            s += reply[-1] << 8
        while s >> 16:
            s = (s & 0xFFFF) + (s >> 16)
        reply[36:38] = (~s & 0xFFFF).to_bytes(2, "big")
        dev.send([Packet(bytes(reply))], [UNTAGGED])
        assert ping.wait(timeout=10) == 0
        assert dev.counters.tx_frames == 1
    finally:
        dev.close()
        if "ping" in locals():
            ping.kill()


def test_a_device_knows_its_interface_went_away_even_when_it_came_back(pool: NetnsPool) -> None:
    """issue 11 (hitless restart, migration recovery): an interface moved to another namespace and back keeps its
    name and index, but the kernel unbound the packet socket; the device must say so, so the forwarder re-binds."""
    ns = pool.netns("pvl", ipv6=False)
    away = pool.netns("pvm", ipv6=False)
    ifname = unique("pvl")
    pool.veth(ifname, "eth0", b_ns=ns)
    dev = AfPacketDevice(ifname)
    try:
        assert not dev.lost_interface()
        sh("ip", "link", "set", ifname, "netns", away)
        sh("ip", "-n", away, "link", "set", ifname, "netns", "1")
        assert dev.lost_interface()
        again = AfPacketDevice(ifname)
        try:
            assert not again.lost_interface()
        finally:
            again.close()
    finally:
        dev.close()
