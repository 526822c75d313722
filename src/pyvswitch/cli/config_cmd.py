"""`pyvswitch config export|diff|import` and `pyvswitch history`: the whole desired state as a file, what a file
would change, applying it, and the audit trail of saves (issue 15 item 2).

The file is the daemon's own JSON (``GET /v1/config``), so an export imported back changes nothing. ``diff``
compares by object (``config/diff.py``: named objects by name, each change with its fields' values). ``import`` shows that diff, checks the file
against the schema here (a bad file is refused whole, the field named, before anything is sent), and replaces
the configuration in one transaction (``PUT /v1/config``, where the daemon's cross-object checks refuse it whole
too); ``--dry-run`` stops after the diff and the daemon's dry run of the same PUT (its checks, nothing changed).
"""

from __future__ import annotations

import json
import secrets
from typing import Any

import click

from pyvswitch.cli.client import ApiError, JsonObj
from pyvswitch.cli.format import echo_json, table
from pyvswitch.cli.verbkit import State, json_flag, pass_state
from pyvswitch.config.diff import describe, diff


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
        if dry_run and changes:
            # The daemon's own checks too (cross-object, OS), as a dry run of the same request: refused here
            # exactly as the import would be, nothing changed.
            run_id = "import-" + secrets.token_hex(8)
            c.request("PUT", "/config", json=wanted, params={"dry_run": run_id})
            c.request("DELETE", f"/dry-runs/{run_id}")
        if dry_run or not changes:
            if state.json:
                echo_json({"changes": changes, "applied": False})
            elif dry_run and changes:
                click.echo("the daemon accepts this configuration (dry run: nothing changed)")
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


def _show(state: State, changes: list[JsonObj]) -> None:
    if state.json:
        echo_json(changes)
        return
    if not changes:
        click.echo("no changes")
        return
    for ch in changes:
        click.echo(describe(ch))
