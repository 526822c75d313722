"""Hyper-V's names for the daemon's objects, and which ports and switches a cmdlet's parameters select.

Port names are global in pyvswitch but adapter names are per VM in Hyper-V, so a VM adapter called ``Name`` is
the port ``<VMName>-<Name>``: the first adapter of a VM (port ``<vm>-eth0``) shows as ``eth0`` and is selected
with ``-Name eth0`` (the full port name works too). A management-OS vNIC is the host port of that name.

Part of the framework floor: the VM adapter, ACL and NetEvent families all select adapters this way, so the
rule lives once, below them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from pyvswitch.cli.client import ApiError, JsonObj
from pyvswitch.cli.cmdlet.framework import Args, CmdletError, Param, PType, Session, like, one_of

# The parameters with which the adapter cmdlets select adapters: a VM's (by position) or the management OS's.
ADAPTER_SELECTION = (Param("VMName", position=0), Param("ManagementOS", PType.SWITCH))


def adapter_name(port: Mapping[str, Any]) -> str:
    """A port's name as its VM knows it: ``web01-eth0`` of VM web01 is adapter ``eth0``."""
    name = str(port.get("name"))
    vm = port.get("vm")
    if vm and name.startswith(f"{vm}-") and len(name) > len(vm) + 1:
        return name[len(vm) + 1 :]
    return name


def qos_status(s: Session, switch: str) -> JsonObj:
    """The switch's QoS status; empty from a daemon without the route."""
    try:
        return dict(s.client.request("GET", f"/switches/{quote(switch, safe='')}/qos"))
    except ApiError as exc:
        if exc.status == 404:
            return {}
        raise


def who(a: Args) -> str:
    """Whose adapters a command line names, for error messages."""
    return f"VM '{a.text('VMName')}'" if a.has("VMName") else "the management OS"


def adapters(a: Args, s: Session, name_param: str, *, default_all_vms: bool = False) -> list[JsonObj]:
    """The adapters -VMName / -ManagementOS / -All and the adapter name (wildcards allowed) select."""
    which = one_of(a, "VMName", "ManagementOS", "All")
    if which is None and not default_all_vms:
        a.need("VMName")
    if which == "VMName":
        ports = s.client.ports(vm=a.text("VMName"))
    else:
        kinds = {"ManagementOS": ("host",), "All": ("vm", "host")}.get(which or "", ("vm",))
        ports = [p for p in s.client.ports() if p.get("kind") in kinds]
    name = a.text(name_param)
    if name is not None:
        ports = [p for p in ports if like(adapter_name(p), name) or like(str(p.get("name")), name)]
    return ports


def targets(a: Args, s: Session, name_param: str) -> list[JsonObj]:
    """Like :func:`adapters`, for a cmdlet that changes them: selecting none is an error, not a no-op."""
    ports = adapters(a, s, name_param)
    if not ports:
        name = a.text(name_param)
        what = f"a network adapter named '{name}'" if name else "any network adapter"
        raise CmdletError(a.cmdlet, f"Hyper-V was unable to find {what} on {who(a)}.")
    return ports
