"""Team management through the REST API and the CLI (issue 4 item 4): Set-NetLbfoTeam, members, team NICs.

The daemon runs on the fake engine and lab of ``test_api``; what the engine is given shows how team
interfaces are realized: a hidden switch per team no switch uses, never stored nor listed (config.team_nics).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from pyvswitch.config.schema import HostConfig, PortConfig, VlanMode
from pyvswitch.config.store import Store
from pyvswitch.daemon.api import create_app
from pyvswitch.daemon.macpool import MacPool
from pyvswitch.daemon.service import Service
from pyvswitch.datapath import link
from pyvswitch.datapath.memory import MemoryDevice
from pyvswitch.ext.registry import Registry
from pyvswitch.packet.frame import UNTAGGED
from pyvswitch.switch.engine import Engine
from pyvswitch.testing.clock import FakeClock
from pyvswitch.testing.frames import BCAST, eth, ipv4, udp
from tests.component.test_api import Daemon, FakeEngine, FakeLab, errors
from tests.component.test_cli import Cli

NICS = {"eth1", "eth2", "eth3", "eth4", "eth5"}


@pytest.fixture
def d(tmp_path: Path) -> Iterator[Daemon]:
    daemon = Daemon(tmp_path / "config.db")
    daemon.lab.existing = set(NICS)
    yield daemon
    daemon.store.close()


@pytest.fixture
def cli(d: Daemon, capsys: pytest.CaptureFixture[str]) -> Cli:
    return Cli(d, capsys)


def ok(d: Daemon, method: str, path: str, status: int = 200, **kw: Any) -> Any:
    r = d.client.request(method, path, **kw)
    assert r.status_code == status, f"{method} {path} -> {r.status_code}: {r.text}"
    return r.json() if r.content else None


def fails(d: Daemon, method: str, path: str, status: int, **kw: Any) -> list[tuple[str, str]]:
    r = d.client.request(method, path, **kw)
    assert r.status_code == status, f"{method} {path} -> {r.status_code}: {r.text}"
    return errors(r)


def team(d: Daemon, name: str = "t1", members: tuple[str, ...] = ("eth1", "eth2"), **kw: Any) -> Any:
    return ok(d, "POST", "/v1/teams", 201, json={"name": name, "members": list(members), **kw})


def engine_ports(d: Daemon) -> dict[str, PortConfig]:
    return {p.name: p for p in d.engine.current.ports}


def engine_team(d: Daemon, name: str) -> Any:
    return next(t for t in d.engine.current.teams if t.name == name)


# ---------------------------------------------------------------- team interfaces


def test_a_team_no_switch_uses_is_a_host_interface_named_as_the_team(d: Daemon) -> None:
    """TM-12: the primary team interface, in Default mode, is a host interface (a TAP behind a hidden
    switch whose uplink is the team); the hidden switch is never listed nor stored."""
    t = team(d)
    assert t["nics"] == [
        {
            "name": "t1",
            "team": "t1",
            "vlan_id": None,
            "primary": True,
            "default": True,
            "display_name": "t1",
            "switch": None,
            "interface": "t1",
        }
    ]
    cfg = d.engine.current
    assert [s.name for s in cfg.switches] == ["_team:t1"]
    assert cfg.switches[0].net_adapter == "_team:t1"
    # The engine knows the team by the hidden switch's name: the TAP named "t1" is not the team.
    assert [t.name for t in cfg.teams] == ["_team:t1"]
    assert engine_team(d, "_team:t1").members == ["eth1", "eth2"]
    ports = engine_ports(d)
    assert ports["_team:t1:uplink"].interface == "_team:t1"
    primary = ports["_team:t1:t1"]
    assert (primary.kind.value, primary.interface, primary.vlan.mode) == ("tap", "t1", VlanMode.TRUNK)
    assert primary.vlan.native_vlan_id == 0 and len(primary.vlan.allowed_vlan_ids) == 4094
    assert ok(d, "GET", "/v1/switches") == []
    assert ok(d, "GET", "/v1/config")["switches"] == []
    assert d.store.load().switches == []


def test_vlan_team_nic_is_an_access_tap_and_leaves_the_default_one(d: Daemon) -> None:
    """TM-12: a VLAN tNIC receives its VLAN untagged; the Default tNIC keeps every VLAN nobody claims."""
    team(d)
    n = ok(d, "POST", "/v1/teams/t1/nics", 201, json={"vlan_id": 10})
    assert (n["name"], n["display_name"], n["primary"], n["default"]) == (
        "t1.10",
        "t1 - VLAN 10",
        False,
        False,
    )
    ok(d, "POST", "/v1/teams/t1/nics", 201, json={"vlan_id": 0, "name": "t1-untagged"})
    ports = engine_ports(d)
    vlan10 = ports["_team:t1:t1.10"]
    assert (vlan10.interface, vlan10.vlan.mode, vlan10.vlan.access_vlan_id) == ("t1.10", VlanMode.ACCESS, 10)
    assert ports["_team:t1:t1-untagged"].vlan.mode is VlanMode.UNTAGGED  # VLAN 0: untagged + priority
    default = ports["_team:t1:t1"].vlan
    assert 10 not in default.allowed_vlan_ids and 11 in default.allowed_vlan_ids
    names = [n["name"] for n in ok(d, "GET", "/v1/teams/t1/nics")]
    assert names == ["t1", "t1.10", "t1-untagged"]
    assert ok(d, "GET", "/v1/teams/t1/nics/t1.10")["vlan_id"] == 10
    assert ok(d, "GET", "/v1/teams/t1")["team_nics"] == [
        {"name": "t1.10", "vlan_id": 10},
        {"name": "t1-untagged", "vlan_id": 0},
    ]


def test_default_name_fits_a_linux_interface_name(d: Daemon) -> None:
    team(d, "team-fifteen-ch", ("eth1",))
    n = ok(d, "POST", "/v1/teams/team-fifteen-ch/nics", 201, json={"vlan_id": 4094})
    assert n["name"] == "team-fifte.4094" and n["display_name"] == "team-fifteen-ch - VLAN 4094"


def test_team_nic_errors_name_the_field(d: Daemon) -> None:
    team(d)
    ok(d, "POST", "/v1/teams/t1/nics", 201, json={"vlan_id": 10})
    assert fails(d, "POST", "/v1/teams/t1/nics", 409, json={"vlan_id": 10, "name": "x"}) == [
        ("vlan_id", "team interface 't1.10' of team 't1' already has VlanID 10")
    ]
    assert fails(d, "POST", "/v1/teams/t1/nics", 409, json={"vlan_id": 11, "name": "t1.10"})[0][0] == "name"
    assert fails(d, "POST", "/v1/teams/t1/nics", 409, json={"vlan_id": 11, "name": "t1"})[0][0] == "name"
    assert fails(d, "POST", "/v1/teams/t1/nics", 400, json={"vlan_id": 4095})[0][0] == "vlan_id"
    field, msg = fails(d, "POST", "/v1/teams/t1/nics", 400, json={"vlan_id": 12, "name": "t1 - VLAN 12"})[0]
    assert field == "name" and "interface name" in msg
    # A host interface name that is taken: a team member, or an interface that exists on the host.
    assert fails(d, "POST", "/v1/teams/t1/nics", 400, json={"vlan_id": 12, "name": "eth1"}) == [
        ("name", "interface name 'eth1' is already used: a member of team 't1'")
    ]
    assert fails(d, "POST", "/v1/teams/t1/nics", 400, json={"vlan_id": 12, "name": "eth5"}) == [
        ("name", "interface 'eth5' already exists on this host")
    ]
    assert fails(d, "POST", "/v1/teams/nope/nics", 404, json={"vlan_id": 12})[0][0] == "team"
    assert fails(d, "GET", "/v1/teams/t1/nics/nope", 404)[0][0] == "name"
    assert [n["name"] for n in ok(d, "GET", "/v1/teams/t1/nics")] == ["t1", "t1.10"]


def test_set_team_nic_vlan_and_default(d: Daemon) -> None:
    """TM-12: only the team interface created with the team can be put back into Default mode."""
    team(d)
    ok(d, "POST", "/v1/teams/t1/nics", 201, json={"vlan_id": 10})
    n = ok(d, "PATCH", "/v1/teams/t1/nics/t1", json={"vlan_id": 20})
    assert (n["vlan_id"], n["default"], n["primary"]) == (20, False, True)
    assert engine_ports(d)["_team:t1:t1"].vlan.access_vlan_id == 20
    assert fails(d, "PATCH", "/v1/teams/t1/nics/t1", 409, json={"vlan_id": 10})[0][0] == "vlan_id"
    n = ok(d, "PATCH", "/v1/teams/t1/nics/t1.10", json={"vlan_id": 30})
    assert n["vlan_id"] == 30 and engine_ports(d)["_team:t1:t1.10"].vlan.access_vlan_id == 30
    field, msg = fails(d, "PATCH", "/v1/teams/t1/nics/t1.10", 400, json={"default": True})[0]
    assert field == "default" and "only the primary team interface" in msg
    assert fails(d, "PATCH", "/v1/teams/t1/nics/t1", 400, json={})[0][0] == "vlan_id"
    n = ok(d, "PATCH", "/v1/teams/t1/nics/t1", json={"default": True})
    assert n["default"] and n["vlan_id"] is None
    assert engine_ports(d)["_team:t1:t1"].vlan.mode is VlanMode.TRUNK


def test_removing_a_team_nic_removes_its_interface_but_not_the_primary(d: Daemon) -> None:
    team(d)
    ok(d, "POST", "/v1/teams/t1/nics", 201, json={"vlan_id": 10})
    assert "_team:t1:t1.10" in engine_ports(d)
    ok(d, "DELETE", "/v1/teams/t1/nics/t1.10", 204)
    assert "_team:t1:t1.10" not in engine_ports(d)  # the engine closes the TAP: the interface goes
    field, msg = fails(d, "DELETE", "/v1/teams/t1/nics/t1", 409)[0]
    assert field == "name" and "goes with the team" in msg
    ok(d, "DELETE", "/v1/teams/t1", 204)
    assert d.engine.current.switches == [] and d.engine.current.ports == []


def test_a_team_bound_to_a_switch_keeps_only_its_default_interface(d: Daemon) -> None:
    """TM-12 / §3.6: on a team bound to a switch all VLAN separation is done in the switch."""
    team(d)
    ok(d, "POST", "/v1/teams/t1/nics", 201, json={"vlan_id": 10})
    sw = {"name": "ext", "type": "External", "net_adapter": "t1", "allow_management_os": False}
    field, msg = fails(d, "POST", "/v1/switches", 400, json=sw)[0]
    assert field == "teams['t1'].team_nics[0].vlan_id"  # another object: by its name, not an index
    assert "all VLAN separation is done in the switch" in msg and "'t1.10'" in msg
    ok(d, "DELETE", "/v1/teams/t1/nics/t1.10", 204)
    ok(d, "POST", "/v1/switches", 201, json=sw)
    # The switch's uplink is the default team interface: no hidden switch, no host interface.
    cfg = d.engine.current
    assert [s.name for s in cfg.switches] == ["ext"] and [t.name for t in cfg.teams] == ["t1"]
    assert [p.name for p in cfg.ports] == ["ext-uplink"]
    (primary,) = ok(d, "GET", "/v1/teams/t1/nics")
    assert primary["switch"] == "ext" and primary["interface"] is None
    field, msg = fails(d, "POST", "/v1/teams/t1/nics", 400, json={"vlan_id": 10})[0]
    assert field == "vlan_id" and "keep only the default team interface" in msg
    assert fails(d, "PATCH", "/v1/teams/t1/nics/t1", 400, json={"vlan_id": 10})[0][0] == "vlan_id"
    # Unbound again, the team is a host interface again.
    ok(d, "DELETE", "/v1/switches/ext", 204)
    assert "_team:t1:t1" in engine_ports(d)


def test_an_engine_failure_on_a_team_nic_names_it(d: Daemon) -> None:
    team(d)
    d.engine.broken = {"t1.10"}
    assert fails(d, "POST", "/v1/teams/t1/nics", 400, json={"vlan_id": 10}) == [
        ("name", "cannot open afpacket device on interface 't1.10'")
    ]
    assert ok(d, "GET", "/v1/teams/t1")["team_nics"] == []
    assert "_team:t1:t1.10" not in engine_ports(d)


def test_startup_leaves_a_team_nic_that_cannot_open_degraded(tmp_path: Path) -> None:
    d = Daemon(tmp_path / "c.db")
    d.lab.existing = set(NICS)
    team(d)
    ok(d, "POST", "/v1/teams/t1/nics", 201, json={"vlan_id": 10})
    d.store.close()
    broken = FakeEngine()
    broken.broken = {"t1.10"}
    d.engine, d.store = broken, Store(d.path)
    d.service = Service(d.store, d.engine, d.lab, MacPool(0x0102))
    d.service.start()
    assert set(d.service.degraded()) == {"_team:t1:t1.10"}
    ports = engine_ports(d)
    assert ports["_team:t1:t1.10"].switch is None and ports["_team:t1:t1"].switch == "_team:t1"
    # An unrelated change keeps it degraded instead of failing on it again.
    d.service.add_team(HostConfig.model_validate({"teams": [{"name": "t2", "members": ["eth3"]}]}).teams[0])
    assert set(d.service.degraded()) == {"_team:t1:t1.10"}
    d.store.close()


def test_teams_and_their_interfaces_survive_a_restart(d: Daemon) -> None:
    team(d, standby_member="eth2", teaming_mode="Lacp")
    ok(d, "POST", "/v1/teams/t1/nics", 201, json={"vlan_id": 10})
    before = ok(d, "GET", "/v1/teams/t1")
    d.restart()
    assert ok(d, "GET", "/v1/teams/t1") == before
    assert "_team:t1:t1.10" in engine_ports(d)


# ---------------------------------------------------------------- Set-NetLbfoTeam


def test_set_team_changes_a_team_in_use_live(d: Daemon) -> None:
    """TM-02: mode, algorithm and LACP timer are changeable on a live team (also while a switch uses it).

    The service only changes the configuration; the engine reconfigures the open TeamDevice in place when it
    sees a changed TeamConfig (switch/engine.py)."""
    team(d)
    ok(d, "POST", "/v1/switches", 201, json={"name": "ext", "type": "External", "net_adapter": "t1"})
    body = {
        "teaming_mode": "Lacp",
        "load_balancing": "TransportPorts",
        "lacp_timer": "Fast",
        "up_delay_ms": 200,
        "down_delay_ms": 50,
        "lacp_fallback": True,
    }
    t = ok(d, "PATCH", "/v1/teams/t1", json=body)
    assert {k: t[k] for k in body} == body
    live = engine_team(d, "t1")
    assert (live.teaming_mode.value, live.load_balancing.value, live.lacp_timer.value) == (
        "Lacp",
        "TransportPorts",
        "Fast",
    )
    assert (live.up_delay_ms, live.down_delay_ms, live.lacp_fallback) == (200, 50, True)
    assert ok(d, "PATCH", "/v1/teams/t1", json={"teaming_mode": "Static"})["lacp_timer"] == "Fast"
    assert d.service.history(1)[0]["summary"] == "set team t1: teaming_mode"


def test_set_team_errors_name_the_field(d: Daemon) -> None:
    team(d)
    assert fails(d, "PATCH", "/v1/teams/t1", 400, json={"teaming_mode": "Bogus"})[0][0] == "teaming_mode"
    assert fails(d, "PATCH", "/v1/teams/t1", 400, json={"lacp_timer": None}) == [
        ("lacp_timer", "may not be null")
    ]
    assert fails(d, "PATCH", "/v1/teams/t1", 400, json={"up_delay_ms": -1})[0][0] == "up_delay_ms"
    assert fails(d, "PATCH", "/v1/teams/t1", 400, json={"members": ["eth3"]})[0][0] == "members"
    assert fails(d, "PATCH", "/v1/teams/nope", 404, json={"lacp_timer": "Fast"})[0][0] == "name"


# ---------------------------------------------------------------- members


def test_add_set_remove_members(d: Daemon) -> None:
    """TM-01, TM-11: members come and go on a live team; at most one standby member."""
    team(d)
    t = ok(d, "POST", "/v1/teams/t1/members", 201, json={"name": "eth3"})
    assert t["members"] == ["eth1", "eth2", "eth3"] and t["standby_member"] is None
    assert engine_team(d, "_team:t1").members == ["eth1", "eth2", "eth3"]
    t = ok(d, "POST", "/v1/teams/t1/members", 201, json={"name": "eth4", "administrative_mode": "Standby"})
    assert t["standby_member"] == "eth4"
    field, msg = fails(
        d, "POST", "/v1/teams/t1/members", 409, json={"name": "eth5", "administrative_mode": "Standby"}
    )[0]
    assert field == "administrative_mode" and "already has a standby member 'eth4'" in msg
    assert fails(d, "PATCH", "/v1/teams/t1/members/eth1", 409, json={"administrative_mode": "Standby"})[0][
        0
    ] == ("administrative_mode")
    assert (
        ok(d, "PATCH", "/v1/teams/t1/members/eth4", json={"administrative_mode": "Active"})["standby_member"]
        is None
    )
    assert ok(d, "PATCH", "/v1/teams/t1/members/eth1", json={"administrative_mode": "Standby"})[
        "standby_member"
    ] == ("eth1")
    assert engine_team(d, "_team:t1").standby_member == "eth1"
    ok(d, "DELETE", "/v1/teams/t1/members/eth1", 204)  # the standby member leaves: no standby any more
    t = ok(d, "GET", "/v1/teams/t1")
    assert t["members"] == ["eth2", "eth3", "eth4"] and t["standby_member"] is None


def test_member_errors_name_the_field(d: Daemon) -> None:
    team(d)
    team(d, "t2", ("eth3",))
    assert fails(d, "POST", "/v1/teams/t1/members", 409, json={"name": "eth1"})[0][0] == "name"
    assert fails(d, "POST", "/v1/teams/t1/members", 400, json={"name": "nosuch0"}) == [
        ("name", "no interface 'nosuch0' on this host")
    ]
    assert fails(d, "POST", "/v1/teams/t1/members", 409, json={"name": "eth3"}) == [
        ("name", "'eth3' is already a member of team 't2'")
    ]
    assert fails(
        d, "POST", "/v1/teams/t1/members", 400, json={"name": "eth4", "administrative_mode": "Passive"}
    )[0][0] == ("administrative_mode")
    assert fails(d, "POST", "/v1/teams/nope/members", 404, json={"name": "eth4"})[0][0] == "team"
    assert fails(d, "DELETE", "/v1/teams/t1/members/eth9", 404)[0][0] == "name"
    field, msg = fails(d, "DELETE", "/v1/teams/t2/members/eth3", 409)[0]
    assert field == "name" and "last member" in msg and "remove the team instead" in msg
    ok(d, "PATCH", "/v1/teams/t1/members/eth2", json={"administrative_mode": "Standby"})
    field, msg = fails(d, "DELETE", "/v1/teams/t1/members/eth1", 409)[0]
    assert field == "name" and "only the standby member 'eth2'" in msg


def test_team_status_is_the_engines_under_its_running_name(d: Daemon) -> None:
    """A standalone team runs as ``_team:<name>`` in the engine; GET /v1/teams/{name} still shows it."""
    seen: list[str] = []

    def status(name: str) -> dict[str, object] | None:
        seen.append(name)
        return {"members": []}

    d.engine.team_status = status  # type: ignore[method-assign]
    team(d)
    assert ok(d, "GET", "/v1/teams/t1")["status"] == {"members": []}
    ok(d, "POST", "/v1/switches", 201, json={"name": "ext", "type": "External", "net_adapter": "t1"})
    ok(d, "GET", "/v1/teams/t1")
    assert seen[-1] == "t1" and "_team:t1" in seen


# ---------------------------------------------------------------- the CLI on the same routes


def test_lbfo_cmdlets_end_to_end(cli: Cli, d: Daemon) -> None:
    """TM-11, TM-12 as a Hyper-V admin types them."""
    cli.ok("New-NetLbfoTeam", "-Name", "t1", "-TeamMembers", "eth1,eth2", "-TeamNicName", "t1")
    res = cli("New-NetLbfoTeam", "t2", "eth3", "-TeamNicName", "Team2 NIC")
    assert res.rc == 1 and "primary team interface is named as the team" in res.err
    cli.ok(
        "Set-NetLbfoTeam",
        "t1",
        "-TeamingMode",
        "Lacp",
        "-LacpTimer",
        "Fast",
        "-LoadBalancingAlgorithm",
        "HyperVPort",
    )
    t = ok(d, "GET", "/v1/teams/t1")
    assert (t["teaming_mode"], t["lacp_timer"], t["load_balancing"]) == ("Lacp", "Fast", "HyperVPort")
    out = cli.ok("Add-NetLbfoTeamMember", "eth3", "t1", "-AdministrativeMode", "Standby").out
    assert "eth3" in out and "Standby" in out
    cli.ok("Set-NetLbfoTeamMember", "-Name", "eth3", "-AdministrativeMode", "Active")  # -Team found
    assert ok(d, "GET", "/v1/teams/t1")["standby_member"] is None
    members = cli.ok("--json", "Get-NetLbfoTeamMember", "-Team", "t1").json()
    assert [(m["Name"], m["FailureReason"]) for m in members] == [
        ("eth1", "TeamNotInUse"),
        ("eth2", "TeamNotInUse"),
        ("eth3", "TeamNotInUse"),
    ]
    cli.ok("Remove-NetLbfoTeamMember", "eth3", "-Team", "t1")
    assert ok(d, "GET", "/v1/teams/t1")["members"] == ["eth1", "eth2"]

    out = cli.ok("Add-NetLbfoTeamNic", "-Team", "t1", "-VlanID", "10").out
    assert "t1.10" in out and "t1 - VLAN 10" in out
    cli.ok("Add-NetLbfoTeamNic", "t1", "20", "-Name", "t1 - VLAN 20")  # Windows' name means the default
    nics = cli.ok("--json", "Get-NetLbfoTeamNic", "-Team", "t1").json()
    assert [(n["Name"], n["VlanID"], n["Primary"], n["Default"]) for n in nics] == [
        ("t1", None, True, True),
        ("t1.10", 10, False, False),
        ("t1.20", 20, False, False),
    ]
    table = cli.ok("Get-NetLbfoTeamNic").out
    assert "t1 - VLAN 20" in table and "Host interface" in table
    assert cli.ok("--json", "Get-NetLbfoTeamNic", "t1 - VLAN 10").json()[0]["Name"] == "t1.10"
    cli.ok("Set-NetLbfoTeamNic", "-Team", "t1", "-VlanID", "5")  # the primary
    cli.ok("Set-NetLbfoTeamNic", "t1.20", "-VlanID", "21")
    res = cli("Set-NetLbfoTeamNic", "t1.20", "-Default")
    assert res.rc == 1 and "only the primary team interface" in res.err
    cli.ok("Set-NetLbfoTeamNic", "-Team", "t1", "-Default")
    cli.ok("Remove-NetLbfoTeamNic", "-Team", "t1", "-VlanID", "10")
    cli.ok("Remove-NetLbfoTeamNic", "-Name", "t1.20")
    assert ok(d, "GET", "/v1/teams/t1")["team_nics"] == []
    assert ok(d, "GET", "/v1/teams/t1")["primary_nic_vlan"] is None


def test_team_verbs_end_to_end(cli: Cli, d: Daemon) -> None:
    cli.ok("team", "add", "t1", "--member", "eth1")
    cli.ok(
        "team",
        "set",
        "t1",
        "--mode",
        "lacp",
        "--up-delay",
        "100",
        "--no-lacp-fallback",
        "--lb",
        "ipaddresses",
    )
    t = ok(d, "GET", "/v1/teams/t1")
    assert (t["teaming_mode"], t["up_delay_ms"], t["lacp_fallback"], t["load_balancing"]) == (
        "Lacp",
        100,
        False,
        "IPAddresses",
    )
    assert cli("team", "set", "t1").rc == 2
    cli.ok("team", "member", "add", "t1", "eth2", "--standby")
    assert ok(d, "GET", "/v1/teams/t1")["standby_member"] == "eth2"
    cli.ok("team", "member", "set", "t1", "eth2", "--active")
    cli.ok("team", "member", "add", "t1", "eth3")
    cli.ok("team", "member", "del", "t1", "eth1")
    assert ok(d, "GET", "/v1/teams/t1")["members"] == ["eth2", "eth3"]
    res = cli("team", "member", "add", "t1", "nosuch0")
    assert res.rc == 1 and "nosuch0" in res.err

    assert "t1.10" in cli.ok("team", "nic", "add", "t1", "--vlan", "10").out
    cli.ok("team", "nic", "add", "t1", "--vlan", "0", "--name", "t1u")
    listing = cli.ok("team", "nic", "list", "t1").out
    assert "t1 - VLAN 10" in listing and "t1u" in listing and "default" in listing
    cli.ok("team", "nic", "set", "t1", "--name", "t1.10", "--vlan", "11")
    cli.ok("team", "nic", "set", "t1", "--vlan", "7")
    assert ok(d, "GET", "/v1/teams/t1")["primary_nic_vlan"] == 7
    show = cli.ok("team", "show", "t1").out
    assert "team nic: t1.10 (VLAN 11): host interface t1.10" in show
    cli.ok("team", "nic", "del", "t1", "--vlan", "11")
    cli.ok("team", "nic", "del", "t1", "--name", "t1u")
    assert ok(d, "GET", "/v1/teams/t1")["team_nics"] == []


# ---------------------------------------------------------------- the real engine on memory devices


class EngineDaemon(Daemon):
    """The daemon over a real (not started) engine whose devices, members and TAPs alike, are memory ones."""

    def __init__(self, path: Path) -> None:
        self.devices: dict[str, MemoryDevice] = {}
        self.path = path
        self.lab = FakeLab()
        self.lab.existing = set(NICS)
        self.engine = Engine(clock=FakeClock(), open_device=self._open, registry=Registry({}))  # type: ignore[assignment]
        self.store = Store(path)
        self.service = Service(self.store, self.engine, self.lab, MacPool(0x0102))
        self.service.start()
        self.client = TestClient(create_app(self.service))

    def _open(self, kind: str, ifname: str) -> MemoryDevice:
        # A new device per open, as a new AF_PACKET socket or TAP fd is; ``devices`` holds the latest.
        dev = self.devices[ifname] = MemoryDevice(ifname)
        return dev

    def send(self, ifname: str, frame: bytes, tci: int = UNTAGGED) -> None:
        for dev in self.devices.values():
            dev.sent.clear()
        self.devices[ifname].inject(frame, tci=tci)
        while self.engine.run_once():  # type: ignore[attr-defined]
            pass

    def got(self, ifname: str) -> list[bytes]:
        return list(self.devices[ifname].sent)


@pytest.fixture
def real(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[EngineDaemon]:
    monkeypatch.setattr(link, "carrier", lambda ifname: True)  # memory members have no sysfs carrier
    daemon = EngineDaemon(tmp_path / "config.db")
    yield daemon
    daemon.engine.stop()  # type: ignore[attr-defined]
    daemon.store.close()


HOST_MAC = "02:00:00:00:00:0a"
LAN_MAC = "02:00:00:00:00:0b"


def test_team_nics_carry_their_vlan_untagged_on_the_host_and_tagged_on_the_team(real: EngineDaemon) -> None:
    """TM-12: a VLAN tNIC receives its VLAN's frames untagged and sends with its tag on the team members; the
    Default tNIC gets untagged frames, and unclaimed VLANs with their tag."""
    ok(real, "POST", "/v1/teams", 201, json={"name": "t1", "members": ["eth1"]})
    ok(real, "POST", "/v1/teams/t1/nics", 201, json={"vlan_id": 10})
    bcast = eth(BCAST, LAN_MAC, ipv4("10.0.0.2", "10.0.0.255", 17, udp(1, 2, b"x")))
    real.send("eth1", bcast, tci=10)
    assert real.got("t1.10") == [bcast] and real.got("t1") == []
    real.send("eth1", bcast)
    assert real.got("t1") == [bcast] and real.got("t1.10") == []
    real.send("eth1", bcast, tci=20)
    (tagged,) = real.got("t1")
    assert tagged[12:16] == bytes.fromhex("81000014") and real.got("t1.10") == []
    # The host sends on its tNIC: the frame leaves the team tagged with the tNIC's VLAN.
    reply = eth(LAN_MAC, HOST_MAC, ipv4("10.0.0.1", "10.0.0.2", 17, udp(2, 1, b"y")))
    real.send("t1.10", reply)
    (out,) = real.got("eth1")
    assert out[12:16] == bytes.fromhex("8100000a") and out[:12] == reply[:12] and out[16:] == reply[12:]
    # Removing the tNIC closes its TAP: the host interface goes.
    tap = real.devices["t1.10"]
    ok(real, "DELETE", "/v1/teams/t1/nics/t1.10", 204)
    assert tap.closed


def test_the_engine_retunes_a_live_team_in_place(real: EngineDaemon) -> None:
    """TM-02, TM-11: Set-NetLbfoTeam and member changes reach the running TeamDevice (not a new one)."""
    ok(real, "POST", "/v1/teams", 201, json={"name": "t1", "members": ["eth1", "eth2"]})
    ok(real, "POST", "/v1/switches", 201, json={"name": "ext", "type": "External", "net_adapter": "t1"})
    before = ok(real, "GET", "/v1/teams/t1")["status"]
    assert before["mode"] == "SwitchIndependent"
    ok(real, "PATCH", "/v1/teams/t1", json={"teaming_mode": "Static", "load_balancing": "HyperVPort"})
    ok(real, "POST", "/v1/teams/t1/members", 201, json={"name": "eth3", "administrative_mode": "Standby"})
    st = ok(real, "GET", "/v1/teams/t1")["status"]
    assert (st["mode"], st["algorithm"]) == ("Static", "HyperVPort")
    assert [(m["name"], m["standby"]) for m in st["members"]] == [
        ("eth1", False),
        ("eth2", False),
        ("eth3", True),
    ]
    ok(real, "DELETE", "/v1/teams/t1/members/eth1", 204)
    assert [m["name"] for m in ok(real, "GET", "/v1/teams/t1")["status"]["members"]] == ["eth2", "eth3"]
    assert real.devices["eth1"].closed and not real.devices["eth2"].closed


def test_team_member_link_speed_for_qos(cli: Cli, d: Daemon) -> None:
    """QoS on a team uplink (issue 5 item 1): each member's line rate, set with the team and changed live."""
    cli.ok("team", "add", "t1", "--member", "eth1", "--member-link-speed", "1G")
    assert ok(d, "GET", "/v1/teams/t1")["member_link_speed"] == 10**9
    cli.ok("team", "set", "t1", "--member-link-speed", "10G")
    assert ok(d, "GET", "/v1/teams/t1")["member_link_speed"] == 10**10


# ---------------------------------------------------------------- refusals name what the user typed (issue 15)


def test_a_team_over_a_switch_uplink_is_refused_naming_the_switch_not_an_index(cli: Cli, d: Daemon) -> None:
    """The README's old line: ``team add t1 --member eth1`` when eth1 is switch ext's uplink. The refusal is the
    team's (the request's ``members``), says whose uplink eth1 is, and carries no ``ports[N]``."""
    ok(d, "POST", "/v1/switches", 201, json={"name": "ext", "type": "External", "net_adapter": "eth1"})
    assert fails(d, "POST", "/v1/teams", 400, json={"name": "t1", "members": ["eth2", "eth1"]}) == [
        ("members[1]", "'eth1' is already the uplink of switch 'ext' (port 'ext-uplink')")
    ]
    res = cli("team", "add", "t1", "--member", "eth1", "--member", "eth2")
    assert res.rc == 1
    assert "members[0]: 'eth1' is already the uplink of switch 'ext' (port 'ext-uplink')" in res.err
    assert "ports[" not in res.err and "is a member of team" not in res.err
    # Adding it to an existing team: the request's field is the member's name.
    team(d, "t2", ("eth3",))
    assert fails(d, "POST", "/v1/teams/t2/members", 400, json={"name": "eth1"}) == [
        ("name", "'eth1' is already the uplink of switch 'ext' (port 'ext-uplink')")
    ]
    assert [t["name"] for t in ok(d, "GET", "/v1/teams")] == ["t2"]  # nothing changed


def test_a_switch_over_a_team_member_is_refused_naming_the_team(cli: Cli, d: Daemon) -> None:
    """The reverse: ``switch add q --uplink eth3`` when eth3 is a member of team t1 names the switch's own
    field (net_adapter) and the team."""
    team(d, "t1", ("eth2", "eth3"))
    sw = {"name": "q", "type": "External", "net_adapter": "eth3"}
    assert fails(d, "POST", "/v1/switches", 400, json=sw) == [
        ("net_adapter", "'eth3' is already a member of team 't1'")
    ]
    res = cli("switch", "add", "q", "--uplink", "eth3")
    assert res.rc == 1
    assert "net_adapter: 'eth3' is already a member of team 't1'" in res.err and "ports[" not in res.err
    res = cli("New-VMSwitch", "-Name", "q", "-NetAdapterName", "eth3")
    assert res.rc == 1 and "'eth3' is already a member of team 't1'" in res.err and "ports[" not in res.err
    assert ok(d, "GET", "/v1/switches") == []


def test_other_objects_in_a_refusal_are_named_by_name(d: Daemon) -> None:
    """A refused request about one object names the others it conflicts with by name (``ports['x'].field``, a
    path a client can still parse), and messages say "port 'x'", not ``ports[N]``."""
    ok(d, "POST", "/v1/switches", 201, json={"name": "ext", "type": "External", "net_adapter": "eth1"})
    ok(
        d,
        "POST",
        "/v1/ports",
        201,
        json={"name": "bound", "kind": "interface", "interface": "eth4", "switch": "ext"},
    )
    # A switch whose adapter is already bound as a port: the switch's field, the port named.
    sw = {"name": "sw2", "type": "External", "net_adapter": "eth4"}
    assert fails(d, "POST", "/v1/switches", 400, json=sw) == [
        ("net_adapter", "interface 'eth4' is already used by port 'bound'")
    ]
    # A second port on the same interface: "already used by port 'bound'".
    errs = fails(
        d, "POST", "/v1/ports", 400, json={"name": "again", "kind": "interface", "interface": "eth4"}
    )
    assert errs == [("interface", "interface 'eth4' is already used by port 'bound'")]
