"""`pyvswitch log ...`: the daemon's logs (issue 14 item 5): ``log level [LEVEL]`` shows or sets the level of
pyvswitchd and its forwarder at run time; ``log events [--last N] [--event PREFIX]`` prints the newest records
of their JSON logs (STATE_DIR/log), events with their fields."""

from __future__ import annotations

import click

from pyvswitch.cli.format import echo_json
from pyvswitch.cli.verbkit import State, json_flag, pass_state

LEVELS = ("debug", "info", "warning", "error")


@click.group("log")
def log_group() -> None:
    """The daemon's logs: level at run time, recent events."""


@log_group.command("level")
@click.argument("level", required=False, type=click.Choice(LEVELS, case_sensitive=False))
@json_flag
@pass_state
def log_level(state: State, level: str | None) -> None:
    """Show the log level, or set LEVEL for pyvswitchd and its forwarder (until the next start)."""
    with state.client() as c:
        out = dict(c.request("PUT", "/log", json={"level": level}) if level else c.request("GET", "/log"))
    if state.json:
        echo_json(out)
    else:
        click.echo(f"log level {out['level']} (JSON logs in {out['directory']})")


@log_group.command("events")
@click.option("--last", default=20, show_default=True, type=click.IntRange(1, 10_000))
@click.option(
    "--event", "prefix", default=None, help="Only events whose name starts with this (team., sriov.)."
)
@json_flag
@pass_state
def log_events(state: State, last: int, prefix: str | None) -> None:
    """The newest records of pyvswitchd's and the forwarder's JSON logs, oldest first."""
    params = {"limit": str(last), **({"event": prefix} if prefix else {})}
    with state.client() as c:
        rows = list(c.request("GET", "/log/events", params=params))
    if state.json:
        echo_json(rows)
        return
    skip = {"ts", "level", "logger", "process", "pid", "message", "event"}
    for r in rows:
        fields = " ".join(f"{k}={v}" for k, v in r.items() if k not in skip)
        event = f" [{r['event']}]" if r.get("event") else ""
        click.echo(f"{r.get('ts')} {str(r.get('level', '')).upper():7} {r.get('process')}{event}: {r.get('message')}"
                   + (f"  {fields}" if fields else ""))  # fmt: skip
