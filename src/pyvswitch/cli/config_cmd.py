"""`pyvswitch config export|diff|import` and `pyvswitch history`: the whole desired state as a file, what a file
would change, applying it, and the audit trail of saves (issue 15 item 2).

The file is the daemon's own JSON (``GET /v1/config``), so an export imported back changes nothing. ``diff``
compares by object: lists of named objects (switches, ports, VMs, teams, QoS policies, SR-IOV adapters) by name,
the rest as values; each changed object names its changed fields. ``import`` shows that diff, checks the file
against the schema here (a bad file is refused whole, the field named, before anything is sent), and replaces
the configuration in one transaction (``PUT /v1/config``, where the daemon's cross-object checks refuse it whole
too); ``--dry-run`` stops after the diff.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from typing import Any

import click

from pyvswitch.cli.client import ApiError, JsonObj
from pyvswitch.cli.format import echo_json, table
from pyvswitch.cli.verbkit import State, json_flag, pass_state


@click.group("config")
def config_group() -> None:
    """The whole configuration as a file: export, diff against the running one, import."""


@config_group.command("export")
@click.argument("path", required=False, type=click.Path(dir_okay=False, writable=True))
@json_flag
@pass_state
def config_export(state: State, path: str | None) -> None:
    """Write the configuration as JSON to PATH (stdout without one)."""
    with state.client() as c:
        cfg = c.config()
    text = json.dumps(cfg, indent=2, sort_keys=True) + "\n"
    if path is None:
        click.echo(text, nl=False)
        return
    with open(path, "w") as f:
        f.write(text)
    if state.json:
        echo_json({"exported": path})
    else:
        click.echo(f"configuration written to {path}")


@config_group.command("diff")
@click.argument("path", type=click.File("r"))
@json_flag
@pass_state
def config_diff(state: State, path: Any) -> int:
    """What importing PATH would change (exit 1 when something would)."""
    wanted = _normalized(_read(path))
    with state.client() as c:
        changes = diff(c.config(), wanted)
    _show(state, changes)
    return 1 if changes else 0


@config_group.command("import")
@click.argument("path", type=click.File("r"))
@click.option("--dry-run", is_flag=True, help="Show what would change and change nothing.")
@json_flag
@pass_state
def config_import(state: State, path: Any, dry_run: bool) -> None:
    """Replace the whole configuration with PATH's, in one transaction: refused whole if any part is invalid."""
    wanted = _normalized(_read(path))
    with state.client(timeout_s=600) as c:
        changes = diff(c.config(), wanted)
        if not state.json:
            _show(state, changes)
        if dry_run or not changes:
            if state.json:
                echo_json({"changes": changes, "applied": False})
            return
        c.request("PUT", "/config", json=wanted)
    if state.json:
        echo_json({"changes": changes, "applied": True})
    else:
        click.echo(f"applied {len(changes)} change(s)")


@click.command("history")
@click.option(
    "--limit", type=click.IntRange(1, 10_000), default=20, show_default=True, help="How many saves."
)
@json_flag
@pass_state
def history_command(state: State, limit: int) -> None:
    """The latest saves of the configuration, newest first: when, what (the audit trail)."""
    with state.client() as c:
        rows = list(c.request("GET", "/history", params={"limit": str(limit)}))
    if state.json:
        echo_json(rows)
        return
    click.echo(table(["id", "time", "change"], [[r["id"], r["ts"], r["summary"]] for r in rows]))


def _read(f: Any) -> JsonObj:
    try:
        doc = json.load(f)
    except ValueError as exc:
        raise click.BadParameter(f"not JSON: {exc}", param_hint="PATH") from None
    if not isinstance(doc, dict):
        raise click.BadParameter(
            "expected a JSON object (what `pyvswitch config export` writes)", param_hint="PATH"
        )
    return doc


def _normalized(doc: JsonObj) -> JsonObj:
    """``doc`` through the schema (what was left out takes its default, as the daemon would store it), so that a
    diff shows what would change, not what the file omits; a bad file is refused here, field named, before
    anything is sent (pydantic imported here only; the cross-object checks are the daemon's, on the PUT)."""
    from pydantic import ValidationError

    from pyvswitch.config.schema import HostConfig

    try:
        out: JsonObj = HostConfig.model_validate(doc).model_dump(mode="json")
        return out
    except ValidationError as exc:
        problems = [(".".join(str(p) for p in e["loc"]), str(e["msg"])) for e in exc.errors()]
        raise ApiError(400, problems) from None


def diff(running: Mapping[str, Any], wanted: Mapping[str, Any]) -> list[JsonObj]:
    """Changes from ``running`` to ``wanted``: {"op": "add"|"remove"|"change", "kind", "name", "fields"}."""
    out: list[JsonObj] = []
    for kind in sorted(set(running) | set(wanted)):
        old, new = running.get(kind), wanted.get(kind)
        if _named_list(old if old is not None else []) and _named_list(new if new is not None else []):
            olds = {o["name"]: o for o in old or []}
            news = {o["name"]: o for o in new or []}
            for name in sorted(set(olds) | set(news)):
                if name not in news:
                    out.append({"op": "remove", "kind": kind, "name": name, "fields": []})
                elif name not in olds:
                    out.append({"op": "add", "kind": kind, "name": name, "fields": []})
                else:
                    fields = _changed(olds[name], news[name])
                    if fields:
                        out.append({"op": "change", "kind": kind, "name": name, "fields": fields})
        elif old != new:
            fields = _changed(old, new) if isinstance(old, dict) and isinstance(new, dict) else [kind]
            out.append({"op": "change", "kind": kind, "name": "", "fields": fields})
    return out


def _named_list(v: Any) -> bool:
    return isinstance(v, list) and all(isinstance(o, dict) and "name" in o for o in v)


def _changed(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    return sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))


def _show(state: State, changes: list[JsonObj]) -> None:
    if state.json:
        echo_json(changes)
        return
    if not changes:
        click.echo("no changes")
        return
    sign = {"add": "+", "remove": "-", "change": "~"}
    for ch in changes:
        what = f"{ch['kind']} {ch['name']}".rstrip()
        fields = f" ({', '.join(ch['fields'])})" if ch["fields"] else ""
        click.echo(f"{sign[ch['op']]} {what}{fields}", file=sys.stdout)
