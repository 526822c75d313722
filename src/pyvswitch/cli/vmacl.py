"""The port ACL cmdlets: Add/Get/Remove-VMNetworkAdapterAcl and Add/Get/Remove-VMNetworkAdapterExtendedAcl.

Each reads the selected ports, changes their list and sends the whole list back, with the matching rules of
``cli.acls`` (which the ``port acl`` / ``port xacl`` verbs use too). Values are checked with the daemon's own
models first, so a bad one is reported against the parameter that gave it.

Floor: a cmdlet family, on the framework (``cli.cmdlet``); ``cli.cmdlets`` puts :data:`CMDLETS` in the table.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from pyvswitch.cli.acls import (
    AclInputError,
    acl_hits,
    check_acl,
    check_xacl,
    evaluation_order,
    protocol_text,
    remove_acl,
    remove_xacl,
    weight_in_use,
)
from pyvswitch.cli.client import JsonObj
from pyvswitch.cli.cmdlet.framework import (
    PARAM_SET_ERROR,
    Args,
    Cmdlet,
    CmdletError,
    CmdletUsageError,
    Param,
    PType,
    Session,
    list_values,
    one_of,
)
from pyvswitch.cli.cmdlet.objects import ADAPTER_SELECTION, adapter_name, adapters, targets, who
from pyvswitch.cli.cmdlet.output import show
from pyvswitch.cli.format import hyperv_mac

# Add/Remove-VMNetworkAdapterAcl address parameters -> AclEntry fields (exactly one per command).
ACL_ADDRESS_PARAMS = {
    "LocalIPAddress": "local_ip",
    "RemoteIPAddress": "remote_ip",
    "LocalMacAddress": "local_mac",
    "RemoteMacAddress": "remote_mac",
}
# Add-VMNetworkAdapterExtendedAcl parameters -> ExtendedAclEntry fields.
XACL_PARAMS = {
    "Action": "action",
    "Direction": "direction",
    "Weight": "weight",
    "LocalIPAddress": "local_ip",
    "RemoteIPAddress": "remote_ip",
    "LocalPort": "local_port",
    "RemotePort": "remote_port",
    "Protocol": "protocol",
    "Stateful": "stateful",
    "IdleSessionTimeout": "idle_session_timeout_s",
    "IsolationID": "isolation_id",
}
ACL_COLUMNS = ("VMName", "Direction", "Action", "LocalAddress", "RemoteAddress")
XACL_COLUMNS = (
    "VMName",
    "Direction",
    "Action",
    "LocalIPAddress",
    "RemoteIPAddress",
    "LocalPort",
    "RemotePort",
    "Protocol",
    "Weight",
    "Stateful",
    "IdleSessionTimeout",
    "Hits",
)


def _validated(
    a: Args, check: Callable[[JsonObj], JsonObj], body: JsonObj, params: Mapping[str, str]
) -> JsonObj:
    """``body`` checked by the daemon's own model; a bad value is reported against the parameter that gave it."""
    try:
        return check(body)
    except AclInputError as exc:
        by_field = {f: p for p, f in params.items()}
        field_name, message = exc.problems[0]
        param = by_field.get(field_name)
        if param is not None:
            raise CmdletUsageError(
                a.cmdlet, f"Cannot validate argument on parameter '{param}'. {message}."
            ) from None
        raise CmdletUsageError(a.cmdlet, f"The ACL entry is not valid: {message}.") from None


def _acl_address_param(a: Args) -> str:
    which = one_of(a, *ACL_ADDRESS_PARAMS)
    if which is None:
        raise CmdletUsageError(
            a.cmdlet, PARAM_SET_ERROR + " Give one of " + ", ".join(f"-{p}" for p in ACL_ADDRESS_PARAMS) + "."
        )
    return which


def acl_entries_from_args(a: Args) -> list[JsonObj]:
    """The AclEntry bodies an Add-VMNetworkAdapterAcl line asks for: one per address given."""
    param = _acl_address_param(a)
    return [
        _validated(
            a,
            check_acl,
            {"action": a.text("Action"), "direction": a.text("Direction"), ACL_ADDRESS_PARAMS[param]: value},
            {"Action": "action", "Direction": "direction", **ACL_ADDRESS_PARAMS},
        )
        for value in list_values(a, param)
    ]


def xacl_entry_from_args(a: Args) -> JsonObj:
    """The ExtendedAclEntry body an Add-VMNetworkAdapterExtendedAcl line asks for."""
    body: JsonObj = {field: a.values[param] for param, field in XACL_PARAMS.items() if a.has(param)}
    return _validated(a, check_xacl, body, XACL_PARAMS)


def _acl_text(entry: Mapping[str, Any], side: str) -> str:
    """An ACL entry's ``side`` address as Hyper-V shows it: MACs as 02155D010203, IPs and ANY as stored."""
    mac = entry.get(f"{side}_mac")
    if mac is not None:
        return hyperv_mac(str(mac))  # ANY stays ANY
    return str(entry.get(f"{side}_ip") or "")


def acl_obj(port: Mapping[str, Any], entry: Mapping[str, Any]) -> JsonObj:
    return {
        "VMName": port.get("vm") or "",
        "VMNetworkAdapterName": adapter_name(port),
        "IsManagementOs": port.get("kind") == "host",
        "Direction": entry.get("direction"),
        "Action": entry.get("action"),
        "LocalAddress": _acl_text(entry, "local"),
        "RemoteAddress": _acl_text(entry, "remote"),
    }


def xacl_obj(port: Mapping[str, Any], entry: Mapping[str, Any]) -> JsonObj:
    def any_(v: object) -> object:
        return "ANY" if v is None else v

    return {
        "VMName": port.get("vm") or "",
        "VMNetworkAdapterName": adapter_name(port),
        "IsManagementOs": port.get("kind") == "host",
        "Direction": entry.get("direction"),
        "Action": entry.get("action"),
        "LocalIPAddress": any_(entry.get("local_ip")),
        "RemoteIPAddress": any_(entry.get("remote_ip")),
        "LocalPort": any_(entry.get("local_port")),
        "RemotePort": any_(entry.get("remote_port")),
        "Protocol": protocol_text(entry.get("protocol")),
        "Weight": entry.get("weight"),
        "Stateful": bool(entry.get("stateful")),
        "IdleSessionTimeout": entry.get("idle_session_timeout_s"),
        "IsolationID": entry.get("isolation_id") or 0,
    }


def _print_acls(s: Session, ports: Sequence[Mapping[str, Any]]) -> None:
    show(s, [acl_obj(p, e) for p in ports for e in p.get("acls") or []], ACL_COLUMNS)


def _print_xacls(s: Session, ports: Sequence[Mapping[str, Any]]) -> None:
    objs = []
    for p in ports:
        entries = evaluation_order(p.get("extended_acls") or [])
        hits = acl_hits(s.client, str(p["name"])) if entries else {}
        objs += [
            {**xacl_obj(p, e), "Hits": hits.get((e.get("direction"), e.get("weight")), 0)} for e in entries
        ]
    show(s, objs, XACL_COLUMNS)


def add_vmnetworkadapteracl(a: Args, s: Session) -> None:
    new = acl_entries_from_args(a)
    changed = [
        s.client.update_port(str(p["name"]), {"acls": [*(p.get("acls") or []), *new]})
        for p in targets(a, s, "VMNetworkAdapterName")
    ]
    if a.flag("Passthru"):
        _print_acls(s, changed)


def get_vmnetworkadapteracl(a: Args, s: Session) -> None:
    _print_acls(s, adapters(a, s, "VMNetworkAdapterName", default_all_vms=True))


def remove_vmnetworkadapteracl(a: Args, s: Session) -> None:
    # The entries the line describes, in stored form, so that 10.0.0.1 finds the stored 10.0.0.1/32.
    wanted = acl_entries_from_args(a)
    field_name = ACL_ADDRESS_PARAMS[_acl_address_param(a)]
    action, direction = a.text("Action"), a.text("Direction")
    removed = 0
    for p in targets(a, s, "VMNetworkAdapterName"):
        entries: list[JsonObj] = list(p.get("acls") or [])
        n = 0
        for w in wanted:
            entries, matched = remove_acl(
                entries, action=action, direction=direction, address=(field_name, str(w[field_name]))
            )
            n += matched
        if n:
            s.client.update_port(str(p["name"]), {"acls": entries})
        removed += n
    if not removed:
        raise CmdletError(a.cmdlet, f"No {direction} {action} ACL entry of {who(a)} matches.")


def add_vmnetworkadapterextendedacl(a: Args, s: Session) -> None:
    entry = xacl_entry_from_args(a)
    chosen = targets(a, s, "VMNetworkAdapterName")
    for p in chosen:
        if weight_in_use(p.get("extended_acls") or [], entry["weight"], entry["direction"]):
            raise CmdletError(
                a.cmdlet,
                f"Adapter '{adapter_name(p)}' of {who(a)} already has an {entry['direction']} extended ACL "
                f"with weight {entry['weight']}; remove it first or choose another -Weight.",
            )
    changed = [
        s.client.update_port(str(p["name"]), {"extended_acls": [*(p.get("extended_acls") or []), entry]})
        for p in chosen
    ]
    if a.flag("Passthru"):
        _print_xacls(s, changed)


def get_vmnetworkadapterextendedacl(a: Args, s: Session) -> None:
    _print_xacls(s, adapters(a, s, "VMNetworkAdapterName", default_all_vms=True))


def remove_vmnetworkadapterextendedacl(a: Args, s: Session) -> None:
    weight = a.number("Weight")
    assert weight is not None  # mandatory
    direction = a.text("Direction")
    removed = 0
    for p in targets(a, s, "VMNetworkAdapterName"):
        kept, n = remove_xacl(p.get("extended_acls") or [], weight, direction)
        if n:
            s.client.update_port(str(p["name"]), {"extended_acls": kept})
        removed += n
    if not removed:
        what = f"{direction} extended ACL" if direction else "extended ACL"
        raise CmdletError(a.cmdlet, f"No {what} of {who(a)} has weight {weight}.")


# ---------------------------------------------------------------- the table

_ACL_DIRECTIONS = ("Inbound", "Outbound", "Both")
_XACL_DIRECTIONS = ("Inbound", "Outbound")
_ACL_ADDRESSES = tuple(Param(p) for p in ACL_ADDRESS_PARAMS)

CMDLETS: tuple[Cmdlet, ...] = (
    Cmdlet(
        "Add-VMNetworkAdapterAcl",
        (
            *ADAPTER_SELECTION,
            Param("VMNetworkAdapterName"),
            Param("Action", mandatory=True, choices=("Allow", "Deny", "Meter")),
            Param("Direction", mandatory=True, choices=_ACL_DIRECTIONS),
            *_ACL_ADDRESSES,
            Param("Passthru", PType.SWITCH),
        ),
        add_vmnetworkadapteracl,
        "Add port ACL entries to adapters (all of the VM's unless named).",
        "Exactly one of -LocalIPAddress, -RemoteIPAddress, -LocalMacAddress, -RemoteMacAddress\n"
        "(a list adds one entry each); addresses are hosts, prefixes (10.0.0.0/8) or ANY.\n"
        "Local and remote are the VM's; Meter entries must be IP-based.",
    ),
    Cmdlet(
        "Get-VMNetworkAdapterAcl",
        (*ADAPTER_SELECTION, Param("VMNetworkAdapterName")),
        get_vmnetworkadapteracl,
        "List port ACL entries of adapters (every VM's by default).",
    ),
    Cmdlet(
        "Remove-VMNetworkAdapterAcl",
        (
            *ADAPTER_SELECTION,
            Param("VMNetworkAdapterName"),
            Param("Action", mandatory=True, choices=("Allow", "Deny", "Meter")),
            Param("Direction", mandatory=True, choices=_ACL_DIRECTIONS),
            *_ACL_ADDRESSES,
        ),
        remove_vmnetworkadapteracl,
        "Remove the port ACL entries matching action, direction and address.",
        "Removing one direction of a Both entry keeps the other direction.",
    ),
    Cmdlet(
        "Add-VMNetworkAdapterExtendedAcl",
        (
            *ADAPTER_SELECTION,
            Param("VMNetworkAdapterName"),
            Param("Action", mandatory=True, choices=("Allow", "Deny")),
            Param("Direction", mandatory=True, choices=_XACL_DIRECTIONS),
            Param("Weight", PType.INT, mandatory=True, range=(1, 2_147_483_647)),
            Param("LocalIPAddress"),
            Param("RemoteIPAddress"),
            Param("LocalPort"),
            Param("RemotePort"),
            Param("Protocol"),
            Param("Stateful", PType.BOOL),
            Param("IdleSessionTimeout", PType.INT, range=(1, 604_800)),
            Param("IsolationID", PType.INT, range=(1, 4094)),
            Param("Passthru", PType.SWITCH),
        ),
        add_vmnetworkadapterextendedacl,
        "Add an extended ACL (weighted 5-tuple firewall rule) to adapters.",
        "Highest -Weight is evaluated first, first match decides; a weight is unique per direction.\n"
        "-LocalPort/-RemotePort take 80 or 49152-49182, -Protocol TCP, UDP, ICMP or a number;\n"
        "-Stateful $true (Allow only) admits the return traffic for -IdleSessionTimeout seconds.",
    ),
    Cmdlet(
        "Get-VMNetworkAdapterExtendedAcl",
        (*ADAPTER_SELECTION, Param("VMNetworkAdapterName")),
        get_vmnetworkadapterextendedacl,
        "List extended ACLs of adapters in evaluation order (every VM's by default).",
    ),
    Cmdlet(
        "Remove-VMNetworkAdapterExtendedAcl",
        (
            *ADAPTER_SELECTION,
            Param("VMNetworkAdapterName"),
            Param("Weight", PType.INT, mandatory=True, range=(1, 2_147_483_647)),
            Param("Direction", choices=_XACL_DIRECTIONS),
        ),
        remove_vmnetworkadapterextendedacl,
        "Remove the extended ACLs with -Weight (of both directions unless -Direction).",
    ),
)
