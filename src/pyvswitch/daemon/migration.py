"""Live migration of a VM's network adapters between hosts (issue 6 item 4; issue 11 item 4; hyperv-networking.md
§2.4-2.5, §8).

The source daemon (A) drives; the destination (B) answers. A VM here is a namespace with veth pairs whose
switch-side ends live in the daemon's network namespace, so "moving the VM" is moving those ends into B's
namespace: the VM, its addresses and its open sockets never notice.

1. ``POST /v1/migrations {vm, to, socket}`` on A. ``to`` names B; ``socket`` is B's API socket (the CLI resolves a
   lab host name to it; the daemon knows no lab). ``to`` alone may be B's socket path.
2. A -> B ``POST /v1/migrations/validate`` with a migration id, the VM and its ports as A resolved them
   (interface names, MACs, VLAN, security, ACLs, extended ACLs, QoS...). B checks them against its
   configuration (the switch of the same name must exist) and offers each connected port to its extensions as
   a *validation port*: they see it created and may veto, nothing is reserved, it is deleted at once. A veto or
   any problem aborts: A has changed nothing. B answers with its network namespace (pid, inode, name).
3. A takes away the port's VF (``IovManager.set_migrating``: the software path carries it, no blackout yet).
   Meanwhile B has allocated the AF_PACKET rings for the arriving veths (``Engine.prepare_device``) and, in
   cluster mode, loaded the virtual subnets' lookup records (``ClusterAgent.expect``) and made the tunnel's
   device for them with those tables (``Tunnels.prepare``: the kernel vxlan devices, 30-60 ms each).
4. Blackout starts. A saves each extension's state of each port (``save_state``; the firewall's connection
   table), records HANDED_OVER, sends B the commit request (step 5) and, while it travels, moves the
   switch-side veth ends into B's namespace (netlink ``IFLA_NET_NS_PID``: 15 ms idle, 40-70 ms on the loaded
   lab), which takes them out of A's data path at once. A drops the VM from its configuration, switches and
   store (keeping the veths and the namespace) only after B answers, outside the blackout. (Daemons sharing one
   namespace: A drops the VM first, then sends the commit.)
5. A -> B ``POST /v1/migrations/commit`` with the saved state: B records ACCEPTED and, in cluster mode, hands
   the cluster agent the VM's lookup records at once (``Service.publish_arriving``: etcd and the other hosts'
   redirect overlap the move and the adoption instead of following them), then waits for the veths to arrive
   (``_await_arrival``). It marks the first veth as its own (the commit point, below), adopts the existing
   veths (no provisioning; the prepared rings and tunnel device are bound), the store records the VM; B hands
   the state to its extensions (``restore_state``), sends a RARP from each port's MAC out of its uplink so the
   LAN relearns the MAC at once, and gives the port a VF if it has one. The blackout ends when B answers; B
   records COMMITTED and marks the adopted objects as its own behind the answer. A then tells B to forget the
   migration (``POST /v1/migrations/forget``). If A's move fails, A's abort (below) ends B's wait at once; if
   A dies before moving, B gives up after ARRIVAL_TIMEOUT_S. Either way B gives the VM back and withdraws the
   records it published (``withdraw_arriving``: deleted if they still hold its value), and the source's agent
   writes its own again when it sees them deleted.
6. A answers with the timings: validation, blackout (switch-over), total.

Crash consistency (issue 11): a two-phase hand-over with a recorded intent on both sides. Each daemon records
what it is about to do in its intent log (``config/intents.py``, fsynced, beside the store) before each step:

    source A:      PREPARING ──validate ok──► HANDED_OVER ──B answered commit──► COMMITTED ──B forgot──► (gone)
                   (before 2)                 (before the move, 4)               (A's record only)
    destination B: PREPARED ──commit arrives──► ACCEPTED ──publish, veths arrive, mark, adopt──► COMMITTED ──►
                   (at 2)                       (before publishing, 5)                (behind the answer, 5)
                   ... A's forget ──► (gone)

ACCEPTED with the VM in B's store counts as COMMITTED (``_committed_here``): B answers before COMMITTED is written.

The commit point is B's *commit mark*: the alias of the VM's first veth set to ``pyvswitch-migrated <id>``
(``daemon/handover.py``), set by B's commit request, in one netlink call, after ACCEPTED is recorded and before
B's store records the VM. The rule, which both daemons apply to the same kernel fact and therefore agree on
without talking: **with the mark, B owns the VM; without it, A does.** Only a live commit request sets the
mark; recovery never does. Who settles what:

* A's commit request fails (B refused, died, or answered garbage): A asks B ``POST /v1/migrations/abort``,
  a *conditional* abort that B answers under the lock its commit holds: "committed" (B owns it) or "aborted"
  (B gave the veths back and will refuse a late commit). If B does not answer (dead), A reads the mark where
  the veth is (B's namespace by its /run/netns name, not through B's dead pid) and applies the rule. Owning it,
  A pulls the veths back from wherever they are and adopts the VM again with its saved state and a RARP.
* Start-up (``recover`` before ``Service.start``, ``finish_recovery`` after): each record left behind is settled
  the same way. A in PREPARING: nothing moved, A owns (B is told to abort). A in HANDED_OVER: asks B, else the
  mark; the store is made to hold the VM or not before start-up provisions anything (so start-up never
  re-creates a veth B owns, nor forgets one A owns). B in PREPARED: owns nothing; veths here go back to A's
  namespace. B in ACCEPTED: the mark (or the VM already in its store) says committed -> B keeps the VM (back
  in the store if it was not yet); otherwise as PREPARED. COMMITTED records wait for the other side to forget.

So after any crash of either daemon at any step, once both are up again (or the survivor alone, when it is the
owner by the rule) the VM is in exactly one host's store with its veth in that host's namespace. One case is
left to the rule's fencing: a B that is alive but does not answer (hung) while A decides without the mark; A
pulls the veth away, so B's adoption fails and B aborts, unless B had already bound it.

``PYVSWITCH_FAULT`` (``daemon/faults.py``, test-only) makes a daemon die at a named step; the points are the
``fault(...)`` calls below.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections import Counter, deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from time import perf_counter
from typing import Any

from fastapi import FastAPI
from pydantic import BaseModel, ConfigDict

from pyvswitch.config.intents import Intent, IntentLog, Phase, Role
from pyvswitch.config.schema import PortConfig, VmConfig, VmKind
from pyvswitch.daemon.faults import fault
from pyvswitch.daemon.guest_migration import (
    give_back_guest,
    is_guest_record,
    migrate_guest,
    recover_guest_source,
)
from pyvswitch.daemon.handover import (
    NETNS_SELF,
    LinkMover,
    NetlinkMover,
    Netns,
    commit_mark,
    netns_path,
)
from pyvswitch.daemon.migration_parts import (
    ABORTED,
    ARRIVAL_POLL_S,
    ARRIVAL_TIMEOUT_S,
    COMMITTED,
    RECOVERY_TIMEOUT_S,
    RETRY_FORGET_S,
    UNKNOWN,
    HttpPeer,
    MigrationError,
    Peer,
    Phases,
    assign_vf,
    decode_states,
    encode_states,
    engine_call,
    forget_vf,
    migration_id,
    parse_record,
    release_vf,
    resolve_target,
)
from pyvswitch.daemon.service import Conflict, Service
from pyvswitch.errors import ConfigError

__all__ = [
    "NETNS_SELF",
    "HttpPeer",
    "LinkMover",
    "MigrationError",
    "Migrations",
    "NetlinkMover",
    "Netns",
    "Peer",
    "add_migration_routes",
    "netns_path",
]

log = logging.getLogger(__name__)


class Migrations:
    """Both ends of a live migration for one daemon, and the settling of those a crash interrupted."""

    def __init__(
        self,
        service: Service,
        engine: object,
        peer_for: Callable[[str], Peer] | None = None,
        mover: LinkMover | None = None,
        netns: Callable[[], Netns] = Netns.mine,
        intents: IntentLog | None = None,
    ) -> None:
        self.service = service
        self.engine = engine
        self._peer_for = peer_for or (lambda to: HttpPeer(resolve_target(to)))
        self.mover: LinkMover = mover or NetlinkMover()
        self._netns = netns
        self.intents = intents or IntentLog(service.state_dir / "migrations")
        # The destination's steps (validate, commit, abort, forget) one at a time: a conditional abort waits
        # for a commit in progress and so always gets a final answer.
        self._dest_lock = threading.Lock()
        # Migrations whose source asked to abort: a commit waiting for their veths stops (``_await_arrival``).
        self._cancelled: set[str] = set()
        self._cancel_lock = threading.Lock()
        self._after_start: list[Callable[[], object]] = []
        self._retry_lock = threading.Lock()
        self._retrying: threading.Thread | None = None
        # What metrics report (daemon/metrics.py): outcomes by "role:outcome", the newest blackouts driven here.
        self.outcomes: Counter[str] = Counter()
        self.blackouts_s: deque[float] = deque(maxlen=1000)

    def stats(self) -> dict[str, Any]:
        return {"outcomes": dict(self.outcomes), "blackouts_s": list(self.blackouts_s)}

    def pending(self) -> list[dict[str, Any]]:
        """The records not settled yet (GET /v1/migrations): id, role, phase, VM, peer."""
        return [
            {"id": r.id, "role": r.role.value, "phase": r.phase.value, "vm": r.vm_name, "peer": r.peer}
            for r in self.intents.all()
        ]

    # ---- source ----

    def migrate(self, name: str, to: str, socket: str | None = None) -> dict[str, Any]:
        """Live-migrate VM ``name`` to host ``to`` (its API at ``socket`` when given); the answer has the timings
        (see the module docstring)."""
        guest = self.service.vm(name).kind is VmKind.QEMU  # 404 before anything is resolved
        peer: Peer = HttpPeer(socket) if socket else self._peer_for(to)
        try:
            out = (
                migrate_guest(self, name, to, peer, socket)
                if guest
                else self._migrate(name, to, peer, socket)
            )
        except Exception:
            self.outcomes["source:failed"] += 1
            raise
        else:
            self.outcomes["source:committed"] += 1
            blackout = out.get("timings", {}).get("blackout_s")
            if isinstance(blackout, float):
                self.blackouts_s.append(blackout)
            return out
        finally:
            close = getattr(peer, "close", None)
            if callable(close):
                close()

    def _migrate(self, name: str, to: str, peer: Peer, socket: str | None) -> dict[str, Any]:
        t0 = perf_counter()
        svc = self.service
        vm = svc.vm(name)
        ports = svc.ports(vm=name)
        here = self._netns()
        ident = uuid.uuid4().hex
        rec = self.intents.put(
            Intent(
                ident,
                Role.SOURCE,
                Phase.PREPARING,
                vm=vm.model_dump(mode="json"),
                ports=[p.model_dump(mode="json") for p in ports],
                peer=to,
                peer_socket=socket or (to if "/" in to else None),
            )
        )
        fault("migration:source:preparing")
        body: dict[str, Any] = {"id": ident, "vm": rec.vm, "ports": rec.ports, "source": here.as_json()}
        try:
            answer = peer.validate(body)
        except Exception:
            self._abandon(rec, peer)
            raise
        fault("migration:source:validated")
        dest = Netns.of(answer["netns"])
        t_valid = perf_counter()
        connected = [p for p in ports if p.switch is not None]
        for p in connected:
            release_vf(svc, p.name)  # no blackout: the software path carries the port from here
        t1 = perf_counter()
        # ---- blackout ----
        phases = Phases()
        ifnames = [p.interface for p in ports if p.interface]
        moved = dest.inode != here.inode
        leave = f"migrate VM {name} to {to}: leaves"
        try:
            states = {
                p.name: engine_call(self.engine, "save_port_state", p.switch, p.name) or {} for p in connected
            }
            phases.mark("save_state")
            # Recorded before anything moves: from here a crash is settled by asking B or by its mark.
            rec = self.intents.put(
                rec.at(Phase.HANDED_OVER, peer_netns=dest.as_json(), state=encode_states(states))
            )
            phases.mark("record")
            fault("migration:source:handed_over")
        except Exception:
            for p in connected:  # nothing moved: the VM stays here, with its VF back
                forget_vf(svc, p.name)
            self._abandon(rec, peer)
            raise
        commit_body = {**body, "state": rec.state}
        sender = ThreadPoolExecutor(1, thread_name_prefix="pyvswitch-migration-commit")
        try:
            if moved:
                # The commit request goes out as the move begins: the destination records ACCEPTED and publishes
                # the VM's lookup records while the kernel moves the veths (15 ms idle, 40-60 ms on the loaded
                # lab), then waits for them to arrive (``_await_arrival``). If the move fails, the abort that
                # ``_settle`` sends ends that wait.
                # The move itself takes the ports out of this switch's data path (their sockets lose the
                # device), so this host's own bookkeeping (configuration, engine, store: 20-100 ms under load)
                # waits until the destination has answered: it is not on the blackout's path, and run beside the
                # adoption it took CPU from it where both hosts share a machine (the labs: 2 vCPUs for three
                # daemons, their forwarders and etcd).
                pending = sender.submit(peer.commit, commit_body)
                fault("migration:source:commit_sent")
                self.mover.move(ifnames, dest)
                phases.mark("move")
                fault("migration:source:moved")
                result = pending.result()
            else:
                svc.release_vm(name, leave)  # one namespace: no two switches may hold the veth at once
                phases.mark("release")
                fault("migration:source:moved")
                result = peer.commit(commit_body)
            phases.mark("commit")
            t2 = perf_counter()  # the destination forwards and has announced the MAC: the blackout is over
            fault("migration:source:answered")
        except Exception as exc:
            log.error("migration %s of %s to %s failed after the hand-over began: %s", ident, name, to, exc)
            try:
                outcome = self._settle(rec, peer)
            finally:
                for p in connected:
                    forget_vf(svc, p.name)
            if outcome != COMMITTED:
                raise
            # B passed its commit point and then failed or died: the VM is B's (on B once it is up again).
            log.warning("VM %s belongs to %s: the destination committed before failing", name, to)
            return {
                "vm": name,
                "to": to,
                "ports": [p.name for p in ports],
                "timings": {"validation_s": t_valid - t0, "vf_release_s": t1 - t_valid},
                "destination": {"error": str(exc), "committed": True},
            }
        finally:
            # A commit request in flight has had its answer by now (an abort ends the destination's wait).
            sender.shutdown(wait=True)
        if moved:
            try:
                svc.release_vm(name, leave)
            except Exception as error:
                log.error("VM %s is on %s but this host could not drop it (%s); retrying", name, to, error)
                svc.release_vm(name, leave)
            phases.mark("release")
        rec = self.intents.put(rec.at(Phase.COMMITTED))
        for p in connected:
            forget_vf(svc, p.name)  # the ports are gone from here: the hold has done its work
        self._forget(rec, peer)
        t3 = perf_counter()
        log.info("migrated VM %s to %s: blackout %.1f ms", name, to, (t2 - t1) * 1000,
                 extra={"event": "migration.done", "fields": {"key": ident, "migration": ident, "vm": name,
                        "to": to, "blackout_ms": round((t2 - t1) * 1000, 1)}})  # fmt: skip
        return {
            "vm": name,
            "to": to,
            "ports": [p.name for p in ports],
            "timings": {
                "validation_s": t_valid - t0,
                "vf_release_s": t1 - t_valid,
                "blackout_s": t2 - t1,
                "total_s": t3 - t0,
            },
            "blackout_phases_s": phases.done,
            "destination": result,
        }

    def _abandon(self, rec: Intent, peer: Peer) -> None:
        """Nothing moved: B is told to abort (if it prepared and can hear us) and the record goes."""
        try:
            peer.abort({"id": rec.id})
        except Exception as exc:
            log.info(
                "migration %s: destination not told of the abort (%s); it aborts on its own", rec.id, exc
            )
        self.intents.drop(rec.id)

    def _forget(self, rec: Intent, peer: Peer | None, retry: bool = True) -> bool:
        """B may drop its record (and its mark) now; ours goes once B has heard it, else it is asked again
        every RETRY_FORGET_S while this daemon runs, and at the next start."""
        try:
            if peer is None:
                raise MigrationError([("to", f"no way to reach {rec.peer}")], unreachable=True)
            peer.forget({"id": rec.id})
        except Exception as exc:
            log.warning("migration %s: destination did not confirm (%s); asking again later", rec.id, exc)
            if retry:
                self._schedule_forgets()
            return False
        self.intents.drop(rec.id)
        return True

    def _schedule_forgets(self) -> None:
        with self._retry_lock:
            if self._retrying is not None and self._retrying.is_alive():
                return

            def loop() -> None:
                while True:
                    time.sleep(RETRY_FORGET_S)
                    left = [
                        r for r in self.intents.all() if r.role is Role.SOURCE and r.phase is Phase.COMMITTED
                    ]
                    if not left:
                        return
                    for r in left:
                        peer = self._recovery_peer(r)
                        try:
                            self._forget(r, peer, retry=False)
                        finally:
                            close = getattr(peer, "close", None)
                            if callable(close):
                                close()

            self._retrying = threading.Thread(target=loop, name="pyvswitch-migration-forget", daemon=True)
            self._retrying.start()

    def _outcome(self, rec: Intent, peer: Peer | None) -> str:
        """Who owns the VM of a handed-over migration: B's final answer when it can give one, else the rule
        (the commit mark on the VM's first veth, wherever that veth is)."""
        if peer is not None:
            try:
                answer = str(peer.abort({"id": rec.id}).get("outcome"))
                if answer in (COMMITTED, ABORTED):
                    log.info("migration %s: the destination says %s", rec.id, answer)
                    return answer
            except Exception as exc:
                log.warning("migration %s: destination cannot say (%s); reading the commit mark", rec.id, exc)
        peers = [Netns.of(rec.peer_netns)] if rec.peer_netns else []
        first = rec.interfaces[:1]
        mark = self.mover.read_mark(first[0], peers) if first else None
        outcome = COMMITTED if mark == commit_mark(rec.id) else ABORTED
        log.info("migration %s: commit mark %r: %s", rec.id, mark, outcome)
        return outcome

    def _settle(self, rec: Intent, peer: Peer | None) -> str:
        """Source, while running: decide and make this host match (the VM back with its state, or gone)."""
        svc = self.service
        outcome = self._outcome(rec, peer)
        vm, ports = parse_record(rec)
        leave = f"migration {rec.id} of VM {vm.name} committed by {rec.peer}"
        if outcome == COMMITTED:
            if any(v.name == vm.name for v in svc.config.vms):
                svc.release_vm(vm.name, leave)
            rec = self.intents.put(rec.at(Phase.COMMITTED))
            self._forget(rec, peer)
            return outcome
        peers = [Netns.of(rec.peer_netns)] if rec.peer_netns else []
        missing = self.mover.pull(rec.interfaces, peers)
        if missing:
            log.error("VM %s: veths %s found nowhere; made anew", vm.name, missing)
        if any(v.name == vm.name for v in svc.config.vms):
            # Still configured (the move failed before the release): its ports' sockets lost their devices.
            svc.release_vm(vm.name, f"migration {rec.id} of VM {vm.name} aborted: re-adopting")
        self._adopt(
            vm, ports, decode_states(rec.state), f"migration of VM {vm.name} to {rec.peer} failed: VM back"
        )
        self.intents.drop(rec.id)
        return outcome

    def _adopt(
        self,
        vm: VmConfig,
        ports: list[PortConfig],
        states: dict[str, dict[str, bytes]],
        summary: str,
    ) -> dict[str, Any]:
        phases = Phases()
        self.service.adopt_vm(vm, ports, summary, missing_ok=True)
        phases.mark("adopt")
        return self._after_adopt(ports, states, phases)

    def _after_adopt(
        self, ports: list[PortConfig], states: dict[str, dict[str, bytes]], phases: Phases
    ) -> dict[str, Any]:
        """Restore the extensions' state, announce the MACs, offer VFs. The VM is already this host's: a
        failure here is logged, never undoes that."""
        orphans: dict[str, list[str]] = {}
        announced = 0
        connected = [p for p in ports if p.switch is not None]
        for p in connected:
            blobs = states.get(p.name) or {}
            if blobs:
                try:
                    orphans[p.name] = (
                        engine_call(self.engine, "restore_port_state", p.switch, p.name, blobs) or []
                    )
                except Exception:
                    log.exception("restoring the state of %s", p.name)
        phases.mark("restore_state")
        for p in connected:
            try:
                announced += engine_call(self.engine, "announce", p.switch, p.name) or 0
            except Exception:
                log.exception("announcing %s", p.name)
        phases.mark("announce")
        for p in connected:
            try:
                assign_vf(self.service, p.name)
            except Exception:
                log.exception("offering a VF to %s", p.name)
        phases.mark("assign_vf")
        return {"orphaned_state": orphans, "announced": announced, "phases_s": phases.done}

    # ---- destination ----

    def _incoming(self, body: dict[str, Any]) -> tuple[VmConfig, list[PortConfig]]:
        try:
            vm = VmConfig.model_validate(body["vm"])
            ports = [PortConfig.model_validate(p) for p in body["ports"]]
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError([("body", f"not a migration request: {exc}")]) from exc
        if any(p.vm != vm.name for p in ports):
            raise ConfigError([("ports", f"every port must belong to VM {vm.name!r}")])
        return vm, ports

    def validate(self, body: dict[str, Any]) -> dict[str, Any]:
        """Would this host take the VM? Configuration, then a validation port per connected port; if so,
        PREPARED is recorded (nothing is owned or reserved)."""
        ident = migration_id(body)
        vm, ports = self._incoming(body)
        self.service.check_incoming_vm(vm, ports)
        from pyvswitch.ext.stack import ExtensionVeto

        for i, p in enumerate(ports):
            if p.switch is None:
                continue
            try:
                engine_call(self.engine, "validate_port", p)
            except ExtensionVeto as veto:
                raise ConfigError([(f"ports[{i}]", f"destination: {veto}")]) from veto
        subnets = {p.virtual_subnet_id for p in ports if p.switch is not None and p.virtual_subnet_id}
        # The subnets' lookup records here before the VM is (cluster/agent.py, expect), outside the blackout.
        cluster = self.service.cluster
        if subnets and cluster is not None and not cluster.expect(subnets):
            log.warning(
                "migration %s: subnets %s not loaded yet; the VM may wait for ARP", ident, sorted(subnets)
            )
        tunnels = self.service.tunnels
        if subnets and tunnels is not None:
            try:  # the tunnel's device for the subnets, made now: ~30-60 ms each out of the blackout
                tunnels.prepare(subnets)
            except Exception:
                log.exception("migration %s: preparing the tunnel for subnets %s", ident, sorted(subnets))
        guest = vm.kind is VmKind.QEMU
        for p in ports:
            if p.switch is not None and p.interface is not None and not guest:
                # Rings allocated now, bound when the veth arrives: ~20 ms out of the blackout.
                engine_call(self.engine, "prepare_device", p.interface)
        source = body.get("source") if isinstance(body.get("source"), dict) else None
        with self._dest_lock:
            rec = self.intents.put(
                Intent(
                    ident,
                    Role.DESTINATION,
                    Phase.PREPARED,
                    vm=vm.model_dump(mode="json"),
                    ports=[p.model_dump(mode="json") for p in ports],
                    peer_netns=source,
                )
            )
            answer: dict[str, Any] = {"netns": self._netns().as_json()}
            if guest:
                try:  # recorded first: a crash from here is settled by the record (TAPs, QEMU removed)
                    answer["incoming"] = self.service.prepare_incoming_guest(vm, ports)
                except Exception:
                    give_back_guest(self, rec)
                    raise
        fault("migration:destination:prepared")
        return answer

    def commit(self, body: dict[str, Any]) -> dict[str, Any]:
        """Adopt the VM whose veths were just moved here (ACCEPTED, the mark, the store); on failure before the
        store has it, give them back to the source."""
        t0 = perf_counter()
        ident = migration_id(body)
        vm, ports = self._incoming(body)
        after_answer: list[Callable[[], None]] = []
        adopted = False
        self._dest_lock.acquire()  # released by _record_committed, behind the answer, or on failure here
        try:
            rec = self.intents.get(ident)
            if rec is None or rec.role is not Role.DESTINATION or rec.phase is not Phase.PREPARED:
                raise Conflict(
                    "id", f"no migration {ident} prepared here (it was aborted or never validated)"
                )
            phases = Phases()
            rec = self.intents.put(rec.at(Phase.ACCEPTED, state=body.get("state") or {}))
            phases.mark("accepted")
            fault("migration:destination:accepted")
            try:
                # Before the commit point, after ACCEPTED (so a give-back, even after a crash, withdraws them).
                self.service.publish_arriving(vm, ports)
                phases.mark("publish")
                self._await_arrival(rec)
                phases.mark("arrival")
                if rec.interfaces:
                    self.mover.set_mark(rec.interfaces[0], commit_mark(ident))  # the commit point
                fault("migration:destination:marked")
                phases.mark("mark")
                self.service.adopt_vm(
                    vm,
                    ports,
                    f"VM {vm.name} arrives by live migration",
                    step=lambda s: phases.mark(f"adopt.{s}"),
                    later=after_answer.append,  # marking the adopted veth and namespace: 35-100 ms
                )
                phases.mark("adopt")
                if vm.kind is VmKind.QEMU:
                    self.service._guests_manager().resume(vm.name)  # the guest runs here from now on
                    phases.mark("resume_guest")
            except Exception:
                log.exception("cannot adopt VM %s of migration %s; giving it back", vm.name, ident)
                self.outcomes["destination:failed"] += 1
                self._give_back(rec)
                raise
            adopted = True
            fault("migration:destination:adopted")
            out = self._after_adopt(ports, decode_states(rec.state), phases)
        except BaseException:
            self._dest_lock.release()
            if adopted:  # the VM is this host's whatever failed after: its veth and namespace get their marks
                self._run_after(ident, vm.name, after_answer)
            raise
        # The answer ends the source's blackout, so it does not wait for COMMITTED to be written: that record
        # only says the state was restored and the MAC announced. It is written behind the answer, still under
        # the lock (an abort or a forget waits for it); a crash before it leaves ACCEPTED with the VM in the
        # store, which is committed by the rule (_committed_here), and start-up restores and announces again.
        threading.Thread(
            target=self._record_committed,
            args=(rec, after_answer),
            name="pyvswitch-migration-committed",
            daemon=True,
        ).start()
        self.outcomes["destination:committed"] += 1
        return {**out, "adopt_s": perf_counter() - t0}

    def _await_arrival(self, rec: Intent) -> None:
        """Until the VM's veths are in this namespace: the source sends the commit request as its move begins.
        Ended by the source's abort (its move failed) or after ARRIVAL_TIMEOUT_S (it died before moving): the
        commit then fails and the VM is given back."""
        if is_guest_record(rec) or not rec.interfaces:  # a guest's TAPs were made here at validation
            return
        deadline = time.monotonic() + ARRIVAL_TIMEOUT_S
        while not self.mover.arrived(rec.interfaces):
            if rec.id in self._cancelled:
                raise Conflict("id", f"migration {rec.id} was aborted by its source before its veths arrived")
            if time.monotonic() >= deadline:
                raise Conflict(
                    "ports",
                    f"the veths {rec.interfaces} of VM {rec.vm_name} did not arrive within "
                    f"{ARRIVAL_TIMEOUT_S:.0f} s",
                )
            time.sleep(ARRIVAL_POLL_S)

    def _record_committed(self, rec: Intent, after: list[Callable[[], None]]) -> None:
        """COMMITTED, then the destination's lock goes (taken by ``commit``), then what the adoption left for
        after the answer."""
        try:
            self.intents.put(rec.at(Phase.COMMITTED))
            fault("migration:destination:committed")
        except Exception:
            log.exception("migration %s: cannot record COMMITTED (the store has VM %s)", rec.id, rec.vm_name)
        finally:
            self._dest_lock.release()
        self._run_after(rec.id, rec.vm_name, after)

    @staticmethod
    def _run_after(ident: str, vm_name: str, after: list[Callable[[], None]]) -> None:
        for fn in after:
            try:
                fn()
            except Exception:
                log.exception("migration %s: after the adoption of VM %s", ident, vm_name)

    def _committed_here(self, rec: Intent, vms: set[str]) -> bool:
        """Whether this host (the destination) passed the commit point: COMMITTED, or ACCEPTED with the VM
        already in ``vms`` (the store) or the commit mark on its first veth."""
        if rec.phase is Phase.COMMITTED:
            return True
        if rec.phase is not Phase.ACCEPTED:
            return False
        if rec.vm_name in vms:
            return True
        if not rec.interfaces:
            return False
        peers = [Netns.of(rec.peer_netns)] if rec.peer_netns else []
        return self.mover.read_mark(rec.interfaces[0], peers) == commit_mark(rec.id)

    def _give_back(self, rec: Intent) -> None:
        """Destination, not committed: no mark, no lookup records, the veths that are here back to the source,
        no record."""
        try:
            self.service.withdraw_arriving(rec.vm_name, parse_record(rec)[1])
        except Exception:
            log.exception("withdrawing the lookup records of VM %s", rec.vm_name)
        if is_guest_record(rec):
            give_back_guest(self, rec)
            return
        if rec.interfaces:
            try:
                if self.service.has_link(rec.interfaces[0]):
                    self.mover.set_mark(rec.interfaces[0], None)
            except Exception:
                log.exception("clearing the mark of %s", rec.interfaces[0])
            if rec.peer_netns:
                try:
                    self.mover.push(rec.interfaces, Netns.of(rec.peer_netns))
                except Exception:
                    log.exception("cannot send the veths of VM %s back to the source", rec.vm_name)
        self.intents.drop(rec.id)

    def abort(self, body: dict[str, Any]) -> dict[str, Any]:
        """The source's conditional abort: ``committed`` if this host passed the commit point (it keeps the
        VM), else ``aborted`` (veths sent back, a late commit refused). Final either way."""
        ident = migration_id(body)
        # A commit waiting for the veths holds the lock: told first, it stops waiting and gives the VM back.
        with self._cancel_lock:
            self._cancelled.add(ident)
        try:
            with self._dest_lock:
                rec = self.intents.get(ident)
                if rec is None or rec.role is not Role.DESTINATION:
                    # Never heard of it, or settled and forgotten: the source reads the commit mark instead.
                    return {"outcome": UNKNOWN}
                if self._committed_here(rec, {v.name for v in self.service.config.vms}):
                    return {"outcome": COMMITTED}
                self._give_back(rec)
                return {"outcome": ABORTED}
        finally:
            with self._cancel_lock:
                self._cancelled.discard(ident)

    def forget(self, body: dict[str, Any]) -> dict[str, Any]:
        """The source knows the outcome: the record (and the commit mark) can go."""
        ident = migration_id(body)
        with self._dest_lock:
            rec = self.intents.get(ident)
            if rec is None or rec.role is not Role.DESTINATION:
                return {"forgotten": False}
            if not self._committed_here(rec, {v.name for v in self.service.config.vms}):
                raise Conflict("id", f"migration {ident} is {rec.phase.value} here, not committed")
            self._clear_mark(rec)
            self.intents.drop(ident)
            return {"forgotten": True}

    def _clear_mark(self, rec: Intent) -> None:
        if not rec.interfaces or not self.service.has_link(rec.interfaces[0]):
            return
        try:
            if self.mover.read_mark(rec.interfaces[0], []) == commit_mark(rec.id):
                self.mover.set_mark(rec.interfaces[0], None)
                # The commit mark held the place of the ownership mark (Kernel.mark_link leaves it alone).
                self.service.mark_link_owned(rec.interfaces[0])
        except Exception:
            log.exception("clearing the mark of %s", rec.interfaces[0])

    # ---- start-up: settle what a crash left (issue 11) ----

    def recover(self) -> None:
        """Before ``Service.start``: decide each recorded migration and make the store say so (the VM in it or
        not) and the veths be where their owner is, so start-up provisions exactly what this host owns. What
        needs the engine runs in ``finish_recovery``. A record that cannot be settled stays for the next start."""
        for rec in self.intents.all():
            try:
                if rec.role is Role.SOURCE:
                    self._recover_source(rec)
                else:
                    self._recover_destination(rec)
            except Exception:
                log.exception(
                    "migration %s of VM %s (%s): cannot settle it now", rec.id, rec.vm_name, rec.role
                )

    def finish_recovery(self) -> None:
        """After ``Service.start``: restore saved state, announce, offer VFs for the VMs recovery kept."""
        todo, self._after_start = self._after_start, []
        for fn in todo:
            try:
                fn()
            except Exception:
                log.exception("finishing the recovery of a migration")

    def _recovery_peer(self, rec: Intent) -> Peer | None:
        try:
            if rec.peer_socket:
                return HttpPeer(rec.peer_socket, timeout_s=RECOVERY_TIMEOUT_S)
            return self._peer_for(rec.peer)
        except Exception as exc:
            log.warning("migration %s: no way to reach %s (%s)", rec.id, rec.peer, exc)
            return None

    def _recover_source(self, rec: Intent) -> None:
        svc = self.service
        vm, ports = parse_record(rec)
        peer = self._recovery_peer(rec)
        try:
            if is_guest_record(rec):
                recover_guest_source(self, rec, peer)
                return
            if rec.phase is Phase.PREPARING:
                # Nothing was moved and B cannot have committed (commit is sent only after HANDED_OVER).
                svc.put_back_stored_vm(vm, ports, f"migration {rec.id} interrupted before the hand-over")
                log.info(
                    "migration %s of VM %s: interrupted before the hand-over; the VM stays", rec.id, vm.name
                )
                if peer is not None:
                    self._abandon(rec, peer)
                else:
                    self.intents.drop(rec.id)
                return
            outcome = COMMITTED if rec.phase is Phase.COMMITTED else self._outcome(rec, peer)
            if outcome == COMMITTED:
                svc.drop_stored_vm(vm.name, f"migration {rec.id} of VM {vm.name} committed by {rec.peer}")
                log.info("migration %s: VM %s belongs to %s", rec.id, vm.name, rec.peer)
                rec = self.intents.put(rec.at(Phase.COMMITTED))
                self._forget(rec, peer)
                return
            peers = [Netns.of(rec.peer_netns)] if rec.peer_netns else []
            missing = self.mover.pull(rec.interfaces, peers)
            if missing:
                log.error("VM %s: veths %s found nowhere; start-up makes them anew", vm.name, missing)
            svc.put_back_stored_vm(vm, ports, f"migration {rec.id} of VM {vm.name} aborted: VM back")
            log.info("migration %s: VM %s stays here (taken back)", rec.id, vm.name)
            states = decode_states(rec.state)
            self._after_start.append(lambda: self._after_adopt(ports, states, Phases()))
            self.intents.drop(rec.id)
        finally:
            close = getattr(peer, "close", None)
            if callable(close):
                close()

    def _recover_destination(self, rec: Intent) -> None:
        svc = self.service
        vm, ports = parse_record(rec)
        if not self._committed_here(rec, svc.stored_vm_names()):
            log.info("migration %s: VM %s was not committed here; giving it back", rec.id, vm.name)
            self._give_back(rec)
            return
        guest = is_guest_record(rec)
        # Veths should be here (from wherever if not); a guest's TAPs were made here.
        missing = [] if guest else self.mover.pull(rec.interfaces, [])
        if missing:
            log.error("VM %s: veths %s found nowhere; start-up makes them anew", vm.name, missing)
        if svc.put_back_stored_vm(vm, ports, f"VM {vm.name} arrived by live migration {rec.id} (recovered)"):
            log.info("migration %s: committed here (marked) before the store had VM %s", rec.id, vm.name)
        if rec.phase is not Phase.COMMITTED:
            states = decode_states(rec.state)
            if guest:  # arrived and paused: it runs once start-up has its ports
                self._after_start.append(lambda: svc._guests_manager().resume(vm.name))
            self._after_start.append(lambda: self._after_adopt(ports, states, Phases()))
            self.intents.put(rec.at(Phase.COMMITTED))  # kept until the source forgets it


class MigrationRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    vm: str
    to: str
    socket: str | None = None  # the destination's API socket; without it, ``to`` must be that path


def add_migration_routes(app: FastAPI, service: Service, migrations: Migrations | None = None) -> Migrations:
    """POST /v1/migrations (source), /v1/migrations/{validate,commit,abort,forget} (destination), and
    GET /v1/migrations (records not settled yet)."""
    mig = migrations or Migrations(service, service.engine)

    @app.get("/v1/migrations")
    def migrations_pending() -> list[dict[str, Any]]:
        """Migrations this host has a record of: in progress, or waiting for the other host."""
        return mig.pending()

    @app.post("/v1/migrations")
    def migrate(body: MigrationRequest) -> dict[str, Any]:
        """Move-VM -Name VM -DestinationHost HOST: live-migrate the VM's adapters to another host."""
        try:
            return mig.migrate(body.vm, body.to, body.socket)
        except MigrationError as exc:
            # The destination's own field paths, under "destination" (a veto names the port it refused).
            raise ConfigError(
                [(f"destination.{f}" if f else "destination", m) for f, m in exc.problems]
            ) from exc

    @app.post("/v1/migrations/validate")
    def migration_validate(body: dict[str, Any]) -> dict[str, Any]:
        return mig.validate(body)

    @app.post("/v1/migrations/commit")
    def migration_commit(body: dict[str, Any]) -> dict[str, Any]:
        return mig.commit(body)

    @app.post("/v1/migrations/abort")
    def migration_abort(body: dict[str, Any]) -> dict[str, Any]:
        return mig.abort(body)

    @app.post("/v1/migrations/forget")
    def migration_forget(body: dict[str, Any]) -> dict[str, Any]:
        return mig.forget(body)

    return mig
