"""The cmdlet reference's table of Linux-style equivalents (cli/cmdlet/equivalents.py) against the real cmdlet
table and the real click tree: every cmdlet has an entry, and every verb path and option it names exists."""

from __future__ import annotations

import click
import pytest

from pyvswitch.cli.cmdlet.equivalents import DEFAULTS, EQUIVALENTS, NONE
from pyvswitch.cli.cmdlets import CMDLETS
from pyvswitch.cli.main import cli


def resolve(words: list[str]) -> tuple[list[str], click.Command, list[str]]:
    """The verb path ``words`` starts with (descending click groups), its command, and the remaining words."""
    root = cli.make_context("pyvswitch", [], resilient_parsing=True)
    cmd: click.Command = cli
    ctx = root
    path: list[str] = []
    rest = list(words)
    while rest and isinstance(cmd, click.Group):
        sub = cmd.get_command(ctx, rest[0])
        if sub is None:
            break
        path.append(rest.pop(0))
        ctx = click.Context(sub, info_name=path[-1], parent=ctx)
        cmd = sub
    return path, cmd, rest


def commands(text: str) -> list[str]:
    """The command lines of an entry (``a ; b``), without a trailing parenthesised note."""
    return [part.split(" (", 1)[0].strip() for part in text.split(" ; ")]


def test_every_cmdlet_has_an_entry_and_no_entry_names_a_cmdlet_that_does_not_exist() -> None:
    names = {c.name for c in CMDLETS}
    assert names - EQUIVALENTS.keys() == set(), "cmdlets without a Linux-style equivalent entry"
    assert EQUIVALENTS.keys() - names == set(), "entries for cmdlets that do not exist"


@pytest.mark.parametrize("name", sorted(EQUIVALENTS))
def test_each_equivalent_is_a_real_verb_path_with_real_options(name: str) -> None:
    text = EQUIVALENTS[name]
    if text.startswith(NONE):
        assert text == NONE or text.startswith(NONE + " ("), text
        return
    for line in commands(text):
        words = line.split()
        assert words[0] == "pyvswitch", line
        path, cmd, rest = resolve(words[1:])
        assert path, f"{name}: {line!r} names no pyvswitch verb"
        assert not isinstance(cmd, click.Group), f"{name}: {line!r} stops at group {' '.join(path)!r}"
        if rest and rest[0].islower() and not rest[0].startswith("-"):
            # A lower-case word right after the path is a subcommand that does not exist, or an argument that
            # must be one of the command's choices (qos pfc on, qos adapter enable).
            choices = [
                c
                for p in cmd.params
                if isinstance(p, click.Argument) and isinstance(p.type, click.Choice)
                for c in p.type.choices
            ]
            assert rest[0] in choices, f"{name}: {' '.join(path)} has no subcommand or choice {rest[0]!r}"
        options = {o for p in cmd.params for o in (*p.opts, *p.secondary_opts)}
        for word in rest:
            if word.startswith("--"):
                assert word in options, f"{name}: {' '.join(path)} has no option {word}"


def test_the_checker_fails_on_a_verb_or_option_that_does_not_exist() -> None:
    path, cmd, _ = resolve(["switch", "frobnicate", "x"])
    assert path == ["switch"] and isinstance(cmd, click.Group)
    path, cmd, _ = resolve(["switch", "add", "x", "--no-such-option"])
    assert path == ["switch", "add"] and "--no-such-option" not in {o for p in cmd.params for o in p.opts}


def test_defaults_name_real_cmdlets_and_parameters() -> None:
    params = {c.name: {p.name for p in c.params} for c in CMDLETS}
    for cmdlet, param in DEFAULTS:
        assert param in params.get(cmdlet, set()), f"DEFAULTS names {cmdlet} -{param}, which does not exist"
