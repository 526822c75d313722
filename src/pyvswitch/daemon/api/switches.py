"""Switch routes (/v1/switches): New-/Get-/Set-/Remove-VMSwitch."""

from __future__ import annotations

from fastapi import APIRouter, Response
from pydantic import Field

from pyvswitch.config.schema import ExtensionSetting, MinimumBandwidthMode, SwitchConfig, SwitchType
from pyvswitch.daemon.api.common import Request_, patch_changes
from pyvswitch.daemon.dry_run import DRY_RUN
from pyvswitch.daemon.service import Service


class SwitchView(SwitchConfig):
    """A switch and the names of the ports connected to it."""

    ports: list[str] = []


class SwitchCreate(SwitchConfig):
    """New-VMSwitch: a SwitchConfig, and the line rate (bit/s) of an External switch's uplink NIC, which
    becomes its uplink port's ``link_speed`` (a team's is its ``member_link_speed`` instead)."""

    link_speed: int | None = Field(None, ge=0, le=10**13)


class SwitchPatch(Request_):
    """Set-VMSwitch: only the fields given change. Giving net_adapter makes the switch External.
    ``minimum_bandwidth_mode`` is accepted only unchanged (it is fixed at creation)."""

    name: str | None = None
    type: SwitchType | None = None
    net_adapter: str | None = None
    allow_management_os: bool | None = None
    flood_unknown_unicast: bool | None = None
    mac_aging_s: float | None = None
    mac_table_size: int | None = None
    notes: str | None = None
    extensions: list[ExtensionSetting] | None = None  # Set-VMSwitch -Extensions / Enable-VMSwitchExtension
    minimum_bandwidth_mode: MinimumBandwidthMode | None = None
    default_flow_minimum_bandwidth_weight: int | None = None
    default_flow_minimum_bandwidth_absolute: int | None = None  # null: 10 % of the capacity


def router(service: Service) -> APIRouter:
    r = APIRouter()

    def switch_view(sw: SwitchConfig) -> SwitchView:
        names = [p.name for p in service.config.ports if p.switch == sw.name]
        return SwitchView(**sw.model_dump(), ports=names)

    @r.get("/v1/switches")
    def list_switches() -> list[SwitchView]:
        return [switch_view(s) for s in service.config.switches]

    @r.get("/v1/switches/{name}")
    def get_switch(name: str) -> SwitchView:
        return switch_view(service.switch(name))

    @r.post("/v1/switches", status_code=201, openapi_extra=DRY_RUN)
    def add_switch(body: SwitchCreate) -> SwitchView:
        sw = SwitchConfig.model_validate(body.model_dump(exclude={"link_speed"}))
        return switch_view(service.add_switch(sw, link_speed=body.link_speed))

    @r.patch("/v1/switches/{name}", openapi_extra=DRY_RUN)
    def patch_switch(name: str, body: SwitchPatch) -> SwitchView:
        changes = patch_changes(body, ("minimum_bandwidth_mode", "default_flow_minimum_bandwidth_weight"))
        return switch_view(service.update_switch(name, changes))

    @r.delete("/v1/switches/{name}", status_code=204, openapi_extra=DRY_RUN)
    def delete_switch(name: str) -> Response:
        service.delete_switch(name)
        return Response(status_code=204)

    return r
