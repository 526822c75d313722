"""Team interfaces (Add-/Get-/Set-/Remove-NetLbfoTeamNic): builders and the service's requests.

Every team has a primary team interface named as the team (created and removed with it; in Default mode it
carries all VLANs, or one VLAN when given a VlanID); further team interfaces each carry one VLAN. A team no
switch uses realises them as host TAPs (``config.team_nics``); a team in use by a switch has its default
interface as that switch's uplink instead.
"""

from __future__ import annotations

from pyvswitch.config.schema import HostConfig, TeamConfig, TeamNicConfig
from pyvswitch.config.team_nics import default_nic_name, team_nics
from pyvswitch.daemon.service.commit import Change, Transaction
from pyvswitch.daemon.service.errors import Conflict, NotFound, build
from pyvswitch.daemon.service.named import replaced
from pyvswitch.daemon.service.teams import get, nic_views
from pyvswitch.errors import ConfigError


def view(cfg: HostConfig, team: str, name: str) -> dict[str, object]:
    for n in nic_views(cfg, team):
        if n["name"] == name:
            return n
    raise NotFound("name", f"team {team!r} has no team interface {name!r}")


def _vlan_taken(team: str, nic: str, vlan_id: int) -> Conflict:
    return Conflict("vlan_id", f"team interface {nic!r} of team {team!r} already has VlanID {vlan_id}")


def add(cfg: HostConfig, team: str, nic: TeamNicConfig) -> Change:
    """Add-NetLbfoTeamNic -VlanID [-Name]."""
    old = get(cfg, team, "team")
    for n in team_nics(old):
        if n.name == nic.name:
            raise Conflict("name", f"team {team!r} already has a team interface {nic.name!r}")
        if n.vlan_id == nic.vlan_id:
            raise _vlan_taken(team, n.name, nic.vlan_id)
    new = build(TeamConfig, {**old.model_dump(), "team_nics": [*old.team_nics, nic]})
    k = len(old.team_nics)
    return replaced(
        cfg,
        "teams",
        new,
        f"team {team}: add team interface {nic.name} (VLAN {nic.vlan_id})",
        {f"team_nics[{k}].name": "name", f"team_nics[{k}].vlan_id": "vlan_id"},
    )


def update(
    cfg: HostConfig, team: str, name: str, vlan_id: int | None = None, default: bool = False
) -> Change:
    """Set-NetLbfoTeamNic -VlanID N | -Default (Default only for the primary, the one named as the team)."""
    old = get(cfg, team, "team")
    current = view(cfg, team, name)
    if default and vlan_id is not None:
        raise ConfigError([("default", "give vlan_id or default, not both")])
    if not default and vlan_id is None:
        raise ConfigError([("vlan_id", "give vlan_id or default")])
    if vlan_id is not None:
        other = next((n for n in team_nics(old) if n.name != name and n.vlan_id == vlan_id), None)
        if other is not None:
            raise _vlan_taken(team, other.name, vlan_id)
    if current["primary"]:
        new = build(TeamConfig, {**old.model_dump(), "primary_nic_vlan": vlan_id})
        fields = {"primary_nic_vlan": "vlan_id" if vlan_id is not None else "default"}
    else:
        if default:
            raise ConfigError(
                [
                    (
                        "default",
                        f"only the primary team interface ({team!r}, created with the team) can be "
                        "put in Default mode",
                    )
                ]
            )
        k = next(i for i, n in enumerate(old.team_nics) if n.name == name)
        nics = list(old.team_nics)
        nics[k] = build(TeamNicConfig, {"name": name, "vlan_id": vlan_id})
        new = build(TeamConfig, {**old.model_dump(), "team_nics": nics})
        fields = {f"team_nics[{k}].vlan_id": "vlan_id"}
    mode = "Default" if default else f"VLAN {vlan_id}"
    return replaced(cfg, "teams", new, f"team {team}: team interface {name} {mode}", fields)


def delete(cfg: HostConfig, team: str, name: str) -> Change:
    """Remove-NetLbfoTeamNic: its host interface goes; the primary goes only with the team."""
    old = get(cfg, team, "team")
    if view(cfg, team, name)["primary"]:
        raise Conflict(
            "name",
            f"{name!r} is team {team!r}'s primary team interface; it goes with the team (Remove-NetLbfoTeam)",
        )
    new = build(TeamConfig, {**old.model_dump(), "team_nics": [n for n in old.team_nics if n.name != name]})
    return replaced(cfg, "teams", new, f"team {team}: remove team interface {name}")


class TeamNicOps(Transaction):
    """The service's team-interface requests."""

    def team_nics(self, team: str) -> list[dict[str, object]]:
        return nic_views(self._cfg, team)

    def team_nic(self, team: str, name: str) -> dict[str, object]:
        return view(self._cfg, team, name)

    def add_team_nic(self, team: str, vlan_id: int, name: str | None = None) -> dict[str, object]:
        """Add-NetLbfoTeamNic -VlanID [-Name]; the name defaults to ``<team>.<vlan>``."""
        with self._lock:
            get(self._cfg, team, "team")  # a missing team is 404 before the name is checked
            nic = build(TeamNicConfig, {"name": name or default_nic_name(team, vlan_id), "vlan_id": vlan_id})
            self._commit(add(self._cfg, team, nic))
            return self.team_nic(team, nic.name)

    def update_team_nic(
        self, team: str, name: str, vlan_id: int | None = None, default: bool = False
    ) -> dict[str, object]:
        """Set-NetLbfoTeamNic -VlanID N | -Default (Default only for the primary, the one named as the team)."""
        with self._lock:
            self._commit(update(self._cfg, team, name, vlan_id, default))
            return self.team_nic(team, name)

    def delete_team_nic(self, team: str, name: str) -> None:
        """Remove-NetLbfoTeamNic: its host interface goes; the primary goes only with the team."""
        with self._lock:
            self._commit(delete(self._cfg, team, name))
