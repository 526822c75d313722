"""The cmdlet framework's core: parameters, the PowerShell-style binder, the bound arguments and the session.

Arguments are parsed the way PowerShell binds them, not by click: parameter names are case-insensitive and
may be abbreviated to any unambiguous prefix, ``-Name value`` and ``-Name:value`` both work, switch
parameters take no value (``-Access``, or ``-Access:$false``), a value split at a comma by the shell
(``-AllowedVlanIdList 1-100, 200``) is joined again, and the first parameters bind by position where the
real cmdlet allows it (``Get-VMSwitch ext``). Mistakes are reported in PowerShell's own words with exit 2.

This is the bottom floor of the cmdlet front end: every family (``cli.vmswitch``, ``cli.lbfo``, ...) imports
it, and it imports no family, so a family can be read, tested and imported on its own.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import Enum

from pyvswitch.cli.client import Client
from pyvswitch.cli.units import parse_bandwidth

PARAM_SET_ERROR = "Parameter set cannot be resolved using the specified named parameters."
_PARAM_RE = re.compile(r"^-([A-Za-z][A-Za-z0-9_]*)(?::(.*))?$", re.DOTALL)


class CmdletUsageError(Exception):
    """The command line cannot be bound (PowerShell's ParameterBindingException): exit 2."""

    def __init__(self, cmdlet: str, message: str) -> None:
        self.cmdlet = cmdlet
        super().__init__(f"{cmdlet}: {message}" if cmdlet else message)


class CmdletError(Exception):
    """The command was understood but names nothing that exists: exit 1, like a rejected request."""

    def __init__(self, cmdlet: str, message: str) -> None:
        super().__init__(f"{cmdlet}: {message}")


class PType(Enum):
    """Parameter types, valued with the .NET type names PowerShell's messages use."""

    STRING = "System.String"
    INT = "System.Int32"
    UINT32 = "System.UInt32"
    BOOL = "System.Boolean"
    # Bandwidths in bit/s (Hyper-V's Int64/UInt64 parameters); k/M/G/T suffixes accepted (cli.units).
    INT64 = "System.Int64"
    UINT64 = "System.UInt64"
    SWITCH = "System.Management.Automation.SwitchParameter"


@dataclass(frozen=True)
class Param:
    name: str
    type: PType = PType.STRING
    position: int | None = None
    mandatory: bool = False
    choices: tuple[str, ...] = ()
    aliases: tuple[str, ...] = ()
    range: tuple[int, int] | None = None

    def syntax(self) -> str:
        if self.type is PType.SWITCH:
            return f"[-{self.name}]"
        kind = "<" + ("Boolean" if self.type is PType.BOOL else self.type.value.rsplit(".", 1)[-1]) + ">"
        if self.choices:
            kind = "{" + " | ".join(self.choices) + "}"
        name = f"[-{self.name}]" if self.position is not None else f"-{self.name}"
        text = f"{name} {kind}"
        return text if self.mandatory else f"[{text}]"


@dataclass
class Session:
    """A cmdlet's connection and output mode."""

    client: Client
    json: bool = False
    format_list: bool = False  # the line ended in "| fl" (Format-List)
    format_table: bool = False  # "| ft" (Format-Table): a table even for objects Windows lists
    # "| Select-Object A,B" or "| ft A,B" / "| fl A,B": these properties only, in this order (None: all).
    select: list[str] | None = None


@dataclass(frozen=True)
class Cmdlet:
    name: str
    params: tuple[Param, ...]
    run: Callable[[Args, Session], None]
    summary: str = ""
    notes: str = ""

    def syntax(self) -> str:
        return " ".join([self.name, *(p.syntax() for p in self.params)])

    def lookup(self, typed: str) -> Param:
        """The parameter ``-typed`` names: exact name or alias, else the one it is a prefix of."""
        low = typed.lower()
        for p in self.params:
            if low == p.name.lower() or low in (a.lower() for a in p.aliases):
                return p
        found: dict[str, Param] = {}
        for p in self.params:
            if any(n.lower().startswith(low) for n in (p.name, *p.aliases)):
                found[p.name] = p
        if len(found) == 1:
            return next(iter(found.values()))
        if not found:
            raise CmdletUsageError(
                self.name, f"A parameter cannot be found that matches parameter name '{typed}'."
            )
        raise CmdletUsageError(
            self.name,
            f"Parameter cannot be processed because the parameter name '{typed}' is ambiguous. "
            f"Possible matches include: {' '.join('-' + n for n in found)}.",
        )


@dataclass
class Args:
    """Bound parameter values by canonical name, with typed accessors."""

    cmdlet: str
    values: dict[str, object] = field(default_factory=dict)

    def has(self, name: str) -> bool:
        return name in self.values

    def text(self, name: str) -> str | None:
        v = self.values.get(name)
        return v if isinstance(v, str) else None

    def number(self, name: str) -> int | None:
        v = self.values.get(name)
        return v if isinstance(v, int) and not isinstance(v, bool) else None

    def boolean(self, name: str) -> bool | None:
        v = self.values.get(name)
        return v if isinstance(v, bool) else None

    def flag(self, name: str) -> bool:
        return self.values.get(name) is True

    def need(self, *names: str) -> None:
        """PowerShell's message for mandatory parameters of the parameter set in use."""
        missing = [n for n in names if n not in self.values]
        if missing:
            raise CmdletUsageError(
                self.cmdlet,
                "Cannot process command because of one or more missing mandatory parameters: "
                + " ".join(missing)
                + ".",
            )


# ---------------------------------------------------------------- argument binding


def _unquote(text: str) -> str:
    # The shell normally removes quotes; these survive only when a whole PowerShell line was quoted for it.
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        return text[1:-1]
    return text


def _gather(first: str, argv: Sequence[str], i: int) -> tuple[str, int]:
    """One value starting at ``first``: PowerShell reads ``1-100, 200`` as one list, the shell gives two words."""
    value = first
    while i < len(argv):
        nxt = argv[i]
        if (value.endswith(",") and not _PARAM_RE.match(nxt)) or nxt.startswith(","):
            value += nxt
        else:
            break
        i += 1
    return _unquote(value), i


def _to_bool(cmd: Cmdlet, p: Param, raw: str) -> bool:
    low = raw.strip().lower()
    if low in ("$true", "true", "1"):
        return True
    if low in ("$false", "false", "0"):
        return False
    raise CmdletUsageError(
        cmd.name,
        f"Cannot process argument transformation on parameter '{p.name}'. Cannot convert value \"{raw}\" "
        f'to type "{PType.BOOL.value}". Boolean parameters accept only Boolean values and numbers, such as '
        "$True, $False, 1 or 0.",
    )


def _convert(cmd: Cmdlet, p: Param, raw: str) -> object:
    if p.type is PType.BOOL or p.type is PType.SWITCH:
        return _to_bool(cmd, p, raw)
    if raw == "":
        raise CmdletUsageError(
            cmd.name,
            f"Cannot validate argument on parameter '{p.name}'. The argument is null or empty. Provide an "
            "argument that is not null or empty, and then try the command again.",
        )
    if p.type is PType.INT64 or p.type is PType.UINT64:
        try:
            return parse_bandwidth(raw)
        except ValueError as exc:
            raise CmdletUsageError(
                cmd.name,
                f"Cannot process argument transformation on parameter '{p.name}'. Cannot convert value "
                f'"{raw}" to type "{p.type.value}": {exc}.',
            ) from None
    if p.type is PType.INT or p.type is PType.UINT32:
        try:
            n = int(raw)
        except ValueError:
            raise CmdletUsageError(
                cmd.name,
                f"Cannot process argument transformation on parameter '{p.name}'. Cannot convert value "
                f'"{raw}" to type "{p.type.value}". Error: "Input string was not in a correct format."',
            ) from None
        if p.range is not None:
            lo, hi = p.range
            if n < lo:
                raise CmdletUsageError(
                    cmd.name,
                    f"Cannot validate argument on parameter '{p.name}'. The {n} argument is less than the "
                    f"minimum allowed range of {lo}. Supply an argument that is greater than or equal to "
                    f"{lo} and then try the command again.",
                )
            if n > hi:
                raise CmdletUsageError(
                    cmd.name,
                    f"Cannot validate argument on parameter '{p.name}'. The {n} argument is greater than "
                    f"the maximum allowed range of {hi}. Supply an argument that is less than or equal to "
                    f"{hi} and then try the command again.",
                )
        return n
    if p.choices:
        for c in p.choices:
            if c.lower() == raw.lower():
                return c
        raise CmdletUsageError(
            cmd.name,
            f"Cannot bind parameter '{p.name}'. Cannot convert value \"{raw}\": specify one of the "
            f"following enumerator names and try again: {', '.join(p.choices)}.",
        )
    return raw


def bind(cmd: Cmdlet, argv: Sequence[str]) -> Args:
    """Bind ``argv`` (the words after the cmdlet name) to ``cmd``'s parameters, as PowerShell would."""
    values: dict[str, object] = {}
    positionals: list[str] = []
    i = 0
    while i < len(argv):
        tok = argv[i]
        i += 1
        m = _PARAM_RE.match(tok)
        if m is None:
            value, i = _gather(tok, argv, i)
            positionals.append(value)
            continue
        p = cmd.lookup(m.group(1))
        if p.name in values:
            raise CmdletUsageError(
                cmd.name, f"Cannot bind parameter because parameter '{p.name}' is specified more than once."
            )
        inline = m.group(2)
        if p.type is PType.SWITCH:
            values[p.name] = True if inline is None else _to_bool(cmd, p, inline)
            continue
        if inline is not None:
            raw = _unquote(inline)
        elif i < len(argv) and not _PARAM_RE.match(argv[i]):
            raw, i = _gather(argv[i], argv, i + 1)
        else:
            hint = ""
            if p.type is PType.BOOL:
                # bash expands an unquoted $false to nothing, so the value silently disappears.
                hint = f" (in a POSIX shell write '$false' in quotes, or -{p.name}:false)"
            raise CmdletUsageError(
                cmd.name,
                f"Missing an argument for parameter '{p.name}'. Specify a parameter of type "
                f"'{p.type.value}' and try again.{hint}",
            )
        values[p.name] = _convert(cmd, p, raw)
    slots = sorted(
        (p for p in cmd.params if p.position is not None and p.name not in values),
        key=lambda p: p.position or 0,
    )
    for raw in positionals:
        if not slots:
            raise CmdletUsageError(
                cmd.name, f"A positional parameter cannot be found that accepts argument '{raw}'."
            )
        p = slots.pop(0)
        values[p.name] = _convert(cmd, p, raw)
    args = Args(cmd.name, values)
    args.need(*(p.name for p in cmd.params if p.mandatory))
    return args


# ---------------------------------------------------------------- helpers every family uses


def like(value: str, pattern: str) -> bool:
    """PowerShell's -like: case-insensitive, with * ? [] wildcards."""
    return fnmatch.fnmatchcase(value.lower(), pattern.lower())


def has_wildcard(pattern: str) -> bool:
    return any(c in pattern for c in "*?[")


def one_of(a: Args, *names: str) -> str | None:
    """Which of the mutually exclusive ``names`` was given (None if none); two is a parameter set error."""
    given = [n for n in names if a.has(n) and a.values[n] is not False]
    if len(given) > 1:
        raise CmdletUsageError(a.cmdlet, PARAM_SET_ERROR)
    return given[0] if given else None


def list_values(a: Args, name: str) -> list[str]:
    """A String[] parameter: ``10.0.0.1,10.0.0.2`` (the shell's words were joined by bind) -> its items."""
    items = [v.strip() for v in str(a.text(name) or "").split(",") if v.strip()]
    if not items:
        raise CmdletUsageError(
            a.cmdlet, f"Cannot validate argument on parameter '{name}'. The argument is null or empty."
        )
    return items


# Hyper-V's Remove-* cmdlets ask for confirmation unless -Force; a CLI run from scripts never prompts, so both
# are accepted and change nothing.
FORCE_PARAMS = (Param("Force", PType.SWITCH), Param("Confirm", PType.SWITCH))
