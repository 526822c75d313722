"""SR-IOV VF assignment: the VF pool of each SR-IOV adapter and each port's Software <-> VF state, as a pure
function of the configuration plus the runtime facts (uplink carrier, revocations, migrations).

Hyper-V's rules (hyperv-networking.md §4.3): a NIC starts on the synthetic (software) path and gets a VF when
its switch is IOV, its IovWeight > 0, the uplink's SR-IOV is enabled and a VF is free; when VFs are scarce the
highest weights win (ties by port name, so the outcome is stable). A port that cannot be served keeps the
software path with a reason, never an error. Here the emulated NIC switch has no VLAN action, so a port with a
VLAN setting other than untagged stays on the software path too (VlanNotSupported).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from pyvswitch.config.schema import HostConfig, PortConfig, PortKind, SwitchConfig, VlanMode


class IovPath(StrEnum):
    SOFTWARE = "Software"
    VF = "VF"


class IovReason(StrEnum):
    ASSIGNED = "Assigned"
    NOT_REQUESTED = "IovWeightZero"
    SWITCH_NOT_IOV = "SwitchNotIov"
    NO_ADAPTER = "AdapterSriovDisabled"
    NO_VF = "NoVfAvailable"
    VLAN = "VlanNotSupported"
    REVOKED = "Revoked"
    MIGRATING = "Migrating"
    UPLINK_DOWN = "UplinkDown"
    NO_MAC = "NoMacAddress"


@dataclass(frozen=True, slots=True)
class PortIov:
    """One port's SR-IOV state: the path it is on, why, and its VF (function id) if any."""

    port: str
    switch: str
    uplink: str | None
    weight: int
    path: IovPath
    reason: IovReason
    vf: int | None = None
    mac: str | None = None
    interface: str | None = None

    def as_dict(self) -> dict[str, object]:
        return {
            "port": self.port,
            "switch": self.switch,
            "adapter": self.uplink,
            "iov_weight": self.weight,
            "path": str(self.path),
            "reason": str(self.reason),
            "vf": self.vf,
            "mac": self.mac,
            "policies": "bypassed" if self.path is IovPath.VF else "applied",
        }


@dataclass(frozen=True, slots=True)
class RuntimeFacts:
    """What configuration does not say: carriers, extension revocations, ports being migrated."""

    uplinks_down: frozenset[str] = frozenset()
    revoked: frozenset[str] = frozenset()
    migrating: frozenset[str] = frozenset()


def _uplink_of(sw: SwitchConfig, ports: list[PortConfig]) -> str | None:
    for p in ports:
        if p.switch == sw.name and p.kind is PortKind.UPLINK:
            return p.interface or p.name
    return None


def plan(
    cfg: HostConfig, facts: RuntimeFacts = RuntimeFacts(), previous: dict[str, PortIov] | None = None
) -> dict[str, PortIov]:
    """Every switch port's state. A port keeps the VF (function id) it had if it still qualifies, so a new
    request never moves a running VF; freed VFs go to the heaviest waiting ports."""
    previous = previous or {}
    adapters = {a.name: a for a in cfg.sriov_adapters}
    switches = {s.name: s for s in cfg.switches}
    out: dict[str, PortIov] = {}
    wanting: dict[str, list[PortConfig]] = {}
    uplinks: dict[str, str | None] = {s.name: _uplink_of(s, cfg.ports) for s in cfg.switches}

    for p in cfg.ports:
        if p.switch is None or p.switch not in switches or p.kind not in (PortKind.VM, PortKind.HOST):
            continue
        if p.kind is PortKind.HOST:
            continue  # a host vNIC is the PF's default VPort: always software
        sw = switches[p.switch]
        up = uplinks[sw.name]
        reason: IovReason | None = None
        if p.iov_weight == 0:
            reason = IovReason.NOT_REQUESTED
        elif not sw.enable_iov:
            reason = IovReason.SWITCH_NOT_IOV
        elif up is None or up not in adapters or not adapters[up].enabled or adapters[up].num_vfs == 0:
            reason = IovReason.NO_ADAPTER
        elif p.vlan.mode is not VlanMode.UNTAGGED:
            reason = IovReason.VLAN
        elif p.mac is None or p.interface is None:
            reason = IovReason.NO_MAC
        elif p.name in facts.migrating:
            reason = IovReason.MIGRATING
        elif p.name in facts.revoked:
            reason = IovReason.REVOKED
        elif up in facts.uplinks_down:
            reason = IovReason.UPLINK_DOWN
        if reason is not None:
            out[p.name] = PortIov(
                p.name, sw.name, up, p.iov_weight, IovPath.SOFTWARE, reason, None, p.mac, p.interface
            )
        else:
            assert up is not None
            wanting.setdefault(up, []).append(p)

    for up, ports in wanting.items():
        size = adapters[up].num_vfs
        # Highest weight first, ties by name; a port already holding a VF keeps it against equal weights.
        ranked = sorted(ports, key=lambda p: (-p.iov_weight, 0 if _held(previous, p.name) else 1, p.name))
        winners = ranked[:size]
        taken: set[int] = set()
        fids: dict[str, int] = {}
        for p in winners:
            old = previous.get(p.name)
            if (
                old is not None
                and old.vf is not None
                and old.vf < size
                and old.vf not in taken
                and old.uplink == up
            ):
                fids[p.name] = old.vf
                taken.add(old.vf)
        free = (i for i in range(size) if i not in taken)
        for p in winners:
            if p.name not in fids:
                fids[p.name] = next(free)
        for p in ranked:
            assert p.switch is not None
            if p.name in fids:
                out[p.name] = PortIov(
                    p.name,
                    p.switch,
                    up,
                    p.iov_weight,
                    IovPath.VF,
                    IovReason.ASSIGNED,
                    fids[p.name],
                    p.mac,
                    p.interface,
                )
            else:
                out[p.name] = PortIov(
                    p.name,
                    p.switch,
                    up,
                    p.iov_weight,
                    IovPath.SOFTWARE,
                    IovReason.NO_VF,
                    None,
                    p.mac,
                    p.interface,
                )
    return out


def _held(previous: dict[str, PortIov], name: str) -> bool:
    old = previous.get(name)
    return old is not None and old.path is IovPath.VF


@dataclass(frozen=True, slots=True)
class Transition:
    port: str
    to: IovPath
    reason: IovReason
    vf: int | None


@dataclass
class IovState:
    """The current plan plus counted, recorded transitions (the 'trace' of VF moves)."""

    ports: dict[str, PortIov] = field(default_factory=dict)
    transitions: dict[str, int] = field(default_factory=dict)  # "Software->VF" / "VF->Software" -> count
    history: list[Transition] = field(default_factory=list)
    history_max: int = 256

    def update(self, new: dict[str, PortIov]) -> list[Transition]:
        """Adopt ``new`` and return the path changes (VF releases first, so a freed VF can be reused)."""
        changes: list[Transition] = []
        for name, st in new.items():
            old = self.ports.get(name)
            old_path = old.path if old is not None else IovPath.SOFTWARE
            moved_vf = (
                old is not None
                and st.path is IovPath.VF
                and old.path is IovPath.VF
                and (old.vf, old.uplink) != (st.vf, st.uplink)
            )
            if moved_vf:
                changes.append(Transition(name, IovPath.SOFTWARE, IovReason.REVOKED, None))
            if st.path is not old_path or moved_vf:
                changes.append(Transition(name, st.path, st.reason, st.vf))
        for name, old in self.ports.items():
            if name not in new and old.path is IovPath.VF:
                changes.append(Transition(name, IovPath.SOFTWARE, IovReason.NOT_REQUESTED, None))
        changes.sort(key=lambda t: 0 if t.to is IovPath.SOFTWARE else 1)
        for t in changes:
            key = f"{'VF' if t.to is IovPath.SOFTWARE else 'Software'}->{t.to}"
            self.transitions[key] = self.transitions.get(key, 0) + 1
            self.history.append(t)
        del self.history[: -self.history_max]
        self.ports = dict(new)
        return changes

    def vfs_of(self, uplink: str) -> list[PortIov]:
        return sorted(
            (p for p in self.ports.values() if p.path is IovPath.VF and p.uplink == uplink),
            key=lambda p: p.vf or 0,
        )
