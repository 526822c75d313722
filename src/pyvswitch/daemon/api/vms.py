"""VM routes (/v1/vms): New-/Get-/Remove-VM; a VM is shown with its adapters."""

from __future__ import annotations

from fastapi import APIRouter, Response
from pydantic import BaseModel

from pyvswitch.config.schema import PortConfig, VlanConfig
from pyvswitch.daemon.api.common import Request_
from pyvswitch.daemon.service import Service


class VmCreate(Request_):
    """New-VM with one network adapter ``<name>-eth0`` (unless ``adapter`` is false)."""

    name: str
    netns: str | None = None
    switch: str | None = None
    ip: list[str] | None = None
    mac: str | None = None
    vlan: VlanConfig | None = None
    adapter: bool = True


class VmView(BaseModel):
    name: str
    netns: str
    ports: list[PortConfig]


def router(service: Service) -> APIRouter:
    r = APIRouter()

    def vm_view(name: str) -> VmView:
        vm = service.vm(name)
        return VmView(name=vm.name, netns=vm.namespace, ports=service.ports(vm=name))

    @r.get("/v1/vms")
    def list_vms() -> list[VmView]:
        return [vm_view(v.name) for v in service.config.vms]

    @r.get("/v1/vms/{name}")
    def get_vm(name: str) -> VmView:
        return vm_view(name)

    @r.post("/v1/vms", status_code=201)
    def add_vm(body: VmCreate) -> VmView:
        fields = body.model_dump(include={"switch", "ip", "mac", "vlan"}, exclude_unset=True)
        service.add_vm(body.name, netns=body.netns, adapter=body.adapter, port_fields=fields)
        return vm_view(body.name)

    @r.delete("/v1/vms/{name}", status_code=204)
    def delete_vm(name: str) -> Response:
        service.delete_vm(name)
        return Response(status_code=204)

    return r
