"""Subcommands imported when they are used (click's "lazily loading subcommands" pattern).

``pyvswitch switch list`` should not pay for the lab's pyroute2, the cmdlet table, pydantic's schema or the QEMU
driver: importing every verb module took ~0.5 s of each call (issue 15 asks for < 150 ms). The top-level group
names each subcommand and where it lives ("module:attribute"); the module is imported the first time the
subcommand is looked up. ``--help``, the man pages and shell completion list every name and so import them all.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Mapping
from importlib import import_module
from typing import Any

import click


class LazyGroup(click.Group):
    """A group whose ``lazy`` subcommands are "module:attribute" (a command, or a function returning one), and
    whose epilog may be computed when help is shown (``epilog_of``)."""

    def __init__(
        self,
        *args: Any,
        lazy: Mapping[str, str] | None = None,
        epilog_of: Callable[[], str] | None = None,
        more_completions: Callable[[str], list[Any]] | None = None,
        completion_command: Callable[[str], click.Command | None] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.lazy = dict(lazy or {})
        self.epilog_of = epilog_of
        self.more_completions = more_completions
        # While completing (resilient parsing): a command for a word that is no subcommand (a cmdlet's params).
        self.completion_command = completion_command

    def shell_complete(self, ctx: click.Context, incomplete: str) -> list[Any]:
        """The subcommands (click), and what ``more_completions`` adds (the cmdlets, at the top level)."""
        items = super().shell_complete(ctx, incomplete)
        return items + (self.more_completions(incomplete) if self.more_completions else [])

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*self.commands, *self.lazy})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in self.lazy:
            self.add_command(load(self.lazy[cmd_name]), cmd_name)
        return super().get_command(ctx, cmd_name)

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        """click's, with "did you mean" drawn from the lazy names too (click's own sees only loaded ones)."""
        name = click.utils.make_str(args[0])
        if (
            ctx.resilient_parsing
            and self.completion_command is not None
            and self.get_command(ctx, name) is None
        ):
            cmd = self.completion_command(name)
            if cmd is not None:
                return name, cmd, args[1:]
        if self.get_command(ctx, name) is None and not ctx.resilient_parsing and not name.startswith("-"):
            close = difflib.get_close_matches(name, self.list_commands(ctx), n=3)
            hint = f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
            ctx.fail(f"No such command {name!r}.{hint}")
        return super().resolve_command(ctx, args)

    def format_epilog(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        if self.epilog_of is not None and not self.epilog:
            self.epilog = self.epilog_of()
        super().format_epilog(ctx, formatter)


def load(spec: str) -> click.Command:
    module, _, attr = spec.partition(":")
    obj = getattr(import_module(module), attr)
    cmd = obj if isinstance(obj, click.Command) else obj()
    if not isinstance(cmd, click.Command):
        raise TypeError(f"{spec} is not a click command")
    return cmd
