"""The VM network adapter cmdlets: Add/Get/Remove/Connect/Disconnect/Set-VMNetworkAdapter and
Set/Get-VMNetworkAdapterVlan.

Adapters are selected by ``cmdlet.objects`` (a VM adapter ``eth0`` is the port ``<VM>-eth0``); MACs are shown
as Hyper-V prints them (``02155D010203``). ``Set-VMNetworkAdapter`` carries port security (the On|Off guards,
-StormLimit), bandwidth and -IovWeight; ``Get-VMNetworkAdapter --json`` / ``| fl`` add each adapter's QoS
share and SR-IOV path (read by ``cli.sriov``, which owns the SR-IOV routes).

Floor: a cmdlet family, on the framework (``cli.cmdlet``); ``cli.cmdlets`` puts :data:`CMDLETS` in the table.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pyvswitch.cli.client import JsonObj
from pyvswitch.cli.cmdlet.framework import (
    FORCE_PARAMS,
    PARAM_SET_ERROR,
    Args,
    Cmdlet,
    CmdletUsageError,
    Param,
    PType,
    Session,
    like,
    one_of,
)
from pyvswitch.cli.cmdlet.objects import ADAPTER_SELECTION, adapter_name, adapters, qos_status, targets
from pyvswitch.cli.cmdlet.output import show
from pyvswitch.cli.format import echo_json, hyperv_mac
from pyvswitch.cli.sriov import add_iov_fields
from pyvswitch.config.vocabulary import VlanMode, format_vlan_list, parse_vlan_list
from pyvswitch.packet.mac import format_mac, parse_mac

ADAPTER_COLUMNS = ("Name", "VMName", "SwitchName", "MacAddress", "Status", "IPAddresses")
VLAN_COLUMNS = ("VMName", "VMNetworkAdapterName", "Mode", "VlanList")


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


def _print_adapters(s: Session, ports: list[JsonObj]) -> None:
    degraded: Mapping[str, Any] = {}
    shares: dict[str, float] = {}
    if ports:
        degraded = s.client.health().get("degraded") or {}
    if s.json or s.format_list:
        # BandwidthPercentage comes from each switch's QoS status (not shown in the table).
        for sw in sorted({str(p["switch"]) for p in ports if p.get("switch")}):
            status = qos_status(s, sw)
            for name, st in (status.get("ports") or {}).items():
                shares[name] = st.get("bandwidth_percentage") or 0
    objs = [adapter_obj(p, degraded, shares.get(str(p.get("name")))) for p in ports]
    if s.json or s.format_list:
        add_iov_fields(s, ports, objs)  # VF or software path, and why (cli/sriov.py)
    show(s, objs, ADAPTER_COLUMNS)


def _print_vlans(s: Session, ports: list[JsonObj]) -> None:
    objs = [vlan_obj(p) for p in ports]
    if s.json:
        # Mode and VlanList are the table's summary columns, not properties of the Hyper-V object.
        echo_json([{k: v for k, v in o.items() if k not in ("Mode", "VlanList")} for o in objs])
    else:
        show(s, objs, VLAN_COLUMNS)


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


# ---------------------------------------------------------------- adapters


def add_vmnetworkadapter(a: Args, s: Session) -> None:
    which = one_of(a, "VMName", "ManagementOS")
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
    ports = adapters(a, s, "Name")
    sw = a.text("SwitchName")
    if sw is not None:
        ports = [p for p in ports if like(str(p.get("switch") or ""), sw)]
    _print_adapters(s, ports)


def remove_vmnetworkadapter(a: Args, s: Session) -> None:
    for p in targets(a, s, "Name"):
        s.client.delete_port(str(p["name"]))


def connect_vmnetworkadapter(a: Args, s: Session) -> None:
    changed = [
        s.client.update_port(str(p["name"]), {"switch": a.text("SwitchName")}) for p in targets(a, s, "Name")
    ]
    if a.flag("Passthru"):
        _print_adapters(s, changed)


def disconnect_vmnetworkadapter(a: Args, s: Session) -> None:
    changed = [s.client.update_port(str(p["name"]), {"switch": None}) for p in targets(a, s, "Name")]
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
    from pydantic import ValidationError  # pydantic only for the cmdlet that sets a VLAN

    from pyvswitch.config.schema import VlanConfig

    try:
        VlanConfig.model_validate(body)
    except ValidationError as exc:
        msgs = "; ".join(str(e.get("msg", "")).removeprefix("Value error, ") for e in exc.errors())
        raise CmdletUsageError(a.cmdlet, f"The VLAN setting is not valid: {msgs}.") from None
    return body


def set_vmnetworkadaptervlan(a: Args, s: Session) -> None:
    vlan = vlan_from_args(a)
    changed = [
        s.client.update_port(str(p["name"]), {"vlan": vlan}) for p in targets(a, s, "VMNetworkAdapterName")
    ]
    if a.flag("Passthru"):
        _print_vlans(s, changed)


def get_vmnetworkadaptervlan(a: Args, s: Session) -> None:
    _print_vlans(s, adapters(a, s, "VMNetworkAdapterName", default_all_vms=True))


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
    if a.has("VirtualSubnetId"):
        changes["virtual_subnet_id"] = a.number("VirtualSubnetId")
    for param, field_name in BANDWIDTH_SETTINGS.items():
        if a.has(param):
            changes[field_name] = a.number(param)
    return changes


def set_vmnetworkadapter(a: Args, s: Session) -> None:
    changes = security_from_args(a)
    chosen = targets(a, s, "Name")
    changed = [s.client.update_port(str(p["name"]), changes) if changes else p for p in chosen]
    if a.flag("Passthru"):
        _print_adapters(s, changed)


# ---------------------------------------------------------------- the table

_VID = (1, 4094)

CMDLETS: tuple[Cmdlet, ...] = (
    Cmdlet(
        "Add-VMNetworkAdapter",
        (
            *ADAPTER_SELECTION,
            Param("SwitchName"),
            Param("Name", aliases=("VMNetworkAdapterName",)),
            Param("StaticMacAddress"),
            Param("Passthru", PType.SWITCH),
        ),
        add_vmnetworkadapter,
        "Add a VM adapter or a management-OS vNIC.",
        "A VM adapter -Name N is the port <VMName>-<N> (default eth<next free>);\n"
        "-ManagementOS needs -Name, which is the host port's name.",
    ),
    Cmdlet(
        "Get-VMNetworkAdapter",
        (
            *ADAPTER_SELECTION,
            Param("All", PType.SWITCH),
            Param("Name", aliases=("VMNetworkAdapterName",)),
            Param("SwitchName"),
        ),
        get_vmnetworkadapter,
        "List adapters of -VMName, of the -ManagementOS, or -All.",
    ),
    Cmdlet(
        "Remove-VMNetworkAdapter",
        (
            *ADAPTER_SELECTION,
            Param("Name", position=1, aliases=("VMNetworkAdapterName",)),
            *FORCE_PARAMS,
        ),
        remove_vmnetworkadapter,
        "Remove adapters (all of the VM's unless -Name).",
    ),
    Cmdlet(
        "Connect-VMNetworkAdapter",
        (
            *ADAPTER_SELECTION,
            Param("Name", position=1, aliases=("VMNetworkAdapterName",)),
            Param("SwitchName", position=2, mandatory=True),
            Param("Passthru", PType.SWITCH),
        ),
        connect_vmnetworkadapter,
        "Connect adapters (all of the VM's unless -Name) to a switch.",
    ),
    Cmdlet(
        "Disconnect-VMNetworkAdapter",
        (
            *ADAPTER_SELECTION,
            Param("Name", position=1, aliases=("VMNetworkAdapterName",)),
            Param("Passthru", PType.SWITCH),
        ),
        disconnect_vmnetworkadapter,
        "Disconnect adapters (all of the VM's unless -Name).",
    ),
    Cmdlet(
        "Set-VMNetworkAdapter",
        (
            *ADAPTER_SELECTION,
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
            Param("VirtualSubnetId", PType.UINT32, range=(0, 16_777_215)),
            Param("Passthru", PType.SWITCH),
        ),
        set_vmnetworkadapter,
        "Set port security and bandwidth of adapters (all of the VM's unless -Name).",
        "-MacAddressSpoofing, -DhcpGuard, -RouterGuard, -AllowTeaming, -IeeePriorityTag take On|Off;\n"
        "-StormLimit N is broadcast + multicast + unknown-unicast packets/s (0 = no limit).\n"
        "-MaximumBandwidth / -MinimumBandwidthAbsolute are bit/s (rounded to 8; 100M and 1G suffixes accepted),\n"
        "-MinimumBandwidthWeight 0-100 (Weight-mode switch); they shape what the adapter sends.\n"
        "-IovWeight 1-100 requests a VF on an IOV switch (0 = software path): pyvswitch sriov show.\n"
        "-VirtualSubnetId 4096-16777215 puts the adapter on that virtual subnet (HNV; 0 clears it).\n"
        "Get-VMNetworkAdapter --json shows the settings.",
    ),
    Cmdlet(
        "Set-VMNetworkAdapterVlan",
        (
            *ADAPTER_SELECTION,
            Param("VMNetworkAdapterName"),
            Param("Untagged", PType.SWITCH),
            Param("Access", PType.SWITCH),
            Param("Trunk", PType.SWITCH),
            Param("Isolated", PType.SWITCH),
            Param("Community", PType.SWITCH),
            Param("Promiscuous", PType.SWITCH),
            Param("VlanId", PType.INT, aliases=("AccessVlanId",), range=_VID),
            Param("AllowedVlanIdList"),
            Param("NativeVlanId", PType.INT, range=(0, 4094)),
            Param("PrimaryVlanId", PType.INT, range=_VID),
            Param("SecondaryVlanId", PType.INT, range=_VID),
            Param("SecondaryVlanIdList"),
            Param("Passthru", PType.SWITCH),
        ),
        set_vmnetworkadaptervlan,
        "Set the VLAN mode of adapters (all of the VM's unless named).",
        "One mode with its parameters: -Untagged | -Access -VlanId N | -Trunk -AllowedVlanIdList L\n"
        "-NativeVlanId N | -Isolated|-Community -PrimaryVlanId P -SecondaryVlanId S |\n"
        "-Promiscuous -PrimaryVlanId P -SecondaryVlanIdList L",
    ),
    Cmdlet(
        "Get-VMNetworkAdapterVlan",
        (*ADAPTER_SELECTION, Param("VMNetworkAdapterName")),
        get_vmnetworkadaptervlan,
        "List VLAN settings of adapters (every VM's by default).",
    ),
)
