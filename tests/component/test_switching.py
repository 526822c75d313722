"""A whole switch on memory devices with a fake clock: forwarding, VLANs, PVLAN, MAC table (SW-07/08, VL-01..03)."""

from __future__ import annotations

import random

import pytest

from pyvswitch.config.schema import PortConfig, PortKind, SwitchConfig, SwitchType, VlanConfig
from pyvswitch.packet.vnet import VNET_HDR
from pyvswitch.testing.frames import BCAST, eth
from pyvswitch.testing.harness import SwitchHarness

A, B, C, D = "02:00:00:00:00:0a", "02:00:00:00:00:0b", "02:00:00:00:00:0c", "02:00:00:00:00:0d"
LAN = "02:00:00:00:00:99"
EXT = SwitchConfig(name="ext", type=SwitchType.EXTERNAL, net_adapter="up0")


def vm(name: str, mac: str, vlan: VlanConfig | None = None, switch: str = "ext") -> PortConfig:
    return PortConfig(name=name, kind=PortKind.VM, vm=name, switch=switch, mac=mac, vlan=vlan or VlanConfig())


def uplink(vlan: VlanConfig | None = None) -> PortConfig:
    return PortConfig(
        name="up", kind=PortKind.UPLINK, switch="ext", interface="up0", vlan=vlan or VlanConfig()
    )


def access(v: int) -> VlanConfig:
    return VlanConfig(mode="Access", access_vlan_id=v)


@pytest.fixture
def h() -> SwitchHarness:
    return SwitchHarness([EXT], [uplink(), vm("a", A), vm("b", B), vm("c", C)])


def test_known_unicast_goes_to_one_port(h: SwitchHarness) -> None:
    f = eth(B, A, b"hello")
    h.send("a", f)
    h.expect("b", f)
    h.expect_nothing("a", "c", "up")


def test_broadcast_to_all_same_vlan_ports_but_source_SW08(h: SwitchHarness) -> None:
    f = eth(BCAST, A, b"arp?")
    h.send("a", f)
    for port in ("b", "c", "up"):
        h.expect(port, f)
    h.expect_nothing("a")


def test_unknown_unicast_goes_to_uplink_only_SW07(h: SwitchHarness) -> None:
    f = eth(D, A)
    h.send("a", f)
    h.expect("up", f)
    h.expect_nothing("b", "c")


def test_unknown_unicast_from_uplink_reaches_no_vm_SW07(h: SwitchHarness) -> None:
    h.send("up", eth(D, LAN))
    h.expect_nothing()
    assert h.drops("ext")["unknown-unicast"] == 1


def test_unknown_unicast_floods_when_configured() -> None:
    sw = EXT.model_copy(update={"flood_unknown_unicast": True})
    h = SwitchHarness([sw], [uplink(), vm("a", A), vm("b", B)])
    f = eth(D, A)
    h.send("a", f)
    h.expect("b", f)
    h.expect("up", f)


def test_uplink_mac_is_learned_and_reply_is_unicast(h: SwitchHarness) -> None:
    h.send("up", eth(BCAST, LAN))
    h.take("a"), h.take("b"), h.take("c")
    f = eth(LAN, A)
    h.send("a", f)
    h.expect("up", f)
    h.expect_nothing("b", "c")


def test_access_vlan_tags_towards_uplink_and_isolates_VL02() -> None:
    h = SwitchHarness(
        [EXT], [uplink(), vm("a", A, access(10)), vm("b", B, access(10)), vm("c", C, access(20))]
    )
    f = eth(BCAST, A)
    h.send("a", f)
    h.expect("b", f)  # same VLAN, untagged to the VM
    h.expect("up", f, vlan=10)  # tagged on the uplink
    h.expect_nothing("c")
    # A frame from the LAN tagged 20 reaches only c, untagged.
    g = eth(BCAST, LAN)
    h.send("up", g, tci=20)
    h.expect("c", g)
    h.expect_nothing("a", "b")
    # Unicast to a known MAC in another VLAN is not delivered.
    h.send("c", eth(A, C))
    h.expect_nothing("a", "b")


def test_access_port_drops_tagged_frames_from_vm_VL02() -> None:
    h = SwitchHarness([EXT], [uplink(), vm("a", A, access(10)), vm("b", B, access(10))])
    h.send("a", eth(BCAST, A, vlan=10))
    h.expect_nothing()
    assert h.drops("ext")["vlan-not-admitted"] == 1


def test_trunk_allowed_tagged_native_untagged_VL03() -> None:
    trunk = VlanConfig(mode="Trunk", allowed_vlan_ids=[10, 20], native_vlan_id=10)
    h = SwitchHarness([EXT], [uplink(), vm("t", A, trunk), vm("x", B, access(10)), vm("y", C, access(20))])
    f = eth(BCAST, A)
    h.send("t", f)  # untagged from the trunk VM = native VLAN 10
    h.expect("x", f)
    h.expect("up", f, vlan=10)
    h.expect_nothing("y")
    h.send("y", f := eth(BCAST, C))
    h.expect("t", f, vlan=20)  # allowed, not native: tagged towards the VM
    h.take("up")
    h.send("x", f := eth(BCAST, B))
    h.expect("t", f)  # native: untagged
    h.take("up")
    # A VLAN outside the allowed list is dropped on ingress.
    h.send("t", eth(BCAST, A), tci=30)
    h.expect_nothing()
    assert h.drops("ext")["vlan-not-admitted"] == 1


def test_inline_tag_from_tap_is_stripped_and_classified() -> None:
    trunk = VlanConfig(mode="Trunk", allowed_vlan_ids=[10], native_vlan_id=1)
    h = SwitchHarness([EXT], [uplink(), vm("t", A, trunk), vm("x", B, access(10))])
    payload = b"p" * 50
    h.send("t", eth(BCAST, A, payload, vlan=10))
    h.expect("x", eth(BCAST, A, payload))


def pvlan_harness() -> SwitchHarness:
    iso = VlanConfig(mode="Isolated", primary_vlan_id=100, secondary_vlan_id=101)
    com = VlanConfig(mode="Community", primary_vlan_id=100, secondary_vlan_id=102)
    pro = VlanConfig(mode="Promiscuous", primary_vlan_id=100, secondary_vlan_ids=[101, 102])
    return SwitchHarness(
        [EXT],
        [uplink(), vm("i1", A, iso), vm("i2", B, iso), vm("c1", C, com), vm("c2", D, com), vm("p", LAN, pro)],
    )


def test_pvlan_isolated_reach_promiscuous_only_VL01() -> None:
    h = pvlan_harness()
    f = eth(BCAST, A)
    h.send("i1", f)
    h.expect("p", f)
    h.expect("up", f, vlan=101)  # secondary VLAN tagged on the trunk
    h.expect_nothing("i2", "c1", "c2")
    h.send("i1", eth(B, A))  # unicast to the other isolated VM
    h.expect_nothing("i2")
    # The promiscuous port's reply reaches the isolated VM (shared learning across primary and secondaries).
    g = eth(A, LAN)
    h.send("p", g)
    h.expect("i1", g)


def test_pvlan_community_members_reach_each_other_VL01() -> None:
    h = pvlan_harness()
    f = eth(BCAST, C)
    h.send("c1", f)
    h.expect("c2", f)
    h.expect("p", f)
    h.expect("up", f, vlan=102)
    h.expect_nothing("i1", "i2")
    h.send("p", g := eth(BCAST, LAN))
    for port in ("i1", "i2", "c1", "c2"):
        h.expect(port, g)
    h.expect("up", g, vlan=100)


def test_mac_table_overflow_evicts_oldest() -> None:
    sw = EXT.model_copy(update={"mac_table_size": 10})
    h = SwitchHarness([sw], [uplink(), vm("a", A)])
    macs = [f"02:00:00:00:01:{i:02x}" for i in range(11)]
    for m in macs[:10]:
        h.advance(1)
        h.send("up", eth(BCAST, m))
    learned = {r["mac"] for r in h.engine.fdb("ext") if not r["static"]}
    assert learned == set(macs[:10])
    h.send("up", eth(BCAST, macs[10]))
    learned = {r["mac"] for r in h.engine.fdb("ext") if not r["static"]}
    assert learned == set(macs[1:])  # the oldest went
    h.take("a")
    # Traffic to the evicted MAC is now unknown unicast: to the uplink, as before, but no longer learned.
    assert h.engine.counters()["switches"]["ext"]["fdb"]["evictions"] == 1


def test_mac_aging_with_fake_clock() -> None:
    sw = EXT.model_copy(update={"mac_aging_s": 300})
    ports = [uplink(), vm("a", A), PortConfig(name="tap1", kind=PortKind.TAP, switch="ext", interface="tap1")]
    h = SwitchHarness([sw], ports)
    h.send("tap1", eth(BCAST, D))  # D lives behind the TAP
    h.take("up"), h.take("a")
    h.advance(200)
    h.send("a", f := eth(D, A))
    h.expect("tap1", f)
    h.expect_nothing("up")
    h.advance(301)
    h.send("a", f)  # aged out: unknown unicast goes to the open ports again
    h.expect("tap1", f)
    h.expect("up", f)


def test_static_vm_mac_cannot_be_stolen_by_learning(h: SwitchHarness) -> None:
    h.send("up", eth(BCAST, B))  # someone on the LAN claims b's MAC
    h.take("a"), h.take("b"), h.take("c")
    h.send("a", f := eth(B, A))
    h.expect("b", f)
    h.expect_nothing("up")


def test_malformed_burst_is_counted_and_forwarding_continues(h: SwitchHarness) -> None:
    rng = random.Random(7)
    bad_vnet = VNET_HDR.pack(1, 0, 0, 0, 2000, 6)  # checksum offset far outside the frame
    gso_no_size = VNET_HDR.pack(1, 1, 54, 0, 34, 16)
    sent = 0
    for _ in range(200):
        h.send("a", rng.randbytes(rng.randrange(0, 14)))  # runts
        h.send("a", eth(BCAST, A, pad=False, ethertype=0x8100)[:15])  # truncated inline tag
        h.send("a", eth(B, A, b"x" * 3000))  # oversize, no GSO
        h.send("a", eth(B, A, b"y" * 100), vnet=bad_vnet)
        h.send("a", eth(B, A, b"z" * 100), vnet=gso_no_size)
        h.send("a", rng.randbytes(rng.randrange(14, 200)))  # random garbage: must not crash
        sent += 6
    drops = h.drops("ext")
    assert drops["runt"] == 200
    assert drops["truncated-vlan-tag"] == 200
    assert drops["oversize"] == 200
    assert drops["vnet-csum-out-of-frame"] == 200
    assert drops["vnet-bad-gso"] == 200
    assert h.engine.loop_errors == 0
    for p in ("b", "c", "up"):
        h.take(p)
    f = eth(B, A, b"still alive")
    h.send("a", f)
    h.expect("b", f)


def test_gso_superframe_with_header_passes_and_tag_shifts_offsets() -> None:
    from pyvswitch.packet.vnet import VIRTIO_NET_HDR_F_NEEDS_CSUM, VIRTIO_NET_HDR_GSO_TCPV4

    h = SwitchHarness([EXT], [uplink(), vm("a", A, access(10))])
    hdr = VNET_HDR.pack(VIRTIO_NET_HDR_F_NEEDS_CSUM, VIRTIO_NET_HDR_GSO_TCPV4, 66, 1448, 34, 16)
    big = eth(LAN, A, b"\x45" + bytes(20000))
    h.send("a", big, vnet=hdr)
    up = h.port_device("up")
    assert len(up.sent) == 1 and len(up.sent[0]) == len(big) + 4
    assert up.sent_vnet[0] is not None
    _flags, gso, hdr_len, size, start, off = VNET_HDR.unpack(up.sent_vnet[0])
    assert (gso, hdr_len, size, start, off) == (VIRTIO_NET_HDR_GSO_TCPV4, 70, 1448, 38, 16)


def test_reconfigure_keeps_learned_macs_and_applies_new_vlan(h: SwitchHarness) -> None:
    h.send("up", eth(BCAST, LAN))
    for p in ("a", "b", "c"):
        h.take(p)
    ports = [uplink(), vm("a", A, access(5)), vm("b", B), vm("c", C)]
    h.configure([EXT], ports)
    assert any(r["mac"] == LAN for r in h.engine.fdb("ext"))
    h.send("a", f := eth(LAN, A))
    h.expect("up", f, vlan=5)


@pytest.mark.parametrize(
    "dst", ["01:80:c2:00:00:00", "01:80:c2:00:00:01", "01:80:c2:00:00:02", "01:80:c2:00:00:0e"]
)
def test_link_local_reserved_multicast_is_never_forwarded(h: SwitchHarness, dst: str) -> None:
    """STP, MAC Control (PAUSE/PFC), slow protocols (LACP), LLDP: a VM's frame to 01-80-C2-00-00-0x stops at
    its port, counted (802.1Q 8.6.3; the Linux bridge and OVS do the same); 01-80-C2-00-00-10 is not reserved."""
    h.send("a", eth(dst, A, bytes(46), ethertype=0x88CC))
    h.expect_nothing()
    elements = h.engine.switches["ext"].counters()["elements"]
    assert elements["ingress"]["drops"]["reserved-multicast"] == 1  # type: ignore[index]
    h.send("a", eth("01:80:c2:00:00:10", A, bytes(46), ethertype=0x88CC))
    assert h.take("b") and h.take("c")
