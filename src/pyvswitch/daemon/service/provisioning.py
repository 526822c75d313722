"""The OS side of a commit: the namespaces and veth pairs a configuration needs, made, undone and removed.

A VM adapter is a veth pair from the daemon's namespace into the VM's namespace (``eth<N>`` there); a host vNIC is
a veth pair whose peer stays in the daemon's namespace. ``nic_specs`` says which pairs a configuration needs;
``provision`` makes what a candidate adds (recording how to undo each step, for the commit's rollback),
``remove_unused`` deletes what only the old configuration needed once nothing can roll back any more, and
``os_problems`` is the part of validation only the OS can answer (does a bound interface exist?).

Crash consistency (issue 11): ``touched`` lists the namespaces and veths a commit is going to create or remove;
the commit records them in the store as an intent before touching the kernel and ends the intent once the old
objects are removed. ``collect`` runs at start-up: every object an unfinished intent names, and every object
carrying this daemon's ownership mark (``daemon/ownership.py``), that the stored configuration does not
reference is deleted. Whether the interrupted commit had reached its save decides which way that goes: saved,
its new objects are referenced and its old ones not (completed); not saved, the reverse (rolled back).
Objects with another owner's mark are never touched, unmarked ones only when an intent names them.

The Provisioner is injected: ``pyvswitch.daemon.provision`` in the daemon, fakes in tests.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from pyvswitch.config.schema import HostConfig, PortKind, VmKind
from pyvswitch.config.team_nics import hidden_owner, realize
from pyvswitch.daemon.service.paths import team_nic_field

log = logging.getLogger(__name__)


class Provisioner(Protocol):
    """The OS side (``pyvswitch.daemon.provision`` satisfies it)."""

    def create_vm_nic(self, netns: str, host_if: str, vm_if: str, mac: str, ips: list[str]) -> None: ...
    def create_host_vnic(self, host_if: str, switch_if: str, mac: str, ips: list[str]) -> None: ...
    def create_guest_tap(self, host_if: str) -> None: ...
    def delete_link(self, ifname: str) -> None: ...
    def delete_netns(self, name: str) -> None: ...
    def link_exists(self, ifname: str) -> bool: ...
    def netns_exists(self, name: str) -> bool: ...
    def ensure_netns(self, name: str) -> None: ...


@runtime_checkable
class OwnedObjects(Protocol):
    """What garbage collection asks of the provisioner (``pyvswitch.daemon.provision.Kernel``); a provisioner
    without it (the tests' fakes) is not collected."""

    owner: str

    def link_owner(self, ifname: str) -> str | None: ...
    def netns_owner(self, name: str) -> str | None: ...
    def owned_links(self) -> set[str]: ...
    def owned_namespaces(self) -> set[str]: ...
    def mark_link(self, ifname: str) -> None: ...
    def mark_netns(self, name: str) -> None: ...


INTENT_KIND = "provision"  # the store's intent kind for a commit's kernel objects


@dataclass(frozen=True, slots=True)
class NicSpec:
    """A veth pair (or a QEMU guest's TAP) the daemon owns, as provisioning creates it."""

    kind: PortKind  # VM or HOST
    netns: str | None  # the VM's namespace; None for a host vNIC and a QEMU guest's NIC
    interface: str  # switch-side end, in the daemon's namespace (a guest's TAP)
    peer: str  # eth<N> in the VM, or the host vNIC
    mac: str
    ips: tuple[str, ...]
    guest_tap: bool = False  # a QEMU guest's adapter: a persistent TAP that QEMU opens (guest/qemu.py)

    @property
    def identity(self) -> tuple[PortKind, str | None, str, str, bool]:
        """What cannot change in place: a different identity is a different veth."""
        return (self.kind, self.netns, self.interface, self.peer, self.guest_tap)


def nic_specs(cfg: HostConfig) -> dict[str, NicSpec]:
    """Port name -> the veth the daemon must provide for it (VM adapters and host vNICs, resolved)."""
    namespaces = {v.name: v.namespace for v in cfg.vms if v.kind is VmKind.NAMESPACE}
    guests = {v.name for v in cfg.vms if v.kind is VmKind.QEMU}
    out: dict[str, NicSpec] = {}
    for p in cfg.ports:
        if p.kind not in (PortKind.VM, PortKind.HOST):
            continue
        if p.interface is None or p.peer_interface is None or p.mac is None:
            raise ValueError(f"port {p.name!r} is not resolved")
        netns = namespaces.get(p.vm or "") if p.kind is PortKind.VM else None
        tap = p.kind is PortKind.VM and p.vm in guests
        out[p.name] = NicSpec(p.kind, netns, p.interface, p.peer_interface, p.mac, tuple(p.ip), tap)
    return out


def vm_namespaces(cfg: HostConfig) -> set[str]:
    return {v.namespace for v in cfg.vms if v.kind is VmKind.NAMESPACE}


def referenced(cfg: HostConfig) -> tuple[set[str], set[str]]:
    """(namespaces, links in the daemon's namespace) a configuration needs: what collection must keep."""
    links: set[str] = set()
    for spec in nic_specs(cfg).values():
        links.add(spec.interface)
        if spec.kind is PortKind.HOST:
            links.add(spec.peer)
    return vm_namespaces(cfg), links


def failed_references(docs: list[str]) -> tuple[set[str], set[str]]:
    """Best effort: the namespaces and links stored rows that do not validate may stand for, so collection
    leaves a failed object's kernel objects alone (its JSON may be anything; names are read where found)."""
    namespaces: set[str] = set()
    links: set[str] = set()
    for doc in docs:
        try:
            data: Any = json.loads(doc)
        except ValueError:
            continue
        if not isinstance(data, dict):
            continue
        for key in ("netns", "name"):
            if isinstance(data.get(key), str):
                namespaces.add(data[key])
        for key in ("interface", "peer_interface"):
            if isinstance(data.get(key), str):
                links.add(data[key])
    return namespaces, links


def touched(
    old: HostConfig, new: HostConfig, adopting: Collection[str] = (), keep: Collection[str] = ()
) -> dict[str, list[str]]:
    """The namespaces and veths (daemon-side names) a commit from ``old`` to ``new`` may create or remove:
    the intent recorded before it touches the kernel. Empty lists when it touches nothing."""
    old_ns, old_links = referenced(old)
    new_ns, new_links = referenced(new)
    skip = set(adopting) | set(keep)
    return {
        "namespaces": sorted((old_ns ^ new_ns) - skip),
        "links": sorted((old_links ^ new_links) - skip),
    }


def collect(
    os_: Provisioner,
    keep_ns: set[str],
    keep_links: set[str],
    intents: list[dict[str, Any]],
) -> dict[str, list[str]]:
    """Delete the namespaces and veths this daemon made that nothing stored refers to; returns what went.

    Candidates: objects carrying our mark, and objects an unfinished intent names that carry our mark or none
    (the moment between creating and marking). ``keep_*``: what the stored configuration (and failed rows)
    refer to."""
    if not isinstance(os_, OwnedObjects):
        return {"namespaces": [], "links": []}
    owner = os_.owner
    links = os_.owned_links()
    namespaces = os_.owned_namespaces()
    for intent in intents:
        for ifname in intent.get("links", []):
            if ifname not in links and os_.link_owner(ifname) in ("", owner):
                links.add(ifname)
        for ns in intent.get("namespaces", []):
            if ns not in namespaces and os_.netns_owner(ns) in ("", owner):
                namespaces.add(ns)
    gone: dict[str, list[str]] = {"namespaces": [], "links": []}
    for ifname in sorted(links - keep_links):
        try:
            os_.delete_link(ifname)
            gone["links"].append(ifname)
        except Exception as exc:  # one stuck object must not keep the daemon down
            log.error("garbage collection: cannot delete interface %s: %s", ifname, exc)
    for ns in sorted(namespaces - keep_ns):
        try:
            os_.delete_netns(ns)
            gone["namespaces"].append(ns)
        except Exception as exc:
            log.error("garbage collection: cannot delete namespace %s: %s", ns, exc)
    return gone


def make(os_: Provisioner, spec: NicSpec) -> None:
    """Create (or converge: provisioning is idempotent) the veth pair ``spec``. A guest's addresses are set
    inside the guest, from its kernel command line (daemon/guests.py)."""
    if spec.guest_tap:
        os_.create_guest_tap(spec.interface)
    elif spec.kind is PortKind.VM:
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
    alone (``mark_adopted`` gives them this daemon's mark afterwards)."""
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


def mark_adopted(os_: Provisioner, new: HostConfig, adopting: Collection[str]) -> None:
    """Put this daemon's mark on the namespace and veths a live migration handed over: the source's mark would
    let the source's garbage collection take them. Entering the namespace costs 35-100 ms, so the commit runs
    this on another thread after the adoption, out of the migration's blackout."""
    if not isinstance(os_, OwnedObjects):
        return
    new_ns, new_links = referenced(new)
    try:
        for ifname in sorted(set(adopting) & new_links):
            os_.mark_link(ifname)
        for ns in sorted(set(adopting) & new_ns):
            os_.mark_netns(ns)
    except Exception as exc:  # the objects work unmarked; only a later collection could misjudge them
        log.error("marking adopted objects %s: %s", ", ".join(sorted(adopting)), exc)


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
