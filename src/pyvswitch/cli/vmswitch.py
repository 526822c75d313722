"""The VMSwitch and VM cmdlets: New/Get/Set/Remove-VMSwitch, New/Get/Remove-VM.

Output is Format-Table style; with ``--json`` the same objects are printed with Hyper-V's property names, and
``Get-VMSwitch`` adds each switch's QoS status (BandwidthReservationMode, Capacity, ...) where it is shown.
``Set-VMSwitch -Extensions`` reorders the switch's extensions with ``cli.extensions``' settings edit, the one
the ``extension order`` verb uses.

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
    CmdletError,
    CmdletUsageError,
    Param,
    PType,
    Session,
    has_wildcard,
    like,
    list_values,
)
from pyvswitch.cli.cmdlet.objects import adapter_name, qos_status
from pyvswitch.cli.cmdlet.output import show
from pyvswitch.cli.extensions import extension_settings, ordered_settings
from pyvswitch.cli.units import parse_ps_bytes

SWITCH_COLUMNS = ("Name", "SwitchType", "NetAdapterInterfaceDescription")
VM_COLUMNS = ("Name", "State", "Kind", "NetNs", "NetworkAdapters")


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
    show(s, [switch_obj(s.client.add_switch(body))], SWITCH_COLUMNS)


def get_vmswitch(a: Args, s: Session) -> None:
    name = a.text("Name")
    stype = a.text("SwitchType")
    switches = [
        sw
        for sw in s.client.switches()
        if (name is None or like(str(sw.get("name")), name)) and (stype is None or sw.get("type") == stype)
    ]
    if name is not None and not has_wildcard(name) and not switches:
        raise CmdletError(a.cmdlet, f'Hyper-V was unable to find a virtual switch with name "{name}".')
    # The QoS status only where it is shown: --json and Format-List.
    full = s.json or s.format_list
    show(
        s,
        [switch_obj(sw, qos_status(s, str(sw["name"])) if full else None) for sw in switches],
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
        changes["extensions"] = ordered_settings(configured, stack, list_values(a, "Extensions"))
    sw = s.client.update_switch(name, changes) if changes else s.client.switch(name)
    if a.flag("Passthru"):
        show(s, [switch_obj(sw)], SWITCH_COLUMNS)


def remove_vmswitch(a: Args, s: Session) -> None:
    # Hyper-V asks for confirmation unless -Force; a CLI run from scripts never prompts.
    s.client.delete_switch(str(a.text("Name")))


# ---------------------------------------------------------------- VMs


def _vm_obj(vm: Mapping[str, Any]) -> JsonObj:
    qemu = vm.get("kind") == "qemu"
    return {
        "Name": vm.get("name"),
        "Kind": "Qemu" if qemu else "Namespace",
        # Hyper-V's State column: Running/Off; a namespace VM is always running.
        "State": {"running": "Running", "booting": "Starting", "failed": "Off"}.get(
            vm.get("state") or "", "Off"
        )
        if qemu
        else "Running",
        "MemoryStartup": int(vm.get("memory_mb") or 0) * 2**20 if qemu else None,
        "NetNs": vm.get("netns"),
        "NetworkAdapters": [adapter_name(p) for p in vm.get("ports") or []],
    }


def new_vm(a: Args, s: Session) -> None:
    # Hyper-V's New-VM always gives the VM one network adapter, connected only if -SwitchName is given.
    # -MemoryStartupBytes (or -Kind Qemu) makes it a QEMU guest: a namespace has no memory of its own.
    body: JsonObj = {"name": a.text("Name")}
    if a.has("SwitchName"):
        body["switch"] = a.text("SwitchName")
    qemu = a.has("MemoryStartupBytes") or str(a.text("Kind") or "").lower() == "qemu"
    if qemu:
        body["kind"] = "qemu"
    if a.has("MemoryStartupBytes"):
        try:
            size = parse_ps_bytes(str(a.text("MemoryStartupBytes")))
        except ValueError as exc:
            raise CmdletError(a.cmdlet, f"Cannot bind parameter 'MemoryStartupBytes': {exc}.") from None
        body["memory_mb"] = max(1, size // 2**20)
    vm = s.client.add_vm(body)
    if qemu:
        vm = s.client.wait_vm_booted(str(vm.get("name")))
    show(s, [_vm_obj(vm)], VM_COLUMNS)


def get_vm(a: Args, s: Session) -> None:
    name = a.text("Name")
    vms = [v for v in s.client.vms() if name is None or like(str(v.get("name")), name)]
    if name is not None and not has_wildcard(name) and not vms:
        raise CmdletError(a.cmdlet, f'Hyper-V was unable to find a virtual machine with name "{name}".')
    show(s, [_vm_obj(v) for v in vms], VM_COLUMNS)


def remove_vm(a: Args, s: Session) -> None:
    s.client.delete_vm(str(a.text("Name")))


# ---------------------------------------------------------------- the table

_SWITCH_TYPES = ("Internal", "Private", "External")

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
            Param("Passthru", PType.SWITCH),
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
        (Param("Name", position=0, mandatory=True, aliases=("SwitchName",)), *FORCE_PARAMS),
        remove_vmswitch,
        "Remove a switch; its VM adapters stay, disconnected.",
    ),
    Cmdlet(
        "New-VM",
        (
            Param("Name", position=0, mandatory=True, aliases=("VMName",)),
            Param("SwitchName"),
            Param("MemoryStartupBytes"),
            Param("Kind", choices=("Namespace", "Qemu")),
        ),
        new_vm,
        "Create a VM (a namespace, or a QEMU guest) with one network adapter.",
        "Like Hyper-V, the VM always gets one adapter (eth0); it is connected only with -SwitchName.\n"
        "-MemoryStartupBytes 512MB (or -Kind Qemu) makes it a QEMU guest with that memory (default 256MB):\n"
        "a Linux kernel with a virtio-net NIC on a TAP port, booted before the cmdlet returns.",
    ),
    Cmdlet(
        "Get-VM",
        (Param("Name", position=0, aliases=("VMName",)),),
        get_vm,
        "List VMs (-Name takes wildcards).",
    ),
    Cmdlet(
        "Remove-VM",
        (Param("Name", position=0, mandatory=True, aliases=("VMName",)), *FORCE_PARAMS),
        remove_vm,
        "Remove a VM, its adapters and its namespace.",
    ),
)
