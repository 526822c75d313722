"""The CLI's one-word VLAN setting (``--vlan access:10``) and its inverse for display.

Grammar (mode names case-insensitive)::

    untagged
    access:ID
    trunk:LIST[:native=ID]          native 0 (the default) drops untagged frames
    isolated:PRIMARY:SECONDARY
    community:PRIMARY:SECONDARY
    promiscuous:PRIMARY:LIST        LIST is like 1-100,200

The result is a VlanConfig body for the API. It is checked here with the schema's own model so that a bad
spec is a usage error naming ``--vlan`` rather than a round trip to the daemon.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import click

from pyvswitch.config.vocabulary import VlanMode, format_vlan_list, parse_vlan_list

GRAMMAR = "untagged, access:ID, trunk:LIST[:native=ID], isolated:P:S, community:P:S, promiscuous:P:LIST"


class VlanSpecError(ValueError):
    """A VLAN spec that cannot be understood; the message says which part and why."""


def _vid(text: str, what: str, low: int = 1) -> int:
    try:
        v = int(text.strip())
    except ValueError:
        raise VlanSpecError(f"{what} {text!r} is not a number") from None
    if not low <= v <= 4094:
        raise VlanSpecError(f"{what} {v} is outside {low}-4094")
    return v


def _vlist(text: str, what: str) -> list[int]:
    try:
        vids = parse_vlan_list(text)
    except ValueError as exc:
        raise VlanSpecError(f"{what}: {exc}") from None
    if not vids:
        raise VlanSpecError(f"{what} is empty")
    return vids


def _nargs(mode: str, args: list[str], allowed: tuple[int, ...], form: str) -> None:
    if len(args) not in allowed:
        raise VlanSpecError(f"{mode} takes the form {form}")


def parse_vlan_spec(text: str) -> dict[str, Any]:
    """``'trunk:1-100,200:native=1'`` -> ``{"mode": "Trunk", "allowed_vlan_ids": [...], "native_vlan_id": 1}``."""
    head, *args = text.strip().split(":")
    mode = head.strip().lower()
    out: dict[str, Any]
    if mode == "untagged":
        _nargs(mode, args, (0,), "untagged")
        out = {"mode": VlanMode.UNTAGGED.value}
    elif mode == "access":
        _nargs(mode, args, (1,), "access:ID")
        out = {"mode": VlanMode.ACCESS.value, "access_vlan_id": _vid(args[0], "VLAN id")}
    elif mode == "trunk":
        _nargs(mode, args, (1, 2), "trunk:LIST[:native=ID]")
        native = 0
        if len(args) == 2:
            key, eq, value = args[1].partition("=")
            if key.strip().lower() != "native" or not eq:
                raise VlanSpecError(f"expected native=ID after the VLAN list, not {args[1]!r}")
            native = _vid(value, "native VLAN id", low=0)
        out = {
            "mode": VlanMode.TRUNK.value,
            "allowed_vlan_ids": _vlist(args[0], "allowed VLAN list"),
            "native_vlan_id": native,
        }
    elif mode in ("isolated", "community"):
        _nargs(mode, args, (2,), f"{mode}:PRIMARY:SECONDARY")
        out = {
            "mode": VlanMode(mode.capitalize()).value,
            "primary_vlan_id": _vid(args[0], "primary VLAN id"),
            "secondary_vlan_id": _vid(args[1], "secondary VLAN id"),
        }
    elif mode == "promiscuous":
        _nargs(mode, args, (2,), "promiscuous:PRIMARY:LIST")
        out = {
            "mode": VlanMode.PROMISCUOUS.value,
            "primary_vlan_id": _vid(args[0], "primary VLAN id"),
            "secondary_vlan_ids": _vlist(args[1], "secondary VLAN list"),
        }
    else:
        raise VlanSpecError(f"unknown VLAN mode {head!r} (expected {GRAMMAR})")
    from pydantic import ValidationError  # the schema only when a spec is given: not for showing VLANs

    from pyvswitch.config.schema import VlanConfig

    try:
        VlanConfig.model_validate(out)
    except ValidationError as exc:
        msgs = [str(e.get("msg", "invalid")).removeprefix("Value error, ") for e in exc.errors()]
        raise VlanSpecError("; ".join(msgs)) from None
    return out


def format_vlan(vlan: Mapping[str, Any] | None) -> str:
    """A VlanConfig (as JSON) in the spec grammar, so that what ``port list`` shows can be typed back."""
    if not vlan:
        return "untagged"
    mode = str(vlan.get("mode") or VlanMode.UNTAGGED.value)
    if mode == VlanMode.ACCESS:
        return f"access:{vlan.get('access_vlan_id')}"
    if mode == VlanMode.TRUNK:
        native = vlan.get("native_vlan_id") or 0
        return f"trunk:{format_vlan_list(list(vlan.get('allowed_vlan_ids') or []))}:native={native}"
    if mode in (VlanMode.ISOLATED, VlanMode.COMMUNITY):
        return f"{mode.lower()}:{vlan.get('primary_vlan_id')}:{vlan.get('secondary_vlan_id')}"
    if mode == VlanMode.PROMISCUOUS:
        secondaries = format_vlan_list(list(vlan.get("secondary_vlan_ids") or []))
        return f"promiscuous:{vlan.get('primary_vlan_id')}:{secondaries}"
    return "untagged"


def vlan_option_callback(
    ctx: click.Context, param: click.Parameter, value: str | None
) -> dict[str, Any] | None:
    """click option callback: a bad spec fails as ``Invalid value for '--vlan': ...``, exit 2.

    A callback rather than a ParamType subclass: ParamType became generic in click 8.2, and the
    project supports click 8.1 as well.
    """
    if value is None:
        return None
    try:
        return parse_vlan_spec(value)
    except VlanSpecError as exc:
        raise click.BadParameter(str(exc), ctx=ctx, param=param) from None
