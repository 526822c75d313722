"""Output for people and for programs.

Tables are plain aligned text rather than rich tables: the CLI is piped into grep and awk and its output is
re-printed by the demo, and a terminal-width-aware renderer would wrap or cut columns there. Two styles:
``table`` (verbs, upper-case headers like ``ip``/``docker``) and ``ps_table`` (cmdlets, laid out like
PowerShell's Format-Table so that Hyper-V admins read what they expect).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import click

from pyvswitch.packet.mac import parse_mac


def cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "True" if value else "False"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, list | tuple):
        return ",".join(cell(v) for v in value)
    return str(value)


def _widths(headers: Sequence[str], rows: list[list[str]]) -> list[int]:
    return [max([len(h), *(len(r[i]) for r in rows)]) for i, h in enumerate(headers)]


def table(headers: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    """Columns two spaces apart under upper-case headers; the last column is not padded."""
    text = [[cell(c) for c in r] for r in rows]
    w = _widths(headers, text)
    lines = [[h.upper() for h in headers], *text]
    return "\n".join("  ".join(c.ljust(w[i]) for i, c in enumerate(ln)).rstrip() for ln in lines)


def ps_table(headers: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    """PowerShell's Format-Table: headers, a dashed rule under each, one space between columns."""
    text = [[cell(c) for c in r] for r in rows]
    w = _widths(headers, text)
    lines = [list(headers), ["-" * len(h) for h in headers], *text]
    return "\n".join(" ".join(c.ljust(w[i]) for i, c in enumerate(ln)).rstrip() for ln in lines)


def detail(pairs: Iterable[tuple[str, object]]) -> str:
    """``key: value`` lines with the values aligned."""
    items = [(k, cell(v)) for k, v in pairs]
    w = max((len(k) for k, _ in items), default=0)
    return "\n".join(f"{k + ':':<{w + 1}} {v}".rstrip() for k, v in items)


def dumps(data: Any) -> str:
    """The JSON the CLI prints: the daemon's own answer, indented, keys in the order the daemon sent."""
    return json.dumps(data, indent=2)


def echo_json(data: Any) -> None:
    click.echo(dumps(data))


def hyperv_mac(mac: str | None) -> str:
    """'02:15:5d:01:02:03' -> '02155D010203' (how Hyper-V shows MACs); no MAC yet -> all zeroes, as Hyper-V."""
    if not mac:
        return "000000000000"
    try:
        return f"{parse_mac(mac):012X}"
    except ValueError:
        return mac


def counter_rows(ports: Mapping[str, Any]) -> tuple[list[str], list[list[object]]]:
    """Per-port counters as a table: every numeric counter a column, every per-reason drop map summed.

    The engine's counter set grows with the datapath, so the columns come from the data, not from a list here.
    """
    columns: list[str] = []
    for values in ports.values():
        if isinstance(values, Mapping):
            for k, v in values.items():
                if isinstance(v, int | float) and not isinstance(v, bool) and k not in columns:
                    columns.append(k)
    rows: list[list[object]] = []
    for name, values in ports.items():
        if not isinstance(values, Mapping):
            continue
        drops = sum(
            n
            for v in values.values()
            if isinstance(v, Mapping)
            for n in v.values()
            if isinstance(n, int | float) and not isinstance(n, bool)
        )
        rows.append([name, *(values.get(c, "") for c in columns), drops])
    return ["port", *columns, "drops"], rows
