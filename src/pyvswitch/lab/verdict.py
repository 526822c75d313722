"""A demo scene's verdict: checks (what, expected, observed, ok) printed as one table; the scene passes only if
every check does. Shared by the scenes whose checks have that shape (teaming, SR-IOV and migration)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from rich.console import Console
from rich.table import Table


@dataclass
class SceneCheck:
    what: str
    expected: str
    observed: str
    ok: bool


def print_checks(console: Console, title: str, checks: Sequence[SceneCheck]) -> bool:
    """The checks as a table titled ``title``; True if there are some and all passed."""
    t = Table(title=title)
    for col in ("check", "expected", "observed", "verdict"):
        t.add_column(col)
    for chk in checks:
        t.add_row(chk.what, chk.expected, chk.observed, "[green]✓[/green]" if chk.ok else "[red]✗ FAIL[/red]")
    console.print(t)
    return bool(checks) and all(chk.ok for chk in checks)
