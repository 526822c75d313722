"""The NetEventPacketCapture cmdlets: New/Get/Start/Stop/Remove-NetEventSession and the capture provider.

A Hyper-V admin's capture script works as typed (hyperv-networking.md §7.2)::

    New-NetEventSession -Name trace1 -LocalFilePath /tmp/trace1.pcapng
    Add-NetEventPacketCaptureProvider -SessionName trace1 -CaptureType Switch -TruncationLength 128
    Add-NetEventVmNetworkAdapter -Name eth0 -VMName web01
    Start-NetEventSession -Name trace1
    Stop-NetEventSession -Name trace1

The session definitions live in the daemon (not persisted); Start runs an ordinary capture session
(``pyvswitch capture list`` shows it). The file is pcapng, not ETL. Where Windows differs: the path is a
Linux path (made absolute here; default ``$TMPDIR/NetTrace.pcapng``); a MaxFileSize (MB, default 250, 0 =
no limit) makes the capture circular as in Windows, the newest frames always at exactly -LocalFilePath and the
half before them in ``<name>_00001.pcapng`` (Get-NetEventSession lists both under Files); an existing file
at either name is refused, never overwritten (a session started again replaces only its own files);
only ``SaveToFile`` is supported; ``-Level``, ``-MultiLayer``, ``-TraceBufferSize`` and
``-MaxNumberOfBuffers`` are accepted and have no effect. ``Add-NetEventVmSwitch`` / ``Add-NetEventVmNetworkAdapter``
act on the one session (or ``-SessionName``); ``-VMName`` picks a VM's adapters (the adapter ``-Name`` is then
optional).

Floor: a cmdlet family, on the framework (``cli.cmdlet``); ``cli.cmdlets`` puts :data:`CMDLETS` in the table.
"""

from __future__ import annotations

import fnmatch
import os
import tempfile
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from pyvswitch.cli.client import JsonObj
from pyvswitch.cli.cmdlet.framework import Args, Cmdlet, CmdletError, Param, PType, Session
from pyvswitch.cli.cmdlet.objects import adapter_name
from pyvswitch.cli.cmdlet.output import show_table

PROVIDER_NAME = "Microsoft-Windows-NDIS-PacketCapture"  # the provider Add-NetEventPacketCaptureProvider adds
DEFAULT_FILE = "NetTrace.pcapng"
SESSION_COLUMNS = ("Name", "SessionStatus", "CaptureMode", "MaxFileSize", "LocalFilePath")
PROVIDER_COLUMNS = ("Name", "SessionName", "CaptureType", "VmCaptureDirection", "TruncationLength")
CAPTURE_MODES = ("SaveToFile", "RealtimeRPC", "RealtimeLocal")
CAPTURE_TYPES = ("Physical", "Switch", "BothPhysicalAndSwitch")
VM_DIRECTIONS = ("Ingress", "Egress", "IngressAndEgress")


def _error(a: Args, message: str) -> Exception:
    return CmdletError(a.cmdlet, message)


def _seg(name: str) -> str:
    return quote(name, safe="")


def _list(a: Args, name: str) -> list[str]:
    """A PowerShell array argument (``0x0800,0x86DD`` / ``'10.0.0.1', '10.0.0.2'``) as its items."""
    raw = a.text(name)
    if raw is None:
        return []
    items = [v.strip() for v in raw.split(",")]
    return [v[1:-1] if len(v) >= 2 and v[0] == v[-1] and v[0] in "'\"" else v for v in items if v]


# ---------------------------------------------------------------- objects as Windows shows them


def session_obj(s: Mapping[str, Any]) -> JsonObj:
    cap = s.get("capture") or {}
    return {
        "Name": s.get("name"),
        "CaptureMode": s.get("capture_mode"),
        "LocalFilePath": s.get("path"),
        "MaxFileSize": s.get("max_file_size_mb"),
        "SessionStatus": s.get("status"),
        "PacketsCaptured": cap.get("captured", 0),
        "PacketsFiltered": cap.get("filtered", 0),
        "PacketsDropped": cap.get("dropped", 0),
        "Files": list(cap.get("files") or []),
    }


def provider_obj(s: Mapping[str, Any]) -> JsonObj:
    p = s.get("provider") or {}
    return {
        "Name": PROVIDER_NAME,
        "SessionName": s.get("name"),
        "CaptureType": p.get("capture_type"),
        "VmCaptureDirection": p.get("vm_capture_direction"),
        "TruncationLength": p.get("truncation_length"),
        "EtherType": list(p.get("ethertypes") or []),
        "IpAddresses": list(p.get("ip_addresses") or []),
        "IpProtocols": list(p.get("ip_protocols") or []),
        "LinkLayerAddress": list(p.get("link_layer_addresses") or []),
        "VmSwitches": list(s.get("vm_switches") or []),
        "VmNetworkAdapters": list(s.get("vm_network_adapters") or []),
    }


def _sessions(s: Session) -> list[JsonObj]:
    return list(s.client.request("GET", "/netevent/sessions"))


def _target_session(a: Args, s: Session) -> str:
    """-SessionName, or the one session there is (Windows has one at a time and these cmdlets name none)."""
    name = a.text("SessionName")
    if name is not None:
        return name
    sessions = _sessions(s)
    if not sessions:
        raise _error(a, "There is no NetEvent session; create one with New-NetEventSession.")
    return str(sessions[0]["name"])


# ---------------------------------------------------------------- the cmdlets


def new_neteventsession(a: Args, s: Session) -> None:
    path = a.text("LocalFilePath") or os.path.join(tempfile.gettempdir(), DEFAULT_FILE)
    body: JsonObj = {"name": a.text("Name"), "path": os.path.abspath(path)}
    if a.has("MaxFileSize"):
        body["max_file_size_mb"] = a.number("MaxFileSize")
    if a.has("CaptureMode"):
        body["capture_mode"] = a.text("CaptureMode")
    created = s.client.request("POST", "/netevent/sessions", json=body)
    show_table(s, [session_obj(created)], SESSION_COLUMNS)


def get_neteventsession(a: Args, s: Session) -> None:
    pattern = a.text("Name")
    sessions = _sessions(s)
    if pattern is not None:
        sessions = [x for x in sessions if fnmatch.fnmatchcase(str(x["name"]).lower(), pattern.lower())]
        if not sessions and not any(c in pattern for c in "*?["):
            raise _error(
                a, f"No MSFT_NetEventSession objects found with property 'Name' equal to '{pattern}'."
            )
    show_table(s, [session_obj(x) for x in sessions], SESSION_COLUMNS)


def _session_action(a: Args, s: Session, action: str) -> None:
    name = str(a.text("Name"))
    result = s.client.request("POST", f"/netevent/sessions/{_seg(name)}/{action}")
    if a.flag("PassThru"):
        show_table(s, [session_obj(result)], SESSION_COLUMNS)


def start_neteventsession(a: Args, s: Session) -> None:
    _session_action(a, s, "start")


def stop_neteventsession(a: Args, s: Session) -> None:
    _session_action(a, s, "stop")


def remove_neteventsession(a: Args, s: Session) -> None:
    name = str(a.text("Name"))
    before = s.client.request("GET", f"/netevent/sessions/{_seg(name)}")
    s.client.request("DELETE", f"/netevent/sessions/{_seg(name)}")
    if a.flag("PassThru"):
        show_table(s, [session_obj(before)], SESSION_COLUMNS)


def add_neteventpacketcaptureprovider(a: Args, s: Session) -> None:
    name = str(a.text("SessionName"))
    body: JsonObj = {}
    for param, field in (("CaptureType", "capture_type"), ("VmCaptureDirection", "vm_capture_direction")):
        if a.has(param):
            body[field] = a.text(param)
    if a.has("TruncationLength"):
        body["truncation_length"] = a.number("TruncationLength")
    for param, field in (
        ("EtherType", "ethertypes"),
        ("IpAddresses", "ip_addresses"),
        ("IpProtocols", "ip_protocols"),
        ("LinkLayerAddress", "link_layer_addresses"),
    ):
        values = _list(a, param)
        if values:
            body[field] = values
    result = s.client.request("POST", f"/netevent/sessions/{_seg(name)}/provider", json=body)
    show_table(s, [provider_obj(result)], PROVIDER_COLUMNS)


def remove_neteventpacketcaptureprovider(a: Args, s: Session) -> None:
    name = str(a.text("SessionName"))
    s.client.request("DELETE", f"/netevent/sessions/{_seg(name)}/provider")


def add_neteventvmswitch(a: Args, s: Session) -> None:
    session = _target_session(a, s)
    result = s.client.request(
        "POST", f"/netevent/sessions/{_seg(session)}/provider/vm-switches", json={"name": a.text("Name")}
    )
    show_table(s, [provider_obj(result)], PROVIDER_COLUMNS)


def add_neteventvmnetworkadapter(a: Args, s: Session) -> None:
    name = a.text("Name")
    vm = a.text("VMName")
    if name is None and vm is None:
        a.need("Name")
    ports: list[JsonObj] = list(s.client.request("GET", "/ports", params={"vm": vm} if vm else None))
    if name is not None:
        exact = [p for p in ports if p.get("name") == name]
        ports = exact or [p for p in ports if p.get("vm") and adapter_name(p) == name]
    if not ports:
        what = f"a network adapter named '{name}'" if name else "any network adapter"
        where = f" on VM '{vm}'" if vm else ""
        raise _error(a, f"Hyper-V was unable to find {what}{where}.")
    if name is not None and vm is None and len({p.get("vm") for p in ports}) > 1:
        vms = ", ".join(sorted(str(p.get("vm")) for p in ports))
        raise _error(
            a, f"The adapter name '{name}' is ambiguous (VMs {vms}); add -VMName or use the port name."
        )
    session = _target_session(a, s)
    result: JsonObj = {}
    for p in ports:
        result = s.client.request(
            "POST",
            f"/netevent/sessions/{_seg(session)}/provider/vm-network-adapters",
            json={"name": p.get("name")},
        )
    show_table(s, [provider_obj(result)], PROVIDER_COLUMNS)


# ---------------------------------------------------------------- the table


# The NetEvent cmdlets, gathered by ``cli.cmdlets``.

_FLAG = PType.SWITCH
CMDLETS: tuple[Cmdlet, ...] = (
    Cmdlet(
        "New-NetEventSession",
        (
            Param("Name", position=0, mandatory=True),
            Param("LocalFilePath"),
            Param("MaxFileSize", PType.UINT32, range=(0, 1024 * 1024)),
            Param("CaptureMode", choices=CAPTURE_MODES),
            Param("TraceBufferSize", PType.UINT32, range=(0, 1024)),
            Param("MaxNumberOfBuffers", PType.UINT32),
        ),
        new_neteventsession,
        "Define a capture session (one at a time) writing a pcapng file.",
        "-LocalFilePath defaults to $TMPDIR/NetTrace.pcapng; -MaxFileSize MB (default 250, 0 = no limit)\n"
        "makes the capture circular: the newest frames at -LocalFilePath, the half before in <name>_00001.\n"
        "Only -CaptureMode SaveToFile; -TraceBufferSize and -MaxNumberOfBuffers have no effect.",
    ),
    Cmdlet(
        "Get-NetEventSession",
        (Param("Name", position=0),),
        get_neteventsession,
        "List NetEvent sessions (status, file, packets captured with --json).",
    ),
    Cmdlet(
        "Start-NetEventSession",
        (Param("Name", position=0, mandatory=True), Param("PassThru", _FLAG)),
        start_neteventsession,
        "Start capturing with the session's packet capture provider.",
    ),
    Cmdlet(
        "Stop-NetEventSession",
        (Param("Name", position=0, mandatory=True), Param("PassThru", _FLAG)),
        stop_neteventsession,
        "Stop a running session and flush its file.",
    ),
    Cmdlet(
        "Remove-NetEventSession",
        (Param("Name", position=0, mandatory=True), Param("PassThru", _FLAG)),
        remove_neteventsession,
        "Remove a session and its provider (a running one is stopped first).",
    ),
    Cmdlet(
        "Add-NetEventPacketCaptureProvider",
        (
            Param("SessionName", position=0, mandatory=True),
            Param("Level", PType.INT, range=(0, 255)),
            Param("CaptureType", choices=CAPTURE_TYPES),
            Param("MultiLayer", PType.BOOL),
            Param("LinkLayerAddress"),
            Param("EtherType"),
            Param("IpAddresses"),
            Param("IpProtocols"),
            Param("TruncationLength", PType.UINT32, range=(0, 65535)),
            Param("VmCaptureDirection", choices=VM_DIRECTIONS),
        ),
        add_neteventpacketcaptureprovider,
        "Give a session its packet capture provider: ports, direction, filters, truncation.",
        "CaptureType Physical (default) = uplinks and bound interfaces, Switch = VM, host vNIC and TAP\n"
        "ports, BothPhysicalAndSwitch = all. VmCaptureDirection Ingress = VM -> switch, Egress = switch -> VM.\n"
        "Lists are comma-separated: -EtherType 0x0800,0x86DD -IpAddresses 10.0.0.1,fd00::/64\n"
        "-IpProtocols 6,17 (or tcp,udp) -LinkLayerAddress 02-15-5D-00-00-01; values of one parameter\n"
        "are OR-ed, parameters AND-ed. TruncationLength defaults to 128 bytes (0 = whole frames).\n"
        "-Level and -MultiLayer have no effect.",
    ),
    Cmdlet(
        "Remove-NetEventPacketCaptureProvider",
        (Param("SessionName", position=0, mandatory=True),),
        remove_neteventpacketcaptureprovider,
        "Remove a session's packet capture provider (and its switch/adapter filters).",
    ),
    Cmdlet(
        "Add-NetEventVmSwitch",
        (Param("Name", position=0, mandatory=True), Param("SessionName")),
        add_neteventvmswitch,
        "Capture only ports of this switch (repeat for more switches).",
    ),
    Cmdlet(
        "Add-NetEventVmNetworkAdapter",
        (Param("Name", position=0), Param("VMName"), Param("SessionName")),
        add_neteventvmnetworkadapter,
        "Capture only this VM network adapter (repeat for more; -VMName: that VM's adapters).",
    ),
)
