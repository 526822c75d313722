"""The one write path of pyvswitchd: request -> candidate config -> validate -> provision -> apply -> persist.

Every change, whether it comes from the REST API or from start-up, goes through ``Transaction._commit``:

1. build the candidate HostConfig from the current one and the request (pydantic validates each object; the
   resource modules' candidate builders do this and hand over a ``Change``);
2. resolve what the daemon chooses: interface names (``pv`` + 8 hex, <= 15 characters), the peer name
   (``eth<N>`` inside a VM, ``pvh`` + 8 hex for a host vNIC) and dynamic MACs from the pool (``resolve.py``);
3. validate the whole candidate (``config.validate``) plus what only the OS can tell (a bound interface
   exists); any problem rejects the request whole, naming each field;
   A dry run (``-WhatIf``, ``daemon/dry_run.py``) stops here: its scratch configuration becomes the candidate;
4. provision new OS objects (namespaces, veths) through the injected provisioner (``provisioning.py``);
5. ``engine.apply`` the candidate;
6. save it in the store with a summary for the audit history.

If a step fails, the steps before it are undone in reverse (objects created are deleted, objects changed are
changed back, the engine gets the old configuration again), so a request is applied entirely or not at all.
OS objects the candidate no longer needs are removed only after the save, when nothing can roll back any more.

Crash consistency (issue 11): before step 4 touches the kernel, the namespaces and veths the commit will create
or remove are recorded in the store as an intent (``provisioning.touched``), ended once the old objects are gone.
Start-up first garbage-collects (``provisioning.collect``): whatever an unfinished intent names, or this daemon's
ownership mark is on, and the stored configuration does not reference, is deleted.

A stored row that does not validate (by itself, or against the rest: a port on a switch whose row failed) does
not stop the host: start-up leaves that object out, reports it in ``failed()`` (health says "degraded"), and
the store keeps its row untouched (``Store.hold``) until an object of the same name replaces it.

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
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from pyvswitch.cluster.ports import port_records, records_of
from pyvswitch.cluster.records import HostInfo, LookupRecord
from pyvswitch.config.schema import HostConfig, PortConfig, PortKind
from pyvswitch.config.store import TABLE_OF_FIELD, FailedRow, Store
from pyvswitch.config.team_nics import realize
from pyvswitch.config.validate import validate
from pyvswitch.daemon import dry_run
from pyvswitch.daemon.macpool import MacPool
from pyvswitch.daemon.service.paths import culprit, device_field, request_paths
from pyvswitch.daemon.service.provisioning import (
    INTENT_KIND,
    Provisioner,
    collect,
    failed_references,
    make,
    mark_adopted,
    nic_specs,
    os_problems,
    provision,
    referenced,
    remove_unused,
    touched,
    vm_namespaces,
)
from pyvswitch.daemon.service.resolve import resolve
from pyvswitch.daemon.tunnels import with_tunnel
from pyvswitch.errors import ConfigError, DeviceError
from pyvswitch.observe.capture import CaptureSession

log = logging.getLogger(__name__)


class GuestsLike(Protocol):
    """What the commit needs of ``pyvswitch.daemon.guests.Guests`` (QEMU guests for VMs of kind qemu)."""

    def problems(self, cfg: HostConfig) -> list[tuple[str, str]]: ...
    def reconcile(self, cfg: HostConfig) -> None: ...


class ClusterLike(Protocol):
    """What the commit needs of ``pyvswitch.cluster.agent.ClusterAgent`` (cluster mode, issue 13)."""

    host: HostInfo

    def publish(self, records: Iterable[LookupRecord]) -> None: ...

    def withdraw(self, records: Iterable[LookupRecord]) -> None: ...

    def expect(self, vsids: Iterable[int], timeout_s: float = ...) -> bool: ...


class TunnelsLike(Protocol):
    """What the commit needs of ``pyvswitch.daemon.tunnels.Tunnels``."""

    datapath: str

    def configured(self, cfg: HostConfig) -> None: ...
    def staged(self, cfg: HostConfig) -> None: ...
    def prepare(self, vsids: Iterable[int]) -> None: ...


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


@dataclass(frozen=True, slots=True)
class Change:
    """What a candidate builder hands the commit: the whole candidate and how to speak of it.

    ``summary`` goes to the audit history. ``focus`` = (collection, name) of the object the request is about:
    problems with that object name the request's own fields (``vlan.access_vlan_id``), not its place in the
    whole configuration. ``fields`` then renames paths within that object to the request's fields (a new team
    member's ``members[2]`` is the request's ``name``).
    """

    candidate: HostConfig
    summary: str
    focus: tuple[str, str] | None = None
    fields: Mapping[str, str] | None = None


def changed(changes: Mapping[str, Any]) -> str:
    """The fields a PATCH request sets, for the summary: ``set port web01-eth0: ip, vlan``."""
    return ", ".join(sorted(changes)) or "nothing"


def fixed_at_creation(cfg: HostConfig, old: HostConfig) -> list[tuple[str, str]]:
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


# The HostConfig lists whose objects can fail one by one at start-up (validation paths start with these).
_COLLECTIONS = ("teams", "switches", "ports", "vms", "qos_policies", "sriov_adapters")
_ITEM = re.compile(r"^(\w+)\[(\d+)\]\.?(.*)$")


def settle(cfg: HostConfig) -> tuple[HostConfig, dict[tuple[str, str], str]]:
    """``cfg`` without the objects validation objects to, and those objects ((table, name) -> why).

    Repeated until nothing is left to object to: leaving out a switch makes its ports fail in the next round.
    A problem that names no object (none today) is raised as before: there is nothing to leave out."""
    failed: dict[tuple[str, str], str] = {}
    for _ in range(len(cfg.teams) + len(cfg.switches) + len(cfg.ports) + len(cfg.vms) + 10):
        problems = validate(cfg)
        if not problems:
            return cfg, failed
        drop: dict[str, set[str]] = {}
        update: dict[str, Any] = {}
        for path, message in problems:
            m = _ITEM.match(path)
            if m and m[1] in _COLLECTIONS and int(m[2]) < len(getattr(cfg, m[1])):
                name = getattr(cfg, m[1])[int(m[2])].name
                drop.setdefault(m[1], set()).add(name)
                why = f"{m[3]}: {message}" if m[3] else message
                failed.setdefault((TABLE_OF_FIELD[m[1]], name), why)
            elif path.split(".")[0] == "dcb":
                update["dcb"] = type(cfg.dcb)()
                failed.setdefault(("setting", "dcb"), f"{path}: {message}")
            else:
                raise ConfigError(problems)
        for field, names in drop.items():
            update[field] = [o for o in getattr(cfg, field) if o.name not in names]
        cfg = cfg.model_copy(update=update)
    raise ConfigError(validate(cfg))


def _no_step(name: str) -> None:
    pass


def _on_thread(fn: Callable[[], None]) -> None:
    threading.Thread(target=fn, name="pyvswitch-mark", daemon=True).start()


class Transaction:
    """Desired state, its validation and its realisation: the daemon's only writer.

    The resource modules (``switches.py``, ``ports.py``, ...) extend it with their requests; ``Service`` is all
    of them together."""

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
        self._committed = HostConfig()
        self.dry_runs = dry_run.DryRuns()  # -WhatIf: scratch configurations by id (dry_run.py)
        self._degraded: dict[str, str] = {}
        # Stored objects left out at start-up because they do not validate: (table, name) -> why.
        self._failed: dict[tuple[str, str], str] = {}
        # OS objects a commit must leave in place although the new configuration drops them: the veths and
        # namespace of a VM leaving by live migration (daemon/migration.py), which another host adopts.
        self._keep: set[str] = set()
        # Veths (and VM namespaces) a live migration just moved into this namespace: they exist as configured,
        # so provisioning leaves them alone (the engine's device brings the link up), which keeps the
        # namespace round trips (~35-100 ms) out of the blackout.
        self._adopting: set[str] = set()
        # Ports of a VM arriving by live migration whose lookup records this host publishes from the commit
        # request on, before its store has them (daemon/migration.py): every publication until the adoption
        # ends includes them, so a commit of something else meanwhile does not take them back.
        self._arriving: dict[str, list[PortConfig]] = {}
        # Told the name of each step of a commit as it ends (a live migration's adoption times its blackout's
        # steps with it: daemon/migration.py); a no-op otherwise.
        self._step: Callable[[str], None] = _no_step
        # Runs work that may wait (marking adopted objects): on a thread of its own unless a live migration's
        # adoption says when (after its answer: daemon/migration.py).
        self._later: Callable[[Callable[[], None]], None] = _on_thread
        # QEMU guests of qemu VMs (daemon/guests.py), started once their TAPs are ports; None: no guests
        # (the tests' fakes), a qemu VM then gets its TAPs and ports only.
        self.guests: GuestsLike | None = None
        # Cluster mode (pyvswitchd --cluster): the ports' lookup records are published after each commit.
        self.cluster: ClusterLike | None = None
        self.tunnels: TunnelsLike | None = None  # its VXLAN port's tables (daemon/tunnels.py)

    # ---- reads (the committed config is immutable) ----

    @property
    def _cfg(self) -> HostConfig:
        """The configuration this request sees: the committed one, or its dry run's scratch (daemon/dry_run.py)."""
        run = dry_run.active()
        return run.cfg if run is not None else self._committed

    @_cfg.setter
    def _cfg(self, cfg: HostConfig) -> None:
        self._committed = cfg

    @property
    def config(self) -> HostConfig:
        return self._cfg

    @property
    def engine(self) -> EngineLike:
        return self._engine

    def degraded(self) -> dict[str, str]:
        """Ports the engine could not open at start-up, with the reason; they are retried when touched."""
        return dict(self._degraded)

    def failed(self) -> list[dict[str, str]]:
        """Stored objects that did not validate at start-up and are not running (issue 11): kind, name, why.
        One leaves the list when a request saves an object of its name."""
        held = self._store.held()
        self._failed = {k: v for k, v in self._failed.items() if k in held}
        return [{"kind": t, "name": n, "error": e} for (t, n), e in sorted(self._failed.items())]

    def history(self, limit: int = 100) -> list[dict[str, Any]]:
        return self._store.history(limit)

    # ---- writes ----

    def replace_config(self, cfg: HostConfig, summary: str = "replace configuration") -> HostConfig:
        """Make ``cfg`` the whole desired state (taken as given: no ports are added for switch types)."""
        with self._lock:
            return self._commit(Change(cfg, summary))

    # ---- start-up ----

    def start(self) -> None:
        """Load the store and make the OS and the engine match it (idempotent; run once at start-up)."""
        with self._lock:
            loaded = self._store.load_tolerant()
            rows: dict[tuple[str, str], FailedRow] = {(r.table, r.name): r for r in loaded.failed}
            full = self._resolve(loaded.config)
            cfg, invalid = settle(full)
            self._failed = {k: r.error for k, r in rows.items()} | invalid
            for (table, name), why in self._failed.items():
                self._store.hold(table, name)
                log.error("stored %s %r does not validate; not running it: %s", table, name, why)
            # What a failed object stands for is kept too: it may be fixed and run again.
            self._collect(full, [r.doc for r in rows.values()])
            self._degraded = {}
            for ns in sorted(vm_namespaces(cfg)):
                self._os.ensure_netns(ns)
            for name, spec in nic_specs(cfg).items():
                try:
                    make(self._os, spec)
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
            if full != loaded.config:
                self._store.save(cfg, "start-up: resolved interface names and MACs")
            self._cfg = cfg
            self._reconcile_guests(cfg)
            self._publish_records(cfg)
            log.info(
                "reconciled %d switches, %d ports, %d VMs%s",
                len(cfg.switches),
                len(cfg.ports),
                len(cfg.vms),
                f"; degraded ports: {', '.join(sorted(self._degraded))}" if self._degraded else "",
            )

    def _collect(self, cfg: HostConfig, failed_docs: list[str]) -> None:
        """Start-up garbage collection: finish or undo interrupted commits (their intents), and delete what
        carries our mark and nothing stored refers to (``provisioning.collect``)."""
        intents = self._store.intents(INTENT_KIND)
        keep_ns, keep_links = referenced(cfg)
        held_ns, held_links = failed_references(failed_docs)
        gone = collect(self._os, keep_ns | held_ns, keep_links | held_links, [i.doc for i in intents])
        for i in intents:
            self._store.end_intent(i.id)
        if intents or any(gone.values()):
            log.warning(
                "garbage collection: %d interrupted change(s); removed namespaces %s, interfaces %s",
                len(intents),
                ", ".join(gone["namespaces"]) or "none",
                ", ".join(gone["links"]) or "none",
            )

    def _apply_degrading(self, cfg: HostConfig) -> None:
        """engine.apply, leaving out (and recording) each port whose device fails to open."""
        while True:
            try:
                self._engine.apply(self._engine_view(cfg))
                return
            except DeviceError as exc:
                port = culprit(self._engine_view(cfg), exc, exclude=self._degraded.keys())
                if port is None:
                    raise
                log.error("port %s: %s; leaving it disconnected", port.name, exc)
                self._degraded[port.name] = str(exc)

    # ---- the write path ----

    def _commit(self, change: Change) -> HostConfig:
        """Validate, provision, apply and store ``change.candidate`` as a whole, or change nothing; problems are
        named as ``change`` says (its ``focus`` and ``fields``)."""
        try:
            return self._commit_whole(change.candidate, change.summary)
        except ConfigError as exc:
            if change.focus is None:
                raise
            problems = request_paths(exc.problems, change.candidate, *change.focus)
            if change.fields:
                fields = change.fields
                problems = [(fields.get(path, path), msg) for path, msg in problems]
            raise ConfigError(problems) from exc

    def _commit_whole(self, candidate: HostConfig, summary: str) -> HostConfig:
        old = self._cfg
        candidate = self._resolve(candidate)
        problems = validate(candidate, old)
        problems += fixed_at_creation(candidate, old)
        problems += os_problems(self._os, candidate, old)
        if self.guests is not None:
            problems += self.guests.problems(candidate)
        if problems:
            raise ConfigError(problems)
        self._step("validate")
        run = dry_run.active()
        if run is not None:  # -WhatIf: everything a real change checks has passed; nothing is touched
            run.cfg = candidate
            run.summaries.append(summary)
            return candidate
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
        # Recorded before the kernel is touched, so a crash at any point below is finished or undone at start-up.
        work = touched(old, candidate, self._adopting, self._keep)
        intent = self._store.begin_intent(INTENT_KIND, work) if any(work.values()) else None
        try:
            if self.tunnels is not None:
                self.tunnels.staged(candidate)
            provision(self._os, old, candidate, undo, self._adopting)
            self._step("provision")
            try:
                self._engine.apply(self._engine_view(candidate))
            except DeviceError as exc:
                raise ConfigError([(device_field(candidate, exc), str(exc))]) from exc
            self._step("engine_apply")

            def unapply() -> None:
                self._engine.apply(self._engine_view(old, degraded_before))
                self._configure_tunnels(old)

            undo.append(unapply)
            # The tunnel's tables right after the ports, before the save: a VM arriving by live migration
            # answers across hosts as soon as its port runs (a new tunnel port starts with empty tables).
            self._configure_tunnels(candidate)
            self._step("tunnel_tables")
            self._store.save(candidate, summary)
            self._step("store_save")
        except BaseException:
            self._degraded = degraded_before
            undone = True
            for action in reversed(undo):
                try:
                    action()
                except Exception:
                    undone = False
                    log.exception("rolling back %r", summary)
            if intent is not None and undone:
                self._store.end_intent(intent)  # else the next start-up finishes the rollback
            raise
        self._cfg = candidate
        log.info("applied: %s", summary)
        self._reconcile_guests(candidate)  # before remove_unused: a removed guest lets go of its TAP first
        self._publish_lookup(candidate)
        self._step("publish")
        remove_unused(self._os, old, candidate, self._keep)
        if intent is not None:
            self._store.end_intent(intent)
        self._step("remove_unused")
        if self._adopting:
            # Not on the caller's path: the migration announces the VM when this returns.
            adopted = set(self._adopting)
            self._later(lambda: mark_adopted(self._os, candidate, adopted))
        return candidate

    def _publish_records(self, cfg: HostConfig) -> None:
        """Hand the cluster agent this configuration's lookup records, and the tunnel its tables."""
        self._publish_lookup(cfg)
        self._configure_tunnels(cfg)

    def _publish_lookup(self, cfg: HostConfig) -> None:
        """Hand the cluster agent ``cfg``'s lookup records (it writes them to etcd on its own thread: an
        unreachable cluster delays publication, never a commit)."""
        if self.cluster is not None:
            try:
                have = {p.name for p in cfg.ports}
                arriving = [p for ps in self._arriving.values() for p in ps if p.name not in have]
                host = self.cluster.host
                self.cluster.publish([*port_records(cfg, host), *records_of(arriving, host)])
            except Exception:
                log.exception("publishing lookup records")

    def _configure_tunnels(self, cfg: HostConfig) -> None:
        if self.tunnels is not None:
            self.tunnels.configured(cfg)

    def _reconcile_guests(self, cfg: HostConfig) -> None:
        if self.guests is not None:
            try:
                self.guests.reconcile(cfg)
            except Exception:  # the change is committed; a guest's failure is its status, not the request's
                log.exception("reconciling QEMU guests")

    def _engine_view(self, cfg: HostConfig, degraded: Mapping[str, str] | None = None) -> HostConfig:
        """``cfg`` with its team interfaces realized (``config.team_nics``) and degraded ports disconnected:
        what the engine can actually run."""
        degraded = self._degraded if degraded is None else degraded
        cfg = realize(cfg)
        if self.cluster is not None:  # the VXLAN port of the host's virtual subnets (daemon/tunnels.py)
            datapath = self.tunnels.datapath if self.tunnels is not None else "python"
            cfg = with_tunnel(cfg, self.cluster.host.provider_address, datapath)
        if not degraded:
            return cfg
        ports = [p.model_copy(update={"switch": None}) if p.name in degraded else p for p in cfg.ports]
        return cfg.model_copy(update={"ports": ports})

    def _resolve(self, cfg: HostConfig) -> HostConfig:
        return resolve(cfg, self._pool, self._new_ifname, self._os.link_exists)
