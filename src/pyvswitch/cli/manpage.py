"""Man pages from the CLI itself (issue 15 item 4): ``pyvswitch(1)`` with every command of the click tree and
every Hyper-V cmdlet of the cmdlet table, each with its usage, help and options, so the page cannot drift from
what the CLI accepts. ``python -m pyvswitch.cli.manpage DIR`` writes ``pyvswitch.1`` and ``pyvswitchd.8`` (``make man``); the
repository carries the generated page (src/pyvswitch/data/man), the wheel installs it under share/man/man1, and
a test regenerates it and compares.

Written here rather than with click-man: click-man makes one page per subcommand (about 150 files here) and
knows nothing of the cmdlets, which are not click commands.
"""

from __future__ import annotations

import inspect
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import click

import pyvswitch

PAGE = "pyvswitch.1"
DAEMON_PAGE = "pyvswitchd.8"
DATE = "2026-12"  # the page's date: the release's month, not the build's (the page is compared in a test)


def _roff(text: str) -> str:
    """Escape for roff: backslashes, and a leading dot or quote that would start a request."""
    out = []
    for line in text.replace("\\", "\\e").splitlines():
        out.append("\\&" + line if line.startswith((".", "'")) else line)
    return "\n".join(out)


def _commands(group: click.Group, ctx: click.Context, prefix: str) -> Iterator[tuple[str, click.Command]]:
    for name in sorted(group.list_commands(ctx)):
        cmd = group.get_command(ctx, name)
        if cmd is None or cmd.hidden:
            continue
        path = f"{prefix} {name}"
        yield path, cmd
        if isinstance(cmd, click.Group):
            yield from _commands(cmd, click.Context(cmd, info_name=name, parent=ctx), path)


def _options(cmd: click.Command, ctx: click.Context) -> list[str]:
    out = []
    for param in cmd.get_params(ctx):
        record = param.get_help_record(ctx)
        if record is None:
            continue
        opts, help_text = record
        out.append(f".TP\n.B {_roff(opts)}\n{_roff(help_text)}")
    return out


def render() -> str:
    from pyvswitch.cli.cmdlet.output import full_syntax
    from pyvswitch.cli.cmdlet.what_if import changes_state
    from pyvswitch.cli.cmdlets import CMDLETS
    from pyvswitch.cli.main import cli

    # The context the CLI itself makes (its help option names, -h and --help, for every command below it): click
    # caches each command's help option on first use, so a page made from bare contexts would depend on whether
    # the CLI had already run in this process.
    root = cli.make_context("pyvswitch", [], resilient_parsing=True)
    lines = [
        f'.TH PYVSWITCH 1 "{DATE}" "pyvswitch {pyvswitch.__version__}" "pyvswitch manual"',
        ".SH NAME",
        "pyvswitch \\- manage pyvswitchd: switches, ports, VMs, teams, QoS, SR-IOV, migration, tracing",
        ".SH SYNOPSIS",
        ".B pyvswitch",
        "[\\fB--socket\\fR \\fIPATH\\fR] [\\fB--host\\fR \\fIHOST\\fR] [\\fB--json\\fR] \\fICOMMAND\\fR ...",
        ".br",
        ".B pyvswitch",
        "\\fIHyper-V-cmdlet\\fR [\\fI-Parameter value\\fR ...]",
        ".SH DESCRIPTION",
        _roff(inspect.cleandoc(cli.help or "")),
        ".PP",
        "Exit status: 0 ok, 1 the request was rejected (the message names the field), 2 usage, "
        "3 the daemon is not reachable.",
        ".SH COMMANDS",
    ]
    for path, cmd in _commands(cli, root, "pyvswitch"):
        ctx = click.Context(cmd, info_name=path.split()[-1], parent=root)
        usage = " ".join(cmd.collect_usage_pieces(ctx))
        lines += [
            f".SS {_roff(path)}",
            f".B {_roff(path)}",
            _roff(usage),
            ".PP",
            _roff((cmd.help or "").strip()),
        ]
        lines += _options(cmd, ctx)
    lines.append(".SH HYPER-V CMDLETS")
    lines.append("Parameters are case-insensitive and may be shortened to a unique prefix, as in PowerShell.")
    for c in sorted(CMDLETS, key=lambda c: c.name):
        lines += [f".SS {c.name}", _roff(full_syntax(c).split(" ", 1)[1] if c.params or changes_state(c) else "(no parameters)"), ".PP",
                  _roff(c.summary)]  # fmt: skip
        if c.notes:
            lines += [".PP", _roff(c.notes)]
    lines += [
        ".SH FILES",
        "/run/pyvswitch/pyvswitchd.sock (the daemon's API socket), /var/lib/pyvswitch (its state and logs).",
        ".SH SEE ALSO",
        "pyvswitchd(8), systemctl(1)",
    ]
    return "\n".join(lines) + "\n"


def render_daemon() -> str:
    """``pyvswitchd(8)`` from what ``pyvswitchd --help`` prints (its argparse parser; run, not imported: the CLI
    layer does not import the daemon)."""
    import subprocess

    exe = Path(sys.executable).parent / "pyvswitchd"
    env = {**os.environ, "COLUMNS": "100"}  # argparse wraps to the terminal: the same page everywhere
    text = subprocess.run(
        [str(exe), "--help"], capture_output=True, text=True, check=True, timeout=60, env=env
    ).stdout
    usage, _, rest = text.partition("\n\n")
    description, _, options = rest.partition("\n\n")
    return "\n".join([
        f'.TH PYVSWITCHD 8 "{DATE}" "pyvswitch {pyvswitch.__version__}" "pyvswitch manual"',
        ".SH NAME",
        "pyvswitchd \\- the pyvswitch daemon: switches, ports, VMs and the REST API on a unix socket",
        ".SH SYNOPSIS", _roff(" ".join(usage.removeprefix("usage: ").split())),
        ".SH DESCRIPTION", _roff(description.strip()), ".PP",
        "The data path runs in a second process, the forwarder, which outlives a restart of pyvswitchd "
        "(SIGTERM, kill -9) for --restart-grace seconds; SIGINT stops both; SIGHUP reopens the log files.",
        ".SH OPTIONS", ".nf", _roff(options.removeprefix("options:\n").rstrip()), ".fi",
        ".SH FILES",
        "/var/lib/pyvswitch (state: config.db, log/*.jsonl), /run/pyvswitch/pyvswitchd.sock (the API socket).",
        ".SH SEE ALSO", "pyvswitch(1), systemd.service(5)",
    ]) + "\n"  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    target = Path(args[0] if args else ".")
    target.mkdir(parents=True, exist_ok=True)
    (target / PAGE).write_text(render())
    (target / DAEMON_PAGE).write_text(render_daemon())
    print(target / PAGE, target / DAEMON_PAGE)
    return 0


if __name__ == "__main__":
    sys.exit(main())
