"""How cmdlets print: PowerShell's Format-Table and Format-List, ``--json`` with Hyper-V's property names, and
the ``-?`` help page.

Part of the framework floor (beside ``cmdlet.framework``): families print through these functions so that
every cmdlet answers ``--json`` and ``| fl`` the same way, and none of them imports another family to do so.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import click

from pyvswitch.cli.client import JsonObj
from pyvswitch.cli.cmdlet.framework import Cmdlet, CmdletUsageError, Session
from pyvswitch.cli.cmdlet.what_if import changes_state
from pyvswitch.cli.format import cell, echo_json, ps_table


def ps_list(objs: Sequence[Mapping[str, Any]]) -> str:
    """PowerShell's Format-List (``| fl``): ``Name : value`` per property, a blank line between objects."""
    blocks = []
    for o in objs:
        w = max((len(k) for k in o), default=0)
        lines = []
        for k, v in o.items():
            text = "{" + ", ".join(cell(x) for x in v) + "}" if isinstance(v, list) else cell(v)
            lines.append(f"{k:<{w}} : {text}".rstrip())
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


def selected(s: Session, objs: Sequence[JsonObj]) -> list[JsonObj]:
    """``objs`` with only the properties ``| Select-Object`` named, in its order (matched case-insensitively, as
    PowerShell does; a name no object has is refused, naming the ones it has)."""
    if not s.select or not objs:
        return list(objs)
    names = {k.lower(): k for o in objs for k in o}
    unknown = [p for p in s.select if p.lower() not in names]
    if unknown:
        raise CmdletUsageError(
            "", f"no property {', '.join(unknown)}; the objects have: {', '.join(objs[0])}"
        )
    keys = [names[p.lower()] for p in s.select]
    return [{k: o.get(k) for k in keys} for o in objs]


def show(s: Session, objs: Sequence[JsonObj], columns: Sequence[str] | None, *, list_sep: str = ", ") -> None:
    """``objs`` as a table of ``columns`` (a list value as ``{a, b}``), as Format-List when the line ended in
    ``| fl`` or ``columns`` is None (how Windows prints some objects), or as JSON with ``--json``; ``| ft``
    makes a table of any, ``| Select-Object`` keeps the properties it names."""
    objs = selected(s, objs)
    if s.select:
        columns = list(objs[0]) if objs else columns
    if s.json:
        echo_json(list(objs))
    elif not objs:
        return
    elif s.format_table:
        cols = list(columns) if columns is not None else list(objs[0])
        click.echo(ps_table(cols, [[_cell(o.get(c), list_sep) for c in cols] for o in objs]))
    elif columns is None or s.format_list:
        click.echo(ps_list(objs))
    else:
        rows = [
            ["{" + list_sep.join(map(cell, o[c])) + "}" if isinstance(o[c], list) else o[c] for c in columns]
            for o in objs
        ]
        click.echo(ps_table(columns, rows))


def show_table(s: Session, objs: Sequence[JsonObj], columns: Sequence[str]) -> None:
    """``objs`` as a table of ``columns`` whatever the line ends in, or as JSON: the families whose objects
    have no list-valued column and no Format-List view (LBFO, SR-IOV, NetEvent)."""
    objs = selected(s, objs)
    if s.select and objs:
        columns = list(objs[0])
    if s.json:
        echo_json(list(objs))
    elif objs and s.format_list:
        click.echo(ps_list(objs))
    elif objs:
        click.echo(ps_table(columns, [[_cell(o.get(c), ", ") for c in columns] for o in objs]))


def _cell(v: Any, sep: str) -> Any:
    return "{" + sep.join(map(cell, v)) + "}" if isinstance(v, list) else v


def full_syntax(cmd: Cmdlet) -> str:
    """The syntax line with the common parameters this front end adds: ``[-WhatIf]`` where the cmdlet changes
    state (cmdlet/what_if.py)."""
    return cmd.syntax() + (" [-WhatIf]" if changes_state(cmd) else "")


def help_text(cmd: Cmdlet) -> str:
    text = f"NAME\n    {cmd.name}\n\nSYNOPSIS\n    {cmd.summary}\n\nSYNTAX\n    {full_syntax(cmd)}"
    if cmd.notes:
        text += "\n\nREMARKS\n" + "\n".join(f"    {ln}" for ln in cmd.notes.splitlines())
    return text
