"""The NetLbfo cmdlets without a daemon: parameter binding, defaults and how arguments map to request bodies."""

from __future__ import annotations

import pytest

from pyvswitch.cli.cmdlet.framework import Args, CmdletError, CmdletUsageError, bind
from pyvswitch.cli.cmdlets import find
from pyvswitch.cli.lbfo import (
    add_nic_body,
    member_objs,
    new_team_body,
    nic_obj,
    set_team_body,
)
from pyvswitch.cli.team import team_set_body


def args(cmdlet: str, *argv: str) -> Args:
    return bind(find(cmdlet), argv)


def test_new_team_defaults_are_windows() -> None:
    """TM-02: SwitchIndependent, Dynamic, LacpTimer Slow unless given."""
    assert new_team_body(args("New-NetLbfoTeam", "t1", "eth1, eth2")) == {
        "name": "t1",
        "members": ["eth1", "eth2"],
        "teaming_mode": "SwitchIndependent",
        "load_balancing": "Dynamic",
        "lacp_timer": "Slow",
    }
    body = new_team_body(
        args(
            "New-NetLbfoTeam", "-Name", "t1", "-TeamMembers", "eth1", "-TeamingMode", "lacp", "-LacpT", "fast"
        )
    )
    assert (body["teaming_mode"], body["lacp_timer"]) == ("Lacp", "Fast")


def test_team_nic_name_must_be_the_team_name() -> None:
    assert new_team_body(args("New-NetLbfoTeam", "t1", "eth1", "-TeamNicName", "t1"))["name"] == "t1"
    with pytest.raises(CmdletError, match="primary team interface is named as the team"):
        new_team_body(args("New-NetLbfoTeam", "t1", "eth1", "-TeamNicName", "Team1 - Default"))


def test_set_team_sends_only_what_was_given() -> None:
    assert set_team_body(args("Set-NetLbfoTeam", "t1", "-LoadBalancingAlgorithm", "hypervport")) == {
        "load_balancing": "HyperVPort"
    }
    assert set_team_body(
        args("Set-NetLbfoTeam", "-Name", "t1", "-TeamingMode", "Static", "-LacpTimer", "Slow")
    ) == {
        "teaming_mode": "Static",
        "lacp_timer": "Slow",
    }
    with pytest.raises(CmdletError, match="give -TeamingMode"):
        set_team_body(args("Set-NetLbfoTeam", "t1"))


def test_member_cmdlets_bind_like_windows() -> None:
    assert args("Add-NetLbfoTeamMember", "eth3", "t1").values == {"Name": "eth3", "Team": "t1"}
    a = args("Add-NetLbfoTeamMember", "-Name", "eth3", "-Team", "t1", "-AdministrativeMode", "standby")
    assert a.text("AdministrativeMode") == "Standby"
    with pytest.raises(CmdletUsageError, match="AdministrativeMode"):
        args("Add-NetLbfoTeamMember", "eth3", "t1", "-AdministrativeMode", "Passive")
    with pytest.raises(CmdletUsageError, match="missing mandatory parameters: AdministrativeMode"):
        args("Set-NetLbfoTeamMember", "eth3")
    assert args("Remove-NetLbfoTeamMember", "eth3", "t1").values == {"Name": "eth3", "Team": "t1"}


def test_team_nic_cmdlets_bind_like_windows() -> None:
    """TM-12: 0 <= VlanID < 4095; Add-NetLbfoTeamNic [-Team] t1 [-VlanID] 10 [-Name]."""
    assert args("Add-NetLbfoTeamNic", "t1", "10").values == {"Team": "t1", "VlanID": 10}
    with pytest.raises(CmdletUsageError, match="maximum allowed range of 4094"):
        args("Add-NetLbfoTeamNic", "t1", "4095")
    with pytest.raises(CmdletUsageError, match="missing mandatory parameters: VlanID"):
        args("Add-NetLbfoTeamNic", "-Team", "t1")
    assert args("Set-NetLbfoTeamNic", "-Team", "t1", "-Default").values == {"Team": "t1", "Default": True}
    assert args("Remove-NetLbfoTeamNic", "t1", "0").values == {"Team": "t1", "VlanID": 0}


def test_add_team_nic_name_defaults_on_the_daemon_and_windows_name_means_the_default() -> None:
    assert add_nic_body(args("Add-NetLbfoTeamNic", "t1", "10")) == {"vlan_id": 10}
    assert add_nic_body(args("Add-NetLbfoTeamNic", "t1", "10", "-Name", "t1 - VLAN 10")) == {"vlan_id": 10}
    assert add_nic_body(args("Add-NetLbfoTeamNic", "t1", "10", "-Name", "storage")) == {
        "vlan_id": 10,
        "name": "storage",
    }


def test_member_status_reflects_standby_and_failures() -> None:
    """TM-10, TM-11: Get-NetLbfoTeamMember's AdministrativeMode, OperationalStatus and FailureReason."""
    team = {
        "name": "t1",
        "members": ["a", "b", "c", "d"],
        "standby_member": "c",
        "status": {
            "members": [
                {"name": "a", "up": True, "active": True},
                {"name": "b", "up": False, "active": False},
                {"name": "c", "up": True, "active": False},
                {"name": "d", "up": True, "active": False},
            ]
        },
    }
    rows = [
        (o["Name"], o["AdministrativeMode"], o["OperationalStatus"], o["FailureReason"])
        for o in member_objs(team)
    ]
    assert rows == [
        ("a", "Active", "Active", "NoFailure"),
        ("b", "Active", "Failed", "PhysicalMediaDisconnected"),
        ("c", "Standby", "Standby", "AdministrativeDecision"),
        ("d", "Active", "Standby", "WaitingForStableConnectivity"),  # e.g. LACP not negotiated yet
    ]
    # The running team's own words win (switch/team.py TeamDevice.member_status).
    said = {
        "name": "a",
        "up": True,
        "active": False,
        "operational_status": "Failed",
        "failure_reason": "LacpNegotiationIssue",
    }
    assert member_objs({**team, "status": {"members": [said]}})[0]["FailureReason"] == "LacpNegotiationIssue"
    idle = member_objs({"name": "t1", "members": ["a"], "standby_member": None, "status": None})
    assert idle[0]["OperationalStatus"] == "Failed" and idle[0]["FailureReason"] == "TeamNotInUse"


def test_team_nic_objects() -> None:
    n = {
        "name": "t1.10",
        "team": "t1",
        "vlan_id": 10,
        "primary": False,
        "default": False,
        "display_name": "t1 - VLAN 10",
        "switch": None,
        "interface": "t1.10",
    }
    assert nic_obj(n) == {
        "Name": "t1.10",
        "Team": "t1",
        "VlanID": 10,
        "Primary": False,
        "Default": False,
        "DisplayName": "t1 - VLAN 10",
        "InterfaceStatus": "Host interface",
    }
    bound = nic_obj({**n, "name": "t1", "vlan_id": None, "primary": True, "default": True, "switch": "ext"})
    assert bound["InterfaceStatus"] == "Uplink of switch ext" and bound["VlanID"] is None


def test_linux_team_set_body() -> None:
    assert team_set_body("lacp", None, "FAST", 100, None, False) == {
        "teaming_mode": "Lacp",
        "lacp_timer": "Fast",
        "up_delay_ms": 100,
        "lacp_fallback": False,
    }
    assert team_set_body(None, "hypervport", None, None, 0, None) == {
        "load_balancing": "HyperVPort",
        "down_delay_ms": 0,
    }
    assert team_set_body(None, None, None, None, None, None) == {}
