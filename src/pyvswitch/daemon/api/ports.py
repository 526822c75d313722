"""Port routes (/v1/ports): Add-/Get-/Set-/Remove-VMNetworkAdapter, Connect/Disconnect, bound interfaces."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response

from pyvswitch.config.schema import AclEntry, ExtendedAclEntry, PortConfig, PortMirroring, VlanConfig
from pyvswitch.daemon.api.common import Request_, patch_changes
from pyvswitch.daemon.dry_run import DRY_RUN
from pyvswitch.daemon.service import Service


class PortPatch(Request_):
    """Connect/Disconnect (``switch``: name or null), Set-VMNetworkAdapterVlan, Set-VMNetworkAdapter (port
    security), addresses. Values are checked by PortConfig (e.g. ``storm_limit`` >= 0)."""

    switch: str | None = None
    vlan: VlanConfig | None = None
    mac_spoofing: bool | None = None
    dhcp_guard: bool | None = None
    router_guard: bool | None = None
    allow_teaming: bool | None = None
    storm_limit: int | None = None
    mac_limit: int | None = None  # most MACs the port may learn (null: no limit)
    ieee_priority_tag: bool | None = None
    ip: list[str] | None = None
    # The whole list each time (Add/Remove-VMNetworkAdapter(Extended)Acl read, change and send it back).
    acls: list[AclEntry] | None = None
    extended_acls: list[ExtendedAclEntry] | None = None
    port_mirroring: PortMirroring | None = None
    # Set-VMNetworkAdapter bandwidth (bit/s, rounded to 8) and the line rate of an uplink/interface port's NIC.
    maximum_bandwidth: int | None = None
    minimum_bandwidth_weight: int | None = None
    minimum_bandwidth_absolute: int | None = None
    link_speed: int | None = None
    iov_weight: int | None = None  # Set-VMNetworkAdapter -IovWeight (0 = software path; daemon/iov.py)
    virtual_subnet_id: int | None = None  # Set-VMNetworkAdapter -VirtualSubnetId (0 = none; issue 13)


# Settings a PATCH may not set to null. The others take null as a value (``switch``: disconnect, ``mac_limit``:
# no limit) or leave refusing it to PortConfig.
NOT_NULL = (
    "vlan",
    "mac_spoofing",
    "dhcp_guard",
    "router_guard",
    "allow_teaming",
    "storm_limit",
    "ieee_priority_tag",
    "ip",
    "acls",
    "extended_acls",
    "port_mirroring",
    "maximum_bandwidth",
    "minimum_bandwidth_weight",
    "minimum_bandwidth_absolute",
    "link_speed",
    "virtual_subnet_id",
)


def router(service: Service) -> APIRouter:
    r = APIRouter()

    @r.get("/v1/ports")
    def list_ports(switch: str | None = None, vm: str | None = None) -> list[PortConfig]:
        return service.ports(switch=switch, vm=vm)

    @r.get("/v1/ports/{name}/acl-hits")
    def port_acl_hits(name: str) -> dict[str, list[dict[str, Any]]]:
        """Packets each extended ACL entry of the port decided (its own match, or a connection it opened)."""
        return service.acl_hits(name)

    @r.get("/v1/ports/{name}")
    def get_port(name: str) -> PortConfig:
        return service.port(name)

    @r.post("/v1/ports", status_code=201, openapi_extra=DRY_RUN)
    def add_port(port: PortConfig) -> PortConfig:
        return service.add_port(port)

    @r.patch("/v1/ports/{name}", openapi_extra=DRY_RUN)
    def patch_port(name: str, body: PortPatch) -> PortConfig:
        return service.update_port(name, patch_changes(body, NOT_NULL))

    @r.delete("/v1/ports/{name}", status_code=204, openapi_extra=DRY_RUN)
    def delete_port(name: str) -> Response:
        service.delete_port(name)
        return Response(status_code=204)

    return r
