"""`pyvswitch dashboard`: start pyvswitchd's web dashboard on 127.0.0.1 and print its URL (with the token)."""

from __future__ import annotations

import click

from pyvswitch.cli.format import echo_json
from pyvswitch.cli.verbkit import State, json_flag, pass_state


@click.command("dashboard")
@click.option("--port", default=0, show_default=True, type=click.IntRange(0, 65535), help="0: any free port.")
@json_flag
@pass_state
def dashboard_command(state: State, port: int) -> None:
    """The web dashboard: topology, live port rates and drops, QoS shares, teams, events, what-if traces.
    Served by pyvswitchd on 127.0.0.1 only; the URL carries the token it asks for."""
    with state.client() as c:
        out = dict(c.request("POST", "/dashboard", json={"port": port}))
    if state.json:
        echo_json(out)
    else:
        click.echo(out["url"])
