"""Virtual subnets inside one switch (issue 13, HNV isolation): a VM port on a VSID is in that subnet's own
domain, apart from every VLAN and every other subnet, whatever its addresses; the tunnel port carries each
subnet as its private code (switch/vlan.py); configuration refuses what cannot be run."""

from __future__ import annotations

import pytest

from pyvswitch.config.schema import HostConfig, PortConfig, PortKind, SwitchConfig, SwitchType, VmConfig
from pyvswitch.config.validate import validate
from pyvswitch.testing.frames import BCAST, eth
from pyvswitch.testing.harness import SwitchHarness

EXT = SwitchConfig(name="ext", type=SwitchType.EXTERNAL, net_adapter="up0")
A, B, C, D, R = (f"02:00:00:00:00:0{i}" for i in "abcde")
BLUE, RED = 5001, 6001


def vm(name: str, mac: str, vsid: int = 0) -> PortConfig:
    return PortConfig(name=name, kind=PortKind.VM, vm=name, switch="ext", mac=mac, virtual_subnet_id=vsid)


@pytest.fixture
def h() -> SwitchHarness:
    ports = [
        PortConfig(name="up", kind=PortKind.UPLINK, switch="ext", interface="up0"),
        PortConfig(name="vx", kind=PortKind.TUNNEL, switch="ext", interface="10.91.0.1"),
        vm("a", A, BLUE), vm("b", B, BLUE), vm("c", C, RED), vm("d", D),
    ]  # fmt: skip
    return SwitchHarness([EXT], ports)


def test_a_broadcast_stays_in_its_subnet_and_reaches_the_tunnel_with_the_subnets_code(
    h: SwitchHarness,
) -> None:
    f = eth(BCAST, A, b"who-has")
    h.send("a", f)
    h.expect("b", f)
    h.expect("vx", f, vlan=1)  # BLUE's code: the first VSID of the switch
    h.expect_nothing("c", "d", "up")
    g = eth(BCAST, C, b"who-has")
    h.send("c", g)
    h.expect("vx", g, vlan=2)  # RED's
    h.expect_nothing("a", "b", "d", "up")


def test_frames_from_the_tunnel_reach_only_their_subnet(h: SwitchHarness) -> None:
    f = eth(BCAST, R, b"from-another-host")
    h.send("vx", f, tci=2)  # RED's code
    h.expect("c", f)
    h.expect_nothing("a", "b", "d", "up")
    h.send("vx", eth(A, R, b"unicast"), tci=1)
    h.expect("a", eth(A, R, b"unicast"))


def test_an_untagged_or_vlan_port_cannot_reach_a_subnet(h: SwitchHarness) -> None:
    h.send("d", eth(BCAST, D, b"x"))
    h.expect("up", eth(BCAST, D, b"x"))
    h.expect_nothing("a", "b", "c", "vx")
    h.send("up", eth(A, R, b"y"), tci=1)  # VLAN 1 on the uplink is not BLUE, whatever the number
    h.expect_nothing("a", "b", "c", "vx")


def test_configuration_refuses_tunnel_ports_and_subnets_on_two_switches() -> None:
    cfg = HostConfig(
        switches=[EXT, SwitchConfig(name="p", type=SwitchType.PRIVATE)],
        vms=[VmConfig(name="a"), VmConfig(name="b")],
        ports=[
            PortConfig(name="vx", kind=PortKind.TUNNEL, switch="ext", interface="10.91.0.1"),
            vm("a", A, BLUE),
            PortConfig(name="b", kind=PortKind.VM, vm="b", switch="p", mac=B, virtual_subnet_id=RED),
        ],
    )
    fields = {f for f, _ in validate(cfg)}
    assert {"ports[0].kind", "ports[2].virtual_subnet_id"} <= fields
    with pytest.raises(ValueError, match="4096"):
        vm("x", A, 100)
