"""The switch extension cmdlets: Get-VMSystemSwitchExtension, Get/Enable/Disable-VMSwitchExtension.

Enabling and disabling share ``cli.extensions``' settings edits with the ``extension`` verbs; ``-Name`` and
``-VMSwitchName`` take lists and wildcards, and a name without a wildcard that matches nothing is an error,
as in Hyper-V.

Floor: a cmdlet family, on the framework (``cli.cmdlet``); ``cli.cmdlets`` puts :data:`CMDLETS` in the table.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pyvswitch.cli.client import JsonObj
from pyvswitch.cli.cmdlet.framework import (
    Args,
    Cmdlet,
    CmdletError,
    Param,
    PType,
    Session,
    has_wildcard,
    like,
    list_values,
)
from pyvswitch.cli.cmdlet.output import show
from pyvswitch.cli.extensions import set_enabled

# The daemon's extension kinds as Hyper-V's ExtensionType.
EXTENSION_TYPES = {"capture": "Capture", "filter": "Filter", "forwarding": "Forwarding"}
SYSTEM_EXTENSION_COLUMNS = ("Name", "Vendor", "Version", "ExtensionType")
SWITCH_EXTENSION_COLUMNS = ("Name", "ExtensionType", "SwitchName", "Enabled", "Running")


def system_extension_obj(ext: Mapping[str, Any]) -> JsonObj:
    return {
        "Name": ext.get("name"),
        # Hyper-V's Vendor is the driver's company; here the Python distribution that installed it.
        "Vendor": ext.get("distribution") or "",
        "Version": ext.get("api_version") or "",
        "ExtensionType": EXTENSION_TYPES.get(str(ext.get("kind")), ""),
        "Description": ext.get("description") or "",
        # Why an installed extension cannot be used (it then has no ExtensionType and is in no stack), and
        # other packages' registrations of its name that were refused.
        "Problem": "; ".join(
            [*([ext["problem"]] if ext.get("problem") else []), *(ext.get("refused") or [])]
        ),
    }


def switch_extension_obj(switch: str, row: Mapping[str, Any], installed: Mapping[str, Any]) -> JsonObj:
    info: Mapping[str, Any] = installed.get(str(row.get("name"))) or {}
    enabled = bool(row.get("enabled"))
    return {
        "Name": row.get("name"),
        "Vendor": info.get("distribution") or "",
        "Version": info.get("api_version") or "",
        "ExtensionType": EXTENSION_TYPES.get(str(row.get("kind")), ""),
        "SwitchName": switch,
        "Enabled": enabled,
        # Every enabled extension in the stack is called for each batch; an exception it raises is
        # contained per call (counted in Errors) and does not stop it, so Running follows Enabled, except for
        # one whose constructor failed on this switch (issue 11): enabled, not running, Problem says why.
        "Running": bool(row.get("running", enabled)),
        "Position": row.get("position"),
        "Calls": row.get("calls") or 0,
        "Errors": row.get("errors") or 0,
        "Drops": row.get("drops") or {},
        "Status": row.get("status") or {},
        "Problem": row.get("problem") or "",
    }


def _patterns(a: Args, name: str) -> list[str] | None:
    return list_values(a, name) if a.has(name) else None


def _matches(value: str, patterns: Sequence[str] | None) -> bool:
    return patterns is None or any(like(value, p) for p in patterns)


def _switch_names(a: Args, s: Session, param: str) -> list[str]:
    """The switches ``-param`` names (wildcards allowed), every switch without it."""
    patterns = _patterns(a, param)
    names = [str(sw.get("name")) for sw in s.client.switches()]
    for p in patterns or ():
        if not has_wildcard(p) and not any(like(n, p) for n in names):
            raise CmdletError(a.cmdlet, f'Hyper-V was unable to find a virtual switch with name "{p}".')
    return [n for n in names if _matches(n, patterns)]


def _extension_names(a: Args, installed: Sequence[str]) -> list[str]:
    """The installed extensions -Name names (a list, wildcards allowed)."""
    patterns = _patterns(a, "Name") or []
    for p in patterns:
        if not has_wildcard(p) and not any(like(n, p) for n in installed):
            raise CmdletError(a.cmdlet, f'Hyper-V was unable to find a switch extension with name "{p}".')
    return [n for n in installed if _matches(n, patterns)]


def _switch_extension_objs(s: Session, switches: Sequence[str], names: Sequence[str] | None) -> list[JsonObj]:
    installed = {str(e.get("name")): e for e in s.client.extensions()}
    return [
        switch_extension_obj(sw, row, installed)
        for sw in switches
        for row in s.client.switch_extensions(sw)
        if _matches(str(row.get("name")), names)
    ]


def get_vmsystemswitchextension(a: Args, s: Session) -> None:
    patterns = _patterns(a, "Name")
    exts = [e for e in s.client.extensions() if _matches(str(e.get("name")), patterns)]
    for p in patterns or ():
        if not has_wildcard(p) and not any(like(str(e.get("name")), p) for e in exts):
            raise CmdletError(a.cmdlet, f'Hyper-V was unable to find a switch extension with name "{p}".')
    show(s, [system_extension_obj(e) for e in exts], SYSTEM_EXTENSION_COLUMNS)


def get_vmswitchextension(a: Args, s: Session) -> None:
    objs = _switch_extension_objs(s, _switch_names(a, s, "VMSwitchName"), _patterns(a, "Name"))
    for p in _patterns(a, "Name") or ():
        if not has_wildcard(p) and not any(like(str(o["Name"]), p) for o in objs):
            raise CmdletError(a.cmdlet, f'Hyper-V was unable to find a switch extension with name "{p}".')
    show(s, objs, SWITCH_EXTENSION_COLUMNS)


def _set_extension_state(a: Args, s: Session, enabled: bool) -> None:
    names = _extension_names(a, [str(e.get("name")) for e in s.client.extensions()])
    switches = _switch_names(a, s, "VMSwitchName")
    for sw in switches:
        set_enabled(s.client, sw, names, enabled)
    if a.flag("Passthru"):
        show(s, _switch_extension_objs(s, switches, names), SWITCH_EXTENSION_COLUMNS)


def enable_vmswitchextension(a: Args, s: Session) -> None:
    _set_extension_state(a, s, True)


def disable_vmswitchextension(a: Args, s: Session) -> None:
    _set_extension_state(a, s, False)


# ---------------------------------------------------------------- the table

CMDLETS: tuple[Cmdlet, ...] = (
    Cmdlet(
        "Get-VMSystemSwitchExtension",
        (Param("Name", position=0),),
        get_vmsystemswitchextension,
        "List the extensions installed on this host.",
        "Vendor is the Python distribution that installed it, Version the extension API version.",
    ),
    Cmdlet(
        "Get-VMSwitchExtension",
        (Param("VMSwitchName", position=0, aliases=("SwitchName",)), Param("Name", position=1)),
        get_vmswitchextension,
        "List each switch's extensions in stack order (every switch by default).",
        "--json adds Position, Calls, Errors, Drops and the extension's own Status.",
    ),
    Cmdlet(
        "Enable-VMSwitchExtension",
        (
            Param("Name", position=0, mandatory=True),
            Param("VMSwitchName", position=1, aliases=("SwitchName",)),
            Param("Passthru", PType.SWITCH),
        ),
        enable_vmswitchextension,
        "Enable extensions on a switch (on every switch without -VMSwitchName).",
    ),
    Cmdlet(
        "Disable-VMSwitchExtension",
        (
            Param("Name", position=0, mandatory=True),
            Param("VMSwitchName", position=1, aliases=("SwitchName",)),
            Param("Passthru", PType.SWITCH),
        ),
        disable_vmswitchextension,
        "Disable extensions on a switch (on every switch without -VMSwitchName).",
    ),
)
