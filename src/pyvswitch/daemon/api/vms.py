"""VM routes (/v1/vms): New-/Get-/Remove-VM; a VM is shown with its adapters (and a QEMU guest with its state);
``POST /v1/vms/{name}/exec`` runs a command in a QEMU guest through its agent (a namespace VM's commands run
client-side with ``ip netns exec``)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Response
from pydantic import BaseModel, Field, SerializerFunctionWrapHandler, model_serializer

from pyvswitch.config.schema import PortConfig, VlanConfig, VmKind
from pyvswitch.daemon.api.common import Request_
from pyvswitch.daemon.dry_run import DRY_RUN
from pyvswitch.daemon.guests import Guests
from pyvswitch.daemon.service import Conflict, Service
from pyvswitch.guest.agent import AgentError
from pyvswitch.guest.qemu import GuestError


class VmCreate(Request_):
    """New-VM with one network adapter ``<name>-eth0`` (unless ``adapter`` is false)."""

    name: str
    kind: VmKind = VmKind.NAMESPACE
    netns: str | None = None
    memory_mb: int | None = None
    cpus: int | None = None
    switch: str | None = None
    ip: list[str] | None = None
    mac: str | None = None
    vlan: VlanConfig | None = None
    adapter: bool = True


class VmView(BaseModel):
    name: str
    kind: VmKind
    netns: str | None  # a namespace VM's
    ports: list[PortConfig]
    # A QEMU guest's: memory, CPUs, and state (booting, running, failed), boot time, why it failed.
    memory_mb: int | None = None
    cpus: int | None = None
    state: str | None = None
    boot_s: float | None = None
    pid: int | None = None
    error: str | None = None

    @model_serializer(mode="wrap")
    def _guest_fields_only_for_guests(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        """A namespace VM's view stays what it was: the guest's fields appear only where they have a value."""
        data: dict[str, Any] = handler(self)
        for key in ("memory_mb", "cpus", "state", "boot_s", "pid", "error"):
            if data.get(key) is None:
                data.pop(key, None)
        return data


class ExecRequest(Request_):
    argv: Annotated[list[str], Field(min_length=1)]
    timeout_s: Annotated[float, Field(gt=0, le=3600)] = 60.0


class ExecResult(BaseModel):
    returncode: int
    stdout: str
    stderr: str


def router(service: Service) -> APIRouter:
    r = APIRouter()

    def guests() -> Guests | None:
        return service.guests if isinstance(service.guests, Guests) else None

    def vm_view(name: str) -> VmView:
        vm = service.vm(name)
        ports = service.ports(vm=name)
        if vm.kind is VmKind.NAMESPACE:
            return VmView(name=vm.name, kind=vm.kind, netns=vm.namespace, ports=ports)
        g = guests()
        status = g.status(name) if g is not None else None
        return VmView(
            name=vm.name,
            kind=vm.kind,
            netns=None,
            ports=ports,
            memory_mb=vm.memory_mb,
            cpus=vm.cpus,
            state=status.state if status else "stopped",
            boot_s=status.boot_s if status else None,
            pid=status.pid if status else None,
            error=status.error if status else None,
        )

    @r.get("/v1/vms")
    def list_vms() -> list[VmView]:
        return [vm_view(v.name) for v in service.config.vms]

    @r.get("/v1/vms/{name}")
    def get_vm(name: str) -> VmView:
        return vm_view(name)

    @r.post("/v1/vms", status_code=201, openapi_extra=DRY_RUN)
    def add_vm(body: VmCreate) -> VmView:
        fields = body.model_dump(include={"switch", "ip", "mac", "vlan"}, exclude_unset=True)
        vm_fields = body.model_dump(include={"kind", "memory_mb", "cpus"}, exclude_none=True)
        service.add_vm(
            body.name, netns=body.netns, adapter=body.adapter, port_fields=fields, vm_fields=vm_fields
        )
        return vm_view(body.name)

    @r.post("/v1/vms/{name}/exec")
    def exec_in_vm(name: str, body: ExecRequest) -> ExecResult:
        vm = service.vm(name)
        g = guests()
        if vm.kind is not VmKind.QEMU or g is None:
            raise Conflict(
                "name", f"VM {name!r} is a namespace: run commands with ip netns exec {vm.namespace}"
            )
        try:
            res = g.run(name, body.argv, body.timeout_s)
        except (GuestError, AgentError) as exc:
            raise Conflict("name", str(exc)) from exc
        return ExecResult(returncode=res.returncode, stdout=res.stdout, stderr=res.stderr)

    @r.delete("/v1/vms/{name}", status_code=204, openapi_extra=DRY_RUN)
    def delete_vm(name: str) -> Response:
        service.delete_vm(name)
        return Response(status_code=204)

    return r
