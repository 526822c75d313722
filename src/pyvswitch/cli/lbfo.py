"""The NetLbfo cmdlets (hyperv-networking.md §3.1): teams, their members and their team interfaces.

``New-NetLbfoTeam -Name t1 -TeamMembers eth1,eth2 -TeamingMode Lacp -LoadBalancingAlgorithm TransportPorts
-LacpTimer Fast`` then ``New-VMSwitch -Name ext -NetAdapterName t1``. Defaults are Windows': SwitchIndependent,
Dynamic, LacpTimer Slow; Add-NetLbfoTeamMember -AdministrativeMode Active. Team: New/Get/Set/Remove-NetLbfoTeam;
members: Add/Get/Set/Remove-NetLbfoTeamMember; team interfaces: Add/Get/Set/Remove-NetLbfoTeamNic.

Where Linux makes us differ from Windows:

- The primary team interface is named as the team: the team's name is the host interface of a team no switch
  uses (and the adapter a switch binds). ``-TeamNicName`` is accepted only when it equals ``-Name``.
- A VLAN team interface is a Linux interface, so its name is 1-15 characters without spaces: the default is
  ``<team>.<vlan>`` (``t1.10``) and Windows' name ``t1 - VLAN 10`` is shown as ``DisplayName`` (given as
  ``-Name`` it means the default name).

Floor: a cmdlet family, on the framework (``cli.cmdlet``); ``cli.cmdlets`` puts :data:`CMDLETS` in the table.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from pyvswitch.cli.client import JsonObj
from pyvswitch.cli.cmdlet.framework import Args, Cmdlet, CmdletError, Param, PType, Session
from pyvswitch.cli.cmdlet.output import show_table
from pyvswitch.cli.format import echo_json

MODES = ("SwitchIndependent", "Static", "Lacp")
ALGORITHMS = ("TransportPorts", "IPAddresses", "MacAddresses", "HyperVPort", "Dynamic")
TEAM_COLUMNS = ("Name", "Members", "TeamingMode", "LoadBalancingAlgorithm", "LacpTimer", "Status")
MEMBER_COLUMNS = ("Name", "Team", "AdministrativeMode", "OperationalStatus", "FailureReason")
NIC_COLUMNS = ("Name", "Team", "VlanID", "Primary", "Default", "DisplayName", "InterfaceStatus")
ADMIN_MODES = ("Active", "Standby")


def _error(a: Args, message: str) -> Exception:
    return CmdletError(a.cmdlet, message)


def _seg(name: str | None) -> str:
    return quote(str(name), safe="")


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


def new_team_body(a: Args) -> dict[str, object]:
    """New-NetLbfoTeam's request body (POST /v1/teams)."""
    name = a.text("Name")
    nic = a.text("TeamNicName")
    if nic is not None and nic != name:
        raise _error(
            a,
            f"-TeamNicName {nic!r}: the primary team interface is named as the team ({name!r}), which is its "
            f"Linux interface and the adapter a switch binds; name the team {nic!r} instead, or add a VLAN "
            "team interface with Add-NetLbfoTeamNic -Name",
        )
    members = [m.strip() for m in (a.text("TeamMembers") or "").split(",") if m.strip()]
    return {
        "name": a.text("Name"),
        "members": members,
        "teaming_mode": a.text("TeamingMode") or "SwitchIndependent",
        "load_balancing": a.text("LoadBalancingAlgorithm") or "Dynamic",
        "lacp_timer": a.text("LacpTimer") or "Slow",
    }


def new_netlbfoteam(a: Args, s: Session) -> None:
    show_table(s, [_team_obj(s.client.request("POST", "/teams", json=new_team_body(a)))], TEAM_COLUMNS)


def get_netlbfoteam(a: Args, s: Session) -> None:
    name = a.text("Name")
    teams = [t for t in s.client.request("GET", "/teams") if name is None or t["name"] == name]
    show_table(s, [_team_obj(t) for t in teams], TEAM_COLUMNS)


def remove_netlbfoteam(a: Args, s: Session) -> None:
    s.client.request("DELETE", f"/teams/{quote(str(a.text('Name')), safe='')}")


def member_objs(t: Mapping[str, Any]) -> list[JsonObj]:
    """A team's members as Get-NetLbfoTeamMember shows them.

    The running team says OperationalStatus and FailureReason itself (``TeamDevice.member_status``); an older
    daemon's status is interpreted here: Active (carrying traffic), Standby (up, not used: the standby member
    held back, AdministrativeDecision; or not yet in use, WaitingForStableConnectivity) or Failed
    (PhysicalMediaDisconnected). A team that is not running: Failed, TeamNotInUse.
    """
    st = t.get("status") or {}
    by_name = {m["name"]: m for m in st.get("members") or []}
    out: list[JsonObj] = []
    for name in t["members"]:
        m = by_name.get(name)
        standby = name == t.get("standby_member")
        if m is None:
            oper, reason = "Failed", "TeamNotInUse"
        elif "operational_status" in m:
            oper, reason = m["operational_status"], m["failure_reason"]
        elif m.get("active"):
            oper, reason = "Active", "NoFailure"
        elif not m.get("up"):
            oper, reason = "Failed", "PhysicalMediaDisconnected"
        elif standby:
            oper, reason = "Standby", "AdministrativeDecision"
        else:
            oper, reason = "Standby", "WaitingForStableConnectivity"
        out.append(
            {
                "Name": name,
                "Team": t["name"],
                "AdministrativeMode": "Standby" if standby else "Active",
                "OperationalStatus": oper,
                "FailureReason": reason,
            }
        )
    return out


def get_netlbfoteammember(a: Args, s: Session) -> None:
    team, name = a.text("Team"), a.text("Name")
    objs = [
        o
        for t in s.client.request("GET", "/teams")
        if team is None or t["name"] == team
        for o in member_objs(t)
        if name is None or o["Name"] == name
    ]
    show_table(s, objs, MEMBER_COLUMNS)


def set_team_body(a: Args) -> dict[str, object]:
    """Set-NetLbfoTeam's request body (PATCH /v1/teams/{name}): only what was given."""
    body: dict[str, object] = {}
    for param, field in (
        ("TeamingMode", "teaming_mode"),
        ("LoadBalancingAlgorithm", "load_balancing"),
        ("LacpTimer", "lacp_timer"),
    ):
        if a.has(param):
            body[field] = a.text(param)
    if not body:
        raise _error(a, "give -TeamingMode, -LoadBalancingAlgorithm or -LacpTimer")
    return body


def set_netlbfoteam(a: Args, s: Session) -> None:
    t = s.client.request("PATCH", f"/teams/{_seg(a.text('Name'))}", json=set_team_body(a))
    if s.json:
        echo_json([_team_obj(t)])


def _member_team(a: Args, s: Session) -> str:
    """-Team, or the one team that has member -Name (Set-NetLbfoTeamMember may omit -Team)."""
    team = a.text("Team")
    if team is not None:
        return team
    name = a.text("Name")
    found = [t["name"] for t in s.client.request("GET", "/teams") if name in t["members"]]
    if not found:
        raise _error(a, f"no team has a member {name!r}")
    return str(found[0])


def add_netlbfoteammember(a: Args, s: Session) -> None:
    team = a.text("Team")
    body = {"name": a.text("Name"), "administrative_mode": a.text("AdministrativeMode") or "Active"}
    t = s.client.request("POST", f"/teams/{_seg(team)}/members", json=body)
    show_table(s, [o for o in member_objs(t) if o["Name"] == body["name"]], MEMBER_COLUMNS)


def set_netlbfoteammember(a: Args, s: Session) -> None:
    team = _member_team(a, s)
    body = {"administrative_mode": a.text("AdministrativeMode")}
    t = s.client.request("PATCH", f"/teams/{_seg(team)}/members/{_seg(a.text('Name'))}", json=body)
    if s.json:
        echo_json([o for o in member_objs(t) if o["Name"] == a.text("Name")])


def remove_netlbfoteammember(a: Args, s: Session) -> None:
    team = _member_team(a, s)
    s.client.request("DELETE", f"/teams/{_seg(team)}/members/{_seg(a.text('Name'))}")


def nic_obj(n: Mapping[str, Any]) -> JsonObj:
    """A team interface as Get-NetLbfoTeamNic shows it."""
    status = f"Uplink of switch {n['switch']}" if n.get("switch") else "Host interface"
    return {
        "Name": n["name"],
        "Team": n["team"],
        "VlanID": n["vlan_id"],
        "Primary": bool(n["primary"]),
        "Default": bool(n["default"]),
        "DisplayName": n["display_name"],
        "InterfaceStatus": status,
    }


def add_nic_body(a: Args) -> dict[str, object]:
    """Add-NetLbfoTeamNic's request body; Windows' default name ``<Team> - VLAN <id>`` means ours."""
    team, vlan = a.text("Team"), a.number("VlanID")
    body: dict[str, object] = {"vlan_id": vlan}
    name = a.text("Name")
    if name is not None and name != f"{team} - VLAN {vlan}":
        body["name"] = name
    return body


def add_netlbfoteamnic(a: Args, s: Session) -> None:
    n = s.client.request("POST", f"/teams/{_seg(a.text('Team'))}/nics", json=add_nic_body(a))
    show_table(s, [nic_obj(n)], NIC_COLUMNS)


def _team_nics(a: Args, s: Session) -> list[JsonObj]:
    """The team interfaces -Team and -Name (name or DisplayName) select."""
    team, name = a.text("Team"), a.text("Name")
    teams = [t for t in s.client.request("GET", "/teams") if team is None or t["name"] == team]
    if team is not None and not teams:
        raise _error(a, f"no team {team!r}")
    return [
        nic_obj(n)
        for t in teams
        for n in t.get("nics") or []
        if name is None or name in (n["name"], n["display_name"])
    ]


def get_netlbfoteamnic(a: Args, s: Session) -> None:
    show_table(s, _team_nics(a, s), NIC_COLUMNS)


def _one_nic(a: Args, s: Session) -> JsonObj:
    """The one team interface a Set/Remove-NetLbfoTeamNic is about: by -Name, by -Team and -VlanID, or the
    primary of -Team (Set-NetLbfoTeamNic -Team t1 -Default)."""
    nics = _team_nics(a, s)
    if a.text("Name") is None:
        vlan = a.number("VlanID") if a.cmdlet == "Remove-NetLbfoTeamNic" else None
        nics = (
            [n for n in nics if n["VlanID"] == vlan]
            if vlan is not None
            else [n for n in nics if n["Primary"]]
        )
    if not nics:
        raise _error(a, "no such team interface")
    if len(nics) > 1:
        raise _error(a, f"{len(nics)} team interfaces match; give -Team and -Name")
    return nics[0]


def set_netlbfoteamnic(a: Args, s: Session) -> None:
    if a.flag("Default") == a.has("VlanID"):
        raise _error(a, "give either -VlanID or -Default")
    n = _one_nic(a, s)
    body: dict[str, object] = {"default": True} if a.flag("Default") else {"vlan_id": a.number("VlanID")}
    out = s.client.request("PATCH", f"/teams/{_seg(n['Team'])}/nics/{_seg(n['Name'])}", json=body)
    if s.json:
        echo_json([nic_obj(out)])


def remove_netlbfoteamnic(a: Args, s: Session) -> None:
    if a.text("Name") is None and not a.has("VlanID"):
        raise _error(a, "give -VlanID (with -Team) or -Name")
    n = _one_nic(a, s)
    s.client.request("DELETE", f"/teams/{_seg(n['Team'])}/nics/{_seg(n['Name'])}")


# The NetLbfo cmdlets, gathered by ``cli.cmdlets``.

_VLAN_ID = Param("VlanID", type=PType.UINT32, range=(0, 4094))
CMDLETS: tuple[Cmdlet, ...] = (
    Cmdlet(
        "New-NetLbfoTeam",
        (
            Param("Name", position=0, mandatory=True),
            Param("TeamMembers", position=1, mandatory=True),
            Param("TeamNicName"),
            Param("TeamingMode", choices=MODES),
            Param("LoadBalancingAlgorithm", choices=ALGORITHMS),
            Param("LacpTimer", choices=("Fast", "Slow")),
            Param("Confirm"),
        ),
        new_netlbfoteam,
        "Create a NIC team; use it with New-VMSwitch -NetAdapterName.",
        "Unused by a switch, the team is a host interface of its name (the primary team interface).",
    ),
    Cmdlet("Get-NetLbfoTeam", (Param("Name", position=0),), get_netlbfoteam, "List teams and their status."),
    Cmdlet(
        "Set-NetLbfoTeam",
        (
            Param("Name", position=0, mandatory=True),
            Param("TeamingMode", choices=MODES),
            Param("LoadBalancingAlgorithm", choices=ALGORITHMS),
            Param("LacpTimer", choices=("Fast", "Slow")),
            Param("Confirm"),
        ),
        set_netlbfoteam,
        "Change a team's mode, algorithm or LACP timer (live, also while a switch uses it).",
    ),
    Cmdlet(
        "Remove-NetLbfoTeam",
        (Param("Name", position=0, mandatory=True), Param("Confirm")),
        remove_netlbfoteam,
        "Remove a team (not while a switch uses it).",
    ),
    Cmdlet(
        "Add-NetLbfoTeamMember",
        (
            Param("Name", position=0, mandatory=True),
            Param("Team", position=1, mandatory=True),
            Param("AdministrativeMode", choices=ADMIN_MODES),
            Param("Confirm"),
        ),
        add_netlbfoteammember,
        "Add a NIC to a team (-AdministrativeMode Standby: at most one a team).",
    ),
    Cmdlet(
        "Get-NetLbfoTeamMember",
        (Param("Team"), Param("Name", position=0)),
        get_netlbfoteammember,
        "Members with their operational status and failure reason.",
    ),
    Cmdlet(
        "Set-NetLbfoTeamMember",
        (
            Param("Name", position=0, mandatory=True),
            Param("Team"),
            Param("AdministrativeMode", choices=ADMIN_MODES, mandatory=True),
            Param("Confirm"),
        ),
        set_netlbfoteammember,
        "Make a member Active or Standby.",
    ),
    Cmdlet(
        "Remove-NetLbfoTeamMember",
        (Param("Name", position=0, mandatory=True), Param("Team", position=1), Param("Confirm")),
        remove_netlbfoteammember,
        "Remove a NIC from its team (not the last one: remove the team).",
    ),
    Cmdlet(
        "Add-NetLbfoTeamNic",
        (
            Param("Team", position=0, mandatory=True),
            Param("VlanID", type=PType.UINT32, range=(0, 4094), position=1, mandatory=True),
            Param("Name"),
            Param("Confirm"),
        ),
        add_netlbfoteamnic,
        "Add a VLAN team interface (a host interface, default name <team>.<vlan>).",
        "VlanID 0 receives untagged and priority-tagged frames. Only on a team no switch uses.",
    ),
    Cmdlet(
        "Get-NetLbfoTeamNic",
        (Param("Name", position=0), Param("Team")),
        get_netlbfoteamnic,
        "Team interfaces: the primary (named as the team) and the VLAN ones.",
    ),
    Cmdlet(
        "Set-NetLbfoTeamNic",
        (Param("Name", position=0), Param("Team"), _VLAN_ID, Param("Default", type=PType.SWITCH)),
        set_netlbfoteamnic,
        "Change a team interface's VLAN, or put the primary one back in Default mode.",
    ),
    Cmdlet(
        "Remove-NetLbfoTeamNic",
        (
            Param("Team", position=0),
            Param("VlanID", type=PType.UINT32, range=(0, 4094), position=1),
            Param("Name"),
            Param("Confirm"),
        ),
        remove_netlbfoteamnic,
        "Remove a VLAN team interface (its host interface goes).",
    ),
)
