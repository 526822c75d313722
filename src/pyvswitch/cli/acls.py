"""Port ACLs and extended ACLs: ``pyvswitch port acl ...`` / ``port xacl ...`` and the list edits the cmdlets share.

The daemon keeps a port's lists whole (``PATCH /v1/ports/{name}`` with ``"acls"`` / ``"extended_acls"``), so
every change reads the port, edits its list and sends the whole list back. The daemon validates the entries;
a rejected one is reported with its path in the list (``error: extended_acls[2].local_port: ...``, exit 1).

What a removal matches:

* ACL entries: every criterion given (action, direction, address) must be equal, the address compared in
  the form the daemon stores (``10.0.0.1`` matches the stored ``10.0.0.1/32``, ``00-15-5D-00-00-01`` the
  stored ``00:15:5d:00:00:01``). Hyper-V keeps a ``Both`` entry as one entry per direction, so removing one
  direction of a ``Both`` entry keeps the other; removing ``Both`` removes entries of either direction.
* Extended ACL entries: the weight, and the direction if given. A weight is unique per direction on a port
  (adding a second entry with the same weight and direction is refused): that keeps removal unambiguous
  and the evaluation order (highest weight first) well defined.

Removing nothing, or adding a weight already in use, is refused before the daemon is asked: exit 1 with
``error: <field>: <message>``, like the daemon's own rejections.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar
from urllib.parse import quote

import click

from pyvswitch.cli.client import JsonObj
from pyvswitch.cli.format import echo_json, table
from pyvswitch.cli.verbkit import State, json_flag, pass_state

F = TypeVar("F", bound=Callable[..., Any])

ADDRESS_FIELDS = ("local_ip", "remote_ip", "local_mac", "remote_mac")
# IP protocol numbers the daemon stores, shown by the names Hyper-V's -Protocol takes.
PROTOCOL_NAMES = {"1": "ICMP", "6": "TCP", "17": "UDP", "58": "ICMPv6"}
OTHER_DIRECTION = {"Inbound": "Outbound", "Outbound": "Inbound"}


class AclInputError(ValueError):
    """An entry the daemon would reject: ``problems`` are (field, message), the field as in the entry."""

    def __init__(self, problems: list[tuple[str, str]]) -> None:
        self.problems = problems
        super().__init__("; ".join(f"{f}: {m}" if f else m for f, m in problems))


class Rejected(click.ClickException):
    """A change refused before asking the daemon; printed like the daemon's errors, exit 1."""

    exit_code = 1

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")

    def show(self, file: Any = None) -> None:
        click.echo(f"error: {self.format_message()}", err=True)


# ---------------------------------------------------------------- entries and list edits


def _checked(model: str, entry: Mapping[str, Any]) -> JsonObj:
    """Validated by the schema's own model (``AclEntry``, ``ExtendedAclEntry``), imported only now: pydantic and
    the schema are most of a CLI call's start-up, and only commands that write an entry need them."""
    from pydantic import ValidationError

    from pyvswitch.config import schema

    try:
        return getattr(schema, model).model_validate(dict(entry)).model_dump(mode="json")  # type: ignore[no-any-return]
    except ValidationError as exc:
        # loc is the field (empty for a rule across fields); pydantic prefixes "Value error, " to ours.
        problems = [
            (".".join(str(p) for p in e["loc"]), str(e["msg"]).removeprefix("Value error, "))
            for e in exc.errors()
        ]
        raise AclInputError(problems) from None


def check_acl(entry: Mapping[str, Any]) -> JsonObj:
    """``entry`` as the daemon will store it (AclEntry); AclInputError naming the fields otherwise."""
    return _checked("AclEntry", entry)


def check_xacl(entry: Mapping[str, Any]) -> JsonObj:
    """``entry`` as the daemon will store it (ExtendedAclEntry); AclInputError naming the fields otherwise."""
    return _checked("ExtendedAclEntry", entry)


def normal_address(field: str, value: str) -> str:
    """``value`` in the form the daemon stores in ACL field ``field``; AclInputError if it is not valid."""
    return str(check_acl({"action": "Allow", "direction": "Both", field: value})[field])


def remove_acl(
    entries: Sequence[Mapping[str, Any]],
    *,
    action: str | None = None,
    direction: str | None = None,
    address: tuple[str, str] | None = None,
) -> tuple[list[JsonObj], int]:
    """(the entries left, how many matched). Criteria that are None match anything; ``address`` is
    ``(field, value in stored form)``. Removing one direction of a Both entry leaves the other direction."""
    kept: list[JsonObj] = []
    matched = 0
    for entry in entries:
        e = dict(entry)
        if (action is not None and e.get("action") != action) or (
            address is not None and e.get(address[0]) != address[1]
        ):
            kept.append(e)
            continue
        have = e.get("direction")
        if direction is None or direction == "Both" or direction == have:
            matched += 1
        elif have == "Both":
            matched += 1
            kept.append({**e, "direction": OTHER_DIRECTION[direction]})
        else:
            kept.append(e)
    return kept, matched


def remove_xacl(
    entries: Sequence[Mapping[str, Any]], weight: int, direction: str | None = None
) -> tuple[list[JsonObj], int]:
    """(the entries left, how many were removed): those with ``weight`` (and ``direction`` if given)."""
    kept = [
        dict(e)
        for e in entries
        if not (e.get("weight") == weight and (direction is None or e.get("direction") == direction))
    ]
    return kept, len(entries) - len(kept)


def weight_in_use(entries: Sequence[Mapping[str, Any]], weight: object, direction: object) -> bool:
    return any(e.get("weight") == weight and e.get("direction") == direction for e in entries)


def evaluation_order(entries: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """Extended ACL entries as the firewall evaluates them: per direction, highest weight first."""
    return sorted(entries, key=lambda e: (str(e.get("direction")), -int(e.get("weight") or 0)))


def acl_address(entry: Mapping[str, Any], side: str) -> str | None:
    """The entry's ``side`` ('local' or 'remote') address, IP or MAC, or None."""
    value = entry.get(f"{side}_ip") or entry.get(f"{side}_mac")
    return None if value is None else str(value)


def protocol_text(protocol: object) -> str:
    if protocol is None:
        return "ANY"
    return PROTOCOL_NAMES.get(str(protocol), str(protocol))


# ---------------------------------------------------------------- human views


def acl_table(port: str, entries: Sequence[Mapping[str, Any]]) -> str:
    if not entries:
        return f"port {port} has no ACL entries (everything is allowed)"
    return table(
        ["#", "direction", "action", "local", "remote"],
        [
            [
                i,
                e.get("direction"),
                e.get("action"),
                acl_address(e, "local") or "-",
                acl_address(e, "remote") or "-",
            ]
            for i, e in enumerate(entries)
        ],
    )


def xacl_table(port: str, entries: Sequence[Mapping[str, Any]]) -> str:
    if not entries:
        return f"port {port} has no extended ACL entries"

    def any_(v: object) -> object:
        return "any" if v is None else v

    return table(
        [
            "weight",
            "direction",
            "action",
            "local-ip",
            "remote-ip",
            "local-port",
            "remote-port",
            "protocol",
            "stateful",
            "idle-timeout",
            "isolation-id",
            "hits",
        ],
        [
            [
                e.get("weight"),
                e.get("direction"),
                e.get("action"),
                any_(e.get("local_ip")),
                any_(e.get("remote_ip")),
                any_(e.get("local_port")),
                any_(e.get("remote_port")),
                any_(e.get("protocol") and protocol_text(e.get("protocol"))),
                e.get("stateful"),
                e.get("idle_session_timeout_s"),
                e.get("isolation_id") or "-",
                e.get("hits", "-"),
            ]
            for e in evaluation_order(entries)
        ],
    )


def acl_hits(client: Any, port: str) -> dict[tuple[object, object], int]:
    """(direction, weight) -> packets the port's extended ACL entry decided (the firewall's counters)."""
    out = client.request("GET", f"/ports/{quote(port, safe='')}/acl-hits")
    return {(h["direction"], h["weight"]): int(h["hits"]) for h in out.get("extended", [])}


def _with_hits(client: Any, port: Mapping[str, Any]) -> dict[str, Any]:
    """The port with each extended ACL entry's ``hits`` (what the firewall counted for it)."""
    entries = list(port.get("extended_acls") or [])
    hits = acl_hits(client, str(port.get("name"))) if entries else {}
    with_hits = [{**e, "hits": hits.get((e.get("direction"), e.get("weight")), 0)} for e in entries]
    return {**port, "extended_acls": with_hits}


def _show(state: State, port: Mapping[str, Any], key: str, human: Callable[[str, list[Any]], str]) -> None:
    entries = list(port.get(key) or [])
    if state.json:
        echo_json(entries)
    else:
        click.echo(human(str(port.get("name")), entries))


# ---------------------------------------------------------------- port acl


def _choice(*values: str) -> click.Choice[str]:
    return click.Choice(values, case_sensitive=False)


def _address_options(f: F) -> F:
    for field in reversed(ADDRESS_FIELDS):
        side, kind = field.split("_")
        whose = "the VM's own" if side == "local" else "the peer's"
        what = "IP address or prefix (10.0.0.0/8, f001::/64, ANY)" if kind == "ip" else "MAC address (or ANY)"
        f = click.option(
            f"--{side}-{kind}",
            field,
            metavar="MAC" if kind == "mac" else "ADDR",
            help=f"{side.capitalize()} ({whose}) {what}.",
        )(f)
    return f


def _addresses(**given: str | None) -> list[tuple[str, str]]:
    return [(k, v) for k, v in given.items() if v is not None]


ADDRESS_OPTIONS = "--local-ip, --remote-ip, --local-mac, --remote-mac"


@click.group("acl")
def acl_group() -> None:
    """Port ACLs (Add/Get/Remove-VMNetworkAdapterAcl): allow, deny or meter traffic by one address.

    Local and remote are the VM's: inbound, local is the destination; outbound, the source. Among IP
    entries of a direction the longest prefix decides; a port without entries allows everything.
    """


@acl_group.command("add")
@click.argument("port")
@click.option("--action", type=_choice("allow", "deny", "meter"), required=True, help="Meter: IP only.")
@click.option("--direction", type=_choice("inbound", "outbound", "both"), required=True)
@_address_options
@json_flag
@pass_state
def acl_add(
    state: State,
    port: str,
    action: str,
    direction: str,
    local_ip: str | None,
    remote_ip: str | None,
    local_mac: str | None,
    remote_mac: str | None,
) -> None:
    """Add an ACL entry to PORT: one of the address options, an action and a direction."""
    given = _addresses(local_ip=local_ip, remote_ip=remote_ip, local_mac=local_mac, remote_mac=remote_mac)
    if len(given) != 1:
        raise click.UsageError(f"give exactly one of {ADDRESS_OPTIONS}")
    entry: JsonObj = {"action": action.capitalize(), "direction": direction.capitalize(), **dict(given)}
    with state.client() as c:
        entries = list(c.port(port).get("acls") or [])
        _show(state, c.update_port(port, {"acls": [*entries, entry]}), "acls", acl_table)


@acl_group.command("list")
@click.argument("port")
@json_flag
@pass_state
def acl_list(state: State, port: str) -> None:
    """PORT's ACL entries; the # column is what `acl del --index` takes."""
    with state.client() as c:
        _show(state, c.port(port), "acls", acl_table)


@acl_group.command("del")
@click.argument("port")
@click.option("--index", type=click.IntRange(min=0), help="Remove the entry with this # (see `acl list`).")
@click.option("--action", type=_choice("allow", "deny", "meter"), help="Only entries with this action.")
@click.option("--direction", type=_choice("inbound", "outbound", "both"), help="Only this direction.")
@_address_options
@json_flag
@pass_state
def acl_del(
    state: State,
    port: str,
    index: int | None,
    action: str | None,
    direction: str | None,
    local_ip: str | None,
    remote_ip: str | None,
    local_mac: str | None,
    remote_mac: str | None,
) -> None:
    """Remove ACL entries from PORT: entry --index N, or every entry matching the options given
    (removing one direction of a Both entry keeps the other direction)."""
    given = _addresses(local_ip=local_ip, remote_ip=remote_ip, local_mac=local_mac, remote_mac=remote_mac)
    if len(given) > 1:
        raise click.UsageError(f"give at most one of {ADDRESS_OPTIONS}")
    selectors = action is not None or direction is not None or bool(given)
    if index is not None and selectors:
        raise click.UsageError("--index selects one entry by itself; drop the other options")
    if index is None and not selectors:
        raise click.UsageError(f"say what to remove: --index N, or --action, --direction, {ADDRESS_OPTIONS}")
    address: tuple[str, str] | None = None
    if given:
        field, value = given[0]
        try:
            address = (field, normal_address(field, value))
        except AclInputError as exc:
            message = "; ".join(m for _, m in exc.problems)
            raise click.BadParameter(message, param_hint=f"'--{field.replace('_', '-')}'") from None
    with state.client() as c:
        entries = list(c.port(port).get("acls") or [])
        if index is not None:
            if index >= len(entries):
                have = f"entries 0-{len(entries) - 1}" if entries else "no entries"
                raise Rejected("index", f"port {port} has {have}")
            kept = [dict(e) for i, e in enumerate(entries) if i != index]
        else:
            kept, matched = remove_acl(
                entries,
                action=action.capitalize() if action else None,
                direction=direction.capitalize() if direction else None,
                address=address,
            )
            if not matched:
                raise Rejected("acls", f"no ACL entry of port {port} matches")
        _show(state, c.update_port(port, {"acls": kept}), "acls", acl_table)


# ---------------------------------------------------------------- port xacl


@click.group("xacl")
def xacl_group() -> None:
    """Extended ACLs (Add/Get/Remove-VMNetworkAdapterExtendedAcl): weighted 5-tuple rules of the firewall
    extension; per direction the highest weight is evaluated first and the first match decides."""


@xacl_group.command("add")
@click.argument("port")
@click.option("--action", type=_choice("allow", "deny"), required=True)
@click.option("--direction", type=_choice("inbound", "outbound"), required=True)
@click.option(
    "--weight", type=int, required=True, help="Evaluation order, highest first; unique per direction."
)
@click.option("--local-ip", metavar="ADDR", help="The VM's address or prefix (default any).")
@click.option("--remote-ip", metavar="ADDR", help="The peer's address or prefix (default any).")
@click.option("--local-port", metavar="P|A-B", help="The VM's port or port range (default any).")
@click.option("--remote-port", metavar="P|A-B", help="The peer's port or port range (default any).")
@click.option(
    "--protocol", metavar="tcp|udp|icmp|N", help="Protocol name or IP protocol number (default any)."
)
@click.option("--stateful", is_flag=True, help="Allow rules: also admit the return traffic of matched flows.")
@click.option("--idle-timeout", type=int, metavar="S", help="Seconds a stateful flow lives without packets.")
@click.option("--isolation-id", type=int, metavar="VLAN", help="Only traffic of this VLAN.")
@json_flag
@pass_state
def xacl_add(
    state: State,
    port: str,
    action: str,
    direction: str,
    weight: int,
    local_ip: str | None,
    remote_ip: str | None,
    local_port: str | None,
    remote_port: str | None,
    protocol: str | None,
    stateful: bool,
    idle_timeout: int | None,
    isolation_id: int | None,
) -> None:
    """Add an extended ACL entry to PORT."""
    entry: JsonObj = {"action": action.capitalize(), "direction": direction.capitalize(), "weight": weight}
    optional = {
        "local_ip": local_ip,
        "remote_ip": remote_ip,
        "local_port": local_port,
        "remote_port": remote_port,
        "protocol": protocol,
        "idle_session_timeout_s": idle_timeout,
        "isolation_id": isolation_id,
    }
    entry.update({k: v for k, v in optional.items() if v is not None})
    if stateful:
        entry["stateful"] = True
    with state.client() as c:
        entries = list(c.port(port).get("extended_acls") or [])
        if weight_in_use(entries, weight, entry["direction"]):
            raise Rejected(
                "weight",
                f"port {port} already has an {entry['direction']} extended ACL entry with weight {weight}; "
                "remove it first or choose another weight",
            )
        changed = c.update_port(port, {"extended_acls": [*entries, entry]})
        _show(state, _with_hits(c, changed), "extended_acls", xacl_table)


@xacl_group.command("list")
@click.argument("port")
@json_flag
@pass_state
def xacl_list(state: State, port: str) -> None:
    """PORT's extended ACL entries in evaluation order, with the packets each decided (--json: as stored,
    plus hits)."""
    with state.client() as c:
        _show(state, _with_hits(c, c.port(port)), "extended_acls", xacl_table)


@xacl_group.command("del")
@click.argument("port")
@click.option("--weight", type=int, required=True, help="Remove the entries with this weight.")
@click.option("--direction", type=_choice("inbound", "outbound"), help="Only the entry of this direction.")
@json_flag
@pass_state
def xacl_del(state: State, port: str, weight: int, direction: str | None) -> None:
    """Remove PORT's extended ACL entries with --weight (of both directions unless --direction)."""
    with state.client() as c:
        entries = list(c.port(port).get("extended_acls") or [])
        kept, removed = remove_xacl(entries, weight, direction.capitalize() if direction else None)
        if not removed:
            where = f" {direction.capitalize()}" if direction else ""
            raise Rejected("weight", f"port {port} has no{where} extended ACL entry with weight {weight}")
        _show(state, _with_hits(c, c.update_port(port, {"extended_acls": kept})), "extended_acls", xacl_table)
