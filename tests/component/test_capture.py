"""Capture sessions on a whole engine (memory devices): which port, which direction, which tag, how much (TR-02)."""

from __future__ import annotations

from pathlib import Path

import pytest

from pyvswitch.config.schema import PortConfig, PortKind, SwitchConfig, SwitchType, VlanConfig
from pyvswitch.observe.capture import CaptureFilter
from pyvswitch.testing.frames import BCAST, eth, ipv4, strip_tag, udp
from pyvswitch.testing.harness import SwitchHarness
from pyvswitch.testing.netns import wait_for
from pyvswitch.testing.pcapng import read_pcapng

A, B, C = "02:00:00:00:00:0a", "02:00:00:00:00:0b", "02:00:00:00:00:0c"
LAN = "02:00:00:00:00:99"
EXT = SwitchConfig(name="ext", type=SwitchType.EXTERNAL, net_adapter="up0")


def vm(name: str, mac: str, vlan: VlanConfig | None = None) -> PortConfig:
    return PortConfig(name=name, kind=PortKind.VM, vm=name, switch="ext", mac=mac, vlan=vlan or VlanConfig())


def uplink() -> PortConfig:
    return PortConfig(name="up", kind=PortKind.UPLINK, switch="ext", interface="up0")


ACCESS10 = VlanConfig(mode="Access", access_vlan_id=10)
PORTS = [uplink(), vm("a", A, ACCESS10), vm("b", B, ACCESS10), vm("c", C)]


@pytest.fixture
def h() -> SwitchHarness:
    return SwitchHarness([EXT], PORTS)


def frame(dst: str, src: str, size: int = 60) -> bytes:
    payload = bytes(max(0, size - 14 - 28))
    return eth(dst, src, ipv4("10.0.0.1", "10.0.0.2", 17, udp(1000, 9, payload)))


def test_no_session_no_taps_and_uncovered_sessions_cost_nothing(h: SwitchHarness, tmp_path: Path) -> None:
    assert h.engine.runner.taps is None
    s = h.capture(tmp_path / "c.pcapng", ports=["nonexistent"])
    assert h.engine.runner.taps is None  # covers no connected port
    h.send("a", frame(BCAST, A))
    h.stop_capture(s)
    assert s.captured == 0 and read_pcapng(tmp_path / "c.pcapng").records == []


def test_every_port_both_directions_with_the_wire_tags(h: SwitchHarness, tmp_path: Path) -> None:
    path = tmp_path / "all.pcapng"
    s = h.capture(path)
    f = frame(BCAST, A)
    h.send("a", f)  # access VLAN 10: to b untagged, to the uplink tagged 10
    h.send("up", frame(A, LAN), tci=10)  # from the LAN, tagged 10 out of band: to a untagged
    wire_up = h.take("up")
    assert strip_tag(wire_up[0])[0] == 10
    h.stop_capture(s)
    cap = read_pcapng(path)
    assert sorted(i.name for i in cap.interfaces) == ["ext/a", "ext/b", "ext/c", "ext/up"]
    assert {i.name: i.description for i in cap.interfaces}["ext/up"] == "up0"  # the OS interface
    a_in, b_out, up_out = cap.on("ext/a", "in"), cap.on("ext/b", "out"), cap.on("ext/up", "out")
    assert [r.data for r in a_in] == [f]
    assert [r.data for r in b_out] == [f]
    assert [r.data for r in up_out] == wire_up  # the tag the switch chose, where the device puts it
    up_in, a_out = cap.on("ext/up", "in"), cap.on("ext/a", "out")
    assert [strip_tag(r.data) for r in up_in] == [(10, frame(A, LAN))]
    assert [r.data for r in a_out] == [frame(A, LAN)]
    assert cap.on("ext/c") == []  # untagged VLAN: saw nothing
    assert (s.captured, s.filtered, s.dropped) == (5, 0, 0)


def test_truncation_keeps_the_original_length(h: SwitchHarness, tmp_path: Path) -> None:
    path = tmp_path / "t.pcapng"
    s = h.capture(path, ports=["a", "up"], snaplen=128)
    big = frame(BCAST, A, size=1514)  # the largest a 1500-byte MTU carries
    h.send("a", big)
    h.stop_capture(s)
    cap = read_pcapng(path)
    (a_in,) = cap.on("ext/a", "in")
    (up_out,) = cap.on("ext/up", "out")
    assert (len(a_in.data), a_in.orig_len) == (128, 1514)
    assert (len(up_out.data), up_out.orig_len) == (128, 1518)  # + the 802.1Q tag
    assert strip_tag(up_out.data)[0] == 10
    whole = tmp_path / "w.pcapng"
    s = h.capture(whole, ports=["a"], snaplen=0)
    h.send("a", big)
    h.stop_capture(s)
    assert [len(r.data) for r in read_pcapng(whole).records] == [1514]


@pytest.mark.parametrize("direction", ["in", "out"])
def test_one_direction(h: SwitchHarness, tmp_path: Path, direction: str) -> None:
    path = tmp_path / "d.pcapng"
    s = h.capture(path, ports=["a"], direction=direction)  # type: ignore[arg-type]
    h.send("a", frame(BCAST, A))  # a receives
    h.send("b", frame(A, B))  # a sends
    h.stop_capture(s)
    assert [r.direction for r in read_pcapng(path).records] == [direction]


def test_filter_counts_what_it_leaves_out(h: SwitchHarness, tmp_path: Path) -> None:
    path = tmp_path / "f.pcapng"
    s = h.capture(path, ports=["a"], direction="in", filter=CaptureFilter.parse(macs=[B]))
    h.send("a", frame(BCAST, A))
    h.send("a", frame(B, A))
    h.stop_capture(s)
    assert (s.captured, s.filtered) == (1, 1)
    assert [r.data[:6] for r in read_pcapng(path).records] == [bytes.fromhex("02000000000b")]


def test_all_ports_includes_ports_connected_later_and_stop_ends_recording(
    h: SwitchHarness, tmp_path: Path
) -> None:
    path = tmp_path / "later.pcapng"
    s = h.capture(path, direction="in")
    h.configure([EXT], [*PORTS, vm("d", "02:00:00:00:00:0d")])
    h.send("d", frame(BCAST, "02:00:00:00:00:0d"))
    h.stop_capture(s)
    assert h.engine.runner.taps is None
    h.send("d", frame(BCAST, "02:00:00:00:00:0d"))  # after the stop: not recorded
    cap = read_pcapng(path)
    assert [r.interface for r in cap.records] == [[i.name for i in cap.interfaces].index("ext/d")]
    assert s.status()["state"] == "stopped"


def test_sessions_are_added_and_removed_by_the_forwarding_thread(h: SwitchHarness, tmp_path: Path) -> None:
    h.engine.busy_poll_s = 0.0
    h.engine.start()
    try:
        path = tmp_path / "threaded.pcapng"
        s = h.capture(path, ports=["b"], direction="out")
        for _ in range(50):
            h.port_device("a").inject(frame(BCAST, A))
        wait_for(lambda: s.captured == 50, timeout_s=10, what="50 frames captured on b")
        # Idle: the engine flushed the file, so it can be read while the capture runs.
        wait_for(lambda: len(read_pcapng(path).records) == 50, timeout_s=10, what="the file flushed")
        h.stop_capture(s)
        sent = len(h.port_device("b").sent)
        h.port_device("a").inject(frame(BCAST, A))
        # The frame went out on b (no sleep: wait for it), and the stopped session did not record it.
        wait_for(lambda: len(h.port_device("b").sent) > sent, timeout_s=10, what="the frame forwarded to b")
        assert s.captured == 50
    finally:
        h.engine.stop()
