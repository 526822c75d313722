"""`pyvswitch completion bash|zsh|fish`: shell completion from click's own machinery (issue 15 item 2).

Completed: verbs and their options (click), the Hyper-V cmdlet names at the first word (a word with a capital
or a hyphen), and object names where a command takes one (switches, VMs, ports: asked of the daemon, with a
short time-out so a stopped daemon only means no names). ``--install`` writes the bash script where
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
