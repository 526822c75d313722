"""`pyvswitch trace ...`: trace a port's next packets, show the records, or what-if a described frame.

``pyvswitch trace start --port web01 --count 20``, ``trace show [--port web01]``, ``trace stop --port web01``,
and ``pyvswitch trace web01 'dst=02:00:00:00:00:0b vlan=10 tcp dport=80'`` for a what-if trace (any first word
that is not a subcommand is the port or VM to trace from). A what-if exits 0 when the frame would be delivered,
1 when it would be dropped, 2 when the description is not valid (the error names the word).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import click

from pyvswitch.cli.client import ApiError
from pyvswitch.cli.format import echo_json
from pyvswitch.cli.verbkit import State, json_flag, pass_state

WHAT_IF_HELP = """\b
What-if: pyvswitch trace PORT DESCRIPTION...   (PORT: a port, or a VM: its first adapter)
  The frame as if it arrived on PORT, through a copy of the switch: nothing is learned, counted or sent.
  Each stage says what it did, a drop names its reason and what decided it (the ACL entry with its weight
  and fields, the guard, the VLAN rule).
\b
  DESCRIPTION words (any order):
    src=MAC dst=MAC      Ethernet addresses (default: the port's own MAC -> broadcast)
    vlan=N pcp=N         an 802.1Q tag as it arrives on the port (VLAN 0-4094, priority 0-7)
    ip=SRC>DST           IP addresses (IPv4 or IPv6 by their form); or sip=A dip=B
    tcp | udp | icmp | arp   the protocol
    sport=N dport=N      TCP/UDP ports
    len=N                pad the frame to N bytes
\b
  Exit status: 0 it would be delivered, 1 it would be dropped, 2 the description is not valid.
  Example: pyvswitch trace web01 'dst=02:15:5d:00:00:02 ip=10.0.0.1>10.0.0.2 tcp dport=80'
"""


class TraceGroup(click.Group):
    """Subcommands, or ``trace PORT DESCRIPTION...`` for a what-if trace."""

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        found = super().get_command(ctx, cmd_name)
        if found is not None:
            return found
        return _what_if_command(cmd_name)


def _what_if_command(port: str) -> click.Command:
    @click.command(port, help=f"What-if trace of a frame arriving on {port}.\n\n{WHAT_IF_HELP}")
    @click.argument("description", nargs=-1)
    @json_flag
    @pass_state
    def what_if(state: State, description: tuple[str, ...]) -> None:
        try:
            with state.client() as c:
                rec = dict(c.request("POST", "/whatif", json={"port": port, "frame": " ".join(description)}))
        except ApiError as exc:
            if exc.status != 400 or not any(f.startswith("frame") for f, _ in exc.errors):
                raise  # an unknown port (404) and the like: the usual "request rejected", 1
            for fld, msg in exc.errors:  # the description itself: bad input, 2
                click.echo(f"error: {fld}: {msg}", err=True)
            raise SystemExit(2) from None
        if state.json:
            echo_json(rec)
        else:
            click.echo(str(rec.get("tree") or rec))
        if not str(rec.get("verdict", "")).startswith("delivered"):
            raise SystemExit(1)  # it would be dropped: scripts can test it

    return what_if


@click.group("trace", cls=TraceGroup, epilog=WHAT_IF_HELP)
def trace_group() -> None:
    """Unified tracing: every stage a packet passes and why it was dropped."""


@trace_group.command("start")
@click.option("--port", required=True, help="Port, or VM (its first adapter).")
@click.option("--count", default=20, show_default=True, help="How many packets to trace.")
@json_flag
@pass_state
def trace_start(state: State, port: str, count: int) -> None:
    """Trace the next COUNT packets arriving on PORT."""
    with state.client() as c:
        out = dict(c.request("POST", "/traces", json={"port": port, "count": count}))
    if state.json:
        echo_json(out)
    else:
        click.echo(
            f"tracing the next {count} packets on {out['switch']}/{out['port']}; see: pyvswitch trace show"
        )


@trace_group.command("stop")
@click.option("--port", required=True)
@json_flag
@pass_state
def trace_stop(state: State, port: str) -> None:
    """Stop tracing PORT."""
    with state.client() as c:
        c.request("DELETE", f"/traces/{quote(port, safe='')}")
    if state.json:
        echo_json({"stopped": "trace", "port": port})
    else:
        click.echo(f"stopped tracing {port}")


@trace_group.command("show")
@click.option("--port", default=None)
@click.option("--last", default=20, show_default=True)
@json_flag
@pass_state
def trace_show(state: State, port: str | None, last: int) -> None:
    """The newest trace records, as trees."""
    params: dict[str, Any] = {"limit": last}
    if port is not None:
        params["port"] = port
    with state.client() as c:
        recs = list(c.request("GET", "/traces", params=params))
    if state.json:
        echo_json(recs)
        return
    if not recs:
        click.echo("no trace records (start one with: pyvswitch trace start --port PORT)")
    click.echo("\n\n".join(str(r.get("tree") or r) for r in recs))
