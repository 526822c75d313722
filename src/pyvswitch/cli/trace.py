"""`pyvswitch trace ...`: trace a port's next packets, show the records, or what-if a described frame.

``pyvswitch trace start --port web01 --count 20``, ``trace show [--port web01]``, ``trace stop --port web01``,
and ``pyvswitch trace web01 'dst=02:00:00:00:00:0b vlan=10 tcp dport=80'`` for a what-if trace (any first word
that is not a subcommand is the port or VM to trace from).
"""

from __future__ import annotations

from typing import Any

import click

from pyvswitch.cli.format import echo_json
from pyvswitch.cli.verbkit import State, json_flag, pass_state


class TraceGroup(click.Group):
    """Subcommands, or ``trace PORT DESCRIPTION...`` for a what-if trace."""

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        found = super().get_command(ctx, cmd_name)
        if found is not None:
            return found
        return _what_if_command(cmd_name)


def _what_if_command(port: str) -> click.Command:
    @click.command(port, help=f"What-if trace of a frame arriving on {port}.")
    @click.argument("description", nargs=-1)
    @json_flag
    @pass_state
    def what_if(state: State, description: tuple[str, ...]) -> None:
        with state.client() as c:
            rec = dict(c.request("POST", "/whatif", json={"port": port, "frame": " ".join(description)}))
        if state.json:
            echo_json(rec)
        else:
            click.echo(str(rec.get("tree") or rec))

    return what_if


@click.group("trace", cls=TraceGroup)
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
@pass_state
def trace_stop(state: State, port: str) -> None:
    """Stop tracing PORT."""
    with state.client() as c:
        c.request("DELETE", f"/traces/{port}")


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
