"""The REST API of pyvswitchd (docs/contracts.md): FastAPI routes over the Service, errors as field lists.

``create_app(service)`` builds a fresh app; there is no module-level app. Handlers are plain ``def`` so
FastAPI runs them in its thread pool: netlink and SQLite work never blocks the event loop, and the engine's
forwarding thread is only touched through ``engine.apply`` (thread-safe) and its read-only snapshots.

Every rejected request answers ``{"errors": [{"field": path, "message": text}]}``: 400 for invalid requests
(including bodies FastAPI itself rejects), 404 for a missing object, 409 for a conflict.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from enum import StrEnum
from typing import Any

from fastapi import FastAPI, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

import pyvswitch
from pyvswitch.config.schema import (
    AclEntry,
    ExtendedAclEntry,
    ExtensionSetting,
    HostConfig,
    IpProtocolMatch,
    LacpTimer,
    LoadBalancing,
    MinimumBandwidthMode,
    PortConfig,
    PortMirroring,
    QosPolicyConfig,
    QosTemplate,
    SwitchConfig,
    SwitchType,
    TeamConfig,
    TeamingMode,
    TrafficClassAlgorithm,
    TrafficClassConfig,
    VlanConfig,
)
from pyvswitch.config.validate import problems_from_errors
from pyvswitch.daemon.capture_api import add_capture_routes
from pyvswitch.daemon.iov import add_iov_routes
from pyvswitch.daemon.migration import add_migration_routes
from pyvswitch.daemon.service import Service
from pyvswitch.errors import ConfigError, ConflictError, DeviceError, NotFoundError

log = logging.getLogger(__name__)


class Request_(BaseModel):
    model_config = ConfigDict(extra="forbid")


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


class TeamPatch(Request_):
    """Set-NetLbfoTeam: only the fields given change; a team in use changes live."""

    teaming_mode: TeamingMode | None = None
    load_balancing: LoadBalancing | None = None
    lacp_timer: LacpTimer | None = None
    up_delay_ms: int | None = None
    down_delay_ms: int | None = None
    lacp_fallback: bool | None = None
    member_link_speed: int | None = None  # each member's line rate, bit/s (0 = unbounded)


class AdministrativeMode(StrEnum):
    ACTIVE = "Active"
    STANDBY = "Standby"


class TeamMemberAdd(Request_):
    """Add-NetLbfoTeamMember."""

    name: str
    administrative_mode: AdministrativeMode = AdministrativeMode.ACTIVE


class TeamMemberPatch(Request_):
    """Set-NetLbfoTeamMember -AdministrativeMode."""

    administrative_mode: AdministrativeMode


class TeamNicAdd(Request_):
    """Add-NetLbfoTeamNic: name defaults to ``<team>.<vlan>`` (a Linux interface name)."""

    vlan_id: int = Field(ge=0, le=4094)
    name: str | None = None


class TeamNicPatch(Request_):
    """Set-NetLbfoTeamNic -VlanID N | -Default (Default: the primary team interface only)."""

    vlan_id: int | None = Field(None, ge=0, le=4094)
    default: bool = False


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


class DcbPatch(Request_):
    """Set-NetQosDcbxSetting -Willing; Enable/Disable-NetQosFlowControl (the whole list of PFC priorities)."""

    willing: bool | None = None
    flow_control_priorities: list[int] | None = None


class TrafficClassPatch(Request_):
    """Set-NetQosTrafficClass."""

    priorities: list[int] | None = None
    algorithm: TrafficClassAlgorithm | None = None
    bandwidth_percentage: int | None = None


class TraceStart(Request_):
    port: str
    count: int = Field(20, ge=1, le=10_000)


class WhatIf(Request_):
    port: str
    frame: str = ""  # e.g. "dst=02:00:00:00:00:0b vlan=10 tcp dport=80" (observe/describe.py)


class Health(BaseModel):
    """``status`` is "degraded" when forwarding is not progressing or recently failed (``forwarding.problems``
    says why), "ok" otherwise; ``degraded`` lists ports the engine could not open."""

    status: str
    version: str
    degraded: dict[str, str] = Field(default_factory=dict)
    forwarding: dict[str, Any] = Field(default_factory=dict)


def patch_changes(body: BaseModel, not_null: Iterable[str] | None = None) -> dict[str, Any]:
    """The fields a PATCH body sets. null means "unset" only for optional settings: the fields in
    ``not_null`` (every field, when None) refuse it, each error naming its field."""
    changes = body.model_dump(exclude_unset=True)
    keys = changes.keys() if not_null is None else [k for k in not_null if k in changes]
    nulls = [(k, "may not be null") for k in keys if changes[k] is None]
    if nulls:
        raise ConfigError(nulls)
    return changes


def _errors(status: int, problems: list[tuple[str, str]]) -> JSONResponse:
    return JSONResponse(
        status_code=status, content={"errors": [{"field": f, "message": m} for f, m in problems]}
    )


def create_app(service: Service) -> FastAPI:
    """A FastAPI app serving ``service`` under /v1, OpenAPI at /openapi.json."""
    app = FastAPI(title="pyvswitchd", version=pyvswitch.__version__)

    @app.exception_handler(RequestValidationError)
    def _invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        # loc starts with where the value came from ("body", "query", "path"); the rest is the field path.
        problems = problems_from_errors(list(exc.errors()), skip=1)
        return _errors(400, [(f or "body", m) for f, m in problems])

    @app.exception_handler(ConfigError)
    def _config_error(request: Request, exc: ConfigError) -> JSONResponse:
        return _errors(400, exc.problems)

    @app.exception_handler(NotFoundError)
    def _not_found(request: Request, exc: NotFoundError) -> JSONResponse:
        return _errors(404, [(getattr(exc, "field", "name"), str(exc))])

    @app.exception_handler(ConflictError)
    def _conflict(request: Request, exc: ConflictError) -> JSONResponse:
        return _errors(409, [(getattr(exc, "field", "name"), str(exc))])

    @app.exception_handler(DeviceError)
    def _device_error(request: Request, exc: DeviceError) -> JSONResponse:
        log.error("device error: %s", exc)
        return _errors(500, [("interface", str(exc))])

    @app.exception_handler(Exception)
    def _internal(request: Request, exc: Exception) -> JSONResponse:
        # The change was rolled back by the service; say so in the usual shape instead of plain text.
        log.error("%s %s failed", request.method, request.url.path, exc_info=exc)
        return _errors(500, [("", f"internal error: {type(exc).__name__}: {exc}")])

    def switch_view(sw: SwitchConfig) -> SwitchView:
        names = [p.name for p in service.config.ports if p.switch == sw.name]
        return SwitchView(**sw.model_dump(), ports=names)

    def vm_view(name: str) -> VmView:
        vm = service.vm(name)
        return VmView(name=vm.name, netns=vm.namespace, ports=service.ports(vm=name))

    @app.get("/v1/health")
    def health() -> Health:
        forwarding = service.forwarding()
        return Health(
            status=str(forwarding.get("state", "ok")),
            version=pyvswitch.__version__,
            degraded=service.degraded(),
            forwarding=forwarding,
        )

    @app.get("/v1/config")
    def get_config() -> HostConfig:
        return service.config

    @app.put("/v1/config")
    def put_config(cfg: HostConfig) -> HostConfig:
        return service.replace_config(cfg)

    @app.get("/v1/history")
    def history(limit: int = Query(100, ge=1, le=10000)) -> list[dict[str, Any]]:
        return service.history(limit)

    @app.get("/v1/switches")
    def list_switches() -> list[SwitchView]:
        return [switch_view(s) for s in service.config.switches]

    @app.get("/v1/switches/{name}")
    def get_switch(name: str) -> SwitchView:
        return switch_view(service.switch(name))

    @app.post("/v1/switches", status_code=201)
    def add_switch(body: SwitchCreate) -> SwitchView:
        sw = SwitchConfig.model_validate(body.model_dump(exclude={"link_speed"}))
        return switch_view(service.add_switch(sw, link_speed=body.link_speed))

    @app.patch("/v1/switches/{name}")
    def patch_switch(name: str, body: SwitchPatch) -> SwitchView:
        changes = patch_changes(body, ("minimum_bandwidth_mode", "default_flow_minimum_bandwidth_weight"))
        return switch_view(service.update_switch(name, changes))

    @app.get("/v1/switches/{name}/qos")
    def switch_qos(name: str) -> dict[str, Any]:
        """QoS status (Get-VMSwitch's Capacity, Reservation, default flow; per port and per class: bytes, drops,
        rate, BandwidthPercentage); ``running`` false: the engine has none, only the configuration speaks."""
        return service.qos_status(name)

    @app.delete("/v1/switches/{name}", status_code=204)
    def delete_switch(name: str) -> Response:
        service.delete_switch(name)
        return Response(status_code=204)

    @app.get("/v1/vms")
    def list_vms() -> list[VmView]:
        return [vm_view(v.name) for v in service.config.vms]

    @app.get("/v1/vms/{name}")
    def get_vm(name: str) -> VmView:
        return vm_view(name)

    @app.post("/v1/vms", status_code=201)
    def add_vm(body: VmCreate) -> VmView:
        fields = body.model_dump(include={"switch", "ip", "mac", "vlan"}, exclude_unset=True)
        service.add_vm(body.name, netns=body.netns, adapter=body.adapter, port_fields=fields)
        return vm_view(body.name)

    @app.delete("/v1/vms/{name}", status_code=204)
    def delete_vm(name: str) -> Response:
        service.delete_vm(name)
        return Response(status_code=204)

    @app.get("/v1/ports")
    def list_ports(switch: str | None = None, vm: str | None = None) -> list[PortConfig]:
        return service.ports(switch=switch, vm=vm)

    @app.get("/v1/ports/{name}")
    def get_port(name: str) -> PortConfig:
        return service.port(name)

    @app.post("/v1/ports", status_code=201)
    def add_port(port: PortConfig) -> PortConfig:
        return service.add_port(port)

    @app.patch("/v1/ports/{name}")
    def patch_port(name: str, body: PortPatch) -> PortConfig:
        changes = patch_changes(
            body,
            (
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
            ),
        )
        return service.update_port(name, changes)

    @app.delete("/v1/ports/{name}", status_code=204)
    def delete_port(name: str) -> Response:
        service.delete_port(name)
        return Response(status_code=204)

    @app.get("/v1/extensions")
    def extensions() -> list[dict[str, Any]]:
        """Installed extensions (Get-VMSystemSwitchExtension), including ones that failed to load and why."""
        return service.installed_extensions()

    @app.get("/v1/switches/{name}/extensions")
    def switch_extensions(name: str) -> list[dict[str, Any]]:
        """The switch's stack in order (Get-VMSwitchExtension): kind, enabled, counters, run-time status."""
        return service.switch_extensions(name)

    @app.get("/v1/teams")
    def teams() -> list[dict[str, Any]]:
        """Teams (Get-NetLbfoTeam) with their members' state and LACP actor/partner."""
        return service.teams()

    @app.get("/v1/teams/{name}")
    def team(name: str) -> dict[str, Any]:
        return service.team(name)

    @app.post("/v1/teams", status_code=201)
    def add_team(team: TeamConfig) -> dict[str, Any]:
        return service.add_team(team)

    @app.delete("/v1/teams/{name}", status_code=204)
    def delete_team(name: str) -> Response:
        service.delete_team(name)
        return Response(status_code=204)

    @app.patch("/v1/teams/{name}")
    def patch_team(name: str, body: TeamPatch) -> dict[str, Any]:
        changes = patch_changes(body)
        return service.update_team(name, changes)

    @app.post("/v1/teams/{name}/members", status_code=201)
    def add_team_member(name: str, body: TeamMemberAdd) -> dict[str, Any]:
        standby = body.administrative_mode is AdministrativeMode.STANDBY
        return service.add_team_member(name, body.name, standby=standby)

    @app.patch("/v1/teams/{name}/members/{member}")
    def patch_team_member(name: str, member: str, body: TeamMemberPatch) -> dict[str, Any]:
        standby = body.administrative_mode is AdministrativeMode.STANDBY
        return service.set_team_member(name, member, standby=standby)

    @app.delete("/v1/teams/{name}/members/{member}", status_code=204)
    def delete_team_member(name: str, member: str) -> Response:
        service.remove_team_member(name, member)
        return Response(status_code=204)

    @app.get("/v1/teams/{name}/nics")
    def team_nics(name: str) -> list[dict[str, Any]]:
        """Team interfaces (Get-NetLbfoTeamNic): the primary (named as the team) first, then VLAN tNICs."""
        return service.team_nics(name)

    @app.get("/v1/teams/{name}/nics/{nic}")
    def team_nic(name: str, nic: str) -> dict[str, Any]:
        return service.team_nic(name, nic)

    @app.post("/v1/teams/{name}/nics", status_code=201)
    def add_team_nic(name: str, body: TeamNicAdd) -> dict[str, Any]:
        return service.add_team_nic(name, body.vlan_id, body.name)

    @app.patch("/v1/teams/{name}/nics/{nic}")
    def patch_team_nic(name: str, nic: str, body: TeamNicPatch) -> dict[str, Any]:
        return service.update_team_nic(name, nic, vlan_id=body.vlan_id, default=body.default)

    @app.delete("/v1/teams/{name}/nics/{nic}", status_code=204)
    def delete_team_nic(name: str, nic: str) -> Response:
        service.delete_team_nic(name, nic)
        return Response(status_code=204)

    @app.post("/v1/traces", status_code=201)
    def trace_start(body: TraceStart) -> dict[str, Any]:
        """Trace the next ``count`` packets arriving on a port (or a VM's first adapter)."""
        port = service.trace_start(body.port, body.count)
        return {"port": port.name, "switch": port.switch, "count": body.count}

    @app.delete("/v1/traces/{port}", status_code=204)
    def trace_stop(port: str) -> Response:
        service.trace_stop(port)
        return Response(status_code=204)

    @app.get("/v1/traces")
    def traces(port: str | None = None, limit: int = Query(100, ge=1, le=1000)) -> list[dict[str, Any]]:
        return service.traces(port, limit)

    @app.post("/v1/whatif")
    def what_if(body: WhatIf) -> dict[str, Any]:
        """Trace a described frame as if received on ``port``: no learning, counting or sending."""
        return service.what_if(body.port, body.frame)

    @app.get("/v1/fdb/{switch}")
    def fdb(switch: str) -> list[dict[str, Any]]:
        return service.fdb(switch)

    @app.get("/v1/counters", response_model=dict[str, Any])
    async def counters(switch: str | None = None) -> Response:
        # Monitoring polls this often and the forwarding thread shares the GIL with us: answer on the event
        # loop (no worker-thread hop) with plain json.dumps (no jsonable_encoder walk of the nested dicts).
        return Response(json.dumps(service.counters(switch)), media_type="application/json")

    # ---- host QoS policies and DCB (hyperv-networking.md §5.4, §5.5) ----

    @app.get("/v1/qos/policies")
    def qos_policies() -> list[QosPolicyConfig]:
        return service.qos_policies()

    @app.post("/v1/qos/policies", status_code=201)
    def add_qos_policy(policy: QosPolicyConfig) -> QosPolicyConfig:
        return service.add_qos_policy(policy)

    # {name:path}: policy names are free text ("Live Migration", even a '/').
    @app.get("/v1/qos/policies/{name:path}")
    def qos_policy(name: str) -> QosPolicyConfig:
        return service.qos_policy(name)

    @app.patch("/v1/qos/policies/{name:path}")
    def patch_qos_policy(name: str, body: QosPolicyPatch) -> QosPolicyConfig:
        changes = patch_changes(body, ("ip_protocol", "precedence"))
        return service.update_qos_policy(name, changes)

    @app.delete("/v1/qos/policies/{name:path}", status_code=204)
    def delete_qos_policy(name: str) -> Response:
        service.delete_qos_policy(name)
        return Response(status_code=204)

    @app.get("/v1/qos/dcb")
    def dcb() -> dict[str, Any]:
        """DCB settings with the traffic classes as Get-NetQosTrafficClass lists them ([Default] first)."""
        return {**service.dcb().model_dump(mode="json"), "traffic_classes": service.traffic_classes()}

    @app.patch("/v1/qos/dcb")
    def patch_dcb(body: DcbPatch) -> dict[str, Any]:
        changes = patch_changes(body)
        service.update_dcb(changes)
        return dcb()

    @app.get("/v1/qos/traffic-classes")
    def traffic_classes() -> list[dict[str, Any]]:
        return service.traffic_classes()

    @app.post("/v1/qos/traffic-classes", status_code=201)
    def add_traffic_class(tc: TrafficClassConfig) -> dict[str, Any]:
        return service.add_traffic_class(tc)

    @app.get("/v1/qos/traffic-classes/{name}")
    def traffic_class(name: str) -> dict[str, Any]:
        return service.traffic_class(name)

    @app.patch("/v1/qos/traffic-classes/{name}")
    def patch_traffic_class(name: str, body: TrafficClassPatch) -> dict[str, Any]:
        changes = patch_changes(body)
        return service.update_traffic_class(name, changes)

    @app.delete("/v1/qos/traffic-classes/{name}", status_code=204)
    def delete_traffic_class(name: str) -> Response:
        service.delete_traffic_class(name)
        return Response(status_code=204)

    @app.get("/v1/qos/adapters")
    def qos_adapters() -> list[dict[str, Any]]:
        """Adapters DCB can be enabled on (Get-NetAdapterQos): uplink/interface ports' NICs and teams."""
        return service.qos_adapters()

    @app.put("/v1/qos/adapters/{name}")
    def enable_qos_adapter(name: str) -> dict[str, Any]:
        return service.set_qos_adapter(name, True)

    @app.delete("/v1/qos/adapters/{name}")
    def disable_qos_adapter(name: str) -> dict[str, Any]:
        return service.set_qos_adapter(name, False)

    add_capture_routes(app, service.captures)
    if service.iov is not None:  # SR-IOV (daemon/iov.py)
        add_iov_routes(app, service.iov)
        service.iov.start()
    add_migration_routes(app, service)  # live migration (daemon/migration.py)
    return app
