"""`pyvswitch team ...`: NIC teams (LBFO): add, list, show (members and LACP state), set, del; members; team NICs.

The Linux-style twin of ``cli.lbfo``'s cmdlets, on the same REST routes: ``team set`` (Set-NetLbfoTeam),
``team member add|set|del`` (Add/Set/Remove-NetLbfoTeamMember), ``team nic add|list|set|del``
(Add/Get/Set/Remove-NetLbfoTeamNic).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import click

from pyvswitch.cli.format import echo_json, table
from pyvswitch.cli.verbkit import (
    BW_HELP,
    State,
    bandwidth_callback,
    created,
    deleted,
    if_exists_flag,
    json_flag,
    may_exist_flag,
    pass_state,
    removed,
)

MODES = {"switchindependent": "SwitchIndependent", "static": "Static", "lacp": "Lacp"}
ALGORITHMS = {
    a.lower(): a for a in ("TransportPorts", "IPAddresses", "MacAddresses", "HyperVPort", "Dynamic")
}


def _seg(name: str) -> str:
    return quote(name, safe="")


@click.group("team")
def team_group() -> None:
    """NIC teams (LBFO): several NICs as one External switch adapter, or a host interface with VLAN NICs."""


@team_group.command("add")
@click.argument("name")
@click.option(
    "--member", "members", multiple=True, required=True, metavar="IF", help="A member NIC (repeat)."
)
@click.option("--mode", type=click.Choice(list(MODES), case_sensitive=False), default="switchindependent")
@click.option(
    "--lb", "algorithm", type=click.Choice(list(ALGORITHMS), case_sensitive=False), default="dynamic"
)
@click.option("--lacp-timer", type=click.Choice(["fast", "slow"], case_sensitive=False), default="slow")
@click.option("--standby", metavar="IF", help="The member kept in standby.")
@click.option("--member-link-speed", metavar="BIT/S", callback=bandwidth_callback,
              help=f"Each member's line rate, for QoS ({BW_HELP}; 0 = unbounded).")  # fmt: skip
@may_exist_flag
@json_flag
@pass_state
def team_add(state: State, name: str, members: tuple[str, ...], mode: str, algorithm: str, lacp_timer: str,
             standby: str | None, member_link_speed: int | None, may_exist: bool) -> None:  # fmt: skip
    """Create team NAME (New-NetLbfoTeam); use it with: pyvswitch switch add SW --uplink NAME."""
    body = {
        "name": name,
        "members": list(members),
        "teaming_mode": MODES[mode.lower()],
        "load_balancing": ALGORITHMS[algorithm.lower()],
        "lacp_timer": lacp_timer.capitalize(),
        "standby_member": standby,
        "member_link_speed": member_link_speed or 0,
    }
    with state.client() as c:
        out = dict(
            created(
                lambda: c.request("POST", "/teams", json=body),
                lambda: c.request("GET", f"/teams/{_seg(name)}"),
                may_exist,
            )
        )
    echo_json(out) if state.json else click.echo(
        f"team {name}: {', '.join(members)} ({body['teaming_mode']})"
    )


@team_group.command("list")
@json_flag
@pass_state
def team_list(state: State) -> None:
    """Teams with their mode, load balancing and members (Get-NetLbfoTeam)."""
    with state.client() as c:
        rows = list(c.request("GET", "/teams"))
    if state.json:
        echo_json(rows)
        return
    click.echo(table(["name", "mode", "load balancing", "members"],
                     [[t["name"], t["teaming_mode"], t["load_balancing"], ", ".join(t["members"])] for t in rows]))  # fmt: skip


@team_group.command("show")
@click.argument("name")
@json_flag
@pass_state
def team_show(state: State, name: str) -> None:
    """Members (carrier, active, standby) and LACP actor/partner per member, like ovs-appctl lacp/show."""
    with state.client() as c:
        t = dict(c.request("GET", f"/teams/{name}"))
    if state.json:
        echo_json(t)
        return
    st: dict[str, Any] = t.get("status") or {}
    click.echo(f"---- {t['name']} ----\n  mode: {t['teaming_mode']}\n  load balancing: {t['load_balancing']}")
    for n in t.get("nics") or []:
        where = f"uplink of switch {n['switch']}" if n["switch"] else f"host interface {n['interface']}"
        vlan = "default" if n["vlan_id"] is None else f"VLAN {n['vlan_id']}"
        click.echo(f"  team nic: {n['name']} ({vlan}{', primary' if n['primary'] else ''}): {where}")
    if not st:
        click.echo("  (not running)")
        return
    click.echo(f"  failovers: {st['failovers']}")
    lacp = {m["member"]: m for m in st.get("lacp") or []}
    for m in st["members"]:
        flags = [("up" if m["up"] else "down"), ("active" if m["active"] else "inactive")] + (
            ["standby"] if m["standby"] else []
        )
        click.echo(f"member: {m['name']}: {' '.join(flags)}")
        lm = lacp.get(m["name"])
        if lm:
            click.echo(f"  status: {lm['rx']} {lm['status']}")
            click.echo(f"  actor state: {lm['actor']['state']}")
            click.echo(f"  partner system: {lm['partner']['system']:012x} key {lm['partner']['key']}")
            click.echo(f"  partner state: {lm['partner']['state']}")


@team_group.command("del")
@click.argument("name")
@if_exists_flag
@json_flag
@pass_state
def team_del(state: State, name: str, if_exists: bool) -> None:
    """Remove team NAME (Remove-NetLbfoTeam); its members are free again."""
    with state.client() as c:
        existed = deleted(lambda: c.request("DELETE", f"/teams/{_seg(name)}"), if_exists)
    removed(state, "team", name, existed)


@team_group.command("set")
@click.argument("name")
@click.option("--mode", type=click.Choice(list(MODES), case_sensitive=False))
@click.option("--lb", "algorithm", type=click.Choice(list(ALGORITHMS), case_sensitive=False))
@click.option("--lacp-timer", type=click.Choice(["fast", "slow"], case_sensitive=False))
@click.option(
    "--up-delay", "up_delay_ms", type=click.IntRange(0), metavar="MS", help="Carrier up counts after MS."
)
@click.option(
    "--down-delay",
    "down_delay_ms",
    type=click.IntRange(0),
    metavar="MS",
    help="Carrier loss counts after MS.",
)
@click.option(
    "--lacp-fallback/--no-lacp-fallback",
    default=None,
    help="Lacp mode without a partner: carry traffic as SwitchIndependent.",
)
@click.option("--member-link-speed", metavar="BIT/S", callback=bandwidth_callback,
              help=f"Each member's line rate, for QoS ({BW_HELP}; 0 = unbounded).")  # fmt: skip
@json_flag
@pass_state
def team_set(state: State, name: str, mode: str | None, algorithm: str | None, lacp_timer: str | None,
             up_delay_ms: int | None, down_delay_ms: int | None, lacp_fallback: bool | None,
             member_link_speed: int | None) -> None:  # fmt: skip
    """Change team NAME (Set-NetLbfoTeam); a team in use changes live."""
    body = team_set_body(mode, algorithm, lacp_timer, up_delay_ms, down_delay_ms, lacp_fallback)
    if member_link_speed is not None:
        body["member_link_speed"] = member_link_speed
    if not body:
        raise click.UsageError("nothing to change: give at least one option")
    with state.client() as c:
        t = dict(c.request("PATCH", f"/teams/{_seg(name)}", json=body))
    echo_json(t) if state.json else click.echo(
        f"team {name}: {', '.join(f'{k}={v}' for k, v in body.items())}"
    )


def team_set_body(mode: str | None, algorithm: str | None, lacp_timer: str | None, up_delay_ms: int | None,
                  down_delay_ms: int | None, lacp_fallback: bool | None) -> dict[str, object]:  # fmt: skip
    """PATCH /v1/teams/{name} from the options given (None = not given)."""
    body: dict[str, object] = {}
    if mode is not None:
        body["teaming_mode"] = MODES[mode.lower()]
    if algorithm is not None:
        body["load_balancing"] = ALGORITHMS[algorithm.lower()]
    if lacp_timer is not None:
        body["lacp_timer"] = lacp_timer.capitalize()
    for key, value in (
        ("up_delay_ms", up_delay_ms),
        ("down_delay_ms", down_delay_ms),
        ("lacp_fallback", lacp_fallback),
    ):
        if value is not None:
            body[key] = value
    return body


@team_group.group("member")
def member_group() -> None:
    """A team's member NICs (Add/Set/Remove-NetLbfoTeamMember)."""


@member_group.command("add")
@click.argument("name")
@click.argument("interface")
@click.option("--standby", is_flag=True, help="Keep it in standby (at most one a team).")
@json_flag
@pass_state
def member_add(state: State, name: str, interface: str, standby: bool) -> None:
    """Add NIC INTERFACE to team NAME."""
    body = {"name": interface, "administrative_mode": "Standby" if standby else "Active"}
    with state.client() as c:
        t = dict(c.request("POST", f"/teams/{_seg(name)}/members", json=body))
    echo_json(t) if state.json else click.echo(f"team {name}: {', '.join(t['members'])}")


@member_group.command("set")
@click.argument("name")
@click.argument("interface")
@click.option("--standby/--active", default=False, help="Standby or Active (the default).")
@json_flag
@pass_state
def member_set(state: State, name: str, interface: str, standby: bool) -> None:
    """Make member INTERFACE of team NAME standby or active."""
    body = {"administrative_mode": "Standby" if standby else "Active"}
    with state.client() as c:
        t = dict(c.request("PATCH", f"/teams/{_seg(name)}/members/{_seg(interface)}", json=body))
    echo_json(t) if state.json else click.echo(
        f"team {name}: {interface} {body['administrative_mode'].lower()}"
    )


@member_group.command("del")
@click.argument("name")
@click.argument("interface")
@json_flag
@pass_state
def member_del(state: State, name: str, interface: str) -> None:
    """Remove member INTERFACE from team NAME (not the last one: delete the team)."""
    with state.client() as c:
        c.request("DELETE", f"/teams/{_seg(name)}/members/{_seg(interface)}")
    removed(state, f"member of team {name}", interface)


@team_group.group("nic")
def nic_group() -> None:
    """Team interfaces (Add/Get/Set/Remove-NetLbfoTeamNic): host interfaces of a team no switch uses."""


@nic_group.command("add")
@click.argument("name")
@click.option("--vlan", type=click.IntRange(0, 4094), required=True, help="VLAN id (0: untagged frames).")
@click.option("--name", "nic", metavar="IF", help="Interface name (default NAME.VLAN).")
@json_flag
@pass_state
def nic_add(state: State, name: str, vlan: int, nic: str | None) -> None:
    """Add a VLAN team interface to team NAME: a host interface that sees that VLAN untagged."""
    body: dict[str, object] = {"vlan_id": vlan}
    if nic is not None:
        body["name"] = nic
    with state.client() as c:
        n = dict(c.request("POST", f"/teams/{_seg(name)}/nics", json=body))
    echo_json(n) if state.json else click.echo(f"team {name}: {n['name']} (VLAN {n['vlan_id']})")


@nic_group.command("list")
@click.argument("name")
@json_flag
@pass_state
def nic_list(state: State, name: str) -> None:
    """Team NAME's interfaces: the primary (named as the team) and the VLAN ones."""
    with state.client() as c:
        rows = list(c.request("GET", f"/teams/{_seg(name)}/nics"))
    if state.json:
        echo_json(rows)
        return
    click.echo(table(["name", "vlan", "primary", "windows name", "where"],
                     [[n["name"], "default" if n["vlan_id"] is None else n["vlan_id"], "yes" if n["primary"] else "",
                       n["display_name"], f"uplink of {n['switch']}" if n["switch"] else "host interface"]
                      for n in rows]))  # fmt: skip


def _nic_name(c: Any, team: str, nic: str | None, vlan: int | None) -> str:
    """The interface named by --name, else the team's tNIC in --vlan."""
    if nic is not None:
        return nic
    rows = list(c.request("GET", f"/teams/{_seg(team)}/nics"))
    for n in rows:
        if vlan is not None and n["vlan_id"] == vlan:
            return str(n["name"])
    raise click.UsageError(f"team {team} has no team interface in VLAN {vlan}")


@nic_group.command("set")
@click.argument("name")
@click.option(
    "--name", "nic", metavar="IF", help="The team interface (default: the primary, named as the team)."
)
@click.option("--vlan", type=click.IntRange(0, 4094), help="Its new VLAN.")
@click.option("--default", "default", is_flag=True, help="Back to Default mode (primary only).")
@json_flag
@pass_state
def nic_set(state: State, name: str, nic: str | None, vlan: int | None, default: bool) -> None:
    """Change a team interface's VLAN, or put team NAME's primary interface back in Default mode."""
    if (vlan is None) == (not default):
        raise click.UsageError("give either --vlan or --default")
    body: dict[str, object] = {"default": True} if default else {"vlan_id": vlan}
    with state.client() as c:
        n = dict(c.request("PATCH", f"/teams/{_seg(name)}/nics/{_seg(nic or name)}", json=body))
    echo_json(n) if state.json else click.echo(
        f"team {name}: {n['name']} ({'default' if n['vlan_id'] is None else 'VLAN ' + str(n['vlan_id'])})"
    )


@nic_group.command("del")
@click.argument("name")
@click.option("--vlan", type=click.IntRange(0, 4094), help="The team interface in this VLAN.")
@click.option("--name", "nic", metavar="IF", help="The team interface of this name.")
@json_flag
@pass_state
def nic_del(state: State, name: str, vlan: int | None, nic: str | None) -> None:
    """Remove a VLAN team interface of team NAME (by --vlan or --name); its host interface goes."""
    if vlan is None and nic is None:
        raise click.UsageError("give --vlan or --name")
    with state.client() as c:
        ifname = _nic_name(c, name, nic, vlan)
        c.request("DELETE", f"/teams/{_seg(name)}/nics/{_seg(ifname)}")
    removed(state, "team interface", ifname)
