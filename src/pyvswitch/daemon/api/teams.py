"""NIC team routes (/v1/teams): New-/Get-/Set-/Remove-NetLbfoTeam, its members and its team interfaces."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from fastapi import APIRouter, Response
from pydantic import Field

from pyvswitch.config.schema import LacpTimer, LoadBalancing, TeamConfig, TeamingMode
from pyvswitch.daemon.api.common import Request_, patch_changes
from pyvswitch.daemon.dry_run import DRY_RUN
from pyvswitch.daemon.service import Service


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


def router(service: Service) -> APIRouter:
    r = APIRouter()

    @r.get("/v1/teams")
    def teams() -> list[dict[str, Any]]:
        """Teams (Get-NetLbfoTeam) with their members' state and LACP actor/partner."""
        return service.teams()

    @r.get("/v1/teams/{name}")
    def team(name: str) -> dict[str, Any]:
        return service.team(name)

    @r.post("/v1/teams", status_code=201, openapi_extra=DRY_RUN)
    def add_team(team: TeamConfig) -> dict[str, Any]:
        return service.add_team(team)

    @r.delete("/v1/teams/{name}", status_code=204, openapi_extra=DRY_RUN)
    def delete_team(name: str) -> Response:
        service.delete_team(name)
        return Response(status_code=204)

    @r.patch("/v1/teams/{name}", openapi_extra=DRY_RUN)
    def patch_team(name: str, body: TeamPatch) -> dict[str, Any]:
        changes = patch_changes(body)
        return service.update_team(name, changes)

    @r.post("/v1/teams/{name}/members", status_code=201, openapi_extra=DRY_RUN)
    def add_team_member(name: str, body: TeamMemberAdd) -> dict[str, Any]:
        standby = body.administrative_mode is AdministrativeMode.STANDBY
        return service.add_team_member(name, body.name, standby=standby)

    @r.patch("/v1/teams/{name}/members/{member}", openapi_extra=DRY_RUN)
    def patch_team_member(name: str, member: str, body: TeamMemberPatch) -> dict[str, Any]:
        standby = body.administrative_mode is AdministrativeMode.STANDBY
        return service.set_team_member(name, member, standby=standby)

    @r.delete("/v1/teams/{name}/members/{member}", status_code=204, openapi_extra=DRY_RUN)
    def delete_team_member(name: str, member: str) -> Response:
        service.remove_team_member(name, member)
        return Response(status_code=204)

    @r.get("/v1/teams/{name}/nics")
    def team_nics(name: str) -> list[dict[str, Any]]:
        """Team interfaces (Get-NetLbfoTeamNic): the primary (named as the team) first, then VLAN tNICs."""
        return service.team_nics(name)

    @r.get("/v1/teams/{name}/nics/{nic}")
    def team_nic(name: str, nic: str) -> dict[str, Any]:
        return service.team_nic(name, nic)

    @r.post("/v1/teams/{name}/nics", status_code=201, openapi_extra=DRY_RUN)
    def add_team_nic(name: str, body: TeamNicAdd) -> dict[str, Any]:
        return service.add_team_nic(name, body.vlan_id, body.name)

    @r.patch("/v1/teams/{name}/nics/{nic}", openapi_extra=DRY_RUN)
    def patch_team_nic(name: str, nic: str, body: TeamNicPatch) -> dict[str, Any]:
        return service.update_team_nic(name, nic, vlan_id=body.vlan_id, default=body.default)

    @r.delete("/v1/teams/{name}/nics/{nic}", status_code=204, openapi_extra=DRY_RUN)
    def delete_team_nic(name: str, nic: str) -> Response:
        service.delete_team_nic(name, nic)
        return Response(status_code=204)

    return r
