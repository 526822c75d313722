"""NIC teams (New-/Set-/Remove-NetLbfoTeam, Add-/Set-/Remove-NetLbfoTeamMember): builders and requests.

A team no switch uses is a host adapter: its team interfaces are TAPs behind a hidden switch that
``config.team_nics.realize`` derives for the engine (never stored, never listed as a switch). Changes to a team
in use are configuration only: the engine reconfigures the open TeamDevice in place. Team interfaces
(Add-NetLbfoTeamNic ...) are ``team_interfaces.py``'s.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pyvswitch.config.schema import HostConfig, TeamConfig
from pyvswitch.config.team_nics import TeamNic, engine_team_name, team_nics, team_users
from pyvswitch.daemon.service.commit import Change, Transaction, changed
from pyvswitch.daemon.service.errors import Conflict, NotFound, build
from pyvswitch.daemon.service.named import appended, find, replaced
from pyvswitch.errors import ConfigError


def get(cfg: HostConfig, name: str, field: str = "name") -> TeamConfig:
    return find(cfg.teams, name, "team", field)


def nic_view(cfg: HostConfig, nic: TeamNic) -> dict[str, object]:
    """A team interface as Get-NetLbfoTeamNic shows it."""
    users = team_users(cfg).get(nic.team, [])
    return {
        "name": nic.name,
        "team": nic.team,
        "vlan_id": nic.vlan_id,
        "primary": nic.primary,
        "default": nic.vlan_id is None,
        "display_name": nic.display_name,
        # A team in use by a switch has no host interface: its default tNIC is that switch's uplink.
        "switch": users[0] if users else None,
        "interface": None if users else nic.name,
    }


def nic_views(cfg: HostConfig, team: str) -> list[dict[str, object]]:
    """Team ``team``'s interfaces: the primary (named as the team) first, then VLAN tNICs."""
    return [nic_view(cfg, n) for n in team_nics(get(cfg, team, "team"))]


def _one_standby(team: str, standby: str | None) -> Conflict:
    return Conflict(
        "administrative_mode", f"team {team!r} already has a standby member {standby!r} (at most one)"
    )


def add(cfg: HostConfig, team: TeamConfig) -> Change:
    return appended(cfg, "teams", team, "team")


def delete(cfg: HostConfig, name: str) -> Change:
    get(cfg, name)
    users = [s.name for s in cfg.switches if s.net_adapter == name]
    if users:
        raise Conflict("name", f"team {name!r} is the adapter of switch {users[0]!r}")
    return Change(
        cfg.model_copy(update={"teams": [t for t in cfg.teams if t.name != name]}), f"remove team {name}"
    )


def update(cfg: HostConfig, name: str, changes: Mapping[str, Any]) -> Change:
    """Set-NetLbfoTeam: mode, algorithm, LACP timer, delays, fallback; a team in use changes live."""
    old = get(cfg, name)
    if changes.get("name", name) != name:
        raise ConfigError([("name", "a team cannot be renamed")])
    new = build(TeamConfig, {**old.model_dump(), **changes})
    return replaced(cfg, "teams", new, f"set team {name}: {changed(changes)}")


def add_member(cfg: HostConfig, team: str, member: str, standby: bool = False) -> Change:
    """Add-NetLbfoTeamMember [-AdministrativeMode Standby]: at most one standby member a team."""
    old = get(cfg, team, "team")
    owner = next((t.name for t in cfg.teams if member in t.members), None)
    if owner is not None:
        raise Conflict("name", f"{member!r} is already a member of team {owner!r}")
    if standby and old.standby_member is not None:
        raise _one_standby(team, old.standby_member)
    data = {**old.model_dump(), "members": [*old.members, member]}
    if standby:
        data["standby_member"] = member
    new = build(TeamConfig, data)
    fields = {f"members[{len(old.members)}]": "name", "standby_member": "administrative_mode"}
    mode = " (standby)" if standby else ""
    return replaced(cfg, "teams", new, f"team {team}: add member {member}{mode}", fields)


def _member_of(cfg: HostConfig, team: str, member: str) -> TeamConfig:
    old = get(cfg, team, "team")
    if member not in old.members:
        raise NotFound("name", f"{member!r} is not a member of team {team!r}")
    return old


def set_member(cfg: HostConfig, team: str, member: str, standby: bool) -> Change | None:
    """Set-NetLbfoTeamMember -AdministrativeMode Active|Standby; None when nothing changes."""
    old = _member_of(cfg, team, member)
    if standby and old.standby_member not in (None, member):
        raise _one_standby(team, old.standby_member)
    if not standby and old.standby_member != member:
        return None
    new = build(
        TeamConfig,
        {**old.model_dump(), "standby_member": member if standby else None},
        prefix="administrative_mode" if standby else "",
    )
    mode = "Standby" if standby else "Active"
    return replaced(
        cfg, "teams", new, f"team {team}: member {member} {mode}", {"standby_member": "administrative_mode"}
    )


def remove_member(cfg: HostConfig, team: str, member: str) -> Change:
    """Remove-NetLbfoTeamMember; the last member cannot go (Windows: remove the team instead)."""
    old = _member_of(cfg, team, member)
    rest = [m for m in old.members if m != member]
    if not rest:
        raise Conflict("name", f"{member!r} is the last member of team {team!r}; remove the team instead")
    standby = None if old.standby_member == member else old.standby_member
    if standby is not None and rest == [standby]:
        raise Conflict(
            "name",
            f"removing {member!r} would leave only the standby member {standby!r}; "
            "make it Active first (Set-NetLbfoTeamMember -AdministrativeMode Active)",
        )
    new = build(TeamConfig, {**old.model_dump(), "members": rest, "standby_member": standby})
    return replaced(cfg, "teams", new, f"team {team}: remove member {member}")


class TeamOps(Transaction):
    """The service's team requests; a team is shown with its team interfaces and the engine's status of it."""

    def teams(self) -> list[dict[str, object]]:
        return [self.team(t.name) for t in self._cfg.teams]

    def team(self, name: str) -> dict[str, object]:
        cfg = self._cfg
        team = get(cfg, name)
        status = self._engine.team_status(engine_team_name(cfg, name))
        return {**team.model_dump(mode="json"), "nics": nic_views(cfg, name), "status": status}

    def add_team(self, team: TeamConfig) -> dict[str, object]:
        with self._lock:
            self._commit(add(self._cfg, team))
            return self.team(team.name)

    def delete_team(self, name: str) -> None:
        with self._lock:
            self._commit(delete(self._cfg, name))

    def update_team(self, name: str, changes: Mapping[str, Any]) -> dict[str, object]:
        """Set-NetLbfoTeam: mode, algorithm, LACP timer, delays, fallback; a team in use changes live."""
        with self._lock:
            self._commit(update(self._cfg, name, changes))
            return self.team(name)

    def add_team_member(self, team: str, member: str, standby: bool = False) -> dict[str, object]:
        """Add-NetLbfoTeamMember [-AdministrativeMode Standby]: at most one standby member a team."""
        with self._lock:
            self._commit(add_member(self._cfg, team, member, standby))
            return self.team(team)

    def set_team_member(self, team: str, member: str, standby: bool) -> dict[str, object]:
        """Set-NetLbfoTeamMember -AdministrativeMode Active|Standby."""
        with self._lock:
            change = set_member(self._cfg, team, member, standby)
            if change is not None:
                self._commit(change)
            return self.team(team)

    def remove_team_member(self, team: str, member: str) -> None:
        """Remove-NetLbfoTeamMember; the last member cannot go (Windows: remove the team instead)."""
        with self._lock:
            self._commit(remove_member(self._cfg, team, member))
