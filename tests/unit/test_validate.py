"""Cross-object validation: every problem is found, each with the path of its field."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from pyvswitch.config.schema import (
    HostConfig,
    PortConfig,
    PortKind,
    SwitchConfig,
    SwitchType,
    VlanConfig,
    VlanMode,
    VmConfig,
)
from pyvswitch.config.validate import format_loc, problems_from_validation_error, validate


def vm_port(name: str, vm: str, **kw: object) -> PortConfig:
    return PortConfig.model_validate({"name": name, "kind": "vm", "vm": vm, **kw})


def fields(cfg: HostConfig) -> set[str]:
    return {f for f, _ in validate(cfg)}


def test_valid_config_has_no_problems() -> None:
    cfg = HostConfig(
        switches=[
            SwitchConfig(name="ext", type=SwitchType.EXTERNAL, net_adapter="eth1"),
            SwitchConfig(name="int", type=SwitchType.INTERNAL),
        ],
        vms=[VmConfig(name="a"), VmConfig(name="b")],
        ports=[
            PortConfig(name="ext-uplink", kind=PortKind.UPLINK, switch="ext", interface="eth1"),
            PortConfig(name="int", kind=PortKind.HOST, switch="int", interface="pv1", peer_interface="pvh1"),
            vm_port(
                "a-eth0", "a", switch="ext", interface="pv2", peer_interface="eth0", mac="02:00:00:00:00:01"
            ),
            vm_port(
                "a-eth1", "a", switch="int", interface="pv3", peer_interface="eth1", mac="02:00:00:00:00:02"
            ),
            vm_port("b-eth0", "b", interface="pv4", peer_interface="eth0"),
        ],
    )
    assert validate(cfg) == []


def test_collects_every_problem_at_once() -> None:
    cfg = HostConfig(
        switches=[SwitchConfig(name="s"), SwitchConfig(name="s")],
        vms=[VmConfig(name="v")],
        ports=[
            vm_port("p", "v", switch="nope"),
            vm_port("p", "ghost"),
            PortConfig(name="q", kind=PortKind.INTERFACE, interface="eth5", switch="s", ip=["10.0.0.1/24"]),
        ],
    )
    assert fields(cfg) == {
        "switches[1].name",
        "ports[1].name",
        "ports[0].switch",
        "ports[1].vm",
        "ports[2].ip",
    }


def test_messages_say_what_is_wrong() -> None:
    cfg = HostConfig(ports=[vm_port("p", "ghost", switch="nope")])
    assert ("ports[0].switch", "no switch 'nope'") in validate(cfg)
    assert ("ports[0].vm", "no VM 'ghost'") in validate(cfg)


def test_interface_used_once_including_host_vnic_names() -> None:
    cfg = HostConfig(
        switches=[SwitchConfig(name="s", type=SwitchType.INTERNAL)],
        ports=[
            PortConfig(name="a", kind=PortKind.INTERFACE, interface="veth1", switch="s"),
            PortConfig(name="b", kind=PortKind.TAP, interface="veth1", switch="s"),
            PortConfig(name="c", kind=PortKind.HOST, interface="pv1", peer_interface="veth1", switch="s"),
        ],
    )
    assert fields(cfg) == {"ports[1].interface", "ports[2].peer_interface"}


def test_uplink_rules() -> None:
    cfg = HostConfig(
        switches=[
            SwitchConfig(name="e", type=SwitchType.EXTERNAL, net_adapter="eth1"),
            SwitchConfig(name="e2", type=SwitchType.EXTERNAL, net_adapter="eth1"),
            SwitchConfig(name="p"),
        ],
        ports=[
            PortConfig(name="u1", kind=PortKind.UPLINK, switch="e", interface="eth1"),
            PortConfig(name="u2", kind=PortKind.UPLINK, switch="e", interface="eth1"),
            PortConfig(name="u3", kind=PortKind.UPLINK, switch="p", interface="eth2"),
            PortConfig(name="i", kind=PortKind.INTERFACE, switch="p", interface="eth1"),
        ],
    )
    got = fields(cfg)
    assert "switches[1].net_adapter" in got  # adapter bound twice
    assert "ports[1].switch" in got  # second uplink on e
    assert "ports[2].switch" in got  # uplink on a Private switch
    assert "ports[3].interface" in got  # the adapter of switch e bound as a plain port


def test_private_switch_refuses_host_vnic() -> None:
    cfg = HostConfig(
        switches=[SwitchConfig(name="p", type=SwitchType.PRIVATE)],
        ports=[PortConfig(name="h", kind=PortKind.HOST, switch="p")],
    )
    assert fields(cfg) == {"ports[0].switch"}


def test_mac_unique_and_vm_names_in_vm_unique() -> None:
    cfg = HostConfig(
        vms=[VmConfig(name="v"), VmConfig(name="w", netns="v")],
        ports=[
            vm_port("a", "v", mac="02:00:00:00:00:01", peer_interface="eth0"),
            vm_port("b", "v", mac="02-00-00-00-00-01", peer_interface="eth0"),
        ],
    )
    assert fields(cfg) == {"ports[1].mac", "ports[1].peer_interface", "vms[1].netns"}


def test_too_many_adapters_per_vm() -> None:
    cfg = HostConfig(vms=[VmConfig(name="v")], ports=[vm_port(f"p{i}", "v") for i in range(13)])
    assert fields(cfg) == {"ports[12].vm"}


@pytest.mark.parametrize(
    ("second", "field"),
    [
        (
            {"mode": "Community", "primary_vlan_id": 100, "secondary_vlan_id": 101},
            "ports[1].vlan.secondary_vlan_id",
        ),
        (
            {"mode": "Isolated", "primary_vlan_id": 200, "secondary_vlan_id": 101},
            "ports[1].vlan.secondary_vlan_id",
        ),
        (
            {"mode": "Promiscuous", "primary_vlan_id": 200, "secondary_vlan_ids": "101"},
            "ports[1].vlan.secondary_vlan_ids",
        ),
        (
            {"mode": "Isolated", "primary_vlan_id": 101, "secondary_vlan_id": 102},
            "ports[0].vlan.secondary_vlan_id",
        ),
    ],
)
def test_pvlan_roles_consistent(second: dict[str, object], field: str) -> None:
    cfg = HostConfig(
        switches=[SwitchConfig(name="s")],
        vms=[VmConfig(name="v")],
        ports=[
            vm_port(
                "a",
                "v",
                switch="s",
                vlan={"mode": "Isolated", "primary_vlan_id": 100, "secondary_vlan_id": 101},
            ),
            vm_port("b", "v", switch="s", vlan=second),
        ],
    )
    assert field in fields(cfg)


def test_pvlan_consistent_roles_pass() -> None:
    iso = VlanConfig(mode=VlanMode.ISOLATED, primary_vlan_id=100, secondary_vlan_id=101)
    com = VlanConfig(mode=VlanMode.COMMUNITY, primary_vlan_id=100, secondary_vlan_id=102)
    pro = VlanConfig(mode=VlanMode.PROMISCUOUS, primary_vlan_id=100, secondary_vlan_ids=[101, 102])
    cfg = HostConfig(
        switches=[SwitchConfig(name="s")],
        vms=[VmConfig(name="v")],
        ports=[
            vm_port("a", "v", switch="s", vlan=iso),
            vm_port("b", "v", switch="s", vlan=iso),
            vm_port("c", "v", switch="s", vlan=com),
            vm_port("d", "v", switch="s", vlan=pro),
        ],
    )
    assert validate(cfg) == []


def test_pydantic_errors_become_paths() -> None:
    with pytest.raises(ValidationError) as info:
        HostConfig.model_validate(
            {
                "ports": [
                    {"name": "a", "kind": "vm", "vm": "v"},
                    {"name": "b", "kind": "vm", "vm": "v"},
                    {
                        "name": "c",
                        "kind": "vm",
                        "vm": "v",
                        "vlan": {"mode": "Access", "access_vlan_id": 5000},
                    },
                ],
                "switches": [{"name": "bad name"}],
            }
        )
    problems = problems_from_validation_error(info.value)
    got = {f for f, _ in problems}
    assert got == {"ports[2].vlan.access_vlan_id", "switches[0].name"}
    assert all(not m.startswith("Value error") for _, m in problems)


def test_model_level_errors_point_at_the_object() -> None:
    with pytest.raises(ValidationError) as info:
        HostConfig.model_validate({"ports": [{"name": "a", "kind": "vm", "vlan": {"mode": "Access"}}]})
    problems = problems_from_validation_error(info.value)
    assert problems == [("ports[0].vlan", "mode Access requires access_vlan_id")]
    with pytest.raises(ValidationError) as info:
        HostConfig.model_validate({"ports": [{"name": "a", "kind": "vm"}]})
    assert problems_from_validation_error(info.value) == [("ports[0]", "a vm port needs vm")]


def test_format_loc() -> None:
    assert format_loc(("ports", 2, "vlan", "access_vlan_id")) == "ports[2].vlan.access_vlan_id"
    assert format_loc(("name",), "store.port['x']") == "store.port['x'].name"
    assert format_loc(()) == ""
