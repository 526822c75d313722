"""``-WhatIf`` on every cmdlet that changes state: what the line would change, with nothing changed (issue 15).

PowerShell's -WhatIf prints "What if: Performing the operation ..." and does nothing. Here the cmdlet runs as
usual with its client in a dry run (``Client.dry_run``; the daemon side is ``daemon/dry_run.py``): every request
is validated and answered exactly as for real, against a scratch copy of the configuration, so a refusal is the
real refusal, and a cmdlet that sends several requests sees its own earlier ones. Its usual output is held back;
what is printed instead is the dry run's outcome: each change's summary and, object by object, what would be
added, removed or changed (field: before -> after). A request the daemon cannot rehearse (it acts outside the
configuration: a capture, a migration, a VF revocation, a cluster lookup record) stops the line there, and the
answer says that it was not run.

A cmdlet that only reads (``Get-*``) has no -WhatIf, as in PowerShell.
"""

from __future__ import annotations

import contextlib
import io
import re
import secrets
from collections.abc import Sequence
from typing import Any

import click

from pyvswitch.cli.client import ApiError, NotRehearsed
from pyvswitch.cli.cmdlet.framework import Args, Cmdlet, CmdletUsageError, Session
from pyvswitch.cli.format import echo_json
from pyvswitch.config.diff import describe

_WHATIF_RE = re.compile(r"^-(?:whatif|wi)(?::(.*))?$", re.IGNORECASE)
READ_VERBS = frozenset({"get"})


def changes_state(cmd: Cmdlet) -> bool:
    """Whether ``cmd`` takes -WhatIf: every verb but Get."""
    return cmd.name.split("-", 1)[0].lower() not in READ_VERBS


def take_what_if(cmd: Cmdlet, argv: Sequence[str]) -> tuple[list[str], bool]:
    """``argv`` without ``-WhatIf`` (also ``-WhatIf:$true``/``:$false``, alias ``-wi``), and whether it asked for
    one. On a cmdlet that only reads, PowerShell's own refusal."""
    words: list[str] = []
    wanted = False
    for w in argv:
        m = _WHATIF_RE.match(w)
        if m is None:
            words.append(w)
            continue
        if not changes_state(cmd):
            raise CmdletUsageError(
                cmd.name, f"A parameter cannot be found that matches parameter name '{w[1:]}'."
            )
        value = (m.group(1) or "$true").strip().strip("'\"").lower()
        if value not in ("$true", "true", "1", "$false", "false", "0"):
            raise CmdletUsageError(
                cmd.name,
                f'Cannot convert value "{m.group(1)}" to type "System.Management.Automation.SwitchParameter".',
            )
        wanted = value in ("$true", "true", "1")
    return words, wanted


def rehearse(cmd: Cmdlet, args: Args, session: Session) -> dict[str, Any]:
    """Run ``cmd`` in a dry run and print what it would change; returns the dry run's outcome."""
    client = session.client
    run_id = "whatif-" + secrets.token_hex(8)
    client.dry_run = run_id
    not_run: str | None = None
    try:
        with contextlib.redirect_stdout(io.StringIO()):  # the cmdlet's usual output: it did not happen
            try:
                cmd.run(args, session)
            except NotRehearsed as exc:
                not_run = exc.operation
    finally:
        client.dry_run = None
        outcome = _close(session, run_id)
    outcome = {"what_if": True, "cmdlet": cmd.name, **outcome}
    if not_run is not None and not_run not in outcome["not_run"]:
        outcome["not_run"].append(not_run)
    _show(outcome, session)
    return outcome


def _close(session: Session, run_id: str) -> dict[str, Any]:
    """The dry run's outcome, and the daemon forgets it (none if the cmdlet sent no request)."""
    try:
        view = session.client.request("DELETE", f"/dry-runs/{run_id}")
    except ApiError as exc:
        if exc.status != 404:
            raise
        view = None
    if not isinstance(view, dict):
        return {"summaries": [], "changes": [], "not_run": []}
    return {k: list(view.get(k) or []) for k in ("summaries", "changes", "not_run")}


def _show(outcome: dict[str, Any], session: Session) -> None:
    if session.json:
        echo_json(outcome)
        return
    name = outcome["cmdlet"]
    summaries: list[str] = outcome["summaries"]
    if summaries:
        click.echo(f'What if: Performing the operation "{name}": {"; ".join(summaries)}.')
        for change in outcome["changes"]:
            click.echo("  " + describe(change))
    for operation in outcome["not_run"]:
        click.echo(
            f'What if: Performing the operation "{name}" ({operation}): not rehearsed, as it acts outside the '
            "configuration; nothing was run."
        )
    if not summaries and not outcome["not_run"]:
        click.echo(f'What if: Performing the operation "{name}": nothing would change.')
