"""`pyvswitch extension ...`: installed extensions and each switch's stack (list, show, enable, disable, order)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import click

from pyvswitch.cli.client import Client, JsonObj
from pyvswitch.cli.format import echo_json, table
from pyvswitch.cli.verbkit import State, json_flag, pass_state


@click.group("extension")
def extension_group() -> None:
    """Switch extensions: installed ones and each switch's ordered stack."""


@extension_group.command("list")
@json_flag
@pass_state
def extension_list(state: State) -> None:
    """Installed extensions (the entry-point group pyvswitch.extensions), with load problems if any."""
    with state.client() as c:
        rows = c.extensions()
    if state.json:
        echo_json(rows)
        return
    click.echo(
        table(
            ["name", "kind", "api", "distribution", "problem"],
            [[r["name"], r["kind"], r["api_version"], r["distribution"], _problems(r)] for r in rows],
        )
    )


def _problems(row: JsonObj) -> str:
    """An installed extension's load problem and the registrations of its name that were refused (issue 11)."""
    return "; ".join([*([row["problem"]] if row.get("problem") else []), *(row.get("refused") or [])])


@extension_group.command("show")
@click.argument("switch")
@json_flag
@pass_state
def extension_show(state: State, switch: str) -> None:
    """SWITCH's stack in order: enabled or not, calls, errors, drops, and what each reports."""
    with state.client() as c:
        rows = c.switch_extensions(switch)
    if state.json:
        echo_json(rows)
        return
    rows_out = [
        [
            r["position"],
            r["name"],
            r["kind"],
            r["enabled"],
            r["calls"],
            r["errors"],
            _fmt(r["drops"]),
            _fmt(r["status"]),
            r.get("problem") or "",
        ]
        for r in rows
    ]
    click.echo(
        table(["#", "name", "kind", "enabled", "calls", "errors", "drops", "status", "problem"], rows_out)
    )


def _fmt(d: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in d.items()) if d else "-"


def extension_settings(c: Client, switch: str) -> tuple[list[JsonObj], list[JsonObj]]:
    """(configured settings, effective stack) of a switch."""
    configured = [dict(x) for x in c.switch(switch).get("extensions") or []]
    return configured, c.switch_extensions(switch)


def enabled_settings(configured: Sequence[JsonObj], names: Sequence[str], enabled: bool) -> list[JsonObj]:
    """``configured`` with ``names`` enabled or disabled, keeping the order; names not listed are appended."""
    new = [dict(s) for s in configured]
    by_name = {s["name"]: s for s in new}
    for n in names:
        if n in by_name:
            by_name[n]["enabled"] = enabled
        else:
            by_name[n] = {"name": n, "enabled": enabled}
            new.append(by_name[n])
    return new


def ordered_settings(
    configured: Sequence[JsonObj], stack: Sequence[JsonObj], names: Sequence[str]
) -> list[JsonObj]:
    """``names`` first, in this order (each keeps its enabled state); the rest follow as they were."""
    enabled = {r["name"]: r["enabled"] for r in stack}
    enabled.update({s["name"]: s["enabled"] for s in configured})
    rest = [dict(s) for s in configured if s["name"] not in names]
    return [{"name": n, "enabled": enabled.get(n, False)} for n in names] + rest


def set_enabled(c: Client, switch: str, names: Sequence[str], enabled: bool) -> list[JsonObj]:
    """Enable or disable ``names`` on ``switch``, keeping the configured order; returns the new settings."""
    configured, _ = extension_settings(c, switch)
    new = enabled_settings(configured, names, enabled)
    c.update_switch(switch, {"extensions": new})
    return new


def set_order(c: Client, switch: str, names: Sequence[str]) -> list[JsonObj]:
    """Put ``names`` first, in this order (each keeps its enabled state); the rest follow as they were."""
    configured, stack = extension_settings(c, switch)
    new = ordered_settings(configured, stack, names)
    c.update_switch(switch, {"extensions": new})
    return new


def _change(state: State, switch: str, new: list[JsonObj]) -> None:
    if state.json:
        echo_json(new)
    else:
        click.echo(
            f"switch {switch}: " + ", ".join(f"{s['name']}{'' if s['enabled'] else ' (off)'}" for s in new)
        )


@extension_group.command("enable")
@click.argument("switch")
@click.argument("names", nargs=-1, required=True)
@json_flag
@pass_state
def extension_enable(state: State, switch: str, names: tuple[str, ...]) -> None:
    """Enable extensions NAMES on SWITCH (Enable-VMSwitchExtension)."""
    with state.client() as c:
        _change(state, switch, set_enabled(c, switch, names, True))


@extension_group.command("disable")
@click.argument("switch")
@click.argument("names", nargs=-1, required=True)
@json_flag
@pass_state
def extension_disable(state: State, switch: str, names: tuple[str, ...]) -> None:
    """Disable extensions NAMES on SWITCH (Disable-VMSwitchExtension)."""
    with state.client() as c:
        _change(state, switch, set_enabled(c, switch, names, False))


@extension_group.command("order")
@click.argument("switch")
@click.argument("names", nargs=-1, required=True)
@json_flag
@pass_state
def extension_order(state: State, switch: str, names: tuple[str, ...]) -> None:
    """Put NAMES first in SWITCH's stack, in this order (Set-VMSwitch -Extensions); kinds keep their
    capture -> filter -> forwarding order."""
    with state.client() as c:
        _change(state, switch, set_order(c, switch, names))
