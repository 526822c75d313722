"""`pyvswitch extension ...`: installed extensions and each switch's stack (list, show, enable, disable, order,
set)."""

from __future__ import annotations

import json
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
    given = {s["name"]: dict(s) for s in configured}
    rest = [dict(s) for s in configured if s["name"] not in names]
    return [given.get(n) or {"name": n, "enabled": enabled.get(n, False)} for n in names] + rest


def settings_changes(pairs: Sequence[str]) -> dict[str, Any]:
    """KEY=VALUE arguments: a JSON value (number, true/false, null, list) as such, anything else as text;
    ``KEY=`` is None, which drops the key (the extension's default again)."""
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{pair!r}: expected KEY=VALUE", param_hint="SETTINGS")
        if value == "":
            out[key] = None
            continue
        try:
            out[key] = json.loads(value)
        except ValueError:
            out[key] = value
    return out


def with_settings(
    configured: Sequence[JsonObj], stack: Sequence[JsonObj], name: str, changes: dict[str, Any]
) -> list[JsonObj]:
    """``configured`` with ``changes`` applied to ``name``'s settings (None drops a key); an extension not
    configured yet is added in its current state (enabled or not)."""
    new = [dict(s) for s in configured]
    entry = next((s for s in new if s["name"] == name), None)
    if entry is None:
        enabled = next((r["enabled"] for r in stack if r["name"] == name), False)
        entry = {"name": name, "enabled": enabled}
        new.append(entry)
    settings = dict(entry.get("settings") or {})
    for key, value in changes.items():
        if value is None:
            settings.pop(key, None)
        else:
            settings[key] = value
    entry["settings"] = settings
    return new


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


@extension_group.command("set")
@click.argument("switch")
@click.argument("name")
@click.argument("settings", nargs=-1, required=True, metavar="KEY=VALUE...")
@json_flag
@pass_state
def extension_set(state: State, switch: str, name: str, settings: tuple[str, ...]) -> None:
    """Change extension NAME's settings on SWITCH, e.g. ``pyvswitch extension set sw pyvswitch-sflow
    collectors=10.0.0.9 sampling_rate=400``. A value is JSON when it parses (numbers, true, ["a","b"]), text
    otherwise; KEY= drops a setting (back to its default). The extension's settings model validates the whole
    change: a bad value changes nothing and names the field."""
    changes = settings_changes(settings)
    with state.client() as c:
        configured, stack = extension_settings(c, switch)
        new = with_settings(configured, stack, name, changes)
        c.update_switch(switch, {"extensions": new})
    if state.json:
        echo_json(new)
        return
    entry = next(s for s in new if s["name"] == name)
    click.echo(f"switch {switch}: {name} " + (_fmt(entry["settings"]) if entry["settings"] else "(defaults)"))
