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
from pyvswitch.cli.cmdlet.framework import Cmdlet, Session
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


def show(s: Session, objs: Sequence[JsonObj], columns: Sequence[str] | None, *, list_sep: str = ", ") -> None:
    """``objs`` as a table of ``columns`` (a list value as ``{a, b}``), as Format-List when the line ended in
    ``| fl`` or ``columns`` is None (how Windows prints some objects), or as JSON with ``--json``."""
    if s.json:
        echo_json(list(objs))
    elif not objs:
        return
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
    if s.json:
        echo_json(list(objs))
    elif objs:
        click.echo(ps_table(columns, [[o[c] for c in columns] for o in objs]))


def help_text(cmd: Cmdlet) -> str:
    text = f"NAME\n    {cmd.name}\n\nSYNOPSIS\n    {cmd.summary}\n\nSYNTAX\n    {cmd.syntax()}"
    if cmd.notes:
        text += "\n\nREMARKS\n" + "\n".join(f"    {ln}" for ln in cmd.notes.splitlines())
    return text
