"""QoS routes (hyperv-networking.md §5.4): a switch's QoS status and the host's QoS policies (/v1/qos/policies)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response

from pyvswitch.config.schema import IpProtocolMatch, QosPolicyConfig, QosTemplate
from pyvswitch.daemon.api.common import Request_, patch_changes
from pyvswitch.daemon.dry_run import DRY_RUN
from pyvswitch.daemon.service import Service


class QosPolicyPatch(Request_):
    """Set-NetQosPolicy: only the fields given change; null clears a condition or an action."""

    template: QosTemplate | None = None
    ip_protocol: IpProtocolMatch | None = None
    ip_src_prefix: str | None = None
    ip_dst_prefix: str | None = None
    ip_src_port: int | None = None
    ip_dst_port: int | None = None
    ip_port: int | None = None
    ip_src_port_start: int | None = None
    ip_src_port_end: int | None = None
    ip_dst_port_start: int | None = None
    ip_dst_port_end: int | None = None
    min_bandwidth_weight: int | None = None
    throttle_rate: int | None = None
    dscp: int | None = None
    priority_8021: int | None = None
    precedence: int | None = None


def router(service: Service) -> APIRouter:
    r = APIRouter()

    @r.get("/v1/switches/{name}/qos")
    def switch_qos(name: str) -> dict[str, Any]:
        """QoS status (Get-VMSwitch's Capacity, Reservation, default flow; per port and per class: bytes, drops,
        rate, BandwidthPercentage); ``running`` false: the engine has none, only the configuration speaks."""
        return service.qos_status(name)

    @r.get("/v1/qos/policies")
    def qos_policies() -> list[QosPolicyConfig]:
        return service.qos_policies()

    @r.post("/v1/qos/policies", status_code=201, openapi_extra=DRY_RUN)
    def add_qos_policy(policy: QosPolicyConfig) -> QosPolicyConfig:
        return service.add_qos_policy(policy)

    # {name:path}: policy names are free text ("Live Migration", even a '/').
    @r.get("/v1/qos/policies/{name:path}")
    def qos_policy(name: str) -> QosPolicyConfig:
        return service.qos_policy(name)

    @r.patch("/v1/qos/policies/{name:path}", openapi_extra=DRY_RUN)
    def patch_qos_policy(name: str, body: QosPolicyPatch) -> QosPolicyConfig:
        changes = patch_changes(body, ("ip_protocol", "precedence"))
        return service.update_qos_policy(name, changes)

    @r.delete("/v1/qos/policies/{name:path}", status_code=204, openapi_extra=DRY_RUN)
    def delete_qos_policy(name: str) -> Response:
        service.delete_qos_policy(name)
        return Response(status_code=204)

    return r
