"""Shell completion of object names (switches, VMs, ports) from the daemon (cli/completion.py has the rest):
apart, so that the verbs can name it without importing the cmdlet table."""

from __future__ import annotations

import os
from collections.abc import Callable

import click
from click.shell_completion import CompletionItem

from pyvswitch.cli.client import DEFAULT_SOCKET, ApiError, Client, DaemonUnreachable, JsonObj


def object_names(list_path: str) -> Callable[[click.Context, click.Parameter, str], list[CompletionItem]]:
    """An argument's completion: the names of the objects ``GET /v1{list_path}`` returns."""

    def complete(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[CompletionItem]:
        # The root's parsed --socket (or its env var): completion runs no group callback, so State has not got it.
        socket = (
            ctx.find_root().params.get("socket_path") or os.environ.get("PYVSWITCH_SOCKET") or DEFAULT_SOCKET
        )
        try:
            with Client(str(socket), timeout_s=2.0) as c:
                rows: list[JsonObj] = list(c.request("GET", list_path))
        except (ApiError, DaemonUnreachable):
            return []
        return [CompletionItem(str(r["name"])) for r in rows if str(r.get("name", "")).startswith(incomplete)]

    return complete
