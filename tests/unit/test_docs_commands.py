"""Every `pyvswitch ...` command line the documentation shows (``# pyvswitch ...`` in docs/**/*.md) parses: a
verb line through click's own parsing down to its command (options, choices, required arguments), a cmdlet line
through the cmdlet binder (names, values, parameter sets as far as binding checks them). Nothing is sent."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import click
import pytest

from pyvswitch.cli import cmdlets
from pyvswitch.cli.cmdlet.framework import bind
from pyvswitch.cli.cmdlet.what_if import take_what_if
from pyvswitch.cli.main import CMDLET_WORD, cli

DOCS = Path(__file__).resolve().parents[2] / "docs"
PROMPT = re.compile(r"^# (pyvswitch\s.*)$")


def command_lines() -> list[tuple[str, str]]:
    """(file:line, command) of every pyvswitch command in a console block; ``a ; b`` and ``a || b`` split."""
    found = []
    for path in sorted(DOCS.rglob("*.md")):
        in_console = False
        for n, line in enumerate(path.read_text().splitlines(), 1):
            if line.startswith("```"):
                in_console = line.strip() == "```console"
                continue
            m = PROMPT.match(line) if in_console else None
            if m is None:
                continue
            text = m.group(1)
            words = shlex.split(text, comments=True)
            parts: list[list[str]] = [[]]
            for w in words:
                if w in (";", "||", "&&"):
                    parts.append([])
                else:
                    parts[-1].append(w)
            for part in parts:
                if part and part[0] == "pyvswitch":
                    found.append((f"{path.relative_to(DOCS)}:{n}", shlex.join(part)))
    return found


def check(words: list[str]) -> None:
    """Raise when ``pyvswitch WORDS`` would not parse."""
    i = 0
    while i < len(words) and words[i] in ("--json", "--host", "--socket"):
        i += 1 if words[i] == "--json" else 2
    if i < len(words) and CMDLET_WORD.match(words[i]):
        argv, _view = cmdlets._pipeline(words[i + 1 :])
        cmd = cmdlets.find(words[i])
        if any(t in ("-?", "--help") for t in argv):
            return
        bind(cmd, take_what_if(cmd, [w for w in argv if w != "--json"])[0])
        return
    ctx = cli.make_context("pyvswitch", list(words))
    cmd: click.Command = cli
    while isinstance(cmd, click.Group):
        args = [*ctx._protected_args, *ctx.args]
        if not args:
            raise click.UsageError(f"{ctx.command_path} needs a subcommand")
        name, sub, rest = cmd.resolve_command(ctx, args)
        assert name is not None and sub is not None
        ctx = sub.make_context(name, rest, parent=ctx)
        cmd = sub


LINES = command_lines()


def test_the_docs_show_commands() -> None:
    assert len(LINES) > 100


@pytest.mark.parametrize(("where", "line"), LINES, ids=[w for w, _ in LINES])
def test_each_documented_command_parses(where: str, line: str) -> None:
    try:
        check(shlex.split(line)[1:])
    except click.BadParameter as exc:
        if "No such file" not in str(exc):  # a file the example reads need not exist here
            pytest.fail(f"{where}: {line}\n  {type(exc).__name__}: {exc}")
    except Exception as exc:
        pytest.fail(f"{where}: {line}\n  {type(exc).__name__}: {exc}")


@pytest.mark.parametrize(
    "line",
    [
        "pyvswitch switch add ext --uplinkk eth1",
        "pyvswitch switch frob",
        "pyvswitch team add t1 --mode fast",
        "pyvswitch vm add",
        "pyvswitch Set-VMNetworkAdapter -VMN web01",
        "pyvswitch New-NetLbfoTeam -Name t1 -TeamMembers eth1 -TeamingMode Turbo",
        "pyvswitch Get-VMSwitchh",
    ],
)
def test_the_check_refuses_what_the_cli_refuses(line: str) -> None:
    with pytest.raises(Exception):  # noqa: B017 - click's usage errors and the cmdlet binder's
        check(shlex.split(line)[1:])
