"""Team interfaces as the engine runs them (config.team_nics.realize) and their validation rules (TM-12)."""

from __future__ import annotations

from pyvswitch.config.schema import HostConfig, PortKind, VlanMode
from pyvswitch.config.team_nics import default_nic_name, engine_team_name, hidden_owner, realize, team_nics
from pyvswitch.config.validate import validate


def host(**teams: dict[str, object]) -> HostConfig:
    return HostConfig.model_validate(
        {"teams": [{"name": n, "members": ["eth1"], **t} for n, t in teams.items()]}
    )


def test_standalone_team_gets_a_hidden_switch_and_taps() -> None:
    cfg = host(t1={"team_nics": [{"name": "t1.10", "vlan_id": 10}, {"name": "t1u", "vlan_id": 0}]})
    view = realize(cfg)
    assert [s.name for s in view.switches] == ["_team:t1"]
    assert [t.name for t in view.teams] == ["_team:t1"] and engine_team_name(cfg, "t1") == "_team:t1"
    ports = {p.name: p for p in view.ports}
    assert set(ports) == {"_team:t1:uplink", "_team:t1:t1", "_team:t1:t1.10", "_team:t1:t1u"}
    assert (
        ports["_team:t1:uplink"].kind is PortKind.UPLINK and ports["_team:t1:uplink"].interface == "_team:t1"
    )
    assert all(p.switch == "_team:t1" for p in ports.values())
    assert {p.interface for p in ports.values() if p.kind is PortKind.TAP} == {"t1", "t1.10", "t1u"}
    assert ports["_team:t1:t1.10"].vlan.access_vlan_id == 10
    assert ports["_team:t1:t1u"].vlan.mode is VlanMode.UNTAGGED
    default = ports["_team:t1:t1"].vlan
    assert default.mode is VlanMode.TRUNK and default.native_vlan_id == 0
    assert 10 not in default.allowed_vlan_ids and len(default.allowed_vlan_ids) == 4093
    assert hidden_owner("_team:t1:t1.10") == ("t1", "t1.10") and hidden_owner("_team:t1:uplink") == (
        "t1",
        None,
    )
    assert hidden_owner("web01-eth0") is None


def test_primary_in_a_vlan_is_an_access_port() -> None:
    view = realize(host(t1={"primary_nic_vlan": 5}))
    primary = next(p for p in view.ports if p.name == "_team:t1:t1")
    assert primary.vlan.mode is VlanMode.ACCESS and primary.vlan.access_vlan_id == 5


def test_a_team_used_by_a_switch_is_left_to_the_switch() -> None:
    cfg = HostConfig.model_validate(
        {
            "teams": [{"name": "t1", "members": ["eth1"]}],
            "switches": [{"name": "ext", "type": "External", "net_adapter": "t1"}],
        }
    )
    assert realize(cfg) == cfg and engine_team_name(cfg, "t1") == "t1"


def test_nic_names_and_display_names() -> None:
    assert default_nic_name("t1", 10) == "t1.10"
    assert default_nic_name("a-long-teamname", 4094) == "a-long-tea.4094"  # 15 characters
    nics = team_nics(host(t1={"team_nics": [{"name": "t1.10", "vlan_id": 10}]}).teams[0])
    assert [(n.name, n.primary, n.display_name) for n in nics] == [
        ("t1", True, "t1"),
        ("t1.10", False, "t1 - VLAN 10"),
    ]


def test_validation_of_team_interfaces() -> None:
    """§3.6: a team bound to a switch keeps only its default tNIC; tNIC names are host interface names."""
    cfg = HostConfig.model_validate(
        {
            "teams": [
                {
                    "name": "t1",
                    "members": ["eth1"],
                    "primary_nic_vlan": 3,
                    "team_nics": [{"name": "v", "vlan_id": 4}],
                },
                {
                    "name": "t2",
                    "members": ["eth2"],
                    "team_nics": [{"name": "eth1", "vlan_id": 4}, {"name": "v", "vlan_id": 5}],
                },
            ],
            "switches": [{"name": "ext", "type": "External", "net_adapter": "t1"}],
        }
    )
    problems = validate(cfg)
    paths = [p for p, _ in problems]
    assert paths == [
        "teams[0].primary_nic_vlan",
        "teams[0].team_nics[0].vlan_id",
        "teams[1].team_nics[0].name",
        "teams[1].team_nics[1].name",
    ]
    assert "all VLAN separation is done in the switch" in problems[0][1]
    assert problems[2][1] == "interface name 'eth1' is already used: a member of team 't1'"
    assert problems[3][1] == "interface name 'v' is already used: a team interface of team 't1'"
