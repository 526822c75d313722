"""The one write path of pyvswitchd: request -> candidate config -> validate -> provision -> apply -> persist.

Every change, whether it comes from the REST API or from start-up, goes through ``Service._commit``:

1. build the candidate HostConfig from the current one and the request (pydantic validates each object);
2. resolve what the daemon chooses: interface names (``pv`` + 8 hex, <= 15 characters), the peer name
   (``eth<N>`` inside a VM, ``pvh`` + 8 hex for a host vNIC) and dynamic MACs from the pool;
3. validate the whole candidate (``config.validate``) plus what only the OS can tell (a bound interface
   exists); any problem rejects the request whole, naming each field;
4. provision new OS objects (namespaces, veths) through the injected provisioner;
5. ``engine.apply`` the candidate;
6. save it in the store with a summary for the audit history.

If a step fails, the steps before it are undone in reverse (objects created are deleted, objects changed are
changed back, the engine gets the old configuration again), so a request is applied entirely or not at all.
OS objects the candidate no longer needs are removed only after the save, when nothing can roll back any more.

Start-up (``start``) runs the same steps from the stored configuration with nothing assumed to exist: every
namespace and veth is converged (provisioning is idempotent) and the engine gets the whole configuration. A port
whose device cannot be opened at start-up (a NIC that vanished) does not keep the daemon down: it is left
disconnected in the engine, reported by ``degraded()``, and retried when a request touches it or at the next
start. The store always keeps the desired state.

Engine and provisioner are injected (``Engine`` / ``pyvswitch.daemon.provision`` in the daemon, fakes in tests). Calls are
serialised by one lock; reads use the last committed HostConfig, which is immutable, and need no lock.
"""

from __future__ import annotations

import logging
import re
import secrets
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from pydantic import BaseModel, ValidationError

from pyvswitch.config.schema import (
    DcbConfig,
    HostConfig,
    MinimumBandwidthMode,
    PortConfig,
    PortKind,
    QosPolicyConfig,
    SwitchConfig,
    SwitchType,
    TeamConfig,
    TeamNicConfig,
    TrafficClassAlgorithm,
    TrafficClassConfig,
    VmConfig,
)
from pyvswitch.config.store import Store
from pyvswitch.config.team_nics import (
    TeamNic,
    default_nic_name,
    engine_team_name,
    hidden_owner,
    realize,
    team_nics,
    team_users,
)
from pyvswitch.config.validate import (
    default_flow_reservation,
    effective_mode,
    problems_from_validation_error,
    switch_capacity,
    validate,
)
from pyvswitch.daemon.capture import CaptureManager
from pyvswitch.daemon.iov import IovManager
from pyvswitch.daemon.macpool import MacPool
from pyvswitch.errors import ConfigError, ConflictError, DeviceError, NotFoundError
from pyvswitch.observe.capture import CaptureSession
from pyvswitch.observe.describe import DescriptionError
from pyvswitch.observe.describe import build as build_frame

log = logging.getLogger(__name__)

M = TypeVar("M", bound=BaseModel)


class Provisioner(Protocol):
    """The OS side (``pyvswitch.daemon.provision`` satisfies it)."""

    def create_vm_nic(self, netns: str, host_if: str, vm_if: str, mac: str, ips: list[str]) -> None: ...
    def create_host_vnic(self, host_if: str, switch_if: str, mac: str, ips: list[str]) -> None: ...
    def delete_link(self, ifname: str) -> None: ...
    def delete_netns(self, name: str) -> None: ...
    def link_exists(self, ifname: str) -> bool: ...
    def netns_exists(self, name: str) -> bool: ...
    def ensure_netns(self, name: str) -> None: ...


class EngineLike(Protocol):
    """What the service needs of ``pyvswitch.switch.engine.Engine``."""

    def apply(self, cfg: HostConfig) -> None: ...
    def counters(self) -> dict[str, object]: ...
    def health(self) -> dict[str, object]: ...
    def fdb(self, switch: str) -> list[dict[str, object]]: ...
    def installed_extensions(self) -> list[dict[str, object]]: ...
    def team_status(self, name: str) -> dict[str, object] | None: ...
    def trace_start(self, switch: str, port: str, count: int) -> None: ...
    def trace_stop(self, switch: str, port: str) -> None: ...
    def traces(self, switch: str | None, port: str | None, limit: int = 100) -> list[dict[str, object]]: ...
    def what_if(self, switch: str, port: str, frame: bytes, tci: int) -> dict[str, object]: ...
    def add_capture(self, session: CaptureSession) -> None: ...
    def remove_capture(self, session_id: str) -> CaptureSession | None: ...


class NotFound(NotFoundError):
    """A named object does not exist; ``field`` names the request field that named it."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


class Conflict(ConflictError):
    """The request conflicts with existing state; ``field`` names the request field concerned."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True, slots=True)
class NicSpec:
    """A veth pair the daemon owns, as provisioning creates it."""

    kind: PortKind  # VM or HOST
    netns: str | None  # the VM's namespace; None for a host vNIC
    interface: str  # switch-side end, in the daemon's namespace
    peer: str  # eth<N> in the VM, or the host vNIC
    mac: str
    ips: tuple[str, ...]

    @property
    def identity(self) -> tuple[PortKind, str | None, str, str]:
        """What cannot change in place: a different identity is a different veth."""
        return (self.kind, self.netns, self.interface, self.peer)


def nic_specs(cfg: HostConfig) -> dict[str, NicSpec]:
    """Port name -> the veth the daemon must provide for it (VM adapters and host vNICs, resolved)."""
    namespaces = {v.name: v.namespace for v in cfg.vms}
    out: dict[str, NicSpec] = {}
    for p in cfg.ports:
        if p.kind not in (PortKind.VM, PortKind.HOST):
            continue
        if p.interface is None or p.peer_interface is None or p.mac is None:
            raise ValueError(f"port {p.name!r} is not resolved")
        netns = namespaces.get(p.vm or "") if p.kind is PortKind.VM else None
        out[p.name] = NicSpec(p.kind, netns, p.interface, p.peer_interface, p.mac, tuple(p.ip))
    return out


def request_paths(
    problems: list[tuple[str, str]], cfg: HostConfig, collection: str, name: str
) -> list[tuple[str, str]]:
    """Rewrite ``ports[3].vlan`` to ``vlan`` when ``ports[3]`` is the object named ``name``."""
    items = getattr(cfg, collection)
    index = next((i for i, item in enumerate(items) if item.name == name), None)
    if index is None:
        return problems
    prefix = f"{collection}[{index}]."
    return [(path.removeprefix(prefix), msg) for path, msg in problems]


def vm_namespaces(cfg: HostConfig) -> set[str]:
    return {v.namespace for v in cfg.vms}


def build(model: type[M], data: Mapping[str, Any], prefix: str = "") -> M:
    """Validate ``data`` as ``model``; a failure is a ConfigError with paths under ``prefix``."""
    try:
        return model.model_validate(dict(data))
    except ValidationError as exc:
        raise ConfigError(problems_from_validation_error(exc, prefix)) from exc


def uplink_port_name(switch: str) -> str:
    # Port names are limited to 32 characters; a clash after truncation is reported by validation.
    return f"{switch[:25]}-uplink"


class Service:
    """Desired state, its validation and its realisation: the daemon's only writer."""

    def __init__(
        self,
        store: Store,
        engine: EngineLike,
        provisioner: Provisioner,
        macpool: MacPool,
        new_ifname: Callable[[str], str] | None = None,
    ) -> None:
        self._store = store
        self._engine = engine
        self._os = provisioner
        self._pool = macpool
        self._new_ifname = new_ifname or (lambda prefix: prefix + secrets.token_hex(4))
        self._lock = threading.RLock()
        self._cfg = HostConfig()
        self._degraded: dict[str, str] = {}
        # OS objects a commit must leave in place although the new configuration drops them: the veths and
        # namespace of a VM leaving by live migration (daemon/migration.py), which another host adopts.
        self._keep: set[str] = set()
        # Veths (and VM namespaces) a live migration just moved into this namespace: they exist as configured,
        # so provisioning leaves them alone (the engine's device brings the link up), which keeps the
        # namespace round trips (~35-100 ms) out of the blackout.
        self._adopting: set[str] = set()
        # Capture sessions and NetEvent session definitions: run-time state, not persisted.
        self.captures = CaptureManager(engine, lambda: self._cfg)
        # SR-IOV (daemon/iov.py): the VF plan and the emulated NIC switch; None with an engine that cannot
        # program one (the API's test fakes).
        self.iov: IovManager | None = (
            IovManager(engine, lambda: self._cfg, self.replace_config)  # type: ignore[arg-type]
            if hasattr(engine, "set_nic_switched")
            else None
        )

    # ---- reads (the committed config is immutable) ----

    @property
    def config(self) -> HostConfig:
        return self._cfg

    def degraded(self) -> dict[str, str]:
        """Ports the engine could not open at start-up, with the reason; they are retried when touched."""
        return dict(self._degraded)

    def forwarding(self) -> dict[str, object]:
        """Whether the data path is progressing (Engine.health): state, problems, restarts, resyncs."""
        return self._engine.health()

    def history(self, limit: int = 100) -> list[dict[str, Any]]:
        return self._store.history(limit)

    def switch(self, name: str) -> SwitchConfig:
        for s in self._cfg.switches:
            if s.name == name:
                return s
        raise NotFound("name", f"no switch {name!r}")

    def vm(self, name: str) -> VmConfig:
        for v in self._cfg.vms:
            if v.name == name:
                return v
        raise NotFound("name", f"no VM {name!r}")

    def port(self, name: str) -> PortConfig:
        for p in self._cfg.ports:
            if p.name == name:
                return p
        raise NotFound("name", f"no port {name!r}")

    def ports(self, switch: str | None = None, vm: str | None = None) -> list[PortConfig]:
        if switch is not None:
            try:
                self.switch(switch)
            except NotFound:
                raise NotFound("switch", f"no switch {switch!r}") from None
        if vm is not None:
            try:
                self.vm(vm)
            except NotFound:
                raise NotFound("vm", f"no VM {vm!r}") from None
        return [
            p
            for p in self._cfg.ports
            if (switch is None or p.switch == switch) and (vm is None or p.vm == vm)
        ]

    def installed_extensions(self) -> list[dict[str, object]]:
        return self._engine.installed_extensions()

    # ---- teams (New-NetLbfoTeam) ----
    #
    # A team no switch uses is a host adapter: its team interfaces are TAPs behind a hidden switch that
    # ``config.team_nics.realize`` derives for the engine (never stored, never listed as a switch). Changes
    # to a team in use are configuration only: the engine reconfigures the open TeamDevice in place.

    def teams(self) -> list[dict[str, object]]:
        return [self.team(t.name) for t in self._cfg.teams]

    def _team_config(self, name: str, field: str = "name") -> TeamConfig:
        team = next((t for t in self._cfg.teams if t.name == name), None)
        if team is None:
            raise NotFound(field, f"no team {name!r}")
        return team

    def team(self, name: str) -> dict[str, object]:
        cfg = self._cfg
        team = self._team_config(name)
        status = self._engine.team_status(engine_team_name(cfg, name))
        return {**team.model_dump(mode="json"), "nics": self.team_nics(name), "status": status}

    def add_team(self, team: TeamConfig) -> dict[str, object]:
        with self._lock:
            cfg = self._cfg
            if any(t.name == team.name for t in cfg.teams):
                raise Conflict("name", f"team {team.name!r} already exists")
            self._commit(
                cfg.model_copy(update={"teams": [*cfg.teams, team]}),
                f"add team {team.name}",
                focus=("teams", team.name),
            )
            return self.team(team.name)

    def delete_team(self, name: str) -> None:
        with self._lock:
            cfg = self._cfg
            self._team_config(name)
            users = [s.name for s in cfg.switches if s.net_adapter == name]
            if users:
                raise Conflict("name", f"team {name!r} is the adapter of switch {users[0]!r}")
            self._commit(
                cfg.model_copy(update={"teams": [t for t in cfg.teams if t.name != name]}),
                f"remove team {name}",
            )

    def _replace_team(
        self, new: TeamConfig, summary: str, fields: Mapping[str, str] | None = None
    ) -> dict[str, object]:
        cfg = self._cfg
        teams = [new if t.name == new.name else t for t in cfg.teams]
        self._commit(
            cfg.model_copy(update={"teams": teams}), summary, focus=("teams", new.name), fields=fields
        )
        return self.team(new.name)

    def update_team(self, name: str, changes: Mapping[str, Any]) -> dict[str, object]:
        """Set-NetLbfoTeam: mode, algorithm, LACP timer, delays, fallback; a team in use changes live."""
        with self._lock:
            old = self._team_config(name)
            if changes.get("name", name) != name:
                raise ConfigError([("name", "a team cannot be renamed")])
            new = build(TeamConfig, {**old.model_dump(), **changes})
            what = ", ".join(sorted(changes)) or "nothing"
            return self._replace_team(new, f"set team {name}: {what}")

    def add_team_member(self, team: str, member: str, standby: bool = False) -> dict[str, object]:
        """Add-NetLbfoTeamMember [-AdministrativeMode Standby]: at most one standby member a team."""
        with self._lock:
            old = self._team_config(team, "team")
            owner = next((t.name for t in self._cfg.teams if member in t.members), None)
            if owner is not None:
                raise Conflict("name", f"{member!r} is already a member of team {owner!r}")
            if standby and old.standby_member is not None:
                raise Conflict(
                    "administrative_mode",
                    f"team {team!r} already has a standby member {old.standby_member!r} (at most one)",
                )
            data = {**old.model_dump(), "members": [*old.members, member]}
            if standby:
                data["standby_member"] = member
            new = build(TeamConfig, data)
            fields = {f"members[{len(old.members)}]": "name", "standby_member": "administrative_mode"}
            mode = " (standby)" if standby else ""
            return self._replace_team(new, f"team {team}: add member {member}{mode}", fields)

    def set_team_member(self, team: str, member: str, standby: bool) -> dict[str, object]:
        """Set-NetLbfoTeamMember -AdministrativeMode Active|Standby."""
        with self._lock:
            old = self._team_config(team, "team")
            if member not in old.members:
                raise NotFound("name", f"{member!r} is not a member of team {team!r}")
            if standby and old.standby_member not in (None, member):
                raise Conflict(
                    "administrative_mode",
                    f"team {team!r} already has a standby member {old.standby_member!r} (at most one)",
                )
            if not standby and old.standby_member != member:
                return self.team(team)
            new = build(
                TeamConfig,
                {**old.model_dump(), "standby_member": member if standby else None},
                prefix="administrative_mode" if standby else "",
            )
            mode = "Standby" if standby else "Active"
            return self._replace_team(
                new, f"team {team}: member {member} {mode}", {"standby_member": "administrative_mode"}
            )

    def remove_team_member(self, team: str, member: str) -> None:
        """Remove-NetLbfoTeamMember; the last member cannot go (Windows: remove the team instead)."""
        with self._lock:
            old = self._team_config(team, "team")
            if member not in old.members:
                raise NotFound("name", f"{member!r} is not a member of team {team!r}")
            rest = [m for m in old.members if m != member]
            if not rest:
                raise Conflict(
                    "name", f"{member!r} is the last member of team {team!r}; remove the team instead"
                )
            standby = None if old.standby_member == member else old.standby_member
            if standby is not None and rest == [standby]:
                raise Conflict(
                    "name",
                    f"removing {member!r} would leave only the standby member {standby!r}; "
                    "make it Active first (Set-NetLbfoTeamMember -AdministrativeMode Active)",
                )
            new = build(TeamConfig, {**old.model_dump(), "members": rest, "standby_member": standby})
            self._replace_team(new, f"team {team}: remove member {member}")

    # ---- team interfaces (Add/Get/Set/Remove-NetLbfoTeamNic) ----

    def _nic_view(self, nic: TeamNic) -> dict[str, object]:
        users = team_users(self._cfg).get(nic.team, [])
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

    def team_nics(self, team: str) -> list[dict[str, object]]:
        return [self._nic_view(n) for n in team_nics(self._team_config(team, "team"))]

    def team_nic(self, team: str, name: str) -> dict[str, object]:
        for n in team_nics(self._team_config(team, "team")):
            if n.name == name:
                return self._nic_view(n)
        raise NotFound("name", f"team {team!r} has no team interface {name!r}")

    def add_team_nic(self, team: str, vlan_id: int, name: str | None = None) -> dict[str, object]:
        """Add-NetLbfoTeamNic -VlanID [-Name]; the name defaults to ``<team>.<vlan>``."""
        with self._lock:
            old = self._team_config(team, "team")
            nic = build(TeamNicConfig, {"name": name or default_nic_name(team, vlan_id), "vlan_id": vlan_id})
            for n in team_nics(old):
                if n.name == nic.name:
                    raise Conflict("name", f"team {team!r} already has a team interface {nic.name!r}")
                if n.vlan_id == nic.vlan_id:
                    raise Conflict(
                        "vlan_id", f"team interface {n.name!r} of team {team!r} already has VlanID {vlan_id}"
                    )
            new = build(TeamConfig, {**old.model_dump(), "team_nics": [*old.team_nics, nic]})
            k = len(old.team_nics)
            self._replace_team(
                new,
                f"team {team}: add team interface {nic.name} (VLAN {vlan_id})",
                {f"team_nics[{k}].name": "name", f"team_nics[{k}].vlan_id": "vlan_id"},
            )
            return self.team_nic(team, nic.name)

    def update_team_nic(
        self, team: str, name: str, vlan_id: int | None = None, default: bool = False
    ) -> dict[str, object]:
        """Set-NetLbfoTeamNic -VlanID N | -Default (Default only for the primary, the one named as the team)."""
        with self._lock:
            old = self._team_config(team, "team")
            current = self.team_nic(team, name)
            if default and vlan_id is not None:
                raise ConfigError([("default", "give vlan_id or default, not both")])
            if not default and vlan_id is None:
                raise ConfigError([("vlan_id", "give vlan_id or default")])
            if vlan_id is not None:
                other = next((n for n in team_nics(old) if n.name != name and n.vlan_id == vlan_id), None)
                if other is not None:
                    raise Conflict(
                        "vlan_id",
                        f"team interface {other.name!r} of team {team!r} already has VlanID {vlan_id}",
                    )
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
            self._replace_team(new, f"team {team}: team interface {name} {mode}", fields)
            return self.team_nic(team, name)

    def delete_team_nic(self, team: str, name: str) -> None:
        """Remove-NetLbfoTeamNic: its host interface goes; the primary goes only with the team."""
        with self._lock:
            old = self._team_config(team, "team")
            nic = self.team_nic(team, name)
            if nic["primary"]:
                raise Conflict(
                    "name",
                    f"{name!r} is team {team!r}'s primary team interface; it goes with the team "
                    "(Remove-NetLbfoTeam)",
                )
            new = build(
                TeamConfig,
                {**old.model_dump(), "team_nics": [n for n in old.team_nics if n.name != name]},
            )
            self._replace_team(new, f"team {team}: remove team interface {name}")

    # ---- tracing ----

    def traced_port(self, name: str) -> PortConfig:
        """A port by name, or a VM's first adapter by VM name (``trace web01``); it must be connected."""
        port = next((p for p in self._cfg.ports if p.name == name), None)
        if port is None:
            port = next((p for p in self._cfg.ports if p.vm == name), None)
        if port is None:
            raise NotFound("port", f"no port or VM {name!r}")
        if port.switch is None:
            raise ConfigError([("port", f"port {port.name!r} is not connected to a switch")])
        return port

    def trace_start(self, name: str, count: int) -> PortConfig:
        port = self.traced_port(name)
        assert port.switch is not None
        self._engine.trace_start(port.switch, port.name, count)
        return port

    def trace_stop(self, name: str) -> None:
        port = self.traced_port(name)
        assert port.switch is not None
        self._engine.trace_stop(port.switch, port.name)

    def traces(self, name: str | None, limit: int) -> list[dict[str, object]]:
        if name is None:
            return self._engine.traces(None, None, limit)
        port = self.traced_port(name)
        return self._engine.traces(port.switch, port.name, limit)

    def what_if(self, name: str, description: str) -> dict[str, object]:
        port = self.traced_port(name)
        assert port.switch is not None
        try:
            frame, tci = build_frame(description, default_src=port.mac)
        except DescriptionError as e:
            raise ConfigError([("frame", str(e))]) from e
        return self._engine.what_if(port.switch, port.name, frame, tci)

    def switch_extensions(self, name: str) -> list[dict[str, object]]:
        self.switch(name)
        switches = self._engine.counters().get("switches")
        sw = switches.get(name) if isinstance(switches, dict) else None
        stack = sw.get("extensions") if isinstance(sw, dict) else None
        return list(stack) if isinstance(stack, list) else []

    def fdb(self, switch: str) -> list[dict[str, object]]:
        if not any(s.name == switch for s in self._cfg.switches):
            raise NotFound("switch", f"no switch {switch!r}")
        return self._engine.fdb(switch)

    def counters(self, switch: str | None = None) -> dict[str, object]:
        data = self._engine.counters()
        if switch is None:
            return data
        try:
            self.switch(switch)
        except NotFound:
            raise NotFound("switch", f"no switch {switch!r}") from None
        switches = data.get("switches", {})
        per = switches.get(switch, {}) if isinstance(switches, dict) else {}
        return {"switches": {switch: per}}

    # ---- writes ----

    def replace_config(self, cfg: HostConfig, summary: str = "replace configuration") -> HostConfig:
        """Make ``cfg`` the whole desired state (taken as given: no ports are added for switch types)."""
        with self._lock:
            return self._commit(cfg, summary)

    def add_switch(self, sw: SwitchConfig, link_speed: int | None = None) -> SwitchConfig:
        """New-VMSwitch; ``link_speed`` (bit/s) is the line rate of an External switch's uplink NIC."""
        with self._lock:
            cfg = self._cfg
            if any(s.name == sw.name for s in cfg.switches):
                raise Conflict("name", f"switch {sw.name!r} already exists")
            ports = switch_ports(sw, list(cfg.ports))
            if link_speed is not None:
                if sw.net_adapter is None:
                    raise ConfigError([("link_speed", "only an External switch has an uplink NIC")])
                team = next((t for t in cfg.teams if t.name == sw.net_adapter), None)
                if team is not None:
                    raise ConfigError(
                        [
                            (
                                "link_speed",
                                f"{team.name!r} is a team: its line rate is its members' (member_link_speed, "
                                f"PATCH /v1/teams/{team.name})",
                            )
                        ]
                    )
                ports = [
                    build(PortConfig, {**p.model_dump(), "link_speed": link_speed}, "link_speed")
                    if p.switch == sw.name and p.kind is PortKind.UPLINK
                    else p
                    for p in ports
                ]
            self._commit(
                cfg.model_copy(update={"switches": [*cfg.switches, sw], "ports": ports}),
                f"add switch {sw.name} ({sw.type.value})",
                focus=("switches", sw.name),
            )
            return self.switch(sw.name)

    def update_switch(self, name: str, changes: Mapping[str, Any]) -> SwitchConfig:
        """Set-VMSwitch: ``changes`` holds only the fields the request gave (None may be a value)."""
        with self._lock:
            cfg = self._cfg
            old = self.switch(name)
            if changes.get("name", name) != name:
                raise ConfigError([("name", "a switch cannot be renamed")])
            data = old.model_dump()
            data.update(changes)
            # Hyper-V: giving an adapter makes the switch External; choosing another type unbinds it.
            if changes.get("net_adapter") is not None and "type" not in changes:
                data["type"] = SwitchType.EXTERNAL
            if "type" in changes and changes["type"] != SwitchType.EXTERNAL and "net_adapter" not in changes:
                data["net_adapter"] = None
            new = build(SwitchConfig, data)
            switches = [new if s.name == name else s for s in cfg.switches]
            ports = switch_ports(new, list(cfg.ports))
            self._commit(
                cfg.model_copy(update={"switches": switches, "ports": ports}),
                f"set switch {name}",
                focus=("switches", name),
            )
            return self.switch(name)

    def delete_switch(self, name: str) -> None:
        """Remove-VMSwitch: its host vNICs and uplink go; VM and bound ports stay, disconnected."""
        with self._lock:
            cfg = self._cfg
            self.switch(name)
            ports: list[PortConfig] = []
            for p in cfg.ports:
                if p.switch == name:
                    if p.kind in (PortKind.HOST, PortKind.UPLINK):
                        continue
                    p = p.model_copy(update={"switch": None})
                ports.append(p)
            switches = [s for s in cfg.switches if s.name != name]
            self._commit(
                cfg.model_copy(update={"switches": switches, "ports": ports}), f"remove switch {name}"
            )

    def add_vm(
        self,
        name: str,
        netns: str | None = None,
        adapter: bool = True,
        port_fields: Mapping[str, Any] | None = None,
    ) -> VmConfig:
        """New-VM (+ one adapter ``<vm>-eth0`` with ``port_fields``: switch, ip, mac, vlan)."""
        with self._lock:
            cfg = self._cfg
            if any(v.name == name for v in cfg.vms):
                raise Conflict("name", f"VM {name!r} already exists")
            vm = build(VmConfig, {"name": name, "netns": netns})
            ports = list(cfg.ports)
            fields = {k: v for k, v in (port_fields or {}).items() if v is not None}
            if adapter:
                ports.append(
                    build(PortConfig, {"name": f"{name}-eth0", "kind": PortKind.VM, "vm": name, **fields})
                )
            elif fields:
                raise ConfigError([(k, 'given with "adapter": false') for k in sorted(fields)])
            self._commit(
                cfg.model_copy(update={"vms": [*cfg.vms, vm], "ports": ports}),
                f"add VM {name}",
                focus=("ports", f"{name}-eth0"),
            )
            return self.vm(name)

    def delete_vm(self, name: str) -> None:
        with self._lock:
            cfg = self._cfg
            self.vm(name)
            self._commit(
                cfg.model_copy(
                    update={
                        "vms": [v for v in cfg.vms if v.name != name],
                        "ports": [p for p in cfg.ports if p.vm != name],
                    }
                ),
                f"remove VM {name}",
            )

    def add_port(self, port: PortConfig) -> PortConfig:
        """Add-VMNetworkAdapter (kind vm or host) or bind an interface / TAP."""
        with self._lock:
            cfg = self._cfg
            if any(p.name == port.name for p in cfg.ports):
                raise Conflict("name", f"port {port.name!r} already exists")
            if port.kind is PortKind.UPLINK:
                raise ConfigError([("kind", "uplink ports are made by giving a switch its net_adapter")])
            self._commit(
                cfg.model_copy(update={"ports": [*cfg.ports, port]}),
                f"add port {port.name}",
                focus=("ports", port.name),
            )
            return self.port(port.name)

    def update_port(self, name: str, changes: Mapping[str, Any]) -> PortConfig:
        """Connect/Disconnect-VMNetworkAdapter, Set-VMNetworkAdapter(Vlan): only the given fields change."""
        with self._lock:
            cfg = self._cfg
            old = self.port(name)
            if old.kind is PortKind.UPLINK and "switch" in changes and changes["switch"] != old.switch:
                raise ConfigError(
                    [("switch", "an uplink belongs to its switch; change the switch's net_adapter")]
                )
            new = build(PortConfig, {**old.model_dump(), **changes})
            ports = [new if p.name == name else p for p in cfg.ports]
            what = ", ".join(sorted(changes)) or "nothing"
            self._commit(
                cfg.model_copy(update={"ports": ports}), f"set port {name}: {what}", focus=("ports", name)
            )
            return self.port(name)

    def delete_port(self, name: str) -> None:
        with self._lock:
            cfg = self._cfg
            old = self.port(name)
            if old.kind is PortKind.UPLINK:
                raise Conflict(
                    "name", f"port {name!r} is switch {old.switch!r}'s uplink; remove its net_adapter"
                )
            ports = [p for p in cfg.ports if p.name != name]
            self._commit(cfg.model_copy(update={"ports": ports}), f"remove port {name}")

    # ---- QoS and DCB (hyperv-networking.md §5) ----

    def qos_status(self, switch: str) -> dict[str, object]:
        """QS-06: the engine's QoS status of ``switch`` (capacity, reservation, default flow, per port and per
        class: bytes, drops, rate, BandwidthPercentage). An engine without QoS status gets what the
        configuration alone says (no counters), marked ``"running": false``."""
        self.switch(switch)
        status_of = getattr(self._engine, "qos_status", None)
        live = status_of(switch) if callable(status_of) else None
        if isinstance(live, dict):
            return {**live, "running": True}
        return {**configured_qos(self._cfg, switch), "running": False}

    def qos_policies(self) -> list[QosPolicyConfig]:
        return list(self._cfg.qos_policies)

    def qos_policy(self, name: str) -> QosPolicyConfig:
        for q in self._cfg.qos_policies:
            if q.name == name:
                return q
        raise NotFound("name", f"no QoS policy {name!r}")

    def add_qos_policy(self, policy: QosPolicyConfig) -> QosPolicyConfig:
        """New-NetQosPolicy."""
        with self._lock:
            cfg = self._cfg
            if any(q.name == policy.name for q in cfg.qos_policies):
                raise Conflict("name", f"QoS policy {policy.name!r} already exists")
            self._commit(
                cfg.model_copy(update={"qos_policies": [*cfg.qos_policies, policy]}),
                f"add QoS policy {policy.name}",
                focus=("qos_policies", policy.name),
            )
            return self.qos_policy(policy.name)

    def update_qos_policy(self, name: str, changes: Mapping[str, Any]) -> QosPolicyConfig:
        """Set-NetQosPolicy: only the given fields change (null clears a condition or an action)."""
        with self._lock:
            cfg = self._cfg
            old = self.qos_policy(name)
            if changes.get("name", name) != name:
                raise ConfigError([("name", "a QoS policy cannot be renamed")])
            new = build(QosPolicyConfig, {**old.model_dump(), **changes})
            policies = [new if q.name == name else q for q in cfg.qos_policies]
            what = ", ".join(sorted(changes)) or "nothing"
            self._commit(
                cfg.model_copy(update={"qos_policies": policies}),
                f"set QoS policy {name}: {what}",
                focus=("qos_policies", name),
            )
            return self.qos_policy(name)

    def delete_qos_policy(self, name: str) -> None:
        """Remove-NetQosPolicy."""
        with self._lock:
            cfg = self._cfg
            self.qos_policy(name)
            policies = [q for q in cfg.qos_policies if q.name != name]
            self._commit(cfg.model_copy(update={"qos_policies": policies}), f"remove QoS policy {name}")

    def dcb(self) -> DcbConfig:
        return self._cfg.dcb

    def _commit_dcb(self, data: Mapping[str, Any], summary: str, fields: Mapping[str, str]) -> DcbConfig:
        """Commit the DCB settings ``data``; problems with them are named as the request's ``fields``
        (``dcb.flow_control_priorities[1]`` -> ``flow_control_priorities[1]``, renamed by ``fields``)."""
        cfg = self._cfg

        def named(problems: list[tuple[str, str]]) -> list[tuple[str, str]]:
            out = []
            for path, msg in problems:
                path = path.removeprefix("dcb.")
                for prefix, name in fields.items():
                    if path == prefix or path.startswith(prefix + ".") or path.startswith(prefix + "["):
                        rest = path[len(prefix) :]
                        if re.fullmatch(r"\[\d+\]", rest):
                            rest = ""  # adapters[1] -> the request's name
                        path = (name + rest).lstrip(".") or "body"
                        break
                out.append((path, msg))
            return out

        try:
            new = DcbConfig.model_validate(dict(data))
        except ValidationError as exc:
            problems = problems_from_validation_error(exc)
            raise ConfigError(named([(p or "dcb", m) for p, m in problems])) from exc
        try:
            self._commit(cfg.model_copy(update={"dcb": new}), summary)
        except ConfigError as exc:
            raise ConfigError(named(exc.problems)) from exc
        return self._cfg.dcb

    def update_dcb(self, changes: Mapping[str, Any]) -> DcbConfig:
        """Set-NetQosDcbxSetting -Willing, Enable/Disable-NetQosFlowControl (the whole priority list)."""
        with self._lock:
            what = ", ".join(sorted(changes)) or "nothing"
            return self._commit_dcb(
                {**self._cfg.dcb.model_dump(), **changes},
                f"set DCB: {what}",
                {},
            )

    def traffic_classes(self) -> list[dict[str, object]]:
        """Get-NetQosTrafficClass: ``[Default]`` (the priorities and ETS share no class claims) first."""
        dcb = self._cfg.dcb
        claimed = {p for c in dcb.traffic_classes for p in c.priorities}
        ets = sum(
            c.bandwidth_percentage for c in dcb.traffic_classes if c.algorithm is TrafficClassAlgorithm.ETS
        )
        default: dict[str, object] = {
            "name": DEFAULT_CLASS,
            "priorities": [p for p in range(8) if p not in claimed],
            "algorithm": TrafficClassAlgorithm.ETS.value,
            "bandwidth_percentage": 100 - ets,
            "default": True,
        }
        return [default, *({**c.model_dump(mode="json"), "default": False} for c in dcb.traffic_classes)]

    def traffic_class(self, name: str) -> dict[str, object]:
        for c in self.traffic_classes():
            if c["name"] == name:
                return c
        raise NotFound("name", f"no traffic class {name!r}")

    def _class_problems(
        self, new: TrafficClassConfig, others: list[TrafficClassConfig]
    ) -> list[tuple[str, str]]:
        """What New/Set-NetQosTrafficClass refuses, named by the request's fields (QS-09)."""
        out: list[tuple[str, str]] = []
        for c in others:
            both = sorted(set(c.priorities) & set(new.priorities))
            if both:
                out.append(
                    ("priorities", f"priority {','.join(map(str, both))} already belongs to class {c.name!r}")
                )
        if new.algorithm is TrafficClassAlgorithm.ETS:
            taken = sum(c.bandwidth_percentage for c in others if c.algorithm is TrafficClassAlgorithm.ETS)
            if taken + new.bandwidth_percentage > 99:
                out.append(
                    (
                        "bandwidth_percentage",
                        f"other ETS classes take {taken} %; {new.bandwidth_percentage} % more leaves the default "
                        "class less than 1 % (classes may take at most 99 % together)",
                    )
                )
        return out

    def add_traffic_class(self, tc: TrafficClassConfig) -> dict[str, object]:
        """New-NetQosTrafficClass: priorities and ETS share are taken from the default class."""
        with self._lock:
            dcb = self._cfg.dcb
            if tc.name == DEFAULT_CLASS or any(c.name == tc.name for c in dcb.traffic_classes):
                raise Conflict("name", f"traffic class {tc.name!r} already exists")
            if len(dcb.traffic_classes) >= 7:
                raise ConfigError([("name", "at most 7 traffic classes besides [Default] (8 in all)")])
            problems = self._class_problems(tc, list(dcb.traffic_classes))
            if problems:
                raise ConfigError(problems)
            k = len(dcb.traffic_classes)
            data = {
                **dcb.model_dump(),
                "traffic_classes": [*dcb.model_dump()["traffic_classes"], tc.model_dump()],
            }
            self._commit_dcb(data, f"add traffic class {tc.name}", {f"traffic_classes[{k}]": ""})
            return self.traffic_class(tc.name)

    def update_traffic_class(self, name: str, changes: Mapping[str, Any]) -> dict[str, object]:
        """Set-NetQosTrafficClass: priorities, algorithm, bandwidth percentage."""
        with self._lock:
            dcb = self._cfg.dcb
            if name == DEFAULT_CLASS:
                raise ConfigError([("name", "the [Default] class has what the other classes leave")])
            k = next((i for i, c in enumerate(dcb.traffic_classes) if c.name == name), None)
            if k is None:
                raise NotFound("name", f"no traffic class {name!r}")
            if changes.get("name", name) != name:
                raise ConfigError([("name", "a traffic class cannot be renamed")])
            new = build(TrafficClassConfig, {**dcb.traffic_classes[k].model_dump(), **changes})
            problems = self._class_problems(new, [c for c in dcb.traffic_classes if c.name != name])
            if problems:
                raise ConfigError(problems)
            classes = dcb.model_dump()["traffic_classes"]
            classes[k] = new.model_dump()
            what = ", ".join(sorted(changes)) or "nothing"
            self._commit_dcb(
                {**dcb.model_dump(), "traffic_classes": classes},
                f"set traffic class {name}: {what}",
                {f"traffic_classes[{k}]": ""},
            )
            return self.traffic_class(name)

    def delete_traffic_class(self, name: str) -> None:
        """Remove-NetQosTrafficClass: its priorities and share go back to the default class."""
        with self._lock:
            dcb = self._cfg.dcb
            if name == DEFAULT_CLASS:
                raise Conflict("name", "the [Default] class cannot be removed")
            if not any(c.name == name for c in dcb.traffic_classes):
                raise NotFound("name", f"no traffic class {name!r}")
            classes = [c.model_dump() for c in dcb.traffic_classes if c.name != name]
            self._commit_dcb(
                {**dcb.model_dump(), "traffic_classes": classes}, f"remove traffic class {name}", {}
            )

    def qos_adapters(self) -> list[dict[str, object]]:
        """Get-NetAdapterQos: every adapter DCB can be enabled on (uplink and interface ports' NICs, teams)."""
        cfg = self._cfg
        enabled = set(cfg.dcb.adapters)
        out: list[dict[str, object]] = []
        for p in cfg.ports:
            if p.kind in (PortKind.UPLINK, PortKind.INTERFACE) and p.interface is not None:
                if any(t.name == p.interface for t in cfg.teams):
                    continue
                out.append({"name": p.interface, "kind": "interface", "port": p.name, "switch": p.switch,
                            "enabled": p.interface in enabled})  # fmt: skip
        for t in cfg.teams:
            out.append(
                {"name": t.name, "kind": "team", "port": None, "switch": None, "enabled": t.name in enabled}
            )
        return out

    def set_qos_adapter(self, name: str, enabled: bool) -> dict[str, object]:
        """Enable-NetAdapterQos / Disable-NetAdapterQos -Name (idempotent)."""
        with self._lock:
            found = next((a for a in self.qos_adapters() if a["name"] == name), None)
            if found is None:
                raise NotFound(
                    "name", f"{name!r} is neither the interface of an uplink or interface port nor a team"
                )
            adapters = [a for a in self._cfg.dcb.adapters if a != name] + ([name] if enabled else [])
            if set(adapters) != set(self._cfg.dcb.adapters):
                verb = "enable" if enabled else "disable"
                self._commit_dcb(
                    {**self._cfg.dcb.model_dump(), "adapters": adapters},
                    f"{verb} DCB on {name}",
                    {"adapters": "name"},
                )
            return next(a for a in self.qos_adapters() if a["name"] == name)

    # ---- live migration (daemon/migration.py drives these; hyperv-networking.md §8) ----

    def _with_vm(self, vm: VmConfig, ports: list[PortConfig]) -> HostConfig:
        """The current configuration plus an arriving VM and its ports (resolved on the source), or Conflict."""
        cfg = self._cfg
        if any(v.name == vm.name for v in cfg.vms):
            raise Conflict("vm", f"VM {vm.name!r} already exists on this host")
        names = {p.name for p in cfg.ports}
        switches = {s.name for s in cfg.switches}
        for p in ports:
            if p.name in names:
                raise Conflict("ports", f"port {p.name!r} already exists on this host")
            if p.switch is not None and p.switch not in switches:
                raise NotFound(
                    "ports", f"no switch {p.switch!r} on this host (port {p.name!r} needs one of that name)"
                )
        return cfg.model_copy(update={"vms": [*cfg.vms, vm], "ports": [*cfg.ports, *ports]})

    @property
    def engine(self) -> EngineLike:
        return self._engine

    def has_link(self, ifname: str) -> bool:
        """Whether ``ifname`` exists in this daemon's namespace."""
        return self._os.link_exists(ifname)

    def check_incoming_vm(self, vm: VmConfig, ports: list[PortConfig]) -> None:
        """Would ``vm`` with ``ports`` be accepted here? Configuration only (the validation port is the
        engine's, ``migration``): raises ConfigError/Conflict/NotFound, changes nothing."""
        with self._lock:
            candidate = self._with_vm(vm, ports)
            problems = validate(candidate, self._cfg)
            for p in ports:
                if p.interface is not None and self._os.link_exists(p.interface):
                    problems.append(("ports", f"interface {p.interface!r} of {p.name!r} exists on this host"))
            if problems:
                raise ConfigError(problems)

    def adopt_vm(self, vm: VmConfig, ports: list[PortConfig], summary: str) -> VmConfig:
        """Add ``vm`` whose veths already exist in this namespace (moved here by a live migration): provisioning
        converges the existing pair (no new veth), the engine opens it, the store records it."""
        with self._lock:
            self._adopting = {vm.namespace, *(p.interface for p in ports if p.interface)}
            try:
                self._commit(self._with_vm(vm, ports), summary)
            finally:
                self._adopting = set()
            return self.vm(vm.name)

    def release_vm(self, name: str, summary: str) -> tuple[VmConfig, list[PortConfig]]:
        """Drop VM ``name`` from this host's configuration and switches but leave its veths and namespace
        alone (another host adopts them). Returns what was dropped."""
        with self._lock:
            cfg = self._cfg
            vm = self.vm(name)
            ports = [p for p in cfg.ports if p.vm == name]
            self._keep = {vm.namespace, *(p.interface for p in ports if p.interface)}
            try:
                self._commit(
                    cfg.model_copy(
                        update={
                            "vms": [v for v in cfg.vms if v.name != name],
                            "ports": [p for p in cfg.ports if p.vm != name],
                        }
                    ),
                    summary,
                )
            finally:
                self._keep = set()
            return vm, ports

    # ---- start-up ----

    def start(self) -> None:
        """Load the store and make the OS and the engine match it (idempotent; run once at start-up)."""
        with self._lock:
            stored = self._store.load()
            cfg = self._resolve(stored, HostConfig())
            problems = validate(cfg)
            if problems:
                raise ConfigError(problems)
            self._degraded = {}
            for ns in sorted(vm_namespaces(cfg)):
                self._os.ensure_netns(ns)
            for name, spec in nic_specs(cfg).items():
                try:
                    self._make(spec)
                except DeviceError as exc:
                    log.error("port %s: %s; leaving it disconnected", name, exc)
                    self._degraded[name] = str(exc)
            for p in cfg.ports:
                bound = p.kind in (PortKind.INTERFACE, PortKind.UPLINK) and p.switch and p.interface
                is_team = any(t.name == p.interface for t in cfg.teams)  # the engine opens its members
                if bound and p.interface and not is_team and not self._os.link_exists(p.interface):
                    log.error("port %s: interface %s missing; leaving it disconnected", p.name, p.interface)
                    self._degraded[p.name] = f"interface {p.interface!r} does not exist"
            self._apply_degrading(cfg)
            if cfg != stored:
                self._store.save(cfg, "start-up: resolved interface names and MACs")
            self._cfg = cfg
            log.info(
                "reconciled %d switches, %d ports, %d VMs%s",
                len(cfg.switches),
                len(cfg.ports),
                len(cfg.vms),
                f"; degraded ports: {', '.join(sorted(self._degraded))}" if self._degraded else "",
            )

    def _apply_degrading(self, cfg: HostConfig) -> None:
        """engine.apply, leaving out (and recording) each port whose device fails to open."""
        while True:
            try:
                self._engine.apply(self._engine_view(cfg))
                return
            except DeviceError as exc:
                culprit = _culprit(self._engine_view(cfg), exc, exclude=self._degraded.keys())
                if culprit is None:
                    raise
                log.error("port %s: %s; leaving it disconnected", culprit.name, exc)
                self._degraded[culprit.name] = str(exc)

    # ---- the write path ----

    def _commit(
        self,
        candidate: HostConfig,
        summary: str,
        focus: tuple[str, str] | None = None,
        fields: Mapping[str, str] | None = None,
    ) -> HostConfig:
        """Validate, provision, apply and store ``candidate`` as a whole, or change nothing.

        ``focus`` = (collection, name) of the object the request is about: problems with that object name
        the request's own fields (``vlan.access_vlan_id``), not its place in the whole configuration.
        ``fields`` then renames paths within that object to the request's fields (a new team member's
        ``members[2]`` is the request's ``name``).
        """
        try:
            return self._commit_whole(candidate, summary)
        except ConfigError as exc:
            if focus is None:
                raise
            problems = request_paths(exc.problems, candidate, *focus)
            if fields:
                problems = [(fields.get(path, path), msg) for path, msg in problems]
            raise ConfigError(problems) from exc

    def _commit_whole(self, candidate: HostConfig, summary: str) -> HostConfig:
        old = self._cfg
        candidate = self._resolve(candidate, old)
        problems = validate(candidate, old)
        problems += _fixed_at_creation(candidate, old)
        problems += self._os_problems(candidate, old)
        if problems:
            raise ConfigError(problems)
        degraded_before = dict(self._degraded)
        # A port the request touches is retried (a team port also when its team changes); one it removes is
        # forgotten. Hidden team-interface ports count as ports here.
        old_view, new_view = realize(old), realize(candidate)
        old_ports = {p.name: p for p in old_view.ports}
        old_teams = {t.name: t for t in old_view.teams}
        new_teams = {t.name: t for t in new_view.teams}
        for p in new_view.ports:
            team = new_teams.get(p.interface or "")
            if old_ports.get(p.name) != p or (team is not None and old_teams.get(team.name) != team):
                self._degraded.pop(p.name, None)
        names = {p.name for p in new_view.ports}
        self._degraded = {n: r for n, r in self._degraded.items() if n in names}

        undo: list[Callable[[], None]] = []
        try:
            self._provision(old, candidate, undo)
            try:
                self._engine.apply(self._engine_view(candidate))
            except DeviceError as exc:
                raise ConfigError([(_device_field(candidate, exc), str(exc))]) from exc
            undo.append(lambda: self._engine.apply(self._engine_view(old, degraded_before)))
            self._store.save(candidate, summary)
        except BaseException:
            self._degraded = degraded_before
            for action in reversed(undo):
                try:
                    action()
                except Exception:
                    log.exception("rolling back %r", summary)
            raise
        self._cfg = candidate
        log.info("applied: %s", summary)
        self._remove_unused(old, candidate)
        return candidate

    def _engine_view(self, cfg: HostConfig, degraded: Mapping[str, str] | None = None) -> HostConfig:
        """``cfg`` with its team interfaces realized (``config.team_nics``) and degraded ports disconnected:
        what the engine can actually run."""
        degraded = self._degraded if degraded is None else degraded
        cfg = realize(cfg)
        if not degraded:
            return cfg
        ports = [p.model_copy(update={"switch": None}) if p.name in degraded else p for p in cfg.ports]
        return cfg.model_copy(update={"ports": ports})

    def _resolve(self, cfg: HostConfig, old: HostConfig) -> HostConfig:
        """Fill in what the daemon chooses for ports: interface and peer names, dynamic MACs."""
        taken: set[str] = set()
        for p in cfg.ports:
            # Names in the daemon's namespace; a VM's eth<N> lives in the VM's own.
            if p.interface:
                taken.add(p.interface)
            if p.kind is PortKind.HOST and p.peer_interface:
                taken.add(p.peer_interface)
        macs = {p.mac for p in cfg.ports if p.mac}
        vm_peers: dict[str, set[str]] = {}
        for p in cfg.ports:
            if p.kind is PortKind.VM and p.vm and p.peer_interface:
                vm_peers.setdefault(p.vm, set()).add(p.peer_interface)
        ports: list[PortConfig] = []
        for i, p in enumerate(cfg.ports):
            update: dict[str, Any] = {}
            if p.kind in (PortKind.VM, PortKind.HOST) and p.interface is None:
                update["interface"] = self._fresh_ifname("pv", taken)
            if p.kind is PortKind.VM and p.peer_interface is None:
                used = vm_peers.setdefault(p.vm or "", set())
                n = next(n for n in range(len(used) + 1) if f"eth{n}" not in used)
                update["peer_interface"] = f"eth{n}"
                used.add(f"eth{n}")
            if p.kind is PortKind.HOST and p.peer_interface is None:
                update["peer_interface"] = self._fresh_ifname("pvh", taken)
            # Only the NICs the daemon creates get a MAC from the pool; behind a bound interface, an uplink or a
            # TAP live MACs the switch learns (a pool MAC there would be set on nothing).
            if p.mac is None and p.kind in (PortKind.VM, PortKind.HOST):
                try:
                    mac = self._pool.allocate(macs)
                except ConflictError as exc:
                    raise Conflict(f"ports[{i}].mac", str(exc)) from exc
                update["mac"] = mac
                macs.add(mac)
            ports.append(p.model_copy(update=update) if update else p)
        return cfg.model_copy(update={"ports": ports})

    def _fresh_ifname(self, prefix: str, taken: set[str]) -> str:
        for _ in range(100):
            name = self._new_ifname(prefix)
            if name not in taken and not self._os.link_exists(name):
                taken.add(name)
                return name
        raise DeviceError(f"could not find a free interface name with prefix {prefix!r}")

    def _os_problems(self, cfg: HostConfig, old: HostConfig) -> list[tuple[str, str]]:
        """Bound interfaces that are new to this request must exist (a TAP is created by the engine)."""
        out: list[tuple[str, str]] = []
        old_ports = {p.name: p for p in old.ports}
        adapters = {s.net_adapter: i for i, s in enumerate(cfg.switches) if s.net_adapter}
        for i, p in enumerate(cfg.ports):
            if p.kind not in (PortKind.INTERFACE, PortKind.UPLINK) or p.interface is None or p.switch is None:
                continue
            before = old_ports.get(p.name)
            if before is not None and before.interface == p.interface and before.switch is not None:
                continue
            if any(t.name == p.interface for t in cfg.teams):
                continue  # a team is made of NICs, not a kernel interface of its own: checked below
            if not self._os.link_exists(p.interface):
                field = f"ports[{i}].interface"
                if p.kind is PortKind.UPLINK and p.interface in adapters:
                    field = f"switches[{adapters[p.interface]}].net_adapter"
                out.append((field, f"no interface {p.interface!r} on this host"))
        # Every team is opened (by a switch, or for its own team interfaces): members new to it must exist.
        old_teams = {t.name: t for t in old.teams}
        for ti, t in enumerate(cfg.teams):
            had = old_teams.get(t.name)
            for j, m in enumerate(t.members):
                if (had is None or m not in had.members) and not self._os.link_exists(m):
                    out.append((f"teams[{ti}].members[{j}]", f"no interface {m!r} on this host"))
        # Team interfaces new to the host are TAPs the engine makes: their names must be free. (A name that
        # is configured elsewhere, as a member or a port's interface, is reported by ``validate``.)
        old_tnics = {p.interface for p in realize(old).ports if hidden_owner(p.name) is not None}
        old_tnics |= {m for t in cfg.teams for m in t.members} | {p.interface for p in cfg.ports}
        for p in realize(cfg).ports:
            owner = hidden_owner(p.name)
            if owner is None or owner[1] is None or p.interface in old_tnics or p.interface is None:
                continue
            if self._os.link_exists(p.interface):
                out.append(
                    (_team_nic_field(cfg, *owner), f"interface {p.interface!r} already exists on this host")
                )
        return out

    def _make(self, spec: NicSpec) -> None:
        if spec.kind is PortKind.VM:
            assert spec.netns is not None
            self._os.create_vm_nic(spec.netns, spec.interface, spec.peer, spec.mac, list(spec.ips))
        else:
            self._os.create_host_vnic(spec.peer, spec.interface, spec.mac, list(spec.ips))

    def _provision(self, old: HostConfig, new: HostConfig, undo: list[Callable[[], None]]) -> None:
        """Create or change the OS objects ``new`` adds, appending how to undo each step to ``undo``."""
        os_ = self._os
        for ns in sorted(vm_namespaces(new) - vm_namespaces(old) - self._adopting):
            existed = os_.netns_exists(ns)
            os_.ensure_netns(ns)
            if not existed:
                undo.append(lambda ns=ns: os_.delete_netns(ns))  # type: ignore[misc]
        old_specs = nic_specs(old)
        for name, spec in nic_specs(new).items():
            before = old_specs.get(name)
            if before == spec or (before is None and spec.interface in self._adopting):
                continue
            if before is not None and before.identity == spec.identity:
                self._make(spec)
                undo.append(lambda before=before: self._make(before))  # type: ignore[misc]
                continue
            existed = os_.link_exists(spec.interface)
            self._make(spec)
            if not existed:
                undo.append(lambda ifname=spec.interface: os_.delete_link(ifname))  # type: ignore[misc]

    def _remove_unused(self, old: HostConfig, new: HostConfig) -> None:
        """Delete OS objects only ``old`` needed; failures are logged (the change itself is already made)."""
        new_specs = nic_specs(new)
        new_ifs = {s.interface for s in new_specs.values()}
        for name, spec in nic_specs(old).items():
            now = new_specs.get(name)
            if spec.interface in self._keep:
                continue
            if (now is None or now.identity != spec.identity) and spec.interface not in new_ifs:
                try:
                    self._os.delete_link(spec.interface)
                except Exception:
                    log.exception("deleting %s of removed port %s", spec.interface, name)
        for ns in sorted(vm_namespaces(old) - vm_namespaces(new) - self._keep):
            try:
                self._os.delete_netns(ns)
            except Exception:
                log.exception("deleting namespace %s", ns)


def switch_ports(sw: SwitchConfig, ports: list[PortConfig]) -> list[PortConfig]:
    """``ports`` with the switch's uplink and management-OS vNIC made to match its type.

    External: one uplink port bound to ``net_adapter``; a host vNIC named after the switch if
    ``allow_management_os`` (False removes its host vNICs). Internal: always a host vNIC. Private: neither.
    """
    external = sw.type is SwitchType.EXTERNAL
    want_host = sw.type is SwitchType.INTERNAL or (external and sw.allow_management_os)
    out: list[PortConfig] = []
    has_uplink = has_host = False
    for p in ports:
        if p.switch == sw.name and p.kind is PortKind.UPLINK:
            if not external:
                continue
            if p.interface != sw.net_adapter:
                p = p.model_copy(update={"interface": sw.net_adapter, "mac": None})
            has_uplink = True
        elif p.switch == sw.name and p.kind is PortKind.HOST:
            if not want_host:
                continue
            has_host = True
        out.append(p)
    if external and not has_uplink:
        out.append(
            PortConfig(
                name=uplink_port_name(sw.name), kind=PortKind.UPLINK, switch=sw.name, interface=sw.net_adapter
            )
        )
    if want_host and not has_host:
        out.append(PortConfig(name=sw.name, kind=PortKind.HOST, switch=sw.name))
    return out


def _culprit(cfg: HostConfig, exc: DeviceError, exclude: Any = ()) -> PortConfig | None:
    """The connected port a DeviceError is about: the port it names, or the one whose interface it names (for a
    port on a team, a member's name counts as the team's). ``cfg`` is what the engine was given."""
    if exc.port is None and exc.interface is None:
        return None
    members = {t.name: t.members for t in cfg.teams}
    for p in cfg.ports:
        if p.switch is None or p.name in exclude:
            continue
        if exc.port == p.name or (
            exc.interface is not None and exc.interface in (p.interface, *members.get(p.interface or "", ()))
        ):
            return p
    return None


def _team_nic_field(cfg: HostConfig, team: str, nic: str | None) -> str:
    """The request path of a team's hidden port: its tNIC's name (the team's name for the primary), or
    the team's members for its uplink."""
    ti = next(i for i, t in enumerate(cfg.teams) if t.name == team)
    if nic is None:
        return f"teams[{ti}].members"
    k = next((k for k, n in enumerate(cfg.teams[ti].team_nics) if n.name == nic), None)
    return f"teams[{ti}].name" if k is None else f"teams[{ti}].team_nics[{k}].name"


def _device_field(cfg: HostConfig, exc: DeviceError) -> str:
    port = _culprit(realize(cfg), exc)
    if port is None:
        return "interface"
    owner = hidden_owner(port.name)
    if owner is not None:
        return _team_nic_field(cfg, *owner)
    team = next((i for i, t in enumerate(cfg.teams) if t.name == port.interface), None)
    if team is not None:
        return f"teams[{team}].members"
    return f"ports[{cfg.ports.index(port)}].interface"


DEFAULT_CLASS = (
    "[Default]"  # Get-NetQosTrafficClass's name for the class that owns what no other class claims
)


def _fixed_at_creation(cfg: HostConfig, old: HostConfig) -> list[tuple[str, str]]:
    """New-VMSwitch -MinimumBandwidthMode is not a Set-VMSwitch parameter: the mode of an existing switch stays."""
    before = {s.name: s for s in old.switches}
    out: list[tuple[str, str]] = []
    for i, sw in enumerate(cfg.switches):
        was = before.get(sw.name)
        if was is not None and was.minimum_bandwidth_mode is not sw.minimum_bandwidth_mode:
            out.append(
                (
                    f"switches[{i}].minimum_bandwidth_mode",
                    f"switch {sw.name!r} was created in {was.minimum_bandwidth_mode.value} mode; the minimum-"
                    "bandwidth mode is fixed at creation (remove and re-create the switch to change it)",
                )
            )
    return out


def configured_qos(cfg: HostConfig, switch: str) -> dict[str, object]:
    """The QoS status of ``switch`` as its configuration alone determines it: the shape of the engine's
    ``qos_status`` with zero counters. BandwidthPercentage (QS-06): Weight mode, a port's weight over the sum of
    the weights plus the default flow's; Absolute mode, its reservation over the capacity; 0 otherwise (a port in
    the default flow shares the default flow's percentage)."""
    sw = next(s for s in cfg.switches if s.name == switch)
    mode = effective_mode(sw)
    capacity = switch_capacity(cfg, sw)
    ports = [p for p in cfg.ports if p.switch == switch]
    reservation = 0
    default_pct = 0.0
    pct: dict[str, float] = {}
    if mode is MinimumBandwidthMode.WEIGHT:
        total = sum(p.minimum_bandwidth_weight for p in ports) + sw.default_flow_minimum_bandwidth_weight
        for p in ports:
            pct[p.name] = 100.0 * p.minimum_bandwidth_weight / total if total else 0.0
        default_pct = 100.0 * sw.default_flow_minimum_bandwidth_weight / total if total else 0.0
    elif mode is MinimumBandwidthMode.ABSOLUTE:
        default = default_flow_reservation(sw, capacity)
        reservation = default + sum(p.minimum_bandwidth_absolute for p in ports)
        for p in ports:
            pct[p.name] = 100.0 * p.minimum_bandwidth_absolute / capacity if capacity else 0.0
        default_pct = 100.0 * default / capacity if capacity else 0.0
    dcb = cfg.dcb
    adapter_on = sw.net_adapter is not None and sw.net_adapter in dcb.adapters
    return {
        "switch": switch,
        "mode": mode.value,
        "capacity": capacity,
        "reservation": reservation,
        "default_flow": {
            "weight": sw.default_flow_minimum_bandwidth_weight,
            "absolute": default_flow_reservation(sw, capacity)
            if mode is MinimumBandwidthMode.ABSOLUTE
            else 0,
            "bandwidth_percentage": round(default_pct, 2),
        },
        "ports": {
            p.name: {
                "sent_bytes": 0,
                "drops": 0,
                "rate_bps": 0,
                "bandwidth_percentage": round(pct.get(p.name, 0.0), 2),
                "maximum_bandwidth": p.maximum_bandwidth,
                "minimum_bandwidth_weight": p.minimum_bandwidth_weight,
                "minimum_bandwidth_absolute": p.minimum_bandwidth_absolute,
            }
            for p in ports
        },
        "classes": [],
        # DCB applies local classes only where enabled, and only when not willing to take the peer's (QS-10).
        "dcb": {"enabled": adapter_on, "operational": adapter_on and not dcb.willing},
    }
