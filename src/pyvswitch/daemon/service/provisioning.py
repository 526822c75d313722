"""The OS side of a commit: the namespaces and veth pairs a configuration needs, made, undone and removed.

A VM adapter is a veth pair from the daemon's namespace into the VM's namespace (``eth<N>`` there); a host vNIC is
a veth pair whose peer stays in the daemon's namespace. ``nic_specs`` says which pairs a configuration needs;
``provision`` makes what a candidate adds (recording how to undo each step, for the commit's rollback),
``remove_unused`` deletes what only the old configuration needed once nothing can roll back any more, and
``os_problems`` is the part of validation only the OS can answer (does a bound interface exist?).

The Provisioner is injected: ``pyvswitch.daemon.provision`` in the daemon, fakes in tests.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Protocol

from pyvswitch.config.schema import HostConfig, PortKind
from pyvswitch.config.team_nics import hidden_owner, realize
from pyvswitch.daemon.service.paths import team_nic_field

log = logging.getLogger(__name__)


class Provisioner(Protocol):
    """The OS side (``pyvswitch.daemon.provision`` satisfies it)."""

    def create_vm_nic(self, netns: str, host_if: str, vm_if: str, mac: str, ips: list[str]) -> None: ...
    def create_host_vnic(self, host_if: str, switch_if: str, mac: str, ips: list[str]) -> None: ...
    def delete_link(self, ifname: str) -> None: ...
    def delete_netns(self, name: str) -> None: ...
    def link_exists(self, ifname: str) -> bool: ...
    def netns_exists(self, name: str) -> bool: ...
    def ensure_netns(self, name: str) -> None: ...


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


def vm_namespaces(cfg: HostConfig) -> set[str]:
    return {v.namespace for v in cfg.vms}


def make(os_: Provisioner, spec: NicSpec) -> None:
    """Create (or converge: provisioning is idempotent) the veth pair ``spec``."""
    if spec.kind is PortKind.VM:
        assert spec.netns is not None
        os_.create_vm_nic(spec.netns, spec.interface, spec.peer, spec.mac, list(spec.ips))
    else:
        os_.create_host_vnic(spec.peer, spec.interface, spec.mac, list(spec.ips))


def provision(
    os_: Provisioner,
    old: HostConfig,
    new: HostConfig,
    undo: list[Callable[[], None]],
    adopting: Collection[str] = (),
) -> None:
    """Create or change the OS objects ``new`` adds, appending how to undo each step to ``undo``.

    ``adopting``: namespaces and veths a live migration just moved here; they exist as configured and are left
    alone."""
    for ns in sorted(vm_namespaces(new) - vm_namespaces(old) - set(adopting)):
        existed = os_.netns_exists(ns)
        os_.ensure_netns(ns)
        if not existed:
            undo.append(lambda ns=ns: os_.delete_netns(ns))  # type: ignore[misc]
    old_specs = nic_specs(old)
    for name, spec in nic_specs(new).items():
        before = old_specs.get(name)
        if before == spec or (before is None and spec.interface in adopting):
            continue
        if before is not None and before.identity == spec.identity:
            make(os_, spec)
            undo.append(lambda before=before: make(os_, before))  # type: ignore[misc]
            continue
        existed = os_.link_exists(spec.interface)
        make(os_, spec)
        if not existed:
            undo.append(lambda ifname=spec.interface: os_.delete_link(ifname))  # type: ignore[misc]


def remove_unused(os_: Provisioner, old: HostConfig, new: HostConfig, keep: Collection[str] = ()) -> None:
    """Delete OS objects only ``old`` needed; failures are logged (the change itself is already made).

    ``keep``: namespaces and veths of a VM leaving by live migration, which another host adopts."""
    new_specs = nic_specs(new)
    new_ifs = {s.interface for s in new_specs.values()}
    for name, spec in nic_specs(old).items():
        now = new_specs.get(name)
        if spec.interface in keep:
            continue
        if (now is None or now.identity != spec.identity) and spec.interface not in new_ifs:
            try:
                os_.delete_link(spec.interface)
            except Exception:
                log.exception("deleting %s of removed port %s", spec.interface, name)
    for ns in sorted(vm_namespaces(old) - vm_namespaces(new) - set(keep)):
        try:
            os_.delete_netns(ns)
        except Exception:
            log.exception("deleting namespace %s", ns)


def os_problems(os_: Provisioner, cfg: HostConfig, old: HostConfig) -> list[tuple[str, str]]:
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
        if not os_.link_exists(p.interface):
            field = f"ports[{i}].interface"
            if p.kind is PortKind.UPLINK and p.interface in adapters:
                field = f"switches[{adapters[p.interface]}].net_adapter"
            out.append((field, f"no interface {p.interface!r} on this host"))
    # Every team is opened (by a switch, or for its own team interfaces): members new to it must exist.
    old_teams = {t.name: t for t in old.teams}
    for ti, t in enumerate(cfg.teams):
        had = old_teams.get(t.name)
        for j, m in enumerate(t.members):
            if (had is None or m not in had.members) and not os_.link_exists(m):
                out.append((f"teams[{ti}].members[{j}]", f"no interface {m!r} on this host"))
    # Team interfaces new to the host are TAPs the engine makes: their names must be free. (A name that
    # is configured elsewhere, as a member or a port's interface, is reported by ``validate``.)
    old_tnics = {p.interface for p in realize(old).ports if hidden_owner(p.name) is not None}
    old_tnics |= {m for t in cfg.teams for m in t.members} | {p.interface for p in cfg.ports}
    for p in realize(cfg).ports:
        owner = hidden_owner(p.name)
        if owner is None or owner[1] is None or p.interface in old_tnics or p.interface is None:
            continue
        if os_.link_exists(p.interface):
            out.append(
                (team_nic_field(cfg, *owner), f"interface {p.interface!r} already exists on this host")
            )
    return out
