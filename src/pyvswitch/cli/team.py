"""`pyvswitch team ...`: NIC teams (New-NetLbfoTeam): add, list, show (members and LACP state), del."""

from __future__ import annotations

from typing import Any

import click

from pyvswitch.cli.format import echo_json, table
from pyvswitch.cli.verbs import State, json_flag, pass_state

MODES = {"switchindependent": "SwitchIndependent", "static": "Static", "lacp": "Lacp"}
ALGORITHMS = {
    a.lower(): a for a in ("TransportPorts", "IPAddresses", "MacAddresses", "HyperVPort", "Dynamic")
}


@click.group("team")
def team_group() -> None:
    """NIC teams (LBFO): several NICs as one External switch adapter."""


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
@json_flag
@pass_state
def team_add(state: State, name: str, members: tuple[str, ...], mode: str, algorithm: str, lacp_timer: str,
             standby: str | None) -> None:  # fmt: skip
    """Create team NAME (New-NetLbfoTeam); use it with: pyvswitch switch add SW --uplink NAME."""
    body = {
        "name": name,
        "members": list(members),
        "teaming_mode": MODES[mode.lower()],
        "load_balancing": ALGORITHMS[algorithm.lower()],
        "lacp_timer": lacp_timer.capitalize(),
        "standby_member": standby,
    }
    with state.client() as c:
        out = dict(c.request("POST", "/teams", json=body))
    echo_json(out) if state.json else click.echo(
        f"team {name}: {', '.join(members)} ({body['teaming_mode']})"
    )


@team_group.command("list")
@json_flag
@pass_state
def team_list(state: State) -> None:
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
    if not st:
        click.echo("  (not in use by a switch)")
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
@pass_state
def team_del(state: State, name: str) -> None:
    with state.client() as c:
        c.request("DELETE", f"/teams/{name}")
