"""The ``pyvswitch`` command: Linux-style verbs (click) and Hyper-V cmdlets, one socket, one set of exit codes.

Exit codes (docs/contracts.md): 0 ok, 1 the daemon rejected the request (each problem printed as
``error: <field>: <message>``), 2 usage, 3 the daemon is not reachable. ``demo`` and ``bench`` exit with
their own codes.

A first word shaped like Verb-Noun goes to the cmdlet front end, which binds arguments the PowerShell way;
click would reject ``-VMName`` as an unknown short option. The global options may come before it, as before
a verb: ``pyvswitch --socket S --json Get-VMSwitch``.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import click

import pyvswitch
from pyvswitch.cli.client import DEFAULT_SOCKET, ApiError, Client, DaemonUnreachable
from pyvswitch.cli.lazy import LazyGroup
from pyvswitch.cli.verbkit import State

if TYPE_CHECKING:
    import httpx

    from pyvswitch.cli.cmdlet.framework import Session

# Every subcommand, imported when used (cli/lazy.py): "module:attribute".
SUBCOMMANDS = {
    "switch": "pyvswitch.cli.verbs:switch_group",
    "vm": "pyvswitch.cli.verbs:vm_group",
    "port": "pyvswitch.cli.main:port_with_acls",
    "fdb": "pyvswitch.cli.verbs:fdb_group",
    "counters": "pyvswitch.cli.verbs:counters_cmd",
    "show": "pyvswitch.cli.verbs:show_cmd",
    "demo": "pyvswitch.cli.verbs:demo_cmd",
    "bench": "pyvswitch.cli.verbs:bench_cmd",
    "extension": "pyvswitch.cli.extensions:extension_group",
    "trace": "pyvswitch.cli.trace:trace_group",
    "team": "pyvswitch.cli.team:team_group",
    "capture": "pyvswitch.cli.capture:capture_group",
    "qos": "pyvswitch.cli.qos:qos_group",
    "lab": "pyvswitch.cli.lab:lab_group",
    "sriov": "pyvswitch.cli.sriov:sriov_group",  # SR-IOV
    "migrate": "pyvswitch.cli.migrate:migrate_command",  # live migration
    "vnet": "pyvswitch.cli.vnet:vnet_group",  # virtual subnets in a cluster (issue 13)
    "log": "pyvswitch.cli.logs:log_group",  # the daemon's logs (issue 14)
    "dashboard": "pyvswitch.cli.dashboard:dashboard_command",  # the web dashboard (issue 14)
    "status": "pyvswitch.cli.status:status_command",  # forwarding health
    "config": "pyvswitch.cli.config_cmd:config_group",  # the whole configuration as a file (issue 15)
    "history": "pyvswitch.cli.config_cmd:history_command",  # the audit trail of saves
    "completion": "pyvswitch.cli.completion:completion_command",  # shell completion scripts
}
# The cmdlet front end's test, without importing the cmdlet table (cli/cmdlets.py CMDLET_RE).
CMDLET_WORD = re.compile(r"^[A-Za-z]+-[A-Za-z][A-Za-z0-9]*$")


def port_with_acls() -> click.Command:
    """``port``, with its ``acl`` and ``xacl`` subgroups (cli/acls.py)."""
    from pyvswitch.cli.acls import acl_group, xacl_group
    from pyvswitch.cli.verbs import port_group

    for command in (acl_group, xacl_group):
        port_group.add_command(command)
    return port_group


def _cmdlet_completions(incomplete: str) -> list[Any]:
    from pyvswitch.cli.completion import cmdlet_names

    return cmdlet_names(incomplete)


def _cmdlet_completion_command(word: str) -> click.Command | None:
    if not CMDLET_WORD.match(word):
        return None
    from pyvswitch.cli.completion import cmdlet_command

    return cmdlet_command(word)


def _cmdlet_epilog() -> str:
    from pyvswitch.cli import cmdlets

    return cmdlets.epilog()


class HostLookupError(Exception):
    """``--host NAME`` names no lab host."""


CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 110}


@click.group(
    cls=LazyGroup,
    context_settings=CONTEXT,
    lazy=SUBCOMMANDS,
    epilog_of=_cmdlet_epilog,
    more_completions=_cmdlet_completions,
    completion_command=_cmdlet_completion_command,
)
@click.option(
    "--socket",
    "socket_path",
    envvar="PYVSWITCH_SOCKET",
    default=DEFAULT_SOCKET,
    show_default=True,
    metavar="PATH",
    help="pyvswitchd's API socket (env PYVSWITCH_SOCKET).",
)
@click.option(
    "--host",
    "lab_host",
    metavar="NAME",
    help="A lab host's daemon instead of --socket (`pyvswitch lab up`; NAME or LAB/NAME).",
)
@click.option("--json", "json_out", is_flag=True, help="Print the daemon's answers as JSON.")
@click.version_option(pyvswitch.__version__, "-V", "--version", prog_name="pyvswitch")
@click.pass_context
def cli(ctx: click.Context, socket_path: str, lab_host: str | None, json_out: bool) -> None:
    """Manage pyvswitchd: switches, VMs, ports, MAC tables and counters."""
    state = ctx.ensure_object(State)
    state.socket = _host_socket(lab_host) if lab_host else socket_path
    state.json = state.json or json_out


def _host_socket(name: str) -> str:
    """The API socket of lab host ``name`` (lab/hosts.py's registry)."""
    try:
        return _lab_socket(name)
    except HostLookupError as exc:
        raise click.BadParameter(str(exc), param_hint="'--host'") from exc


def _lab_socket(name: str) -> str:
    from pyvswitch.lab.hosts import LabError, lookup_host  # the lab's registry: only for --host

    try:
        return lookup_host(name).socket
    except LabError as exc:
        raise HostLookupError(str(exc)) from exc


def _leading_globals(argv: Sequence[str]) -> tuple[str | None, bool, int]:
    """``--socket PATH`` / ``--socket=PATH`` / ``--host NAME`` / ``--json`` before the first other word, and
    where it is."""
    socket_path: str | None = None
    json_out = False
    i = 0
    while i < len(argv):
        word = argv[i]
        if word == "--json":
            json_out = True
            i += 1
        elif word == "--host" and i + 1 < len(argv):
            socket_path = _lab_socket(argv[i + 1])  # HostLookupError: main() says so, exit 2
            i += 2
        elif word == "--socket" and i + 1 < len(argv):
            socket_path = argv[i + 1]
            i += 2
        elif word.startswith("--socket="):
            socket_path = word.split("=", 1)[1]
            i += 1
        else:
            break
    return socket_path, json_out, i


def _guarded(run: Callable[[], int], json_out: Callable[[], bool], cmdlet: bool = False) -> int:
    """Run a command; map the failures every command can have onto the contract's exit codes, and say what
    failed on stderr: as text, or with --json as {"errors": [{"field", "message"}], "exit_code"}."""

    def fail(code: int, errors: list[tuple[str, str]], text: list[str] | None = None) -> int:
        """``text``: the lines people see (default: each message as it is)."""
        if json_out():
            body = {"errors": [{"field": f, "message": m} for f, m in errors], "exit_code": code}
            click.echo(json.dumps(body), err=True)
        else:
            for line in text if text is not None else [m for _, m in errors]:
                click.echo(line, err=True)
        return code

    try:
        return run()
    except DaemonUnreachable as exc:
        return fail(3, [("", str(exc))])
    except ApiError as exc:
        return fail(1, exc.errors, [f"error: {f}: {m}" if f else f"error: {m}" for f, m in exc.errors])
    except click.ClickException as exc:  # usage errors and the like, from click's own parsing
        if not json_out():
            exc.show()
            return exc.exit_code
        return fail(exc.exit_code, [("", exc.format_message())])
    except click.exceptions.Abort:
        return fail(1, [("", "Aborted!")])
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        if cmdlet:  # the cmdlet front end's own refusals (imported only for a cmdlet line)
            from pyvswitch.cli.cmdlet.framework import CmdletError, CmdletUsageError

            if isinstance(exc, CmdletUsageError):
                return fail(2, [("", str(exc))])
            if isinstance(exc, CmdletError):
                return fail(1, [("", str(exc))])
        raise


def _run_click(argv: list[str], state: State) -> int:
    rv = cli.main(args=argv, prog_name="pyvswitch", standalone_mode=False, obj=state)
    return rv if isinstance(rv, int) else 0


def _cmdlet_words(rest: list[str]) -> list[str] | None:
    """The cmdlet and its arguments, if ``rest`` is a cmdlet call (also a whole PowerShell line in one word)."""
    if not rest:
        return None
    if CMDLET_WORD.match(rest[0]):
        return rest
    first = rest[0].split(maxsplit=1)
    if len(rest) == 1 and len(first) == 2 and CMDLET_WORD.match(first[0]):
        try:
            return shlex.split(rest[0])
        except ValueError:
            return None
    return None


def main(argv: Sequence[str] | None = None, *, transport: httpx.BaseTransport | None = None) -> int:
    """Entry point; returns the exit code. ``transport`` replaces the unix socket (tests)."""
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        socket_path, json_out, i = _leading_globals(args)
    except HostLookupError as exc:
        if "--json" in args:
            click.echo(
                json.dumps({"errors": [{"field": "--host", "message": str(exc)}], "exit_code": 2}), err=True
            )
        else:
            click.echo(f"error: --host: {exc}", err=True)
        return 2
    words = _cmdlet_words(args[i:])
    if words is not None:
        from pyvswitch.cli import cmdlets
        from pyvswitch.cli.cmdlet.framework import Session

        path = socket_path or os.environ.get("PYVSWITCH_SOCKET") or DEFAULT_SOCKET

        def session() -> Session:
            return Session(Client(path, transport=transport), json=json_out)

        line_json = json_out or "--json" in words
        return _guarded(lambda: cmdlets.run(words[0], words[1:], session), lambda: line_json, cmdlet=True)
    state = State(transport=transport)
    return _guarded(lambda: _run_click(args, state), lambda: state.json or json_out)


if __name__ == "__main__":
    sys.exit(main())
