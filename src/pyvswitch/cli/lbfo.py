"""The NetLbfo cmdlets: New/Get/Set/Remove-NetLbfoTeam, Get-NetLbfoTeamMember (hyperv-networking.md §3).

``New-NetLbfoTeam -Name t1 -TeamMembers eth1,eth2 -TeamingMode Lacp -LoadBalancingAlgorithm TransportPorts
-LacpTimer Fast`` then ``New-VMSwitch -Name ext -NetAdapterName t1``. Defaults are Windows': SwitchIndependent,
Dynamic, LacpTimer Slow. Like ``cli.netevent``, the table is built by :func:`lbfo_cmdlets` and this module
imports ``cli.cmdlets`` only inside functions.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from pyvswitch.cli.client import JsonObj
from pyvswitch.cli.format import echo_json, ps_table

if TYPE_CHECKING:
    from pyvswitch.cli.cmdlets import Args, Cmdlet, Session

MODES = ("SwitchIndependent", "Static", "Lacp")
ALGORITHMS = ("TransportPorts", "IPAddresses", "MacAddresses", "HyperVPort", "Dynamic")
TEAM_COLUMNS = ("Name", "Members", "TeamingMode", "LoadBalancingAlgorithm", "LacpTimer", "Status")
MEMBER_COLUMNS = ("Name", "Team", "AdministrativeMode", "OperationalStatus", "FailureReason")


def _team_obj(t: Mapping[str, Any]) -> JsonObj:
    st = t.get("status") or {}
    members = st.get("members") or []
    active = sum(1 for m in members if m.get("active"))
    status = "Up" if members and active == len(members) else ("Degraded" if active else "Down")
    return {
        "Name": t["name"],
        "Members": ",".join(t["members"]),
        "TeamingMode": t["teaming_mode"],
        "LoadBalancingAlgorithm": t["load_balancing"],
        "LacpTimer": t["lacp_timer"],
        "Status": status if st else "Down",
    }


def _print(s: Session, objs: list[JsonObj], columns: tuple[str, ...]) -> None:
    if s.json:
        echo_json(objs)
    elif objs:
        print(ps_table(columns, [[o[c] for c in columns] for o in objs]))


def new_netlbfoteam(a: Args, s: Session) -> None:
    members = [m.strip() for m in (a.text("TeamMembers") or "").split(",") if m.strip()]
    body = {
        "name": a.text("Name"),
        "members": members,
        "teaming_mode": a.text("TeamingMode") or "SwitchIndependent",
        "load_balancing": a.text("LoadBalancingAlgorithm") or "Dynamic",
        "lacp_timer": a.text("LacpTimer") or "Slow",
    }
    _print(s, [_team_obj(s.client.request("POST", "/teams", json=body))], TEAM_COLUMNS)


def get_netlbfoteam(a: Args, s: Session) -> None:
    name = a.text("Name")
    teams = [t for t in s.client.request("GET", "/teams") if name is None or t["name"] == name]
    _print(s, [_team_obj(t) for t in teams], TEAM_COLUMNS)


def remove_netlbfoteam(a: Args, s: Session) -> None:
    s.client.request("DELETE", f"/teams/{quote(str(a.text('Name')), safe='')}")


def get_netlbfoteammember(a: Args, s: Session) -> None:
    team = a.text("Team")
    objs: list[JsonObj] = []
    for t in s.client.request("GET", "/teams"):
        if team is not None and t["name"] != team:
            continue
        st = t.get("status") or {}
        by_name = {m["name"]: m for m in st.get("members") or []}
        for name in t["members"]:
            m = by_name.get(name, {})
            up, active = bool(m.get("up")), bool(m.get("active"))
            objs.append(
                {
                    "Name": name,
                    "Team": t["name"],
                    "AdministrativeMode": "Standby" if name == t.get("standby_member") else "Active",
                    "OperationalStatus": "Active" if active else ("Standby" if up else "Failed"),
                    "FailureReason": "NoFailure"
                    if up
                    else ("PhysicalMediaDisconnected" if m else "TeamNotInUse"),
                }
            )
    _print(s, objs, MEMBER_COLUMNS)


def lbfo_cmdlets() -> tuple[Cmdlet, ...]:
    """The NetLbfo cmdlets, for ``cli.cmdlets.CMDLETS``."""
    from pyvswitch.cli.cmdlets import Cmdlet, Param

    return (
        Cmdlet(
            "New-NetLbfoTeam",
            (
                Param("Name", position=0, mandatory=True),
                Param("TeamMembers", position=1, mandatory=True),
                Param("TeamingMode", choices=MODES),
                Param("LoadBalancingAlgorithm", choices=ALGORITHMS),
                Param("LacpTimer", choices=("Fast", "Slow")),
                Param("Confirm"),
            ),
            new_netlbfoteam,
            "Create a NIC team; use it with New-VMSwitch -NetAdapterName.",
        ),
        Cmdlet(
            "Get-NetLbfoTeam", (Param("Name", position=0),), get_netlbfoteam, "List teams and their status."
        ),
        Cmdlet(
            "Remove-NetLbfoTeam",
            (Param("Name", position=0, mandatory=True), Param("Confirm")),
            remove_netlbfoteam,
            "Remove a team (not while a switch uses it).",
        ),
        Cmdlet(
            "Get-NetLbfoTeamMember",
            (Param("Team"), Param("Name", position=0)),
            get_netlbfoteammember,
            "Members with their operational status and failure reason.",
        ),
    )
