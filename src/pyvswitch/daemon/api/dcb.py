"""DCB routes (hyperv-networking.md §5.5): DCBX and PFC settings, traffic classes, the adapters DCB is on."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response

from pyvswitch.config.schema import TrafficClassAlgorithm, TrafficClassConfig
from pyvswitch.daemon.api.common import Request_, patch_changes
from pyvswitch.daemon.dry_run import DRY_RUN
from pyvswitch.daemon.service import Service


class DcbPatch(Request_):
    """Set-NetQosDcbxSetting -Willing; Enable/Disable-NetQosFlowControl (the whole list of PFC priorities)."""

    willing: bool | None = None
    flow_control_priorities: list[int] | None = None


class TrafficClassPatch(Request_):
    """Set-NetQosTrafficClass."""

    priorities: list[int] | None = None
    algorithm: TrafficClassAlgorithm | None = None
    bandwidth_percentage: int | None = None


def router(service: Service) -> APIRouter:
    r = APIRouter()

    @r.get("/v1/qos/dcb")
    def dcb() -> dict[str, Any]:
        """DCB settings with the traffic classes as Get-NetQosTrafficClass lists them ([Default] first)."""
        return {**service.dcb().model_dump(mode="json"), "traffic_classes": service.traffic_classes()}

    @r.patch("/v1/qos/dcb", openapi_extra=DRY_RUN)
    def patch_dcb(body: DcbPatch) -> dict[str, Any]:
        changes = patch_changes(body)
        service.update_dcb(changes)
        return dcb()

    @r.get("/v1/qos/traffic-classes")
    def traffic_classes() -> list[dict[str, Any]]:
        return service.traffic_classes()

    @r.post("/v1/qos/traffic-classes", status_code=201, openapi_extra=DRY_RUN)
    def add_traffic_class(tc: TrafficClassConfig) -> dict[str, Any]:
        return service.add_traffic_class(tc)

    @r.get("/v1/qos/traffic-classes/{name}")
    def traffic_class(name: str) -> dict[str, Any]:
        return service.traffic_class(name)

    @r.patch("/v1/qos/traffic-classes/{name}", openapi_extra=DRY_RUN)
    def patch_traffic_class(name: str, body: TrafficClassPatch) -> dict[str, Any]:
        changes = patch_changes(body)
        return service.update_traffic_class(name, changes)

    @r.delete("/v1/qos/traffic-classes/{name}", status_code=204, openapi_extra=DRY_RUN)
    def delete_traffic_class(name: str) -> Response:
        service.delete_traffic_class(name)
        return Response(status_code=204)

    @r.get("/v1/qos/adapters")
    def qos_adapters() -> list[dict[str, Any]]:
        """Adapters DCB can be enabled on (Get-NetAdapterQos): uplink/interface ports' NICs and teams."""
        return service.qos_adapters()

    @r.put("/v1/qos/adapters/{name}", openapi_extra=DRY_RUN)
    def enable_qos_adapter(name: str) -> dict[str, Any]:
        return service.set_qos_adapter(name, True)

    @r.delete("/v1/qos/adapters/{name}", openapi_extra=DRY_RUN)
    def disable_qos_adapter(name: str) -> dict[str, Any]:
        return service.set_qos_adapter(name, False)

    return r
