"""The Hyper-V cmdlet front end's registry: ``pyvswitch Set-VMNetworkAdapterVlan -VMName web01 -Access -VlanId 20``.

The top floor of the cmdlet front end. Below it, ``cli.cmdlet`` is the framework (the PowerShell-style binder,
Format-Table/Format-List output, adapter selection) and each family is a module of its own that imports only
the framework and the client/format helpers; this module imports the families and builds :data:`CMDLETS`,
the table ``pyvswitch`` looks a Verb-Noun word up in, and runs one cmdlet line. Nothing below imports it, so
a family never sees another family's names through it.

Mistakes are reported in PowerShell's own words with exit 2 (``CmdletUsageError``), a name that matches
nothing with exit 1 (``CmdletError``); ``cli.main`` maps them.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Sequence
from typing import Any

import click

from pyvswitch.cli import (
    lbfo,
    migrate,
    netevent,
    netqos,
    sriov,
    vmacl,
    vmadapter,
    vmextension,
    vmswitch,
    vnet,
)
from pyvswitch.cli.cmdlet.framework import Cmdlet, CmdletUsageError, Session, bind
from pyvswitch.cli.cmdlet.output import help_text
from pyvswitch.cli.cmdlet.what_if import rehearse, take_what_if

CMDLET_RE = re.compile(r"^[A-Za-z]+-[A-Za-z][A-Za-z0-9]*$")

# In the order of `pyvswitch --help`'s list and of the "Supported:" message.
CMDLETS: tuple[Cmdlet, ...] = (
    *vmswitch.CMDLETS,  # New/Get/Set/Remove-VMSwitch, New/Get/Remove-VM
    *vmadapter.CMDLETS,  # *-VMNetworkAdapter, Set/Get-VMNetworkAdapterVlan
    *vmacl.CMDLETS,  # *-VMNetworkAdapterAcl, *-VMNetworkAdapterExtendedAcl
    *vmextension.CMDLETS,  # Get-VMSystemSwitchExtension, Get/Enable/Disable-VMSwitchExtension
    *netevent.CMDLETS,  # New/Get/Start/Stop/Remove-NetEventSession, the capture provider
    *sriov.CMDLETS,  # Enable/Disable/Set/Get-NetAdapterSriov, Get-NetAdapterSriovVf
    *migrate.CMDLETS,  # Move-VM (live migration)
    *lbfo.CMDLETS,  # New/Get/Set/Remove-NetLbfoTeam, *-NetLbfoTeamMember, *-NetLbfoTeamNic
    *netqos.CMDLETS,  # *-NetQosPolicy, *-NetQosTrafficClass, *-NetQosFlowControl, DCBX, *-NetAdapterQos
    *vnet.CMDLETS,  # *-NetVirtualizationLookupRecord, Get-NetVirtualizationProviderAddress (HNV, issue 13)
)
_BY_NAME = {c.name.lower(): c for c in CMDLETS}


def looks_like_cmdlet(word: str) -> bool:
    """A Verb-Noun word: no verb of the CLI has a hyphen, so this never shadows one."""
    return bool(CMDLET_RE.match(word))


def find(name: str) -> Cmdlet:
    cmd = _BY_NAME.get(name.lower())
    if cmd is None:
        close = difflib.get_close_matches(name.lower(), list(_BY_NAME), n=3, cutoff=0.75)
        hint = f" Did you mean {' or '.join(_BY_NAME[c].name for c in close)}?" if close else ""
        raise CmdletUsageError(
            "",
            f"The term '{name}' is not recognized as a name of a cmdlet supported by pyvswitch.{hint} "
            "`pyvswitch --help` lists them all.",
        )
    return cmd


def epilog() -> str:
    """The cmdlet list for ``pyvswitch --help`` (\\b keeps click from re-wrapping it)."""
    lines = ["Hyper-V cmdlets (pyvswitch CMDLET -Parameter value ...; CMDLET -? for its syntax):", "", "\b"]
    width = max(len(c.name) for c in CMDLETS)
    lines += [f"  {c.name:<{width}}  {c.summary}" for c in CMDLETS]
    return "\n".join(lines)


PIPE_STAGES = {
    "fl": "list", "format-list": "list", "ft": "table", "format-table": "table",
    "select": "select", "select-object": "select",
}  # fmt: skip


def _pipeline(argv: Sequence[str]) -> tuple[list[str], dict[str, Any]]:
    """The words before a trailing pipeline, and what it asks: ``| fl`` / ``| Format-List``, ``| ft`` /
    ``| Format-Table``, ``| Select-Object [-Property] A,B`` (or ``| select A,B``; ``fl A,B`` and ``ft A,B`` select
    too), in any number of stages. The pipe must reach us as a word (quoted, or after ``--``): ``'|' fl``,
    ``'| fl'`` and ``'|fl'`` all do."""
    words = list(argv)
    start = next((i for i, w in enumerate(words) if w.startswith("|")), None)
    if start is None:
        return words, {}
    stages = " ".join(words[start:]).split("|")[1:]
    out: dict[str, Any] = {}
    for stage in stages:
        parts = stage.replace(",", " , ").split()
        if not parts or parts[0].lower() not in PIPE_STAGES:
            known = "Format-List (fl), Format-Table (ft), Select-Object (select)"
            raise CmdletUsageError("", f"'| {stage.strip()}': pyvswitch pipes its output only to {known}.")
        kind = PIPE_STAGES[parts[0].lower()]
        props = [p for p in parts[1:] if p not in (",",) and p.lower() != "-property"]
        if kind == "list":
            out["format_list"] = True
        elif kind == "table":
            out["format_table"] = True
        if props:
            out["select"] = props
        elif kind == "select":
            raise CmdletUsageError("", "Select-Object needs -Property A,B")
    return words[:start], out


def run(name: str, argv: Sequence[str], session_factory: Callable[[], Session]) -> int:
    """Run cmdlet ``name``; usage errors raise CmdletUsageError, API errors propagate to the caller."""
    cmd = find(name)
    if any(t in ("-?", "--help", "/?") for t in argv):
        click.echo(help_text(cmd))
        return 0
    argv, view = _pipeline(argv)
    # --json anywhere on the line (it is no PowerShell parameter, so it cannot be one's value).
    json_out = "--json" in argv
    argv = [w for w in argv if w != "--json"]
    argv, what_if = take_what_if(cmd, argv)
    args = bind(cmd, argv)
    session = session_factory()
    session.format_list = session.format_list or bool(view.get("format_list"))
    session.format_table = bool(view.get("format_table"))
    session.select = view.get("select")
    session.json = session.json or json_out
    with session.client:
        if what_if:
            rehearse(cmd, args, session)
        else:
            cmd.run(args, session)
    return 0
