"""`pyvswitch completion bash|zsh|fish`: shell completion from click's own machinery (issue 15 item 2).

Completed: verbs and their options (click), the Hyper-V cmdlet names at the first word (a word with a capital
or a hyphen), a cmdlet's parameters (``-SwitchName``, ``-WhatIf``) and their choices, and object names where a
command or a cmdlet parameter takes one (switches, VMs, ports, teams: asked of the daemon, with a short time-out
so a stopped daemon only means no names). ``--install`` writes the bash script where
bash-completion looks for it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import click
from click.shell_completion import CompletionItem, get_completion_class

COMPLETE_VAR = "_PYVSWITCH_COMPLETE"
SHELLS = ("bash", "zsh", "fish")


@click.command("completion")
@click.argument("shell", type=click.Choice(SHELLS))
@click.option(
    "--install", is_flag=True, help="bash: write the script for bash-completion instead of printing it."
)
@click.option("--json", "json_flag", is_flag=True, help="Print {'shell', 'path'} after --install.")
@click.pass_context
def completion_command(ctx: click.Context, shell: str, install: bool, json_flag: bool) -> None:
    """Print the completion script for SHELL; e.g. in ~/.bashrc: eval "$(pyvswitch completion bash)"."""
    root = ctx.find_root().command
    cls = get_completion_class(shell)
    assert cls is not None
    source = cls(root, {}, "pyvswitch", COMPLETE_VAR).source()
    if not install:
        click.echo(source)
        return
    if shell != "bash":
        raise click.UsageError(
            "--install knows bash-completion's place only; print the script for zsh and fish"
        )
    base = (
        Path("/etc/bash_completion.d")
        if os.geteuid() == 0
        else Path.home() / ".local/share/bash-completion/completions"
    )
    base.mkdir(parents=True, exist_ok=True)
    path = base / "pyvswitch"
    path.write_text(source + "\n")
    if json_flag or getattr(ctx.obj, "json", False):
        import json

        click.echo(json.dumps({"shell": shell, "path": str(path)}))
    else:
        click.echo(f"wrote {path}; new shells complete pyvswitch")


def cmdlet_names(incomplete: str) -> list[Any]:
    """The cmdlets starting with ``incomplete`` (case-insensitive), when it looks like the start of one."""
    if not incomplete or not (incomplete[0].isupper() or "-" in incomplete):
        return []
    from pyvswitch.cli.cmdlets import CMDLETS

    low = incomplete.lower()
    return [CompletionItem(c.name, help=c.summary) for c in CMDLETS if c.name.lower().startswith(low)]


# Cmdlet parameters whose values are object names, and where the daemon lists them.
_NAMED = {"switchname": "/switches", "vmswitchname": "/switches", "vmname": "/vms", "team": "/teams",
          "sessionname": "/netevent/sessions"}  # fmt: skip
# -Name, by the cmdlet's noun.
_NAME_BY_NOUN = {"vmswitch": "/switches", "vm": "/vms", "netlbfoteam": "/teams", "neteventsession": "/netevent/sessions",
                 "netqospolicy": "/qos/policies", "netqostrafficclass": "/qos/traffic-classes"}  # fmt: skip


def cmdlet_command(name: str) -> click.Command | None:
    """The cmdlet ``name`` as a click command, for completion only (the cmdlet binder parses real lines): its
    parameters as ``-Name`` options, switch parameters as flags, choices as click choices, names from the
    daemon, and ``-WhatIf`` where the cmdlet changes state."""
    from pyvswitch.cli.cmdlet.framework import CmdletUsageError, PType
    from pyvswitch.cli.cmdlet.what_if import changes_state
    from pyvswitch.cli.cmdlets import find
    from pyvswitch.cli.name_completion import object_names

    try:
        cmd = find(name)
    except CmdletUsageError:
        return None
    noun = cmd.name.split("-", 1)[1].lower()
    params: list[click.Parameter] = []
    for p in cmd.params:
        decl = [f"-{p.name}"]
        if p.type is PType.SWITCH:
            params.append(click.Option(decl, is_flag=True))
            continue
        lookup = _NAMED.get(p.name.lower()) or (_NAME_BY_NOUN.get(noun) if p.name == "Name" else None)
        params.append(
            click.Option(
                decl,
                type=click.Choice(p.choices) if p.choices else click.STRING,
                shell_complete=object_names(lookup) if lookup and not p.choices else None,
            )
        )
    if changes_state(cmd):
        params.append(click.Option(["-WhatIf"], is_flag=True))
    params.append(click.Option(["--json"], is_flag=True))
    return click.Command(cmd.name, params=params, help=cmd.summary, add_help_option=False)
