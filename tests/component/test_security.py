"""Port security on a whole switch with memory devices and a fake clock (PS-01..07, switch/security.py)."""

from __future__ import annotations

import struct
from collections.abc import Sequence
from typing import Any

import pytest

from pyvswitch.config.schema import (
    ExtensionSetting,
    PortConfig,
    PortKind,
    SwitchConfig,
    SwitchType,
    VlanConfig,
)
from pyvswitch.ext.api import CapturedFrame, CaptureExtension, Context
from pyvswitch.ext.registry import Registry
from pyvswitch.packet.frame import ETH_P_ARP, ETH_P_IPV6, UNTAGGED
from pyvswitch.switch.security import DhcpGuard, MacGuard, RouterGuard, StormLimit
from pyvswitch.testing.frames import BCAST, eth, icmp, ipv4, ipv6, mac_bytes, udp
from pyvswitch.testing.harness import SwitchHarness

A, B, C, D = "02:00:00:00:00:0a", "02:00:00:00:00:0b", "02:00:00:00:00:0c", "02:00:00:00:00:0d"
LAN = "02:00:00:00:00:99"
EXT = SwitchConfig(name="ext", type=SwitchType.EXTERNAL, net_adapter="up0")

OFFER = eth(BCAST, A, ipv4("10.0.0.1", "255.255.255.255", 17, udp(67, 68, b"\x02" + bytes(239))))
DISCOVER = eth(BCAST, A, ipv4("0.0.0.0", "255.255.255.255", 17, udp(68, 67, b"\x01" + bytes(239))))
ADVERTISE6 = eth(BCAST, A, ipv6("fe80::a", "ff02::1:2", 17, udp(547, 546, bytes(4))), ethertype=ETH_P_IPV6)
REDIRECT4 = eth(B, A, ipv4("10.0.0.1", "10.0.0.2", 1, icmp(5, 1)))
ROUTER_ADV4 = eth(BCAST, A, ipv4("10.0.0.1", "224.0.0.1", 1, icmp(9, 0, bytes(12))))
RA6 = eth(
    "33:33:00:00:00:01", A, ipv6("fe80::a", "ff02::1", 58, icmp(134, 0, bytes(12))), ethertype=ETH_P_IPV6
)
REDIRECT6 = eth(B, A, ipv6("fe80::a", "fe80::b", 58, icmp(137, 0, bytes(36))), ethertype=ETH_P_IPV6)
ECHO = eth(B, A, ipv4("10.0.0.1", "10.0.0.2", 1, icmp(8)))


def vm(name: str, mac: str, switch: str = "ext", vm_name: str | None = None, **security: Any) -> PortConfig:
    return PortConfig(name=name, kind=PortKind.VM, vm=vm_name or name, switch=switch, mac=mac, **security)


def uplink(switch: str = "ext", interface: str = "up0", **security: Any) -> PortConfig:
    return PortConfig(
        name=f"{switch}-up", kind=PortKind.UPLINK, switch=switch, interface=interface, **security
    )


def security_of(h: SwitchHarness, port: str, switch: str = "ext") -> Any:
    sw = h.engine.switches[switch]
    found = next(p for p in sw.ports if p is not None and p.name == port)
    return found.security


def port_counters(h: SwitchHarness, port: str, switch: str = "ext") -> dict[str, Any]:
    counters = h.engine.counters()["switches"]
    assert isinstance(counters, dict)
    result: dict[str, Any] = counters[switch]["ports"][port]
    return result


def arp(sender_mac: str, src: str = A) -> bytes:
    body = struct.pack(">HHBBH", 1, 0x0800, 6, 4, 1) + mac_bytes(sender_mac) + bytes(4) + bytes(10)
    return eth(BCAST, src, body, ethertype=ETH_P_ARP)


# ---------------------------------------------------------------- compilation


def test_a_port_without_policy_has_no_guards() -> None:
    """Chains are compiled: a port with spoofing allowed and nothing else on runs no guard at all."""
    h = SwitchHarness(
        [EXT],
        [
            uplink(),
            vm("a", A, mac_spoofing=True),
            vm("b", B),
            PortConfig(name="t", kind=PortKind.TAP, switch="ext", interface="t"),
        ],
    )
    assert security_of(h, "a") is None
    assert security_of(h, "ext-up") is None  # no configured MAC behind an uplink: nothing to spoof
    assert security_of(h, "t") is None
    default = security_of(h, "b")  # Hyper-V's default: MAC spoofing off
    assert [type(e) for e in default.before] == [MacGuard] and default.after == ()


def test_guards_compile_in_hyperv_order_and_only_when_on() -> None:
    h = SwitchHarness(
        [EXT], [uplink(), vm("a", A, dhcp_guard=True, router_guard=True, storm_limit=10), vm("b", B)]
    )
    sec = security_of(h, "a")
    assert [type(e) for e in sec.before] == [DhcpGuard, RouterGuard, MacGuard]
    assert [type(e) for e in sec.after] == [StormLimit]
    h.configure([EXT], [uplink(), vm("a", A, mac_spoofing=True, router_guard=True), vm("b", B)])
    assert [type(e) for e in security_of(h, "a").before] == [RouterGuard]


# ---------------------------------------------------------------- PS-01, PS-02, PS-03


def test_mac_spoofing_off_drops_other_sources_PS01() -> None:
    h = SwitchHarness([EXT], [uplink(), vm("a", A), vm("b", B)])
    h.send("a", f := eth(BCAST, A))
    h.expect("b", f)
    h.take("ext-up")
    h.send("a", eth(BCAST, D))
    h.expect_nothing()
    assert h.drops("ext")["mac-spoofing"] == 1
    assert port_counters(h, "a")["security"]["mac-guard"]["drops"] == {"mac-spoofing": 1}
    assert port_counters(h, "a")["port_drops"] == {"mac-spoofing": 1}


def test_spoofed_frame_does_not_poison_the_mac_table_PS01() -> None:
    h = SwitchHarness([EXT], [uplink(), vm("a", A), vm("b", B)])
    h.send("ext-up", eth(BCAST, LAN))  # the LAN router's MAC is learned on the uplink
    h.take("a"), h.take("b")
    h.send("a", eth(BCAST, LAN))  # a claims the router's MAC
    h.expect_nothing()
    assert h.engine.counters()["switches"]["ext"]["fdb"]["moves"] == 0
    h.send("b", f := eth(LAN, B))
    h.expect("ext-up", f)
    h.expect_nothing("a")


def test_arp_sender_must_be_the_port_mac_PS01() -> None:
    h = SwitchHarness([EXT], [uplink(), vm("a", A), vm("b", B)])
    h.send("a", f := arp(A))
    h.expect("b", f)
    h.take("ext-up")
    h.send("a", arp(LAN))  # "10.0.0.1 is at <the router's MAC>" from a's own source MAC
    h.expect_nothing()
    assert h.drops("ext")["arp-spoofing"] == 1


def test_mac_spoofing_on_accepts_and_learns_other_sources_PS02() -> None:
    h = SwitchHarness([EXT], [uplink(), vm("a", A, mac_spoofing=True), vm("b", B)])
    h.send("a", f := eth(BCAST, D))
    h.expect("b", f)
    h.take("ext-up")
    h.send("a", arp(LAN))
    h.take("b"), h.take("ext-up")
    h.send("b", g := eth(D, B))  # the reply to the new MAC reaches a
    h.expect("a", g)
    assert "mac-spoofing" not in h.drops("ext")


def test_guest_teaming_across_two_external_switches_PS03() -> None:
    """Hyper-V guest teaming: each teamed adapter may send with its team partner's MAC (§3.7)."""
    ext2 = SwitchConfig(name="ext2", type=SwitchType.EXTERNAL, net_adapter="up2")
    ports = [
        uplink(),
        uplink("ext2", "up2"),
        vm("t-eth0", A, vm_name="t", allow_teaming=True),
        vm("t-eth1", C, "ext2", vm_name="t", allow_teaming=True),
        vm("u-eth0", D, "ext2", vm_name="u"),
    ]
    h = SwitchHarness([EXT, ext2], ports)
    h.send("t-eth0", f := eth(LAN, C))  # sent on switch ext with the other member's MAC
    h.expect("ext-up", f)
    h.send("ext-up", g := eth(C, LAN))  # learned on ext: replies to C come back through t-eth0
    h.expect("t-eth0", g)
    h.send("t-eth0", eth(LAN, D))  # another VM's MAC is still spoofing
    h.expect_nothing("ext-up")
    assert h.drops("ext")["mac-spoofing"] == 1


def test_teaming_needs_the_setting_on_both_members_PS03() -> None:
    ports = [
        uplink(),
        vm("t-eth0", A, vm_name="t", allow_teaming=True),
        vm("t-eth1", C, vm_name="t"),
        vm("b", B),
    ]
    h = SwitchHarness([EXT], ports)
    h.send("t-eth0", eth(BCAST, C))  # C is not a team member
    h.send("t-eth1", eth(BCAST, A))  # and t-eth1 may not team
    h.expect_nothing()
    assert h.drops("ext")["mac-spoofing"] == 2
    h.configure([EXT], [*ports[:2], vm("t-eth1", C, vm_name="t", allow_teaming=True), ports[3]])
    h.send("t-eth1", f := eth(BCAST, A))
    h.expect("b", f)


# ---------------------------------------------------------------- PS-04, PS-05


@pytest.mark.parametrize(
    ("setting", "frame", "reason"),
    [
        ("dhcp_guard", OFFER, "dhcp-guard"),
        ("dhcp_guard", ADVERTISE6, "dhcp-guard"),
        ("router_guard", REDIRECT4, "router-guard"),
        ("router_guard", ROUTER_ADV4, "router-guard"),
        ("router_guard", RA6, "router-guard"),
        ("router_guard", REDIRECT6, "router-guard"),
    ],
    ids=["offer", "dhcpv6", "icmp4-redirect", "icmp4-ra", "icmp6-ra", "icmp6-redirect"],
)
def test_guard_drops_when_on_and_passes_when_off_PS04_PS05(setting: str, frame: bytes, reason: str) -> None:
    off = SwitchHarness([EXT], [uplink(), vm("a", A), vm("b", B)])
    off.send("a", frame)
    off.expect("b", frame)
    assert reason not in off.drops("ext")

    on = SwitchHarness([EXT], [uplink(), vm("a", A, **{setting: True}), vm("b", B)])
    on.send("a", frame)
    on.expect_nothing()
    assert on.drops("ext") == {reason: 1}
    assert port_counters(on, "a")["security"][reason]["drops"] == {reason: 1}


@pytest.mark.parametrize(
    "frame", [DISCOVER, ECHO, eth(BCAST, A, ipv4("10.0.0.1", "10.0.0.255", 17, udp(68, 67)))]
)
def test_guards_pass_client_traffic_PS04_PS05(frame: bytes) -> None:
    h = SwitchHarness([EXT], [uplink(), vm("a", A, dhcp_guard=True, router_guard=True), vm("b", B)])
    h.send("a", frame)
    h.expect("b", frame)


def test_guard_on_an_uplink_is_an_explicit_opt_in() -> None:
    """Hyper-V has the guards on VM NICs only; here they apply wherever set, default off everywhere."""
    rogue = eth(BCAST, LAN, OFFER[14:])
    h = SwitchHarness([EXT], [uplink(), vm("b", B)])
    h.send("ext-up", rogue)
    h.expect("b", rogue)
    h.configure([EXT], [uplink(dhcp_guard=True), vm("b", B)])
    h.send("ext-up", rogue)
    h.expect_nothing()
    assert h.drops("ext")["dhcp-guard"] == 1


def test_guard_counters_survive_reconfiguration() -> None:
    ports = [uplink(), vm("a", A, dhcp_guard=True), vm("b", B)]
    h = SwitchHarness([EXT], ports)
    h.send("a", OFFER)
    h.configure([EXT], [uplink(), vm("a", A, dhcp_guard=True, router_guard=True), vm("b", B)])
    h.send("a", RA6)
    assert h.drops("ext") == {"dhcp-guard": 1, "router-guard": 1}


# ---------------------------------------------------------------- PS-06


def tci_of(frame: bytes) -> int:
    """The TCI of the frame's inline tag, or UNTAGGED."""
    if struct.unpack_from(">H", frame, 12)[0] != 0x8100:
        return UNTAGGED
    return int(struct.unpack_from(">H", frame, 14)[0])


PCP5 = 5 << 13


@pytest.mark.parametrize(("keep", "expected"), [(False, 10), (True, PCP5 | 10)])
def test_priority_kept_only_when_trusted_PS06(keep: bool, expected: int) -> None:
    access = VlanConfig(mode="Access", access_vlan_id=10)
    h = SwitchHarness([EXT], [uplink(), vm("a", A, vlan=access, ieee_priority_tag=keep)])
    h.send("a", eth(LAN, A), tci=PCP5 | 0x1000)  # priority-tagged (VID 0) out of band, with DEI
    (sent,) = h.take("ext-up")
    assert tci_of(sent) == expected


@pytest.mark.parametrize(("keep", "expected"), [(False, UNTAGGED), (True, PCP5)])
def test_untagged_uplink_gets_a_priority_tag_when_trusted_PS06(keep: bool, expected: int) -> None:
    h = SwitchHarness([EXT], [uplink(), vm("a", A, ieee_priority_tag=keep), vm("b", B)])
    h.send("a", eth(BCAST, A, bytes(46), vlan=0, pcp=5))  # priority tag inline, as a TAP delivers it
    (sent,) = h.take("ext-up")
    assert tci_of(sent) == expected
    h.expect("b", eth(BCAST, A, bytes(46)))  # a VM port still gets it untagged


def test_kept_priority_reaches_a_trunk_vm_and_unprioritised_frames_stay_plain_PS06() -> None:
    trunk = VlanConfig(mode="Trunk", allowed_vlan_ids=[20], native_vlan_id=1)
    access = VlanConfig(mode="Access", access_vlan_id=20)
    h = SwitchHarness(
        [EXT], [uplink(), vm("a", A, vlan=access, ieee_priority_tag=True), vm("t", B, vlan=trunk)]
    )
    h.send("a", eth(BCAST, A), tci=PCP5)
    (sent,) = h.take("t")
    assert tci_of(sent) == PCP5 | 20
    h.take("ext-up")
    h.send("a", eth(BCAST, A))  # no priority received: nothing added
    (sent,) = h.take("t")
    assert tci_of(sent) == 20


# ---------------------------------------------------------------- PS-07


def storm(h: SwitchHarness, port: str, frame: bytes, count: int, seconds: float) -> None:
    for _ in range(count):
        h.clock.advance(seconds / count)
        h.send(port, frame)


@pytest.mark.parametrize(
    "frame",
    [eth(BCAST, A), eth("01:00:5e:00:00:fb", A), eth(D, A)],
    ids=["broadcast", "multicast", "unknown-unicast"],
)
def test_storm_limit_admits_the_rate_within_10_percent_PS07(frame: bytes) -> None:
    h = SwitchHarness([EXT], [uplink(), vm("a", A, storm_limit=1000), vm("b", B)])
    storm(h, "a", frame, 3000, 1.0)  # three times the limit for one simulated second
    delivered = len(h.take("ext-up"))
    assert 1000 <= delivered <= 1100, delivered
    assert h.drops("ext")["storm-limit"] == 3000 - delivered


def test_storm_limit_holds_over_several_seconds_and_refills_PS07() -> None:
    h = SwitchHarness([EXT], [uplink(), vm("a", A, storm_limit=200), vm("b", B)])
    storm(h, "a", eth(BCAST, A), 2000, 4.0)
    assert abs(len(h.take("b")) - 800) <= 80
    h.advance(10)  # quiet: the bucket refills, but only to its small depth
    storm(h, "a", eth(BCAST, A), 100, 0.001)
    assert 1 <= len(h.take("b")) <= 15


def test_storm_limit_never_limits_known_unicast_PS07() -> None:
    h = SwitchHarness([EXT], [uplink(), vm("a", A, storm_limit=10), vm("b", B)])
    storm(h, "a", eth(B, A), 500, 1.0)
    assert len(h.take("b")) == 500
    assert "storm-limit" not in h.drops("ext")
    h.send("ext-up", eth(BCAST, LAN))  # once learned, the uplink's MAC is known unicast too
    storm(h, "a", eth(LAN, A), 500, 1.0)
    assert len(h.take("ext-up")) == 500


def test_storm_limit_zero_is_off_PS07() -> None:
    h = SwitchHarness([EXT], [uplink(), vm("a", A, storm_limit=0), vm("b", B)])
    storm(h, "a", eth(BCAST, A), 3000, 0.1)
    assert len(h.take("b")) == 3000


# ---------------------------------------------------------------- with the extension stack


class Recorder(CaptureExtension):
    name = "recorder"
    seen: list[bytes] = []

    def capture(self, ctx: Context, frames: Sequence[CapturedFrame], direction: str, port: int) -> None:
        Recorder.seen.extend(bytes(f.data) for f in frames)


def test_guards_run_after_the_extensions_ingress() -> None:
    """§1.9: capture and filter extensions see a frame before the built-in ingress policies drop it."""
    Recorder.seen.clear()
    sw = EXT.model_copy(update={"extensions": [ExtensionSetting(name="recorder")]})
    h = SwitchHarness([sw], [uplink(), vm("a", A, dhcp_guard=True), vm("b", B)], Registry.of(Recorder))
    h.send("a", OFFER)
    h.expect_nothing()
    assert h.drops("ext")["dhcp-guard"] == 1
    assert OFFER in Recorder.seen
