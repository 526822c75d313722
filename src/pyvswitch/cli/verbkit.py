"""The floor of the Linux-style verbs: the global options' state, ``--json`` after a verb, bandwidth options,
and the factory of the create/list/show/delete groups (``switch``, ``vm``, ``port``).

Every verb module (``cli.verbs``, ``cli.acls``, ``cli.qos``, ``cli.sriov``, ...) imports this one and none
imports another verb module for these names, so the verbs form no import cycle; ``cli.main`` adds the groups
to the ``pyvswitch`` command.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

import click

from pyvswitch.cli.client import DEFAULT_SOCKET, ApiError, Client
from pyvswitch.cli.format import echo_json
from pyvswitch.cli.units import parse_bandwidth

if TYPE_CHECKING:
    import httpx

F = TypeVar("F", bound=Callable[..., Any])


@dataclass
class State:
    """What the global options decided, shared by every command through click's context object."""

    socket: str = DEFAULT_SOCKET
    json: bool = False
    # Tests put an httpx.MockTransport here to talk to an in-process app instead of a socket.
    transport: httpx.BaseTransport | None = None

    def client(self, timeout_s: float | None = None) -> Client:
        if timeout_s is None:
            return Client(self.socket, transport=self.transport)
        return Client(self.socket, transport=self.transport, timeout_s=timeout_s)


pass_state = click.make_pass_decorator(State, ensure=True)


def _set_json(ctx: click.Context, param: click.Parameter, value: bool) -> None:
    if value:
        ctx.ensure_object(State).json = True


def json_flag(f: F) -> F:
    """``--json`` after the verb too (``pyvswitch vm show web01 --json``), same as the global option."""
    return click.option(
        "--json",
        "json_flag",
        is_flag=True,
        expose_value=False,
        callback=_set_json,
        help="Print the daemon's answer as JSON.",
    )(f)


def bandwidth_callback(ctx: click.Context, param: click.Parameter, value: str | None) -> int | None:
    """click option callback for bit/s: a number, or with a decimal k/M/G/T suffix (100M, 1G), as
    ``cli.units.parse_bandwidth`` (a callback, not a ParamType: see ``vlanspec.vlan_option_callback``)."""
    if value is None:
        return None
    try:
        return parse_bandwidth(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc), ctx=ctx, param=param) from None


BW_HELP = "bit/s; k, M, G, T suffixes accepted (100M, 1G)"


def emit(state: State, data: Any, human: Callable[[Any], str]) -> None:
    """The daemon's answer unchanged with ``--json`` (scripts see the API's schema), else ``human(data)``."""
    if state.json:
        echo_json(data)
    else:
        click.echo(human(data))


def removed(state: State, noun: str, name: str, existed: bool = True) -> None:
    """What a ``del`` says: ``removed NOUN NAME``, or with ``--json`` ``{"removed": NOUN, "name": NAME}`` (a script
    gets an object on every command, not silence); ``existed`` False: ``--if-exists`` found nothing to remove."""
    if state.json:
        echo_json({"removed": noun, "name": name, **({} if existed else {"existed": False})})
    else:
        click.echo(f"removed {noun} {name}" if existed else f"no {noun} {name}: nothing to remove")


def may_exist_flag(f: F) -> F:
    """``--may-exist`` on an ``add`` (as ovs-vsctl has it): NAME existing already is success, changing nothing."""
    return click.option(
        "--may-exist", is_flag=True, help="Succeed, changing nothing, when NAME exists already."
    )(f)


def if_exists_flag(f: F) -> F:
    """``--if-exists`` on a ``del``: NAME missing is success."""
    return click.option("--if-exists", is_flag=True, help="Succeed when NAME does not exist.")(f)


def created(create: Callable[[], Any], existing: Callable[[], Any], may_exist: bool) -> Any:
    """``create()``; with ``may_exist``, a conflict where the object exists gives ``existing()`` instead."""
    try:
        return create()
    except ApiError as exc:
        if may_exist and exc.status == 409:
            try:
                return existing()
            except ApiError:
                pass
        raise


def deleted(delete: Callable[[], Any], if_exists: bool) -> bool:
    """``delete()``; False when ``if_exists`` and there was nothing to delete."""
    try:
        delete()
    except ApiError as exc:
        if if_exists and exc.status == 404:
            return False
        raise
    return True


def run_in_netns(state: State, netns: str, argv: list[str]) -> int:
    """Run ``argv`` in ``netns``: exec'd (its exit status and signals are the CLI's own), or with ``--json``
    as a child whose output comes back as ``{"returncode", "stdout", "stderr"}``."""
    import os
    import subprocess

    if state.json:
        res = subprocess.run(["ip", "netns", "exec", netns, *argv], capture_output=True, text=True)
        echo_json({"returncode": res.returncode, "stdout": res.stdout, "stderr": res.stderr})
        return res.returncode
    try:
        os.execvp("ip", ["ip", "netns", "exec", netns, *argv])
    except OSError as exc:
        raise click.ClickException(f"cannot run ip netns exec: {exc}") from exc
    return 0  # not reached: execvp replaced the process


def names_completion(list_path: str) -> Callable[[click.Context, click.Parameter, str], list[Any]]:
    """Shell completion of an object name from ``GET /v1{list_path}`` (cli/completion.py, imported when a shell
    asks)."""

    def complete(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[Any]:
        from pyvswitch.cli.name_completion import object_names

        return object_names(list_path)(ctx, param, incomplete)

    return complete


def crud_group(
    name: str,
    doc: str,
    *,
    noun: str,
    read_all: Callable[..., Any],
    read: Callable[[Client, str], Any],
    delete: Callable[[Client, str], None],
    table: Callable[[Any], str],
    detail: Callable[[Any], str],
    helps: tuple[str, str, str],
    list_filters: Sequence[Callable[[Any], Any]] = (),
    names_path: str | None = None,
) -> click.Group:
    """Group ``name`` with ``list``, ``show NAME`` and ``del NAME``; the caller adds ``add`` and the rest.

    ``read_all(client, **filters)`` lists (the ``list_filters`` options are its keyword arguments), ``read``
    fetches one, ``delete`` removes one (``removed <noun> NAME`` unless ``--json``); ``table`` and ``detail``
    render them for people. ``helps`` are the list, show and del commands' help lines. ``names_path``: the API
    list whose names complete NAME in a shell. One factory, so the three groups cannot drift apart in options,
    ``--json`` handling or messages.
    """
    group = click.Group(name, help=doc)
    list_help, show_help, del_help = helps

    def list_(state: State, /, **filters: Any) -> None:
        with state.client() as c:
            emit(state, read_all(c, **filters), table)

    # Applied as decorators would be, bottom up, so the options show in --help in the order given.
    cmd: Callable[..., Any] = json_flag(pass_state(list_))
    for option in reversed(list_filters):
        cmd = option(cmd)
    group.command("list", help=list_help)(cmd)

    complete = names_completion(names_path) if names_path else None

    @group.command("show", help=show_help)
    @click.argument("name", shell_complete=complete)
    @json_flag
    @pass_state
    def show(state: State, name: str) -> None:
        with state.client() as c:
            emit(state, read(c, name), detail)

    @group.command("del", help=del_help)
    @click.argument("name", shell_complete=complete)
    @if_exists_flag
    @json_flag
    @pass_state
    def delete_(state: State, name: str, if_exists: bool) -> None:
        with state.client() as c:
            existed = deleted(lambda: delete(c, name), if_exists)
        removed(state, noun, name, existed)

    return group
