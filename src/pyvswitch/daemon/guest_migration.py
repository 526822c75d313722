"""Live migration of a QEMU guest between hosts (issue 12 item 4): the guest's memory by QEMU, its switch ports,
extension state and firewall connections by the same two-phase hand-over as a namespace VM (daemon/migration.py).

What differs from a namespace VM: nothing moves between the hosts' namespaces. The destination makes TAPs of its
own (same names, same MACs) and a QEMU waiting on a unix socket (the hosts share a filesystem); the source's QEMU
copies the running guest there (pre-copy, then a short stop-and-copy: QEMU's "downtime"); the guest waits paused
on the destination while the switch side is handed over, and runs once the destination has adopted its ports:

    source A: PREPARING ─validate─► [QEMU copies memory; A's guest ends paused] ─save state─► HANDED_OVER
              ─commit (B adopts the ports, restores the state, runs the guest, announces its MAC)─► release
              (A stops its paused QEMU, deletes its TAPs) ─► COMMITTED ─forget─► (gone)

A keeps its paused guest until B has committed, so a failure at any step before that leaves the guest on A,
which runs it on (``cont``): never two running copies, never none. The blackout is QEMU's downtime plus the
commit (B's adoption, ~15-150 ms), and under TCG the check of the copy against the paused source
(guest/ram.py: QEMU's TCG dirty tracking can miss a store); the guest's own clock does not notice.

Crash consistency: the records and the commit mark (on the destination's first TAP) are as for namespace VMs;
the difference is that there are no veths to pull back. An interrupted migration is settled by asking the other
daemon; if it cannot answer, the record waits and A's guest stays paused (no split brain) until the next start.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from time import perf_counter
from typing import Any, Protocol

from pyvswitch.config.intents import Intent, IntentLog, Phase, Role
from pyvswitch.daemon.handover import Netns
from pyvswitch.daemon.migration_parts import (
    ABORTED,
    COMMITTED,
    MigrationError,
    Peer,
    Phases,
    encode_states,
    engine_call,
    forget_vf,
    parse_record,
)
from pyvswitch.daemon.service import Conflict, Service
from pyvswitch.guest.qemu import GuestError


class Migrations(Protocol):
    """What these steps use of daemon/migration.py's Migrations (which calls them)."""

    service: Service
    engine: object
    intents: IntentLog
    _netns: Callable[[], Netns]
    _after_start: list[Callable[[], object]]

    def _abandon(self, rec: Intent, peer: Peer) -> None: ...
    def _forget(self, rec: Intent, peer: Peer | None, retry: bool = True) -> bool: ...


log = logging.getLogger(__name__)


def is_guest_record(rec: Intent) -> bool:
    return str(rec.vm.get("kind")) == "qemu"


def migrate_guest(m: Migrations, name: str, to: str, peer: Peer, socket: str | None) -> dict[str, Any]:
    """Source side; the answer as a namespace VM's, with QEMU's figures under ``guest``."""

    t0 = perf_counter()
    svc = m.service
    guests = svc._guests_manager()
    vm = svc.vm(name)
    status = guests.status(name)
    if status is None or status.state != "running":
        raise Conflict("name", f"guest {name!r} is not running ({status.state if status else 'stopped'})")
    ports = svc.ports(vm=name)
    ident = uuid.uuid4().hex
    rec = m.intents.put(
        Intent(
            ident, Role.SOURCE, Phase.PREPARING, vm=vm.model_dump(mode="json"),
            ports=[p.model_dump(mode="json") for p in ports], peer=to,
            peer_socket=socket or (to if "/" in to else None),
        )
    )  # fmt: skip
    body: dict[str, Any] = {"id": ident, "vm": rec.vm, "ports": rec.ports, "source": m._netns().as_json()}
    try:
        answer = peer.validate(body)
        uri = str(answer["incoming"])
    except Exception:
        m._abandon(rec, peer)
        raise
    t_valid = perf_counter()
    try:
        stats = guests.send(name, uri)  # the guest runs here during the copy, and is paused at its end
    except Exception:
        m._abandon(rec, peer)  # B stops its waiting QEMU
        _resume_here(m, name)  # a cancelled or failed copy leaves the guest running; make sure
        raise
    t1 = perf_counter()
    connected = [p for p in ports if p.switch is not None]
    phases = Phases()
    try:
        states = {p.name: engine_call(m.engine, "save_port_state", p.switch, p.name) or {} for p in connected}
        phases.mark("save_state")
        rec = m.intents.put(
            rec.at(Phase.HANDED_OVER, peer_netns=answer.get("netns"), state=encode_states(states))
        )
        phases.mark("record")
        result = peer.commit({**body, "state": rec.state})
        phases.mark("commit")
        t2 = perf_counter()
    except Exception as exc:
        log.error("migration %s of guest %s to %s failed at the hand-over: %s", ident, name, to, exc)
        outcome = settle_guest_source(m, rec, peer)
        if outcome != COMMITTED:
            raise
        return {"vm": name, "to": to, "ports": [p.name for p in ports],
                "destination": {"error": str(exc), "committed": True}}  # fmt: skip
    svc.release_vm(name, f"migrate VM {name} to {to}: leaves")  # stops the paused QEMU, deletes the TAPs
    for p in connected:
        forget_vf(svc, p.name)
    rec = m.intents.put(rec.at(Phase.COMMITTED))
    m._forget(rec, peer)
    t3 = perf_counter()
    # The check of the copy (guest/ram.py, TCG only) runs with the guest paused: part of the blackout.
    blackout = (stats.downtime_ms + stats.repair_ms) / 1000 + (t2 - t1)
    log.info("migrated guest %s to %s: QEMU downtime %.0f ms + hand-over %.0f ms", name, to,
             stats.downtime_ms, (t2 - t1) * 1000)  # fmt: skip
    return {
        "vm": name,
        "to": to,
        "ports": [p.name for p in ports],
        "timings": {
            "validation_s": t_valid - t0,
            "memory_copy_s": stats.total_s,
            "blackout_s": blackout,
            "total_s": t3 - t0,
        },
        "blackout_phases_s": {
            "qemu_downtime": stats.downtime_ms / 1000,
            "copy_check": stats.repair_ms / 1000,
            **phases.done,
        },
        "guest": {
            "transferred_mb": round(stats.transferred_mb, 1),
            "qemu_downtime_ms": stats.downtime_ms,
            "repaired_pages": stats.repaired_pages,
        },
        "destination": result,
    }


def _resume_here(m: Migrations, name: str) -> None:
    try:
        m.service._guests_manager().resume(name)
    except (GuestError, OSError, ValueError) as exc:
        log.error("guest %s: cannot resume it here: %s", name, exc)


def settle_guest_source(m: Migrations, rec: Intent, peer: Peer | None) -> str:
    """Source, running, after a failed hand-over: B's final answer decides; the guest is released (B has it) or
    run on here. Without an answer the record stays (next start asks again) and the guest stays paused."""

    answer = "no answer"
    if peer is not None:
        try:
            answer = str(peer.abort({"id": rec.id}).get("outcome"))
        except Exception as exc:
            answer = f"no answer ({exc})"
    vm_name = rec.vm_name
    if answer == COMMITTED:
        if any(v.name == vm_name for v in m.service.config.vms):
            m.service.release_vm(vm_name, f"migration {rec.id} of VM {vm_name} committed by {rec.peer}")
        rec = m.intents.put(rec.at(Phase.COMMITTED))
        m._forget(rec, peer)
        return COMMITTED
    if answer in (ABORTED, "unknown"):
        # B refused, gave up, or never recorded it: no copy runs there.
        _resume_here(m, vm_name)
        m.intents.drop(rec.id)
        return ABORTED
    raise MigrationError([("to", f"{rec.peer} cannot say whether it took guest {vm_name}: {answer}; the guest "
                                 "stays paused here until it can (no two running copies)")], unreachable=True)  # fmt: skip


def recover_guest_source(m: Migrations, rec: Intent, peer: Peer | None) -> None:
    """Start-up, source: the store still holds the guest (A releases it only after B committed). B's answer
    decides; without one the record and the paused guest wait for the next start."""

    vm, ports = parse_record(rec)
    answer: str | None = None
    if rec.phase is not Phase.COMMITTED:
        if peer is None:
            raise RuntimeError(f"no way to ask {rec.peer} whether it took guest {vm.name}")
        # "unknown": B has no record, so it never committed (it keeps a committed record until A's forget).
        answer = str(peer.abort({"id": rec.id}).get("outcome"))
    if rec.phase is Phase.COMMITTED or answer == COMMITTED:
        m.service.drop_stored_vm(vm.name, f"migration {rec.id} of VM {vm.name} committed by {rec.peer}")
        rec = m.intents.put(rec.at(Phase.COMMITTED))
        m._forget(rec, peer)
        return
    if rec.phase is Phase.PREPARING or answer in (ABORTED, "unknown"):
        m.service.put_back_stored_vm(vm, ports, f"migration {rec.id} of guest {vm.name} aborted: VM stays")
        m._after_start.append(lambda: _resume_here(m, vm.name))
        m.intents.drop(rec.id)
        return
    raise RuntimeError(f"{rec.peer} cannot say whether it took guest {vm.name}")


def give_back_guest(m: Migrations, rec: Intent) -> None:
    """Destination, not committed: the waiting (or paused) QEMU and its TAPs go; the mark with them."""

    vm, ports = parse_record(rec)
    try:
        m.service.cancel_incoming_guest(vm.name, ports)
    except Exception:
        log.exception("cancelling the arrival of guest %s", vm.name)
    m.intents.drop(rec.id)
