"""VLAN policy compilation (VL-01..03): ingress admission and egress tagging tables per mode."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from pyvswitch.config.schema import PortConfig, PortKind, VlanConfig
from pyvswitch.config.vocabulary import format_vlan_list, parse_vlan_list
from pyvswitch.packet.frame import UNTAGGED
from pyvswitch.switch.vlan import compile_vlan, learning_domains


def test_untagged_vm_port_only_untagged_domain() -> None:
    p = compile_vlan(VlanConfig(), PortKind.VM)
    assert p.ingress == {UNTAGGED: 0} and p.egress == {0: UNTAGGED}


def test_untagged_uplink_carries_every_vlan() -> None:
    p = compile_vlan(VlanConfig(), PortKind.UPLINK)
    assert p.ingress[UNTAGGED] == 0 and p.ingress[4094] == 4094
    assert p.egress[0] == UNTAGGED and p.egress[10] == 10


def test_access() -> None:
    p = compile_vlan(VlanConfig(mode="Access", access_vlan_id=10), PortKind.VM)
    assert p.ingress == {UNTAGGED: 10} and p.egress == {10: UNTAGGED}


def test_trunk_native_untagged_others_tagged() -> None:
    p = compile_vlan(VlanConfig(mode="Trunk", allowed_vlan_ids="10-12", native_vlan_id=5), PortKind.VM)
    assert p.ingress == {UNTAGGED: 5, 10: 10, 11: 11, 12: 12}
    assert p.egress == {5: UNTAGGED, 10: 10, 11: 11, 12: 12}


def test_pvlan_tables_and_shared_learning() -> None:
    iso = VlanConfig(mode="Isolated", primary_vlan_id=100, secondary_vlan_id=101)
    pro = VlanConfig(mode="Promiscuous", primary_vlan_id=100, secondary_vlan_ids="101-102")
    assert compile_vlan(iso, PortKind.VM).egress == {100: UNTAGGED}
    assert compile_vlan(pro, PortKind.VM).egress == {100: UNTAGGED, 101: UNTAGGED, 102: UNTAGGED}
    ports = [
        PortConfig(name="a", kind=PortKind.VM, vm="a", vlan=iso),
        PortConfig(name="b", kind=PortKind.VM, vm="b", vlan=pro),
    ]
    assert learning_domains(ports) == {101: 100, 102: 100}


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"mode": "Access"}, "requires access_vlan_id"),
        ({"mode": "Access", "access_vlan_id": 5, "native_vlan_id": 1}, "does not take native_vlan_id"),
        ({"mode": "Access", "access_vlan_id": 4095}, "less than or equal to 4094"),
        ({"mode": "Isolated", "primary_vlan_id": 5, "secondary_vlan_id": 5}, "must differ"),
        ({"mode": "Trunk", "allowed_vlan_ids": "1-x", "native_vlan_id": 1}, "bad VLAN list element"),
    ],
)
def test_invalid_vlan_config_names_the_problem(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        VlanConfig(**kwargs)  # type: ignore[arg-type]


def test_vlan_list_round_trip() -> None:
    assert format_vlan_list(parse_vlan_list("1-3, 7,9-10")) == "1-3,7,9-10"
