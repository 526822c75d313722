"""A host's membership of the cluster (issue 13 item 1): registration under a lease, the lookup records of its own
ports, and a watched, locally cached view of every virtual subnet it has a port on.

Threads: one *sync* thread keeps the lease alive (every TTL/3) and makes etcd hold exactly this host's desired
records and subnet memberships (``publish`` only records the wish and wakes it, so a commit never waits for
etcd, and an unreachable cluster delays publication, not configuration); one *watch* thread per subnet applies
that subnet's changes to the view; one *routes* thread follows the cluster's customer routes, which add to the
subnets watched those their routing domains route to (the distributed router needs their records). A dead host stops renewing its lease, and etcd deletes its registration,
memberships and port records when the lease expires: the other hosts see the deletions and stop sending there.

Restart without a resync: the views, the revision each was read at and the lease id are kept in a cache file
(``cluster-cache.json`` in the state directory). A restarted agent keeps its lease if it is still alive (no
churn for the others), and resumes each subnet's watch at the cached revision + 1; only a revision etcd has
compacted away makes it read that subnet again (``stats.resyncs``), as does a store rebuilt from nothing (its
revision behind the views', seen when the lease is found gone).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from pyvswitch.cluster.client import ClusterClient, ClusterError, Compacted, Event
from pyvswitch.cluster.records import (
    ROOT,
    CustomerRoute,
    HostInfo,
    LookupRecord,
    RecordError,
    host_key,
    hosts_prefix,
    member_key,
    parse_subnet_key,
    record_key,
    route_key,
    routes_prefix,
    subnet_prefix,
)

log = logging.getLogger(__name__)

DEFAULT_TTL_S = 10
RETRY_S = 0.5
MAX_RETRY_S = 5.0  # a cluster that stays away: retry every 5 s, not twice a second
CACHE_NAME = "cluster-cache.json"
# How long a subnet expected by a migration's destination stays watched without a port of its own: long
# enough for the hand-over (a few seconds), short enough that a migration that never came costs little.
EXPECT_HOLD_S = 30.0


@dataclass
class AgentStats:
    range_reads: int = 0  # whole-subnet reads: first watch of a subnet, or a resync
    resyncs: int = 0  # of which: history compacted while away, or the store rebuilt from nothing
    events: int = 0  # watch events applied
    writes: int = 0  # puts and deletes of this host's records and memberships
    keepalives: int = 0
    route_reads: int = 0  # whole reads of the customer routes: first start, or their history compacted
    registrations: int = 0  # leases granted (1 unless the lease expired: a partition, or a long stop)
    cycles: int = 0  # rounds of the sync thread (lease, records, watches, cache) completed


@dataclass
class SubnetView:
    """One virtual subnet as this host last saw it."""

    revision: int = 0
    records: dict[str, LookupRecord] = field(default_factory=dict)  # customer address -> record
    hosts: dict[str, HostInfo] = field(default_factory=dict)  # hosts with ports on it

    def apply(self, event: Event) -> None:
        parsed = parse_subnet_key(event.key)
        if parsed is None:
            return
        _, kind, name = parsed
        table: dict[str, object] = self.records if kind == "records" else self.hosts  # type: ignore[assignment]
        if event.kind == "delete":
            table.pop(name, None)
        else:
            try:
                table[name] = (
                    LookupRecord.decode(event.value) if kind == "records" else HostInfo.decode(event.value)
                )
            except (
                ValueError,
                KeyError,
                TypeError,
            ) as exc:  # someone else's bad write: skip it, keep watching
                log.warning("cluster: ignoring malformed %s: %s", event.key, exc)
        self.revision = max(self.revision, event.revision)

    def copy(self) -> SubnetView:
        return SubnetView(self.revision, dict(self.records), dict(self.hosts))

    def to_json(self) -> dict[str, object]:
        return {
            "revision": self.revision,
            "records": [asdict(r) for r in self.records.values()],
            "hosts": [{**asdict(h), "capabilities": list(h.capabilities)} for h in self.hosts.values()],
        }

    @classmethod
    def from_json(cls, d: dict[str, object]) -> SubnetView:
        view = cls(int(d.get("revision", 0)))  # type: ignore[call-overload]
        for r in d.get("records", []):  # type: ignore[attr-defined]
            rec = LookupRecord(**r)
            view.records[rec.customer_address] = rec
        for h in d.get("hosts", []):  # type: ignore[attr-defined]
            info = HostInfo(h["name"], h["provider_address"], tuple(h.get("capabilities", ())))
            view.hosts[info.name] = info
        return view


@dataclass
class RouteView:
    """The cluster's customer routes as this host last saw them (one watched prefix for all)."""

    revision: int = 0
    routes: dict[str, CustomerRoute] = field(default_factory=dict)  # key -> route

    def apply(self, event: Event) -> None:
        if event.kind == "delete":
            self.routes.pop(event.key, None)
        else:
            try:
                self.routes[event.key] = CustomerRoute.decode(event.value)
            except (ValueError, KeyError, TypeError) as exc:  # someone else's bad write: skip it
                log.warning("cluster: ignoring malformed %s: %s", event.key, exc)
        self.revision = max(self.revision, event.revision)

    def to_json(self) -> dict[str, object]:
        return {"revision": self.revision, "routes": [asdict(r) for r in self.routes.values()]}

    @classmethod
    def from_json(cls, d: dict[str, object]) -> RouteView:
        view = cls(int(d.get("revision", 0)))  # type: ignore[call-overload]
        for r in d.get("routes", []):  # type: ignore[attr-defined]
            route = CustomerRoute(**r)
            view.routes[route.key] = route
        return view


class ClusterAgent:
    def __init__(
        self,
        client: ClusterClient,
        host: HostInfo,
        cache_dir: Path | None = None,
        ttl_s: int = DEFAULT_TTL_S,
        on_change: Callable[[int], None] | None = None,
    ) -> None:
        self.client = client
        self.host = host
        self.ttl_s = ttl_s
        self.cache_path = cache_dir / CACHE_NAME if cache_dir is not None else None
        self.on_change = on_change  # called with a VSID after its view changed (from a watch thread)
        self.stats = AgentStats()
        self.lease = 0
        self._views: dict[int, SubnetView] = {}
        self._views_lock = threading.Lock()
        self._desired: dict[str, bytes] = {}  # key -> value this host wants under its lease
        self._written: dict[str, bytes] = {}  # what it last wrote (or found it had written, after a restart)
        # Keys of ours a watch saw deleted by someone else, to write again if still wanted (the sync thread's).
        self._deleted: set[str] = set()
        # Records to delete if they still hold this host's value and it does not want them (``withdraw``).
        self._withdrawn: dict[str, bytes] = {}
        self._deleted_lock = threading.Lock()
        self._subnets: set[int] = set()  # subnets this host wants watched
        # No record is written or deleted before the owner's first publish: a restarted daemon starts its agent
        # before start-up has read the configuration, and syncing an empty desired set first deleted every record
        # the host still had (the others saw its VMs vanish and come back; a fresh-clone test run caught it).
        self._published = False
        self._expected: dict[int, float] = {}  # subnets watched ahead of a port (expect): VSID -> until
        self._expected_lock = threading.Lock()
        self._watches: dict[int, tuple[threading.Thread, threading.Event, list[Callable[[], None]]]] = {}
        self._routes: RouteView | None = None  # None until read (or loaded from the cache)
        self._routes_watch: tuple[threading.Thread, threading.Event, list[Callable[[], None]]] | None = None
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._cache_dirty = False
        self.last_error: str | None = None
        # A restart's resumption, for `vnet status`: how long the host was stopped (from the cache's time) and
        # whether its lease outlived the stop. A lease found expired says why the host registered again.
        self._saved_at: float | None = None  # wall-clock time of the cache a restart resumed from
        self.resume: dict[str, object] | None = None

    # ---- life cycle ----

    def start(self) -> ClusterAgent:
        self._load_cache()
        self._start_routes_watch()
        self._thread = threading.Thread(target=self._run, name="pyvswitch-cluster", daemon=True)
        self._thread.start()
        return self

    def _start_routes_watch(self) -> None:
        stop, closers = threading.Event(), list[Callable[[], None]]()
        t = threading.Thread(
            target=self._watch_routes, args=(stop, closers), name="pyvswitch-routes", daemon=True
        )
        self._routes_watch = (t, stop, closers)
        t.start()

    def _stop_routes_watch(self) -> None:
        if self._routes_watch is not None:
            t, stop, closers = self._routes_watch
            self._routes_watch = None
            stop.set()
            for close in closers:
                close()
            t.join(timeout=5)

    def halt(self) -> None:
        """Stop every thread and say nothing to etcd (no renewal, no revocation): as kill -9 leaves it. Tests."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        for vsid in list(self._watches):
            self._unwatch(vsid)
        self._stop_routes_watch()

    def stop(self, leave: bool = False) -> None:
        """Stop the threads; ``leave``: also revoke the lease (this host's records go at once), as a host that is
        taken out of the cluster does. Without it, a restart within the TTL finds everything in place."""
        self.halt()
        if leave and self.lease:
            with contextlib.suppress(ClusterError):
                self.client.revoke(self.lease)
            self.lease = 0
        elif self.lease:
            # A restart: renew once more, so the successor has the whole TTL to take the lease over.
            with contextlib.suppress(ClusterError):
                self.client.keepalive(self.lease)
        self._save_cache(force=True)

    def wait_ready(self, timeout_s: float = 10.0) -> bool:
        """True once registered and every desired record and subnet watch is in place."""

        def ready() -> bool:
            wanted = self._wanted_subnets()  # expected subnets count: their watches are wanted too
            return (
                bool(self.lease)
                and self._written == self._desired
                and set(self._watches) == wanted
                and self._have_views(wanted)
                and self._routes is not None
            )

        return self._wait(ready, timeout_s)

    def _have_views(self, vsids: Iterable[int]) -> bool:
        with self._views_lock:
            return all(v in self._views for v in vsids)

    def _wait(self, cond: Callable[[], bool], timeout_s: float) -> bool:
        """Poll ``cond`` every 10 ms for at most ``timeout_s`` (an agent stopping ends the wait early)."""
        deadline = time.monotonic() + timeout_s
        while not cond():
            if time.monotonic() >= deadline or self._stop.wait(0.01):
                return False
        return True

    # ---- what the daemon tells it ----

    def publish(self, records: Iterable[LookupRecord]) -> None:
        """This host's port records now (replacing the previous set); memberships follow from their subnets."""
        desired: dict[str, bytes] = {}
        subnets: set[int] = set()
        for rec in records:
            rec = LookupRecord(**{**asdict(rec), "host": self.host.name})
            desired[rec.key] = rec.encode()
            subnets.add(rec.vsid)
        for vsid in subnets:
            desired[member_key(vsid, self.host.name)] = self.host.encode()
        desired[host_key(self.host.name)] = self.host.encode()
        self._desired = desired
        self._subnets = subnets
        self._published = True
        self._wake.set()

    def withdraw(self, records: Iterable[LookupRecord]) -> None:
        """Delete these records of this host's, if they still hold the value it would write and it does not want
        them. A live migration's destination publishes the arriving VM's records before the VM is its own
        (daemon/migration.py) and withdraws them if it gives the VM back; after a restart this host no longer
        knows what it wrote, so the records say what to delete."""
        with self._deleted_lock:
            for rec in records:
                rec = LookupRecord(**{**asdict(rec), "host": self.host.name})
                self._withdrawn[rec.key] = rec.encode()
        self._wake.set()

    def expect(self, vsids: Iterable[int], timeout_s: float = 1.0, hold_s: float = EXPECT_HOLD_S) -> bool:
        """Watch these subnets before a port of theirs is here (a live migration's destination, while it
        validates): the view is loaded when the VM arrives, so its first frames and ARP requests find the
        records. A subnet first watched at the adoption made the VM's first ARP request go unanswered and
        its pings wait for the 1 s retry (cluster migration blackout ~1,000 ms against ~170 ms, 2026-12-06).
        Kept ``hold_s`` (or for as long as a port's record asks for it); True once every view is loaded,
        waiting at most ``timeout_s``."""
        wanted = set(vsids)
        until = time.monotonic() + hold_s
        with self._expected_lock:
            for vsid in wanted:
                self._expected[vsid] = max(until, self._expected.get(vsid, 0.0))
        self._wake.set()
        return self._wait(lambda: self._have_views(wanted), timeout_s)

    def _wanted_subnets(self) -> set[int]:
        """The subnets to watch: those of this host's records, those expected until their time is up, and those
        their routing domains route to (customer routes)."""
        now = time.monotonic()
        with self._expected_lock:
            self._expected = {v: t for v, t in self._expected.items() if t > now}
            base = self._subnets | set(self._expected)
        routes = self.customer_routes()
        domains = {r.rdid for r in routes if r.vsid in base}
        return base | {r.vsid for r in routes if r.rdid in domains}

    def customer_routes(self) -> list[CustomerRoute]:
        """The cluster's customer routes as last seen (the distributed router's, daemon/tunnels.py)."""
        with self._views_lock:
            return list(self._routes.routes.values()) if self._routes is not None else []

    # ---- what the data path and the API read ----

    def view(self, vsid: int) -> SubnetView | None:
        with self._views_lock:
            return self._views.get(vsid)

    def lookup(self, vsid: int, customer_address: str) -> LookupRecord | None:
        view = self.view(vsid)
        return view.records.get(customer_address) if view is not None else None

    def subnets(self) -> dict[int, SubnetView]:
        """A copy of every view, its tables included: the watch threads change the views as events arrive
        (iterating a live view's records raced them: "dictionary changed size during iteration")."""
        with self._views_lock:
            return {v: view.copy() for v, view in self._views.items()}

    def status(self) -> dict[str, object]:
        """What ``pyvswitch vnet status`` shows: who this host is, its lease, the subnets it watches."""
        with self._views_lock:
            subnets = {
                str(v): {"revision": view.revision, "records": len(view.records), "hosts": sorted(view.hosts)}
                for v, view in sorted(self._views.items())
            }
        return {
            "host": self.host.name,
            "provider_address": self.host.provider_address,
            "endpoints": self.client.endpoints,
            "lease": f"{self.lease:x}" if self.lease else None,
            "lease_ttl_s": self.ttl_s,
            "published": len(self._written),
            "in_sync": self._written == self._desired,
            "last_error": self.last_error,
            "subnets": subnets,
            "customer_routes": len(self._routes.routes) if self._routes is not None else None,
            "stats": asdict(self.stats),
            "resume": self.resume,
            "etcd_failovers": self.client.failovers,
        }

    # ---- the cluster-wide view (Get-/New-/Remove-NetVirtualizationLookupRecord), read from etcd ----

    def records(self, vsid: int | None = None) -> list[LookupRecord]:
        prefix = subnet_prefix(vsid) if vsid is not None else f"{ROOT}vsid/"
        out = []
        for kv in self.client.range_prefix(prefix)[0]:
            parsed = parse_subnet_key(kv.key)
            if parsed is not None and parsed[1] == "records":
                with contextlib.suppress(ValueError, KeyError, TypeError):
                    out.append(LookupRecord.decode(kv.value))
        return out

    def hosts(self) -> list[HostInfo]:
        out = []
        for kv in self.client.range_prefix(hosts_prefix())[0]:
            with contextlib.suppress(ValueError, KeyError, TypeError):
                out.append(HostInfo.decode(kv.value))
        return out

    def add_static_record(self, rec: LookupRecord) -> LookupRecord:
        """An operator's record (New-NetVirtualizationLookupRecord): no host, no lease; it stays until removed.
        A port's record at the same address is not overwritten (the port owns that address)."""
        current = self.client.get(rec.key)
        if current is not None:
            with contextlib.suppress(ValueError, KeyError, TypeError):
                owner = LookupRecord.decode(current.value)
                if owner.host is not None:
                    raise RecordError(
                        f"customer_address: {rec.customer_address} on virtual subnet {rec.vsid} is port "
                        f"{owner.port}'s on host {owner.host}"
                    )
        static = LookupRecord(**{**asdict(rec), "host": None, "vm": None, "port": None})
        self.client.put(static.key, static.encode())
        return static

    def remove_record(self, vsid: int, customer_address: str) -> bool:
        return self.client.delete(record_key(vsid, customer_address)) > 0

    def routes(self) -> list[CustomerRoute]:
        """Get-NetVirtualizationCustomerRoute: the cluster's routes, read from etcd (not the cached view)."""
        out = []
        for kv in self.client.range_prefix(routes_prefix())[0]:
            with contextlib.suppress(ValueError, KeyError, TypeError):
                out.append(CustomerRoute.decode(kv.value))
        return sorted(out, key=lambda r: (r.rdid, r.vsid, r.destination_prefix))

    def add_route(self, route: CustomerRoute) -> CustomerRoute:
        """New-NetVirtualizationCustomerRoute (or Set-, for the same key): a virtual subnet is in one routing
        domain, so a route that would put it in a second is refused, naming the first."""
        for r in self.routes():
            if r.vsid == route.vsid and r.rdid != route.rdid:
                raise RecordError(
                    f"virtual_subnet_id: {route.vsid} is in routing domain {r.rdid} "
                    f"(route {r.destination_prefix}); a virtual subnet is in one routing domain"
                )
        self.client.put(route.key, route.encode())
        return route

    def remove_route(self, rdid: str, vsid: int, destination_prefix: str) -> bool:
        return self.client.delete(route_key(rdid, vsid, destination_prefix)) > 0

    # ---- the sync thread ----

    def _run(self) -> None:
        next_keepalive = 0.0
        while not self._stop.is_set():
            try:
                now = time.monotonic()
                if not self.lease or now >= next_keepalive:
                    self._keep_lease()
                    next_keepalive = now + self.ttl_s / 3
                self._sync_records()
                self._sync_watches()
                self._save_cache()
                self.last_error = None
                self.stats.cycles += 1
            except ClusterError as exc:
                if self.last_error != str(exc):
                    log.warning("cluster: %s (retrying)", exc)
                self.last_error = str(exc)
                self._stop.wait(RETRY_S)
                continue
            self._wake.wait(timeout=max(0.05, min(self.ttl_s / 3, next_keepalive - time.monotonic())))
            self._wake.clear()

    def _keep_lease(self) -> None:
        if self.lease:
            ttl = self.client.keepalive(self.lease)
            self.stats.keepalives += 1
            stopped_s = self._note_resume(ttl)
            if ttl > 0:
                return
            why = f" (stopped for {stopped_s} s, TTL {self.ttl_s} s)" if stopped_s is not None else ""
            log.warning(
                "cluster: lease %x of %s had expired%s; registering again", self.lease, self.host.name, why
            )
        self.lease = self.client.grant(self.ttl_s)
        self.stats.registrations += 1
        self._written = {}  # whatever was under an expired lease is gone
        self._cache_dirty = True
        self._check_history()

    def _note_resume(self, ttl_left: int) -> float | None:
        """The first keepalive after a restart: record how long the host was stopped and whether its cached lease
        outlived the stop; returns the stop's length then (None at any other keepalive)."""
        if self._saved_at is None or self.resume is not None:
            return None
        stopped_s = round(max(0.0, time.time() - self._saved_at), 2)  # wall clock: it spans two processes
        self.resume = {
            "stopped_s": stopped_s,
            "lease": "kept" if ttl_left > 0 else "expired",
            "ttl_left_s": max(ttl_left, 0),
        }
        return stopped_s

    def _check_history(self) -> None:
        """After a new registration: a store whose revision is behind what this host has already seen was
        rebuilt from nothing (its data lost, not restored from a snapshot, which keeps the revisions). The
        watches would resume from a revision the new store has not reached and deliver nothing until it does,
        so every view is read again (``stats.resyncs``, one per subnet and one for the routes)."""
        with self._views_lock:
            seen = max([v.revision for v in self._views.values()], default=0)
            if self._routes is not None:
                seen = max(seen, self._routes.revision)
        now = self.client.revision()
        if seen <= now:
            return
        log.warning("cluster: the store is at revision %d, behind the %d this host saw: it was rebuilt; "
                    "reading every view again", now, seen)  # fmt: skip
        for vsid in list(self._watches):
            self._unwatch(vsid)  # _sync_watches starts it again, which reads the subnet whole
            self.stats.resyncs += 1
        self._stop_routes_watch()
        with self._views_lock:
            self._views = {}
            self._routes = None
        self.stats.resyncs += 1
        self._start_routes_watch()

    def _sync_records(self) -> None:
        if not self._published:
            return
        with self._deleted_lock:
            deleted, self._deleted = self._deleted, set()
        for key in deleted:
            self._written.pop(key, None)
        desired = self._desired
        with self._deleted_lock:
            withdrawn = dict(self._withdrawn)
        for key, value in withdrawn.items():
            if key not in desired:
                self.client.delete_if(key, value)
                self._written.pop(key, None)
                self.stats.writes += 1
            with self._deleted_lock:  # done: unless withdrawn again meanwhile
                if self._withdrawn.get(key) == value:
                    del self._withdrawn[key]
        for key in [k for k in self._written if k not in desired]:
            # Only if it is still ours: after a live migration the destination has written the same key.
            self.client.delete_if(key, self._written[key])
            self._written.pop(key, None)
            self.stats.writes += 1
        changed = [(k, v) for k, v in desired.items() if self._written.get(k) != v]
        if changed:
            # A host's start-up publishes in a few round trips (transactions of 100 puts), not one per key.
            self.client.put_many(changed, lease=self.lease)
            self._written.update(changed)
            self.stats.writes += len(changed)

    def _sync_watches(self) -> None:
        wanted = self._wanted_subnets()
        for vsid in set(self._watches) - wanted:
            self._unwatch(vsid)
            with self._views_lock:
                self._views.pop(vsid, None)
            self._cache_dirty = True
        for vsid in wanted - set(self._watches):
            stop = threading.Event()
            closers: list[Callable[[], None]] = []
            t = threading.Thread(
                target=self._watch, args=(vsid, stop, closers), name=f"pyvswitch-vsid-{vsid}", daemon=True
            )
            self._watches[vsid] = (t, stop, closers)
            t.start()

    def _unwatch(self, vsid: int) -> None:
        t, stop, closers = self._watches.pop(vsid)
        stop.set()
        for close in closers:
            close()
        t.join(timeout=5)

    # ---- a watch thread ----

    def _read_subnet(self, vsid: int) -> SubnetView:
        kvs, revision = self.client.range_prefix(subnet_prefix(vsid))
        self.stats.range_reads += 1
        view = SubnetView(revision)
        for kv in kvs:
            view.apply(Event("put", kv.key, kv.value, kv.mod_revision))
        view.revision = revision
        return view

    def _watch(self, vsid: int, stop: threading.Event, closers: list[Callable[[], None]]) -> None:
        def load() -> SubnetView:
            view = self._read_subnet(vsid)
            with self._views_lock:
                self._views[vsid] = view
            return view

        def forget() -> None:
            self.stats.resyncs += 1
            with self._views_lock:
                self._views.pop(vsid, None)

        self._follow(
            subnet_prefix(vsid), f"subnet {vsid}", lambda: self.view(vsid), load, forget,
            lambda: self._changed(vsid), stop, closers,
        )  # fmt: skip

    def _watch_routes(self, stop: threading.Event, closers: list[Callable[[], None]]) -> None:
        def current() -> RouteView | None:
            with self._views_lock:
                return self._routes

        def load() -> RouteView:
            kvs, revision = self.client.range_prefix(routes_prefix())
            self.stats.route_reads += 1
            view = RouteView(revision)
            for kv in kvs:
                view.apply(Event("put", kv.key, kv.value, kv.mod_revision))
            view.revision = revision
            with self._views_lock:
                self._routes = view
            return view

        def forget() -> None:
            with self._views_lock:
                self._routes = None

        def changed() -> None:
            self._wake.set()  # the subnets to watch may change with the routing domains
            self._changed(0)

        self._follow(routes_prefix(), "customer routes", current, load, forget, changed, stop, closers)

    def _follow(
        self,
        prefix: str,
        what: str,
        current: Callable[[], SubnetView | RouteView | None],
        load: Callable[[], SubnetView | RouteView],
        forget: Callable[[], None],
        changed: Callable[[], None],
        stop: threading.Event,
        closers: list[Callable[[], None]],
    ) -> None:
        """Keep a view of ``prefix``: read it whole when there is none (first time, or history compacted while
        this host was away), then apply its watch events from the view's revision on, for as long as wanted."""
        backoff, said = RETRY_S, ""
        while not stop.is_set():
            try:
                view = current()
                if view is None:
                    view = load()
                    self._cache_dirty = True
                    changed()

                def deliver(events: list[Event], view: SubnetView | RouteView = view) -> None:
                    self._note_deletions(events)
                    with self._views_lock:
                        for e in events:
                            view.apply(e)
                    self.stats.events += len(events)
                    self._cache_dirty = True
                    changed()

                self.client.watch_prefix(prefix, view.revision + 1, deliver, stop, closers.append)
            except Compacted as exc:
                log.info("cluster: %s: %s; reading it again", what, exc)
                forget()
            except ClusterError as exc:
                if str(exc) != said:  # once per new error, not once per retry
                    log.warning("cluster: watching %s: %s (retrying)", what, exc)
                    said = str(exc)
                stop.wait(backoff)
                backoff = min(backoff * 2, MAX_RETRY_S)
            else:
                backoff, said = RETRY_S, ""

    def _note_deletions(self, events: list[Event]) -> None:
        """A record of this host's that someone else deleted is written again while the host still wants it.
        The case: a live migration's destination published the VM's record at its commit point (overwriting
        ours), then failed and gave the VM back, deleting its record; this host, taking the VM back, wants the
        record it believes it wrote (a deletion of ours by this host's own sync is no longer wanted: ignored)."""
        lost = [e.key for e in events if e.kind == "delete" and e.key in self._desired]
        if lost:
            with self._deleted_lock:
                self._deleted.update(lost)
            self._wake.set()

    def _changed(self, vsid: int) -> None:
        if self.on_change is not None:
            try:
                self.on_change(vsid)
            except Exception:
                log.exception("cluster: applying a change of subnet %d", vsid)

    # ---- the cache ----

    def _load_cache(self) -> None:
        if self.cache_path is None:
            return
        try:
            data = json.loads(self.cache_path.read_text())
            if data.get("host") != self.host.name:
                return
            self.lease = int(data.get("lease", 0))
            saved_at = float(data.get("saved_at", 0.0))
            views = {int(k): SubnetView.from_json(v) for k, v in data.get("subnets", {}).items()}
            routes = RouteView.from_json(data["routes"]) if "routes" in data else None
        except FileNotFoundError:
            return
        except (ValueError, KeyError, TypeError) as exc:
            log.warning("cluster: ignoring an unreadable cache %s: %s", self.cache_path, exc)
            return
        with self._views_lock:
            self._views = views
            self._routes = routes
        # What this host wrote before it stopped: its records in the views, its memberships and registration.
        for vsid, view in views.items():
            for rec in view.records.values():
                if rec.host == self.host.name:
                    self._written[rec.key] = rec.encode()
            if self.host.name in view.hosts:
                self._written[member_key(vsid, self.host.name)] = view.hosts[self.host.name].encode()
        if self.lease:
            self._written[host_key(self.host.name)] = self.host.encode()
            self._saved_at = saved_at or None

    def _save_cache(self, force: bool = False) -> None:
        if self.cache_path is None or not (self._cache_dirty or force):
            return
        self._cache_dirty = False
        with self._views_lock:
            data = {
                "host": self.host.name,
                "lease": self.lease,
                "saved_at": time.time(),
                "subnets": {str(v): view.to_json() for v, view in self._views.items()},
            }
            if self._routes is not None:
                data["routes"] = self._routes.to_json()
        tmp = self.cache_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data))
        os.replace(tmp, self.cache_path)
