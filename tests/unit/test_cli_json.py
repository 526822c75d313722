"""--json on every command and anywhere on a cmdlet line, and errors as JSON with it (issue 15 item 2)."""

from __future__ import annotations

import json

import click
import pytest

from pyvswitch.cli import cmdlets
from pyvswitch.cli.cmdlet.framework import CmdletUsageError, Session
from pyvswitch.cli.main import cli, main


def leaves(cmd: click.Command, path: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], click.Command]]:
    if isinstance(cmd, click.Group):
        ctx = click.Context(cmd)
        out: list[tuple[tuple[str, ...], click.Command]] = []
        for name in cmd.list_commands(ctx):
            sub = cmd.get_command(ctx, name)
            assert sub is not None
            out += leaves(sub, (*path, name))
        return out
    return [(path, cmd)]


def test_every_command_takes_json() -> None:
    commands = leaves(cli)
    assert len(commands) > 80
    missing = [" ".join(p) for p, c in commands if not any("--json" in o.opts for o in c.params)]
    assert missing == []


class Bound(Exception):
    """The line was accepted: the cmdlet asked for its session."""


def refuse_session() -> Session:
    raise Bound


@pytest.mark.parametrize("where", ["first", "last"])
def test_every_cmdlet_accepts_json_anywhere(where: str) -> None:
    for cmd in cmdlets.CMDLETS:
        argv = ["--json"] if where == "first" else ["-Name", "x", "--json"]
        try:
            cmdlets.run(cmd.name, argv, refuse_session)
        except Bound:
            continue
        except CmdletUsageError as exc:  # a missing or unknown parameter, but never --json itself
            assert "json" not in str(exc).lower(), (cmd.name, str(exc))


def test_errors_are_json_with_json(capsys: pytest.CaptureFixture[str]) -> None:
    for argv, code in (
        (["--json", "--socket", "/nonexistent.sock", "switch", "list"], 3),
        (["--socket", "/nonexistent.sock", "vm", "show", "web01", "--json"], 3),
        (["--socket", "/nonexistent.sock", "Get-VMSwitch", "--json"], 3),
        (["--json", "switch", "add"], 2),  # click's usage error: NAME missing
        (["--json", "Get-VMSwitch", "-NoSuchParameter", "1"], 2),
    ):
        capsys.readouterr()
        assert main(argv) == code, argv
        out, err = capsys.readouterr()
        assert out == "", argv
        body = json.loads(err)
        assert body["exit_code"] == code and body["errors"] and body["errors"][0]["message"], argv
    # Without --json, the same failure reads as text.
    assert main(["--socket", "/nonexistent.sock", "switch", "list"]) == 3
    assert capsys.readouterr().err.startswith("pyvswitchd is not running")
