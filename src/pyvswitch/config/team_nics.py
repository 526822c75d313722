"""Team interfaces (tNICs, Add-NetLbfoTeamNic) as what the engine runs: a hidden switch per standalone team.

Hyper-V's team that no switch uses is a host adapter: its primary team interface (named as the team) and
its VLAN team interfaces are interfaces of the management OS (hyperv-networking.md §3.6). Linux here has no
802.1Q devices (platform.md), so each tNIC is a TAP the engine makes, behind a switch nobody configured:

- the switch ``_team:<team>`` is External with the team as its uplink (``_team:<team>:uplink``), which carries
  every VLAN (tagged) and untagged frames (VLAN 0), exactly as an External switch's uplink does. The engine
  knows the team itself as ``_team:<team>`` there, because the primary tNIC's interface has the team's name;
- a VLAN tNIC is a TAP port ``_team:<team>:<nic>`` on interface ``<nic>``, Access in its VLAN: it receives
  that VLAN's frames untagged and its frames leave the team with that VLAN's tag. VlanID 0 is an Untagged
  port (untagged and priority-tagged frames, as Windows' VLAN-0 tNIC);
- the primary tNIC is the TAP named as the team. In a VLAN (not Default) mode it is a VLAN tNIC like the
  others. In Default mode it gets what no other tNIC claims: untagged frames untagged, and the frames of every
  unclaimed VLAN with their tag (a trunk with native VLAN 0), as Windows passes them up with the tag. A
  Linux host without VLAN devices ignores tagged frames; a packet socket sees them.

A team used by a switch has no tNIC of its own: the switch does all VLAN separation (``config.validate``
rejects VLAN tNICs there) and the default tNIC is that switch's uplink.

Hidden names start with ``_``, which no user-given switch or port name can (``schema.NAME_RE``), and use
``:``, which no interface name has, so they never collide with configured objects. ``realize`` is pure: the
daemon hands its result to the engine and never stores it, so GET /v1/switches lists only real switches.
"""

from __future__ import annotations

from dataclasses import dataclass

from pyvswitch.config.schema import (
    HostConfig,
    PortConfig,
    PortKind,
    SwitchConfig,
    SwitchType,
    TeamConfig,
    VlanConfig,
    VlanMode,
)
from pyvswitch.config.vocabulary import HIDDEN_TEAM_PREFIX

HIDDEN_PREFIX = HIDDEN_TEAM_PREFIX
IFNAMSIZ = 15  # usable characters of a Linux interface name


@dataclass(frozen=True, slots=True)
class TeamNic:
    """One team interface of a team: the primary (named as the team) or a VLAN tNIC."""

    team: str
    name: str
    vlan_id: int | None  # None: Default mode (primary only)
    primary: bool

    @property
    def display_name(self) -> str:
        """Windows' name for it: the team's name for the primary, ``<Team> - VLAN <id>`` for the others."""
        return self.name if self.primary else display_name(self.team, self.vlan_id or 0)


def display_name(team: str, vlan_id: int) -> str:
    return f"{team} - VLAN {vlan_id}"


def default_nic_name(team: str, vlan_id: int) -> str:
    """A Linux interface name for a VLAN tNIC: ``t1.10``, the team part shortened to fit 15 characters."""
    suffix = f".{vlan_id}"
    return team[: IFNAMSIZ - len(suffix)] + suffix


def team_nics(team: TeamConfig) -> list[TeamNic]:
    """The team's interfaces, primary first (as Get-NetLbfoTeamNic lists them)."""
    return [
        TeamNic(team.name, team.name, team.primary_nic_vlan, True),
        *(TeamNic(team.name, n.name, n.vlan_id, False) for n in team.team_nics),
    ]


def team_users(cfg: HostConfig) -> dict[str, list[str]]:
    """Team name -> the switches whose adapter (net_adapter) it is."""
    teams = {t.name for t in cfg.teams}
    out: dict[str, list[str]] = {}
    for s in cfg.switches:
        if s.net_adapter in teams:
            out.setdefault(s.net_adapter, []).append(s.name)
    return out


def hidden_switch_name(team: str) -> str:
    return f"{HIDDEN_PREFIX}{team}"


def hidden_uplink_name(team: str) -> str:
    return f"{HIDDEN_PREFIX}{team}:uplink"


def hidden_port_name(team: str, nic: str) -> str:
    return f"{HIDDEN_PREFIX}{team}:{nic}"


def is_hidden(name: str) -> bool:
    return name.startswith(HIDDEN_PREFIX)


def hidden_owner(port_name: str) -> tuple[str, str | None] | None:
    """A hidden port's (team, tNIC name or None for the uplink); None for a configured port."""
    if not is_hidden(port_name):
        return None
    team, _, rest = port_name[len(HIDDEN_PREFIX) :].partition(":")
    return team, (None if rest == "uplink" else rest)


def _vlan(nic: TeamNic, claimed: set[int]) -> VlanConfig:
    if nic.vlan_id is None:
        # At most 32 tNICs a team, so some VLAN is always left for the Default one.
        unclaimed = [v for v in range(1, 4095) if v not in claimed]
        return VlanConfig(mode=VlanMode.TRUNK, native_vlan_id=0, allowed_vlan_ids=unclaimed)
    if nic.vlan_id == 0:
        return VlanConfig()
    return VlanConfig(mode=VlanMode.ACCESS, access_vlan_id=nic.vlan_id)


def team_switch(team: TeamConfig) -> tuple[TeamConfig, SwitchConfig, list[PortConfig]]:
    """The team as the engine knows it, and the hidden switch and ports that realize its interfaces.

    The engine takes any port whose interface is a team's name for that team, so the primary tNIC (the TAP
    named as the team) could not be told from the team itself: the engine gets the team under the hidden
    switch's name instead, which also names its TeamDevice (see ``engine_team_name``). Hidden names
    deliberately fail NAME_RE (that keeps them apart from configured names), so they are set with
    ``model_copy`` on objects validated under placeholder names.
    """
    hidden = hidden_switch_name(team.name)
    # The engine needs only the teaming settings: tNIC changes must not look like a team change to it.
    engine_team = team.model_copy(update={"name": hidden, "team_nics": [], "primary_nic_vlan": None})
    sw = SwitchConfig(
        name="team", type=SwitchType.EXTERNAL, net_adapter=team.name, allow_management_os=False
    ).model_copy(update={"name": hidden, "net_adapter": hidden})
    uplink = PortConfig(name="uplink", kind=PortKind.UPLINK, interface=team.name)
    ports = [
        uplink.model_copy(
            update={"name": hidden_uplink_name(team.name), "switch": hidden, "interface": hidden}
        )
    ]
    nics = team_nics(team)
    # A VLAN-0 tNIC shares the untagged frames with a Default one (both are in VLAN 0 inside the switch:
    # broadcasts reach both, unicast goes by MAC); every other VLAN belongs to one tNIC only.
    claimed = {n.vlan_id for n in nics if n.vlan_id}
    for nic in nics:
        port = PortConfig(name="tnic", kind=PortKind.TAP, interface=nic.name, vlan=_vlan(nic, claimed))
        ports.append(
            port.model_copy(update={"name": hidden_port_name(team.name, nic.name), "switch": hidden})
        )
    return engine_team, sw, ports


def engine_team_name(cfg: HostConfig, team: str) -> str:
    """The name the engine knows ``team`` by (the TeamDevice's name): its own if a switch uses it."""
    return team if team in team_users(cfg) else hidden_switch_name(team)


def realize(cfg: HostConfig) -> HostConfig:
    """``cfg`` plus a hidden switch for every team no switch uses (what the engine must run)."""
    users = team_users(cfg)
    if all(t.name in users for t in cfg.teams):
        return cfg
    teams: list[TeamConfig] = []
    switches = list(cfg.switches)
    ports = list(cfg.ports)
    for team in cfg.teams:
        if team.name in users:
            teams.append(team)
            continue
        engine_team, sw, sw_ports = team_switch(team)
        teams.append(engine_team)
        switches.append(sw)
        ports.extend(sw_ports)
    return cfg.model_copy(update={"teams": teams, "switches": switches, "ports": ports})
