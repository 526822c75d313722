"""`pyvswitch capture start|list|show|stop`: capture sessions written as pcapng files by the daemon.

The daemon writes the file, so FILE is made absolute here (relative to the shell's directory) before it is
sent; the daemon checks that its directory exists. Filters are passed through as typed (``0x0800``, ``ipv4``,
``tcp``, ``10.0.0.0/24``...) and the daemon names any bad value by its field (``filter.ips[1]``), exit 1.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import quote

import click

from pyvswitch.cli.client import JsonObj
from pyvswitch.cli.format import detail, echo_json, table
from pyvswitch.cli.verbkit import State, json_flag, pass_state

_SIZE_RE = re.compile(r"^\s*(\d+)\s*([kmgt]?)(i?b)?\s*$", re.IGNORECASE)
_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}


def parse_size(text: str) -> int:
    """A size in bytes: 1048576, 512K, 10M, 1G (binary units; B, KiB, MB... also read). ValueError if not."""
    m = _SIZE_RE.match(text)
    if m is None:
        raise ValueError(f"{text!r} is not a size (e.g. 1048576, 512K, 10M, 1G)")
    return int(m.group(1)) * _UNITS[m.group(2).lower()]


def _size_callback(ctx: click.Context, param: click.Parameter, value: str | None) -> int | None:
    if value is None:
        return None
    try:
        return parse_size(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


def _human_size(n: object) -> str:
    if not isinstance(n, int):
        return "-"
    for unit, size in (("G", 1 << 30), ("M", 1 << 20), ("K", 1 << 10)):
        if n >= size:
            return f"{n / size:.1f}{unit}"
    return str(n)


def _filter_text(flt: Mapping[str, Any] | None) -> str:
    if not flt:
        return "all frames"
    parts = [f"{k}={','.join(str(v) for v in vals)}" for k, vals in flt.items() if vals]
    return "; ".join(parts) or "all frames"


def capture_table(rows: Sequence[Mapping[str, Any]]) -> str:
    return table(
        [
            "id",
            "name",
            "state",
            "captured",
            "filtered",
            "dropped",
            "ports",
            "dir",
            "snaplen",
            "size",
            "files",
        ],
        [
            [
                r.get("id"),
                r.get("name") or "-",
                r.get("state"),
                r.get("captured"),
                r.get("filtered"),
                r.get("dropped"),
                ",".join(r.get("ports") or []) or "all",
                r.get("direction"),
                r.get("snaplen") or "whole",
                _human_size(r.get("bytes")),
                ",".join(r.get("files") or []),
            ]
            for r in rows
        ],
    )


def capture_detail(r: Mapping[str, Any]) -> str:
    return detail(
        [
            ("id", r.get("id")),
            ("name", r.get("name") or "-"),
            ("state", r.get("state")),
            ("error", r.get("error") or "-"),
            ("ports", ", ".join(r.get("ports") or []) or "all"),
            ("interfaces", ", ".join(r.get("interfaces") or []) or "-"),
            ("direction", r.get("direction")),
            ("snaplen", r.get("snaplen") or "whole frames"),
            ("max bytes", r.get("max_bytes") or "no limit"),
            ("ring files", r.get("ring_files") or "-"),
            ("filter", _filter_text(r.get("filter"))),
            ("captured", r.get("captured")),
            ("filtered out", r.get("filtered")),
            ("dropped", r.get("dropped")),
            ("size", _human_size(r.get("bytes"))),
            ("files", ", ".join(r.get("files") or []) or "-"),
        ]
    )


@click.group("capture")
def capture_group() -> None:
    """Capture sessions: frames of chosen ports, filtered and truncated, into pcapng files."""


@capture_group.command("start")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option(
    "--port", "ports", multiple=True, metavar="PORT", help="Capture this port (repeat; default all)."
)
@click.option(
    "--direction",
    type=click.Choice(["in", "out", "both"]),
    default="both",
    show_default=True,
    help="in: what the switch receives from the port (VM -> switch); out: what it sends to the port.",
)
@click.option(
    "--snaplen",
    type=click.IntRange(0, 262144),
    default=128,
    show_default=True,
    help="Bytes kept of each frame (0 = whole frames); Hyper-V's TruncationLength default is 128.",
)
@click.option(
    "--max-bytes",
    callback=_size_callback,
    metavar="SIZE",
    help="Cap each file at SIZE (e.g. 100M; default 250M, 0 = no cap); without --ring, stop there.",
)
@click.option(
    "--ring", type=click.IntRange(min=1), metavar="N", help="Keep N files of --max-bytes as a ring."
)
@click.option(
    "--ethertype", "ethertypes", multiple=True, metavar="ETYPE", help="0x0800, ipv4, arp, ipv6... (repeat)"
)
@click.option("--ip", "ips", multiple=True, metavar="ADDR", help="Address or network, either end (repeat).")
@click.option(
    "--protocol", "protocols", multiple=True, metavar="PROTO", help="tcp, udp, icmp, icmpv6 or N (repeat)."
)
@click.option("--mac", "macs", multiple=True, metavar="MAC", help="MAC address, either end (repeat).")
@json_flag
@pass_state
def capture_start(
    state: State,
    file: str,
    ports: tuple[str, ...],
    direction: str,
    snaplen: int,
    max_bytes: int | None,
    ring: int | None,
    ethertypes: tuple[str, ...],
    ips: tuple[str, ...],
    protocols: tuple[str, ...],
    macs: tuple[str, ...],
) -> None:
    """Start capturing into FILE (pcapng); prints the capture's id."""
    if ring is not None and max_bytes is None:
        raise click.BadParameter(
            "a ring needs --max-bytes (the size at which the next file starts)", param_hint="'--ring'"
        )
    body: JsonObj = {"path": os.path.abspath(file), "direction": direction, "snaplen": snaplen}
    if ports:
        body["ports"] = list(ports)
    if max_bytes is not None:
        body["max_bytes"] = max_bytes
    if ring is not None:
        body["ring_files"] = ring
    flt = {
        k: list(v)
        for k, v in (("ethertypes", ethertypes), ("ips", ips), ("protocols", protocols), ("macs", macs))
        if v
    }
    if flt:
        body["filter"] = flt
    with state.client() as c:
        status = c.request("POST", "/captures", json=body)
    if state.json:
        echo_json(status)
    else:
        click.echo(status["id"])


@capture_group.command("list")
@json_flag
@pass_state
def capture_list(state: State) -> None:
    """Running and recently stopped captures with their counts."""
    with state.client() as c:
        rows = c.request("GET", "/captures")
    if state.json:
        echo_json(rows)
    elif rows:
        click.echo(capture_table(rows))
    else:
        click.echo("no captures")


@capture_group.command("show")
@click.argument("capture_id", metavar="ID")
@json_flag
@pass_state
def capture_show(state: State, capture_id: str) -> None:
    """One capture's settings, counts and files."""
    with state.client() as c:
        status = c.request("GET", f"/captures/{quote(capture_id, safe='')}")
    if state.json:
        echo_json(status)
    else:
        click.echo(capture_detail(status))


@capture_group.command("stop")
@click.argument("capture_id", metavar="ID")
@json_flag
@pass_state
def capture_stop(state: State, capture_id: str) -> None:
    """Stop capture ID, flush its file(s) and print its final counts."""
    with state.client() as c:
        status = c.request("DELETE", f"/captures/{quote(capture_id, safe='')}")
    if state.json:
        echo_json(status)
    else:
        click.echo(capture_detail(status))
