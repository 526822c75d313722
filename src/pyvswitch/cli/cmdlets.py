"""The Hyper-V cmdlet front end: ``pyvswitch Set-VMNetworkAdapterVlan -VMName web01 -Access -VlanId 20``.

Arguments are parsed the way PowerShell binds them, not by click: parameter names are case-insensitive and
may be abbreviated to any unambiguous prefix, ``-Name value`` and ``-Name:value`` both work, switch
parameters take no value (``-Access``, or ``-Access:$false``), a value split at a comma by the shell
(``-AllowedVlanIdList 1-100, 200``) is joined again, and the first parameters bind by position where the
real cmdlet allows it (``Get-VMSwitch ext``). Mistakes are reported in PowerShell's own words with exit 2.

Names map onto the daemon's objects as follows. Port names are global in pyvswitch but adapter names are
per VM in Hyper-V, so a VM adapter called ``Name`` is the port ``<VMName>-<Name>``: the first adapter of a
VM (port ``<vm>-eth0``) shows as ``eth0`` and is selected with ``-Name eth0`` (the full port name works
too). A management-OS vNIC is the host port of that name. Output is Format-Table style, MACs as Hyper-V
prints them (``02155D010203``); with ``--json`` the same objects are printed with Hyper-V's property names.

The ACL cmdlets read each selected port, change its list and send the whole list back, with the matching
rules of ``cli.acls``; the extension cmdlets share ``cli.extensions``' settings edits with the
``extension`` verbs. Values are checked with the daemon's own models first, so a bad one is reported
against the parameter that gave it.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Any
from urllib.parse import quote

import click
from pydantic import ValidationError

from pyvswitch.cli.acls import (
    AclInputError,
    check_acl,
    check_xacl,
    evaluation_order,
    protocol_text,
    remove_acl,
    remove_xacl,
    weight_in_use,
)
from pyvswitch.cli.client import ApiError, Client, JsonObj
from pyvswitch.cli.extensions import extension_settings, ordered_settings, set_enabled
from pyvswitch.cli.format import echo_json, hyperv_mac, ps_table
from pyvswitch.cli.lbfo import lbfo_cmdlets
from pyvswitch.cli.migrate import migrate_cmdlets
from pyvswitch.cli.netevent import netevent_cmdlets
from pyvswitch.cli.netqos import netqos_cmdlets, parse_bandwidth, ps_list
from pyvswitch.cli.sriov import add_iov_fields, sriov_cmdlets
from pyvswitch.config.schema import VlanConfig, VlanMode, format_vlan_list, parse_vlan_list
from pyvswitch.packet.mac import format_mac, parse_mac

PARAM_SET_ERROR = "Parameter set cannot be resolved using the specified named parameters."
CMDLET_RE = re.compile(r"^[A-Za-z]+-[A-Za-z][A-Za-z0-9]*$")
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
    # Bandwidths in bit/s (Hyper-V's Int64/UInt64 parameters); k/M/G/T suffixes accepted (cli.netqos).
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


# ---------------------------------------------------------------- objects as Hyper-V shows them


def _like(value: str, pattern: str) -> bool:
    """PowerShell's -like: case-insensitive, with * ? [] wildcards."""
    return fnmatch.fnmatchcase(value.lower(), pattern.lower())


def _has_wildcard(pattern: str) -> bool:
    return any(c in pattern for c in "*?[")


def adapter_name(port: Mapping[str, Any]) -> str:
    """A port's name as its VM knows it: ``web01-eth0`` of VM web01 is adapter ``eth0``."""
    name = str(port.get("name"))
    vm = port.get("vm")
    if vm and name.startswith(f"{vm}-") and len(name) > len(vm) + 1:
        return name[len(vm) + 1 :]
    return name


def switch_obj(sw: Mapping[str, Any], qos: Mapping[str, Any] | None = None) -> JsonObj:
    """A VMSwitch; ``qos`` is its QoS status (GET /v1/switches/{name}/qos): the effective reservation mode,
    the default flow's BandwidthPercentage, and Msvm_EthernetSwitchBandwidthData's Capacity and Reservation."""
    flow: Mapping[str, Any] = (qos or {}).get("default_flow") or {}
    mode = sw.get("minimum_bandwidth_mode") or "Default"
    return {
        "Name": sw.get("name"),
        "SwitchType": sw.get("type"),
        # Hyper-V shows the bound NIC's description here; the interface name is what identifies it on Linux.
        "NetAdapterInterfaceDescription": sw.get("net_adapter") or "",
        "AllowManagementOS": sw.get("allow_management_os"),
        "Notes": sw.get("notes") or "",
        "BandwidthReservationMode": (qos or {}).get("mode") or ("Weight" if mode == "Default" else mode),
        "DefaultFlowMinimumBandwidthWeight": sw.get("default_flow_minimum_bandwidth_weight", 1),
        "DefaultFlowMinimumBandwidthAbsolute": flow.get("absolute")
        or sw.get("default_flow_minimum_bandwidth_absolute")
        or 0,
        "BandwidthPercentage": flow.get("bandwidth_percentage", 0),
        "Capacity": (qos or {}).get("capacity", 0),
        "Reservation": (qos or {}).get("reservation", 0),
    }


def adapter_obj(
    port: Mapping[str, Any], degraded: Mapping[str, Any], bandwidth_percentage: float | None = None
) -> JsonObj:
    return {
        "Name": adapter_name(port),
        "VMName": port.get("vm") or "",
        "SwitchName": port.get("switch") or "",
        "MacAddress": hyperv_mac(port.get("mac")),
        "Status": "{Degraded}" if port.get("name") in degraded else "{Ok}",
        "IPAddresses": [str(a).split("/")[0] for a in port.get("ip") or []],
        "IsManagementOs": port.get("kind") == "host",
        # Port security (Set-VMNetworkAdapter), as Hyper-V's OnOffState and UInt32.
        **{param: _on_off(port.get(field)) for param, field in ON_OFF_SETTINGS.items()},
        "StormLimit": port.get("storm_limit") or 0,
        # Set-VMNetworkAdapter bandwidth (bit/s), and the share the switch's QoS status gives the port.
        "MaximumBandwidth": port.get("maximum_bandwidth") or 0,
        "MinimumBandwidthWeight": port.get("minimum_bandwidth_weight") or 0,
        "MinimumBandwidthAbsolute": port.get("minimum_bandwidth_absolute") or 0,
        "BandwidthPercentage": bandwidth_percentage or 0,
        "IovWeight": port.get("iov_weight") or 0,  # SR-IOV (cli/sriov.py)
    }


def _on_off(value: object) -> str:
    return "On" if value else "Off"


def vlan_obj(port: Mapping[str, Any]) -> JsonObj:
    v: Mapping[str, Any] = port.get("vlan") or {}
    mode = str(v.get("mode") or VlanMode.UNTAGGED.value)
    pvlan = mode in (VlanMode.ISOLATED, VlanMode.COMMUNITY, VlanMode.PROMISCUOUS)
    return {
        "VMName": port.get("vm") or "",
        "VMNetworkAdapterName": adapter_name(port),
        "OperationMode": "Private" if pvlan else mode,
        "AccessVlanId": v.get("access_vlan_id") or 0,
        "NativeVlanId": v.get("native_vlan_id") or 0,
        "AllowedVlanIdList": format_vlan_list(list(v.get("allowed_vlan_ids") or [])),
        "PrivateVlanMode": mode if pvlan else "",
        "PrimaryVlanId": v.get("primary_vlan_id") or 0,
        "SecondaryVlanId": v.get("secondary_vlan_id") or 0,
        "SecondaryVlanIdList": format_vlan_list(list(v.get("secondary_vlan_ids") or [])),
        "Mode": mode,
        "VlanList": vlan_list_text(v),
    }


def vlan_list_text(v: Mapping[str, Any]) -> str:
    mode = str(v.get("mode") or VlanMode.UNTAGGED.value)
    if mode == VlanMode.ACCESS:
        return str(v.get("access_vlan_id"))
    if mode == VlanMode.TRUNK:
        allowed = format_vlan_list(list(v.get("allowed_vlan_ids") or []))
        return f"{allowed} (native {v.get('native_vlan_id') or 0})"
    if mode in (VlanMode.ISOLATED, VlanMode.COMMUNITY):
        return f"primary {v.get('primary_vlan_id')}, secondary {v.get('secondary_vlan_id')}"
    if mode == VlanMode.PROMISCUOUS:
        secondaries = format_vlan_list(list(v.get("secondary_vlan_ids") or []))
        return f"primary {v.get('primary_vlan_id')}, secondary {secondaries}"
    return ""


def _print(s: Session, objs: list[JsonObj], columns: Sequence[str]) -> None:
    if s.json:
        echo_json(objs)
    elif objs and s.format_list:
        click.echo(ps_list(objs))
    elif objs:
        rows = [
            ["{" + ", ".join(o[c]) + "}" if isinstance(o[c], list) else o[c] for c in columns] for o in objs
        ]
        click.echo(ps_table(columns, rows))


SWITCH_COLUMNS = ("Name", "SwitchType", "NetAdapterInterfaceDescription")
ADAPTER_COLUMNS = ("Name", "VMName", "SwitchName", "MacAddress", "Status", "IPAddresses")
VLAN_COLUMNS = ("VMName", "VMNetworkAdapterName", "Mode", "VlanList")


def _print_adapters(s: Session, ports: list[JsonObj]) -> None:
    degraded: Mapping[str, Any] = {}
    shares: dict[str, float] = {}
    if ports:
        degraded = s.client.health().get("degraded") or {}
    if s.json or s.format_list:
        # BandwidthPercentage comes from each switch's QoS status (not shown in the table).
        for sw in sorted({str(p["switch"]) for p in ports if p.get("switch")}):
            status = _qos_status(s, sw)
            for name, st in (status.get("ports") or {}).items():
                shares[name] = st.get("bandwidth_percentage") or 0
    objs = [adapter_obj(p, degraded, shares.get(str(p.get("name")))) for p in ports]
    if s.json or s.format_list:
        add_iov_fields(s, ports, objs)  # VF or software path, and why (cli/sriov.py)
    _print(s, objs, ADAPTER_COLUMNS)


def _qos_status(s: Session, switch: str) -> JsonObj:
    """The switch's QoS status; empty from a daemon without the route."""
    try:
        return dict(s.client.request("GET", f"/switches/{quote(switch, safe='')}/qos"))
    except ApiError as exc:
        if exc.status == 404:
            return {}
        raise


def _print_vlans(s: Session, ports: list[JsonObj]) -> None:
    objs = [vlan_obj(p) for p in ports]
    if s.json:
        # Mode and VlanList are the table's summary columns, not properties of the Hyper-V object.
        echo_json([{k: v for k, v in o.items() if k not in ("Mode", "VlanList")} for o in objs])
    else:
        _print(s, objs, VLAN_COLUMNS)


def _mac(a: Args, name: str) -> str | None:
    raw = a.text(name)
    if raw is None:
        return None
    try:
        return format_mac(parse_mac(raw))
    except ValueError:
        raise CmdletUsageError(
            a.cmdlet, f"Cannot validate argument on parameter '{name}'. '{raw}' is not a valid MAC address."
        ) from None


def _one_of(a: Args, *names: str) -> str | None:
    """Which of the mutually exclusive ``names`` was given (None if none); two is a parameter set error."""
    given = [n for n in names if a.has(n) and a.values[n] is not False]
    if len(given) > 1:
        raise CmdletUsageError(a.cmdlet, PARAM_SET_ERROR)
    return given[0] if given else None


def _adapters(a: Args, s: Session, name_param: str, *, default_all_vms: bool = False) -> list[JsonObj]:
    """The adapters -VMName / -ManagementOS / -All and the adapter name (wildcards allowed) select."""
    which = _one_of(a, "VMName", "ManagementOS", "All")
    if which is None and not default_all_vms:
        a.need("VMName")
    if which == "VMName":
        ports = s.client.ports(vm=a.text("VMName"))
    else:
        kinds = {"ManagementOS": ("host",), "All": ("vm", "host")}.get(which or "", ("vm",))
        ports = [p for p in s.client.ports() if p.get("kind") in kinds]
    name = a.text(name_param)
    if name is not None:
        ports = [p for p in ports if _like(adapter_name(p), name) or _like(str(p.get("name")), name)]
    return ports


def _targets(a: Args, s: Session, name_param: str) -> list[JsonObj]:
    """Like _adapters, for a cmdlet that changes them: selecting none is an error, not a no-op."""
    ports = _adapters(a, s, name_param)
    if not ports:
        who = f"VM '{a.text('VMName')}'" if a.has("VMName") else "the management OS"
        name = a.text(name_param)
        what = f"a network adapter named '{name}'" if name else "any network adapter"
        raise CmdletError(a.cmdlet, f"Hyper-V was unable to find {what} on {who}.")
    return ports


# ---------------------------------------------------------------- switches


def new_vmswitch(a: Args, s: Session) -> None:
    adapter = a.text("NetAdapterName")
    stype = a.text("SwitchType")
    if adapter is not None and stype not in (None, "External"):
        raise CmdletUsageError(a.cmdlet, PARAM_SET_ERROR)
    if adapter is None and stype is None:
        raise CmdletUsageError(
            a.cmdlet,
            PARAM_SET_ERROR + " Give -NetAdapterName (an External switch) or -SwitchType Internal|Private.",
        )
    if adapter is None and stype == "External":
        raise CmdletUsageError(a.cmdlet, "An External switch needs -NetAdapterName.")
    body: JsonObj = {"name": a.text("Name")}
    if adapter is not None:
        body.update(type="External", net_adapter=adapter)
    else:
        body["type"] = stype
    if a.has("AllowManagementOS"):
        body["allow_management_os"] = a.boolean("AllowManagementOS")
    if a.has("Notes"):
        body["notes"] = a.text("Notes")
    if a.has("MinimumBandwidthMode"):
        body["minimum_bandwidth_mode"] = a.text("MinimumBandwidthMode")
    if a.has("EnableIov"):  # SR-IOV: fixed at creation
        body["enable_iov"] = a.boolean("EnableIov")
    _print(s, [switch_obj(s.client.add_switch(body))], SWITCH_COLUMNS)


def get_vmswitch(a: Args, s: Session) -> None:
    name = a.text("Name")
    stype = a.text("SwitchType")
    switches = [
        sw
        for sw in s.client.switches()
        if (name is None or _like(str(sw.get("name")), name)) and (stype is None or sw.get("type") == stype)
    ]
    if name is not None and not _has_wildcard(name) and not switches:
        raise CmdletError(a.cmdlet, f'Hyper-V was unable to find a virtual switch with name "{name}".')
    # The QoS status only where it is shown: --json and Format-List.
    full = s.json or s.format_list
    _print(
        s,
        [switch_obj(sw, _qos_status(s, str(sw["name"])) if full else None) for sw in switches],
        SWITCH_COLUMNS,
    )


def set_vmswitch(a: Args, s: Session) -> None:
    name = str(a.text("Name"))
    adapter = a.text("NetAdapterName")
    stype = a.text("SwitchType")
    if adapter is not None and stype is not None:
        raise CmdletUsageError(a.cmdlet, PARAM_SET_ERROR)
    if stype == "External":
        raise CmdletUsageError(a.cmdlet, "Make a switch External by giving -NetAdapterName.")
    changes: JsonObj = {}
    if adapter is not None:
        changes["net_adapter"] = adapter
        # Hyper-V: binding an adapter also shares it with the management OS unless told otherwise.
        if not a.has("AllowManagementOS") and s.client.switch(name).get("type") != "External":
            changes["allow_management_os"] = True
    if stype is not None:
        changes["type"] = stype
    if a.has("AllowManagementOS"):
        changes["allow_management_os"] = a.boolean("AllowManagementOS")
    if a.has("Notes"):
        changes["notes"] = a.text("Notes")
    if a.has("DefaultFlowMinimumBandwidthWeight"):
        changes["default_flow_minimum_bandwidth_weight"] = a.number("DefaultFlowMinimumBandwidthWeight")
    if a.has("DefaultFlowMinimumBandwidthAbsolute"):
        changes["default_flow_minimum_bandwidth_absolute"] = a.number("DefaultFlowMinimumBandwidthAbsolute")
    if a.has("Extensions"):
        # The order within each kind (capture, filter, forwarding); each keeps its enabled state.
        configured, stack = extension_settings(s.client, name)
        changes["extensions"] = ordered_settings(configured, stack, _list_values(a, "Extensions"))
    sw = s.client.update_switch(name, changes) if changes else s.client.switch(name)
    if a.flag("Passthru"):
        _print(s, [switch_obj(sw)], SWITCH_COLUMNS)


def remove_vmswitch(a: Args, s: Session) -> None:
    # Hyper-V asks for confirmation unless -Force; a CLI run from scripts never prompts.
    s.client.delete_switch(str(a.text("Name")))


# ---------------------------------------------------------------- VMs


def _vm_obj(vm: Mapping[str, Any]) -> JsonObj:
    return {
        "Name": vm.get("name"),
        "NetNs": vm.get("netns"),
        "NetworkAdapters": [adapter_name(p) for p in vm.get("ports") or []],
    }


VM_COLUMNS = ("Name", "NetNs", "NetworkAdapters")


def new_vm(a: Args, s: Session) -> None:
    # Hyper-V's New-VM always gives the VM one network adapter, connected only if -SwitchName is given.
    body: JsonObj = {"name": a.text("Name")}
    if a.has("SwitchName"):
        body["switch"] = a.text("SwitchName")
    _print(s, [_vm_obj(s.client.add_vm(body))], VM_COLUMNS)


def get_vm(a: Args, s: Session) -> None:
    name = a.text("Name")
    vms = [v for v in s.client.vms() if name is None or _like(str(v.get("name")), name)]
    if name is not None and not _has_wildcard(name) and not vms:
        raise CmdletError(a.cmdlet, f'Hyper-V was unable to find a virtual machine with name "{name}".')
    _print(s, [_vm_obj(v) for v in vms], VM_COLUMNS)


def remove_vm(a: Args, s: Session) -> None:
    s.client.delete_vm(str(a.text("Name")))


# ---------------------------------------------------------------- adapters


def add_vmnetworkadapter(a: Args, s: Session) -> None:
    which = _one_of(a, "VMName", "ManagementOS")
    if which is None:
        a.need("VMName")
    body: JsonObj = {}
    if a.has("SwitchName"):
        body["switch"] = a.text("SwitchName")
    mac = _mac(a, "StaticMacAddress")
    if mac is not None:
        body["mac"] = mac
    if which == "ManagementOS":
        # Hyper-V would call it "Network Adapter"; port names are global here, so a name must be chosen.
        a.need("Name")
        body.update(name=a.text("Name"), kind="host")
    else:
        vm = str(a.text("VMName"))
        s.client.vm(vm)  # a missing VM is reported as such, not as a bad port
        taken = {str(p.get("name")) for p in s.client.ports()}
        name = a.text("Name")
        if name is None:
            n = 0
            while f"{vm}-eth{n}" in taken:
                n += 1
            name = f"eth{n}"
        body.update(name=f"{vm}-{name}", kind="vm", vm=vm)
    port = s.client.add_port(body)
    if a.flag("Passthru"):
        _print_adapters(s, [port])


def get_vmnetworkadapter(a: Args, s: Session) -> None:
    ports = _adapters(a, s, "Name")
    sw = a.text("SwitchName")
    if sw is not None:
        ports = [p for p in ports if _like(str(p.get("switch") or ""), sw)]
    _print_adapters(s, ports)


def remove_vmnetworkadapter(a: Args, s: Session) -> None:
    for p in _targets(a, s, "Name"):
        s.client.delete_port(str(p["name"]))


def connect_vmnetworkadapter(a: Args, s: Session) -> None:
    changed = [
        s.client.update_port(str(p["name"]), {"switch": a.text("SwitchName")}) for p in _targets(a, s, "Name")
    ]
    if a.flag("Passthru"):
        _print_adapters(s, changed)


def disconnect_vmnetworkadapter(a: Args, s: Session) -> None:
    changed = [s.client.update_port(str(p["name"]), {"switch": None}) for p in _targets(a, s, "Name")]
    if a.flag("Passthru"):
        _print_adapters(s, changed)


VLAN_MODES = ("Untagged", "Access", "Trunk", "Isolated", "Community", "Promiscuous")
# Per mode, the parameters it requires; every VLAN parameter outside that set is a parameter set error.
VLAN_MODE_PARAMS: dict[str, tuple[str, ...]] = {
    "Untagged": (),
    "Access": ("VlanId",),
    "Trunk": ("AllowedVlanIdList", "NativeVlanId"),
    "Isolated": ("PrimaryVlanId", "SecondaryVlanId"),
    "Community": ("PrimaryVlanId", "SecondaryVlanId"),
    "Promiscuous": ("PrimaryVlanId", "SecondaryVlanIdList"),
}
VLAN_VALUE_PARAMS = (
    "VlanId",
    "AllowedVlanIdList",
    "NativeVlanId",
    "PrimaryVlanId",
    "SecondaryVlanId",
    "SecondaryVlanIdList",
)


def _vlan_list(a: Args, name: str) -> list[int]:
    raw = str(a.text(name))
    try:
        vids = parse_vlan_list(raw)
    except ValueError as exc:
        raise CmdletUsageError(a.cmdlet, f"Cannot validate argument on parameter '{name}'. {exc}.") from None
    if not vids:
        raise CmdletUsageError(
            a.cmdlet, f"Cannot validate argument on parameter '{name}'. The list is empty."
        )
    return vids


def vlan_from_args(a: Args) -> JsonObj:
    """The VlanConfig body a Set-VMNetworkAdapterVlan command line asks for (usage errors as PowerShell's)."""
    modes = [m for m in VLAN_MODES if a.flag(m)]
    if len(modes) != 1:
        raise CmdletUsageError(
            a.cmdlet, PARAM_SET_ERROR + " Give one of " + ", ".join(f"-{m}" for m in VLAN_MODES) + "."
        )
    mode = modes[0]
    wanted = VLAN_MODE_PARAMS[mode]
    if any(a.has(p) and p not in wanted for p in VLAN_VALUE_PARAMS):
        raise CmdletUsageError(a.cmdlet, PARAM_SET_ERROR)
    a.need(*wanted)
    body: JsonObj = {"mode": VlanMode(mode).value}
    if mode == "Access":
        body["access_vlan_id"] = a.number("VlanId")
    elif mode == "Trunk":
        body["allowed_vlan_ids"] = _vlan_list(a, "AllowedVlanIdList")
        body["native_vlan_id"] = a.number("NativeVlanId")
    elif mode in ("Isolated", "Community"):
        body["primary_vlan_id"] = a.number("PrimaryVlanId")
        body["secondary_vlan_id"] = a.number("SecondaryVlanId")
    elif mode == "Promiscuous":
        body["primary_vlan_id"] = a.number("PrimaryVlanId")
        body["secondary_vlan_ids"] = _vlan_list(a, "SecondaryVlanIdList")
    try:
        VlanConfig.model_validate(body)
    except ValidationError as exc:
        msgs = "; ".join(str(e.get("msg", "")).removeprefix("Value error, ") for e in exc.errors())
        raise CmdletUsageError(a.cmdlet, f"The VLAN setting is not valid: {msgs}.") from None
    return body


def set_vmnetworkadaptervlan(a: Args, s: Session) -> None:
    vlan = vlan_from_args(a)
    changed = [
        s.client.update_port(str(p["name"]), {"vlan": vlan}) for p in _targets(a, s, "VMNetworkAdapterName")
    ]
    if a.flag("Passthru"):
        _print_vlans(s, changed)


def get_vmnetworkadaptervlan(a: Args, s: Session) -> None:
    _print_vlans(s, _adapters(a, s, "VMNetworkAdapterName", default_all_vms=True))


ON_OFF = ("On", "Off")
# Set-VMNetworkAdapter's On|Off parameters -> PortConfig fields (hyperv-networking.md §1.6).
ON_OFF_SETTINGS = {
    "MacAddressSpoofing": "mac_spoofing",
    "DhcpGuard": "dhcp_guard",
    "RouterGuard": "router_guard",
    "AllowTeaming": "allow_teaming",
    "IeeePriorityTag": "ieee_priority_tag",
}


# Set-VMNetworkAdapter's bandwidth parameters (hyperv-networking.md §5.2) -> PortConfig fields.
BANDWIDTH_SETTINGS = {
    "MaximumBandwidth": "maximum_bandwidth",
    "MinimumBandwidthWeight": "minimum_bandwidth_weight",
    "MinimumBandwidthAbsolute": "minimum_bandwidth_absolute",
    "IovWeight": "iov_weight",  # SR-IOV (cli/sriov.py): > 0 requests a VF
}


def security_from_args(a: Args) -> JsonObj:
    """The PortConfig changes a Set-VMNetworkAdapter command line asks for."""
    changes: JsonObj = {field: a.text(p) == "On" for p, field in ON_OFF_SETTINGS.items() if a.has(p)}
    if a.has("StormLimit"):
        changes["storm_limit"] = a.number("StormLimit")
    for param, field_name in BANDWIDTH_SETTINGS.items():
        if a.has(param):
            changes[field_name] = a.number(param)
    return changes


def set_vmnetworkadapter(a: Args, s: Session) -> None:
    changes = security_from_args(a)
    targets = _targets(a, s, "Name")
    changed = [s.client.update_port(str(p["name"]), changes) if changes else p for p in targets]
    if a.flag("Passthru"):
        _print_adapters(s, changed)


# ---------------------------------------------------------------- port ACLs and extended ACLs

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
)


def _list_values(a: Args, name: str) -> list[str]:
    """A String[] parameter: ``10.0.0.1,10.0.0.2`` (the shell's words were joined by bind) -> its items."""
    items = [v.strip() for v in str(a.text(name) or "").split(",") if v.strip()]
    if not items:
        raise CmdletUsageError(
            a.cmdlet, f"Cannot validate argument on parameter '{name}'. The argument is null or empty."
        )
    return items


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
    which = _one_of(a, *ACL_ADDRESS_PARAMS)
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
        for value in _list_values(a, param)
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
    _print(s, [acl_obj(p, e) for p in ports for e in p.get("acls") or []], ACL_COLUMNS)


def _print_xacls(s: Session, ports: Sequence[Mapping[str, Any]]) -> None:
    objs = [xacl_obj(p, e) for p in ports for e in evaluation_order(p.get("extended_acls") or [])]
    _print(s, objs, XACL_COLUMNS)


def _who(a: Args) -> str:
    return f"VM '{a.text('VMName')}'" if a.has("VMName") else "the management OS"


def add_vmnetworkadapteracl(a: Args, s: Session) -> None:
    new = acl_entries_from_args(a)
    changed = [
        s.client.update_port(str(p["name"]), {"acls": [*(p.get("acls") or []), *new]})
        for p in _targets(a, s, "VMNetworkAdapterName")
    ]
    if a.flag("Passthru"):
        _print_acls(s, changed)


def get_vmnetworkadapteracl(a: Args, s: Session) -> None:
    _print_acls(s, _adapters(a, s, "VMNetworkAdapterName", default_all_vms=True))


def remove_vmnetworkadapteracl(a: Args, s: Session) -> None:
    # The entries the line describes, in stored form, so that 10.0.0.1 finds the stored 10.0.0.1/32.
    wanted = acl_entries_from_args(a)
    field_name = ACL_ADDRESS_PARAMS[_acl_address_param(a)]
    action, direction = a.text("Action"), a.text("Direction")
    removed = 0
    for p in _targets(a, s, "VMNetworkAdapterName"):
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
        raise CmdletError(a.cmdlet, f"No {direction} {action} ACL entry of {_who(a)} matches.")


def add_vmnetworkadapterextendedacl(a: Args, s: Session) -> None:
    entry = xacl_entry_from_args(a)
    targets = _targets(a, s, "VMNetworkAdapterName")
    for p in targets:
        if weight_in_use(p.get("extended_acls") or [], entry["weight"], entry["direction"]):
            raise CmdletError(
                a.cmdlet,
                f"Adapter '{adapter_name(p)}' of {_who(a)} already has an {entry['direction']} extended ACL "
                f"with weight {entry['weight']}; remove it first or choose another -Weight.",
            )
    changed = [
        s.client.update_port(str(p["name"]), {"extended_acls": [*(p.get("extended_acls") or []), entry]})
        for p in targets
    ]
    if a.flag("Passthru"):
        _print_xacls(s, changed)


def get_vmnetworkadapterextendedacl(a: Args, s: Session) -> None:
    _print_xacls(s, _adapters(a, s, "VMNetworkAdapterName", default_all_vms=True))


def remove_vmnetworkadapterextendedacl(a: Args, s: Session) -> None:
    weight = a.number("Weight")
    assert weight is not None  # mandatory
    direction = a.text("Direction")
    removed = 0
    for p in _targets(a, s, "VMNetworkAdapterName"):
        kept, n = remove_xacl(p.get("extended_acls") or [], weight, direction)
        if n:
            s.client.update_port(str(p["name"]), {"extended_acls": kept})
        removed += n
    if not removed:
        what = f"{direction} extended ACL" if direction else "extended ACL"
        raise CmdletError(a.cmdlet, f"No {what} of {_who(a)} has weight {weight}.")


# ---------------------------------------------------------------- switch extensions

# The daemon's extension kinds as Hyper-V's ExtensionType.
EXTENSION_TYPES = {"capture": "Capture", "filter": "Filter", "forwarding": "Forwarding"}
SYSTEM_EXTENSION_COLUMNS = ("Name", "Vendor", "Version", "ExtensionType")
SWITCH_EXTENSION_COLUMNS = ("Name", "ExtensionType", "SwitchName", "Enabled", "Running")


def system_extension_obj(ext: Mapping[str, Any]) -> JsonObj:
    return {
        "Name": ext.get("name"),
        # Hyper-V's Vendor is the driver's company; here the Python distribution that installed it.
        "Vendor": ext.get("distribution") or "",
        "Version": ext.get("api_version") or "",
        "ExtensionType": EXTENSION_TYPES.get(str(ext.get("kind")), ""),
        "Description": ext.get("description") or "",
        # Why an installed extension cannot be used (it then has no ExtensionType and is in no stack).
        "Problem": ext.get("problem") or "",
    }


def switch_extension_obj(switch: str, row: Mapping[str, Any], installed: Mapping[str, Any]) -> JsonObj:
    info: Mapping[str, Any] = installed.get(str(row.get("name"))) or {}
    enabled = bool(row.get("enabled"))
    return {
        "Name": row.get("name"),
        "Vendor": info.get("distribution") or "",
        "Version": info.get("api_version") or "",
        "ExtensionType": EXTENSION_TYPES.get(str(row.get("kind")), ""),
        "SwitchName": switch,
        "Enabled": enabled,
        # Every enabled extension in the stack is called for each batch; an exception it raises is
        # contained per call (counted in Errors) and does not stop it, so Running follows Enabled.
        "Running": enabled,
        "Position": row.get("position"),
        "Calls": row.get("calls") or 0,
        "Errors": row.get("errors") or 0,
        "Drops": row.get("drops") or {},
        "Status": row.get("status") or {},
    }


def _patterns(a: Args, name: str) -> list[str] | None:
    return _list_values(a, name) if a.has(name) else None


def _matches(value: str, patterns: Sequence[str] | None) -> bool:
    return patterns is None or any(_like(value, p) for p in patterns)


def _switch_names(a: Args, s: Session, param: str) -> list[str]:
    """The switches ``-param`` names (wildcards allowed), every switch without it."""
    patterns = _patterns(a, param)
    names = [str(sw.get("name")) for sw in s.client.switches()]
    for p in patterns or ():
        if not _has_wildcard(p) and not any(_like(n, p) for n in names):
            raise CmdletError(a.cmdlet, f'Hyper-V was unable to find a virtual switch with name "{p}".')
    return [n for n in names if _matches(n, patterns)]


def _extension_names(a: Args, installed: Sequence[str]) -> list[str]:
    """The installed extensions -Name names (a list, wildcards allowed)."""
    patterns = _patterns(a, "Name") or []
    for p in patterns:
        if not _has_wildcard(p) and not any(_like(n, p) for n in installed):
            raise CmdletError(a.cmdlet, f'Hyper-V was unable to find a switch extension with name "{p}".')
    return [n for n in installed if _matches(n, patterns)]


def _switch_extension_objs(s: Session, switches: Sequence[str], names: Sequence[str] | None) -> list[JsonObj]:
    installed = {str(e.get("name")): e for e in s.client.extensions()}
    return [
        switch_extension_obj(sw, row, installed)
        for sw in switches
        for row in s.client.switch_extensions(sw)
        if _matches(str(row.get("name")), names)
    ]


def get_vmsystemswitchextension(a: Args, s: Session) -> None:
    patterns = _patterns(a, "Name")
    exts = [e for e in s.client.extensions() if _matches(str(e.get("name")), patterns)]
    for p in patterns or ():
        if not _has_wildcard(p) and not any(_like(str(e.get("name")), p) for e in exts):
            raise CmdletError(a.cmdlet, f'Hyper-V was unable to find a switch extension with name "{p}".')
    _print(s, [system_extension_obj(e) for e in exts], SYSTEM_EXTENSION_COLUMNS)


def get_vmswitchextension(a: Args, s: Session) -> None:
    objs = _switch_extension_objs(s, _switch_names(a, s, "VMSwitchName"), _patterns(a, "Name"))
    for p in _patterns(a, "Name") or ():
        if not _has_wildcard(p) and not any(_like(str(o["Name"]), p) for o in objs):
            raise CmdletError(a.cmdlet, f'Hyper-V was unable to find a switch extension with name "{p}".')
    _print(s, objs, SWITCH_EXTENSION_COLUMNS)


def _set_extension_state(a: Args, s: Session, enabled: bool) -> None:
    names = _extension_names(a, [str(e.get("name")) for e in s.client.extensions()])
    switches = _switch_names(a, s, "VMSwitchName")
    for sw in switches:
        set_enabled(s.client, sw, names, enabled)
    if a.flag("Passthru"):
        _print(s, _switch_extension_objs(s, switches, names), SWITCH_EXTENSION_COLUMNS)


def enable_vmswitchextension(a: Args, s: Session) -> None:
    _set_extension_state(a, s, True)


def disable_vmswitchextension(a: Args, s: Session) -> None:
    _set_extension_state(a, s, False)


# ---------------------------------------------------------------- the table of cmdlets

_S = PType.SWITCH
_VID = (1, 4094)
_SWITCH_TYPES = ("Internal", "Private", "External")
_FORCE = (Param("Force", _S), Param("Confirm", _S))
_ADAPTER_SEL = (
    Param("VMName", position=0),
    Param("ManagementOS", _S),
)
_ACL_DIRECTIONS = ("Inbound", "Outbound", "Both")
_XACL_DIRECTIONS = ("Inbound", "Outbound")
_ACL_ADDRESSES = tuple(Param(p) for p in ACL_ADDRESS_PARAMS)

CMDLETS: tuple[Cmdlet, ...] = (
    Cmdlet(
        "New-VMSwitch",
        (
            Param("Name", position=0, mandatory=True, aliases=("SwitchName",)),
            Param("NetAdapterName", aliases=("InterfaceAlias",)),
            Param("SwitchType", choices=_SWITCH_TYPES),
            Param("AllowManagementOS", PType.BOOL),
            Param("Notes"),
            Param("MinimumBandwidthMode", choices=("Default", "Weight", "Absolute", "None")),
            Param("EnableIov", PType.BOOL),
        ),
        new_vmswitch,
        "Create a switch.",
        "-NetAdapterName IF makes it External (with a host vNIC unless -AllowManagementOS $false);\n"
        "otherwise -SwitchType Internal|Private is required. -MinimumBandwidthMode is fixed at creation\n"
        "(Default = Weight). The uplink's line rate: pyvswitch switch add ... --link-speed 1G.",
    ),
    Cmdlet(
        "Get-VMSwitch",
        (Param("Name", position=0, aliases=("SwitchName",)), Param("SwitchType", choices=_SWITCH_TYPES)),
        get_vmswitch,
        "List switches (-Name takes wildcards).",
        "End the line with '| fl' (quoted for the shell) for every property, with the QoS status:\n"
        "BandwidthReservationMode, DefaultFlowMinimumBandwidth*, BandwidthPercentage, Capacity, Reservation.",
    ),
    Cmdlet(
        "Set-VMSwitch",
        (
            Param("Name", position=0, mandatory=True, aliases=("SwitchName",)),
            Param("NetAdapterName", aliases=("InterfaceAlias",)),
            Param("SwitchType", choices=_SWITCH_TYPES),
            Param("AllowManagementOS", PType.BOOL),
            Param("Notes"),
            Param("Extensions"),
            Param("DefaultFlowMinimumBandwidthWeight", PType.UINT32, range=(0, 100)),
            Param("DefaultFlowMinimumBandwidthAbsolute", PType.INT64),
            Param("Passthru", _S),
        ),
        set_vmswitch,
        "Change a switch's adapter, type, management-OS sharing, extension order or default flow.",
        "-Extensions a,b,c puts those extensions first, in that order, within their kind\n"
        "(capture, filter, forwarding); each keeps its enabled state.\n"
        "-DefaultFlowMinimumBandwidthWeight (Weight mode) / -DefaultFlowMinimumBandwidthAbsolute (Absolute mode,\n"
        "bit/s; 100M and 1G suffixes accepted): the share of ports without a minimum of their own.",
    ),
    Cmdlet(
        "Remove-VMSwitch",
        (Param("Name", position=0, mandatory=True, aliases=("SwitchName",)), *_FORCE),
        remove_vmswitch,
        "Remove a switch; its VM adapters stay, disconnected.",
    ),
    Cmdlet(
        "New-VM",
        (Param("Name", position=0, mandatory=True, aliases=("VMName",)), Param("SwitchName")),
        new_vm,
        "Create a VM (a namespace) with one network adapter.",
        "Like Hyper-V, the VM always gets one adapter (eth0); it is connected only with -SwitchName.",
    ),
    Cmdlet(
        "Get-VM",
        (Param("Name", position=0, aliases=("VMName",)),),
        get_vm,
        "List VMs (-Name takes wildcards).",
    ),
    Cmdlet(
        "Remove-VM",
        (Param("Name", position=0, mandatory=True, aliases=("VMName",)), *_FORCE),
        remove_vm,
        "Remove a VM, its adapters and its namespace.",
    ),
    Cmdlet(
        "Add-VMNetworkAdapter",
        (
            *_ADAPTER_SEL,
            Param("SwitchName"),
            Param("Name", aliases=("VMNetworkAdapterName",)),
            Param("StaticMacAddress"),
            Param("Passthru", _S),
        ),
        add_vmnetworkadapter,
        "Add a VM adapter or a management-OS vNIC.",
        "A VM adapter -Name N is the port <VMName>-<N> (default eth<next free>);\n"
        "-ManagementOS needs -Name, which is the host port's name.",
    ),
    Cmdlet(
        "Get-VMNetworkAdapter",
        (
            *_ADAPTER_SEL,
            Param("All", _S),
            Param("Name", aliases=("VMNetworkAdapterName",)),
            Param("SwitchName"),
        ),
        get_vmnetworkadapter,
        "List adapters of -VMName, of the -ManagementOS, or -All.",
    ),
    Cmdlet(
        "Remove-VMNetworkAdapter",
        (
            *_ADAPTER_SEL,
            Param("Name", position=1, aliases=("VMNetworkAdapterName",)),
            *_FORCE,
        ),
        remove_vmnetworkadapter,
        "Remove adapters (all of the VM's unless -Name).",
    ),
    Cmdlet(
        "Connect-VMNetworkAdapter",
        (
            *_ADAPTER_SEL,
            Param("Name", position=1, aliases=("VMNetworkAdapterName",)),
            Param("SwitchName", position=2, mandatory=True),
            Param("Passthru", _S),
        ),
        connect_vmnetworkadapter,
        "Connect adapters (all of the VM's unless -Name) to a switch.",
    ),
    Cmdlet(
        "Disconnect-VMNetworkAdapter",
        (
            *_ADAPTER_SEL,
            Param("Name", position=1, aliases=("VMNetworkAdapterName",)),
            Param("Passthru", _S),
        ),
        disconnect_vmnetworkadapter,
        "Disconnect adapters (all of the VM's unless -Name).",
    ),
    Cmdlet(
        "Set-VMNetworkAdapter",
        (
            *_ADAPTER_SEL,
            Param("Name", position=1, aliases=("VMNetworkAdapterName",)),
            Param("MacAddressSpoofing", choices=ON_OFF),
            Param("DhcpGuard", choices=ON_OFF),
            Param("RouterGuard", choices=ON_OFF),
            Param("AllowTeaming", choices=ON_OFF),
            Param("IeeePriorityTag", choices=ON_OFF),
            Param("StormLimit", PType.UINT32, range=(0, 4_294_967_295)),
            Param("MaximumBandwidth", PType.INT64),
            Param("MinimumBandwidthWeight", PType.UINT32, range=(0, 100)),
            Param("MinimumBandwidthAbsolute", PType.INT64),
            Param("IovWeight", PType.UINT32, range=(0, 100)),
            Param("Passthru", _S),
        ),
        set_vmnetworkadapter,
        "Set port security and bandwidth of adapters (all of the VM's unless -Name).",
        "-MacAddressSpoofing, -DhcpGuard, -RouterGuard, -AllowTeaming, -IeeePriorityTag take On|Off;\n"
        "-StormLimit N is broadcast + multicast + unknown-unicast packets/s (0 = no limit).\n"
        "-MaximumBandwidth / -MinimumBandwidthAbsolute are bit/s (rounded to 8; 100M and 1G suffixes accepted),\n"
        "-MinimumBandwidthWeight 0-100 (Weight-mode switch); they shape what the adapter sends.\n"
        "-IovWeight 1-100 requests a VF on an IOV switch (0 = software path): pyvswitch sriov show.\n"
        "Get-VMNetworkAdapter --json shows the settings.",
    ),
    Cmdlet(
        "Set-VMNetworkAdapterVlan",
        (
            *_ADAPTER_SEL,
            Param("VMNetworkAdapterName"),
            Param("Untagged", _S),
            Param("Access", _S),
            Param("Trunk", _S),
            Param("Isolated", _S),
            Param("Community", _S),
            Param("Promiscuous", _S),
            Param("VlanId", PType.INT, aliases=("AccessVlanId",), range=_VID),
            Param("AllowedVlanIdList"),
            Param("NativeVlanId", PType.INT, range=(0, 4094)),
            Param("PrimaryVlanId", PType.INT, range=_VID),
            Param("SecondaryVlanId", PType.INT, range=_VID),
            Param("SecondaryVlanIdList"),
            Param("Passthru", _S),
        ),
        set_vmnetworkadaptervlan,
        "Set the VLAN mode of adapters (all of the VM's unless named).",
        "One mode with its parameters: -Untagged | -Access -VlanId N | -Trunk -AllowedVlanIdList L\n"
        "-NativeVlanId N | -Isolated|-Community -PrimaryVlanId P -SecondaryVlanId S |\n"
        "-Promiscuous -PrimaryVlanId P -SecondaryVlanIdList L",
    ),
    Cmdlet(
        "Get-VMNetworkAdapterVlan",
        (*_ADAPTER_SEL, Param("VMNetworkAdapterName")),
        get_vmnetworkadaptervlan,
        "List VLAN settings of adapters (every VM's by default).",
    ),
    Cmdlet(
        "Add-VMNetworkAdapterAcl",
        (
            *_ADAPTER_SEL,
            Param("VMNetworkAdapterName"),
            Param("Action", mandatory=True, choices=("Allow", "Deny", "Meter")),
            Param("Direction", mandatory=True, choices=_ACL_DIRECTIONS),
            *_ACL_ADDRESSES,
            Param("Passthru", _S),
        ),
        add_vmnetworkadapteracl,
        "Add port ACL entries to adapters (all of the VM's unless named).",
        "Exactly one of -LocalIPAddress, -RemoteIPAddress, -LocalMacAddress, -RemoteMacAddress\n"
        "(a list adds one entry each); addresses are hosts, prefixes (10.0.0.0/8) or ANY.\n"
        "Local and remote are the VM's; Meter entries must be IP-based.",
    ),
    Cmdlet(
        "Get-VMNetworkAdapterAcl",
        (*_ADAPTER_SEL, Param("VMNetworkAdapterName")),
        get_vmnetworkadapteracl,
        "List port ACL entries of adapters (every VM's by default).",
    ),
    Cmdlet(
        "Remove-VMNetworkAdapterAcl",
        (
            *_ADAPTER_SEL,
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
            *_ADAPTER_SEL,
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
            Param("IsolationID", PType.INT, range=_VID),
            Param("Passthru", _S),
        ),
        add_vmnetworkadapterextendedacl,
        "Add an extended ACL (weighted 5-tuple firewall rule) to adapters.",
        "Highest -Weight is evaluated first, first match decides; a weight is unique per direction.\n"
        "-LocalPort/-RemotePort take 80 or 49152-49182, -Protocol TCP, UDP, ICMP or a number;\n"
        "-Stateful $true (Allow only) admits the return traffic for -IdleSessionTimeout seconds.",
    ),
    Cmdlet(
        "Get-VMNetworkAdapterExtendedAcl",
        (*_ADAPTER_SEL, Param("VMNetworkAdapterName")),
        get_vmnetworkadapterextendedacl,
        "List extended ACLs of adapters in evaluation order (every VM's by default).",
    ),
    Cmdlet(
        "Remove-VMNetworkAdapterExtendedAcl",
        (
            *_ADAPTER_SEL,
            Param("VMNetworkAdapterName"),
            Param("Weight", PType.INT, mandatory=True, range=(1, 2_147_483_647)),
            Param("Direction", choices=_XACL_DIRECTIONS),
        ),
        remove_vmnetworkadapterextendedacl,
        "Remove the extended ACLs with -Weight (of both directions unless -Direction).",
    ),
    Cmdlet(
        "Get-VMSystemSwitchExtension",
        (Param("Name", position=0),),
        get_vmsystemswitchextension,
        "List the extensions installed on this host.",
        "Vendor is the Python distribution that installed it, Version the extension API version.",
    ),
    Cmdlet(
        "Get-VMSwitchExtension",
        (Param("VMSwitchName", position=0, aliases=("SwitchName",)), Param("Name", position=1)),
        get_vmswitchextension,
        "List each switch's extensions in stack order (every switch by default).",
        "--json adds Position, Calls, Errors, Drops and the extension's own Status.",
    ),
    Cmdlet(
        "Enable-VMSwitchExtension",
        (
            Param("Name", position=0, mandatory=True),
            Param("VMSwitchName", position=1, aliases=("SwitchName",)),
            Param("Passthru", _S),
        ),
        enable_vmswitchextension,
        "Enable extensions on a switch (on every switch without -VMSwitchName).",
    ),
    Cmdlet(
        "Disable-VMSwitchExtension",
        (
            Param("Name", position=0, mandatory=True),
            Param("VMSwitchName", position=1, aliases=("SwitchName",)),
            Param("Passthru", _S),
        ),
        disable_vmswitchextension,
        "Disable extensions on a switch (on every switch without -VMSwitchName).",
    ),
)

CMDLETS += netevent_cmdlets()  # New/Get/Start/Stop/Remove-NetEventSession, the capture provider
CMDLETS += sriov_cmdlets()  # Enable/Disable/Set/Get-NetAdapterSriov, Get-NetAdapterSriovVf
CMDLETS += migrate_cmdlets()  # Move-VM (live migration)
CMDLETS += lbfo_cmdlets()  # New/Get/Set/Remove-NetLbfoTeam, *-NetLbfoTeamMember, *-NetLbfoTeamNic
CMDLETS += (
    netqos_cmdlets()
)  # *-NetQosPolicy, *-NetQosTrafficClass, *-NetQosFlowControl, DCBX, *-NetAdapterQos
_BY_NAME = {c.name.lower(): c for c in CMDLETS}


def looks_like_cmdlet(word: str) -> bool:
    """A Verb-Noun word: no verb of the CLI has a hyphen, so this never shadows one."""
    return bool(CMDLET_RE.match(word))


def find(name: str) -> Cmdlet:
    cmd = _BY_NAME.get(name.lower())
    if cmd is None:
        raise CmdletUsageError(
            "",
            f"The term '{name}' is not recognized as a name of a cmdlet supported by pyvswitch. "
            f"Supported: {', '.join(c.name for c in CMDLETS)}.",
        )
    return cmd


def help_text(cmd: Cmdlet) -> str:
    text = f"NAME\n    {cmd.name}\n\nSYNOPSIS\n    {cmd.summary}\n\nSYNTAX\n    {cmd.syntax()}"
    if cmd.notes:
        text += "\n\nREMARKS\n" + "\n".join(f"    {ln}" for ln in cmd.notes.splitlines())
    return text


def epilog() -> str:
    """The cmdlet list for ``pyvswitch --help`` (\\b keeps click from re-wrapping it)."""
    lines = ["Hyper-V cmdlets (pyvswitch CMDLET -Parameter value ...; CMDLET -? for its syntax):", "", "\b"]
    width = max(len(c.name) for c in CMDLETS)
    lines += [f"  {c.name:<{width}}  {c.summary}" for c in CMDLETS]
    return "\n".join(lines)


def _format_list(argv: Sequence[str]) -> tuple[list[str], bool]:
    """A line ending in ``| fl`` / ``| Format-List`` (quoted for the shell): the words before it, and True."""
    words = list(argv)
    tail = [w.lower() for w in words[-2:]]
    if tail[-1:] in (["|fl"], ["|format-list"]):
        return words[:-1], True
    if len(tail) == 2 and tail[0] == "|" and tail[1] in ("fl", "format-list"):
        return words[:-2], True
    return words, False


def run(name: str, argv: Sequence[str], session_factory: Callable[[], Session]) -> int:
    """Run cmdlet ``name``; usage errors raise CmdletUsageError, API errors propagate to the caller."""
    cmd = find(name)
    if any(t in ("-?", "--help", "/?") for t in argv):
        click.echo(help_text(cmd))
        return 0
    argv, format_list = _format_list(argv)
    args = bind(cmd, argv)
    session = session_factory()
    session.format_list = session.format_list or format_list
    with session.client:
        cmd.run(args, session)
    return 0
