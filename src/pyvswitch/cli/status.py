"""``pyvswitch status``: is the daemon forwarding, and if not why (GET /v1/health)."""

from __future__ import annotations

from typing import Any

import click

from pyvswitch.cli.format import echo_json
from pyvswitch.cli.verbkit import State, json_flag, pass_state


def describe(health: dict[str, Any]) -> list[str]:
    """The lines ``status`` prints: the state first, then each reason and the counters behind it."""
    fwd: dict[str, Any] = health.get("forwarding") or {}
    lines = [f"pyvswitchd {health.get('version', '?')}: {health.get('status', '?')}"]
    lines += [f"  problem: {p}" for p in fwd.get("problems") or []]
    lines += [f"  port {name}: {why}" for name, why in sorted((health.get("degraded") or {}).items())]
    lines += [f"  failed {what}: {why}" for what, why in sorted((health.get("failed") or {}).items())]
    if fwd:
        lines.append(
            f"  forwarding: last pass {fwd.get('heartbeat_age_s')} s ago, "
            f"{fwd.get('loop_restarts', 0)} loop restarts, {fwd.get('resyncs', 0)} receive-ring resyncs"
        )
    proc: dict[str, Any] = fwd.get("forwarder") or {}
    if proc:
        lines.append(
            f"  forwarder: pid {proc.get('pid')}, control planes attached since it started: {proc.get('attaches')}"
        )
    lines += [f"  resynchronised {r['device']} {r['ago_s']} s ago" for r in fwd.get("recent_resyncs") or []]
    return lines


@click.command("status")
@json_flag
@pass_state
def status_command(state: State) -> None:
    """Whether forwarding is progressing; exits 1 when the daemon reports itself degraded."""
    with state.client() as c:
        health = c.health()
    if state.json:
        echo_json(health)
    else:
        click.echo("\n".join(describe(health)))
    if health.get("status") != "ok":
        raise SystemExit(1)
