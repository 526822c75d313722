"""SR-IOV management: keeps the emulated NIC switch (datapath/nicswitch.py), pyvswitch's socket filters and the
switches' NIC-switch flags in line with the VF plan (switch/iov.py), and serves the SR-IOV routes.

Every change of path is ordered so that some forwarder always owns a frame (hyperv-networking.md §4.4: the
VF's filters move to the PF's default VPort before the VF goes):

1. relax: pyvswitch takes back what leaves the kernel path (a leaving VF port's socket filter detached, the
   uplink's filter narrowed to the VFs that stay, the switch flags of leaving ports cleared);
2. program tc with the new plan (leaving VF interfaces cleared);
3. tighten: socket filters and switch flags for the new VF set.

For a moment both paths may carry a frame (a duplicate, which TCP ignores), never neither. The manager polls
the committed configuration and the uplinks' carriers every ``poll_s`` on its own thread, so the data path
and the request path never wait for tc.

Crash consistency (issue 11): each device is recorded (``TcRecord``; in the daemon the store's intents of kind
"tc") before tc filters are put on it and forgotten when they are cleared, so the first reconcile after a
restart clears every device an earlier run left filters on, also one the new plan does not program (a VF port
that went back to software while the daemon was down would otherwise keep redirecting its frames past the
switch's policies). A reconcile that keeps failing is logged once per distinct error, not once per poll.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

from fastapi import FastAPI
from pydantic import BaseModel, Field

from pyvswitch.config.schema import HostConfig, PortKind, SriovAdapterConfig
from pyvswitch.daemon import dry_run
from pyvswitch.daemon.dry_run import DRY_RUN
from pyvswitch.datapath.nicswitch import (
    Insn,
    NicSwitchPlan,
    TcNicSwitch,
    VfPort,
    attach_filter,
    uplink_filter,
    vf_port_filter,
)
from pyvswitch.errors import ConflictError, NotFoundError
from pyvswitch.switch.iov import IovPath, IovState, PortIov, RuntimeFacts, plan

log = logging.getLogger(__name__)


class KernelNicSwitch(Protocol):
    def program(self, plan: NicSwitchPlan) -> None: ...
    def clear(self, dev: str) -> None: ...


class TcRecord(Protocol):
    """Devices that may carry this daemon's tc filters, kept across restarts."""

    def recorded(self) -> set[str]: ...
    def record(self, dev: str) -> None: ...
    def forget(self, dev: str) -> None: ...


class IntentStore(Protocol):
    """What ``StoreTcRecord`` needs of ``config.store.Store``."""

    def begin_intent(self, kind: str, doc: dict[str, Any]) -> int: ...
    def end_intent(self, intent_id: int) -> None: ...
    def intents(self, kind: str | None = None) -> Sequence[Any]: ...


class StoreTcRecord:
    """``TcRecord`` in the store: one intent of kind "tc" per device with filters (``{"dev": name}``)."""

    KIND = "tc"

    def __init__(self, store: IntentStore) -> None:
        self._store = store
        self._ids: dict[str, int] = {str(i.doc["dev"]): i.id for i in store.intents(self.KIND)}

    def recorded(self) -> set[str]:
        return set(self._ids)

    def record(self, dev: str) -> None:
        if dev not in self._ids:
            self._ids[dev] = self._store.begin_intent(self.KIND, {"dev": dev})

    def forget(self, dev: str) -> None:
        intent = self._ids.pop(dev, None)
        if intent is not None:
            self._store.end_intent(intent)


class MemoryTcRecord:
    """``TcRecord`` for a manager without a store (tests): remembers nothing across restarts."""

    def __init__(self) -> None:
        self._devs: set[str] = set()

    def recorded(self) -> set[str]:
        return set(self._devs)

    def record(self, dev: str) -> None:
        self._devs.add(dev)

    def forget(self, dev: str) -> None:
        self._devs.discard(dev)


class RecordedNicSwitch:
    """A KernelNicSwitch that records each device before programming it and forgets it once cleared."""

    def __init__(self, nic: KernelNicSwitch, record: TcRecord) -> None:
        self._nic = nic
        self._record = record

    def program(self, plan: NicSwitchPlan) -> None:
        for dev in (plan.uplink, *(v.interface for v in plan.vfs)):
            if dev:
                self._record.record(dev)
        self._nic.program(plan)

    def clear(self, dev: str) -> None:
        self._nic.clear(dev)
        self._record.forget(dev)


class IovEngine(Protocol):
    def port_fileno(self, port: str) -> int | None: ...
    def set_nic_switched(self, switch: str, served: dict[str, frozenset[str]]) -> None: ...


def carrier_up(ifname: str) -> bool:
    try:
        return Path(f"/sys/class/net/{ifname}/carrier").read_text().strip() == "1"
    except OSError:
        return False


class IovManager:
    """The VF plan of one host and its realisation."""

    def __init__(
        self,
        engine: IovEngine,
        config: Callable[[], HostConfig],
        commit: Callable[[HostConfig, str], HostConfig],
        nic: KernelNicSwitch | None = None,
        attach: Callable[[int, list[Insn] | None], None] = attach_filter,
        carrier: Callable[[str], bool] = carrier_up,
        poll_s: float = 0.2,
        record: TcRecord | None = None,
    ) -> None:
        self._engine = engine
        self._config = config
        self._commit = commit
        self._record = record or MemoryTcRecord()
        self._nic = RecordedNicSwitch(nic or TcNicSwitch(), self._record)
        self._attach = attach
        self._carrier = carrier
        self.poll_s = poll_s
        self.state = IovState()
        self._revoked: dict[str, str] = {}  # port -> who revoked it (an extension's name, "operator")
        self._migrating: set[str] = set()
        self._plans: dict[str, NicSwitchPlan] = {}  # uplink -> what tc holds
        self._lock = threading.RLock()
        self._seen: tuple[HostConfig, RuntimeFacts] | None = None  # what the kernel was last made to match
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.errors = 0
        self.last_error: str | None = (
            None  # the error the reconcile loop is failing with, None when it is not
        )

    # ---- run time ----

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="pyvswitch-iov", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def _run(self) -> None:
        while not self._stop.wait(self.poll_s):
            try:
                self._extension_requests()
                self.reconcile()
            except Exception as exc:
                self._failed(exc)
            else:
                if self.last_error is not None:
                    log.warning("SR-IOV reconcile works again (after: %s)", self.last_error)
                    self.last_error = None

    def _failed(self, exc: Exception) -> None:
        """Count every failure; log one line when the error changes (a tc that keeps failing would otherwise
        log a traceback every poll, issue 11); the traceback only at debug level."""
        self.errors += 1
        what = f"{type(exc).__name__}: {exc}"
        if what != self.last_error:
            log.error(
                "SR-IOV reconcile failed (retrying every %g s, logged again when the error changes): %s",
                self.poll_s,
                what,
            )
            log.debug("SR-IOV reconcile failure", exc_info=exc)
            self.last_error = what

    def _extension_requests(self) -> None:
        """Context.revoke_vf calls of forwarding extensions (the engine collects them between batches)."""
        take = getattr(self._engine, "take_vf_requests", None)
        if take is None:
            return
        with self._lock:
            for switch, port, revoke in take():
                if revoke:
                    self._revoked[port] = f"extension on {switch}"
                elif self._revoked.get(port, "").startswith("extension"):
                    del self._revoked[port]

    def _facts(self, cfg: HostConfig) -> RuntimeFacts:
        down = frozenset(a.name for a in cfg.sriov_adapters if a.enabled and not self._carrier(a.name))
        return RuntimeFacts(
            uplinks_down=down, revoked=frozenset(self._revoked), migrating=frozenset(self._migrating)
        )

    def reconcile(self, force: bool = False) -> None:
        """Bring the kernel path in line with the configuration and the runtime facts (idempotent)."""
        with self._lock:
            cfg = self._config()
            facts = self._facts(cfg)
            # The committed configuration is immutable and replaced on change: identity says "unchanged".
            if self._seen is not None and self._seen[0] is cfg and self._seen[1] == facts and not force:
                return
            if self._seen is None:
                # Filters an earlier run left on an adapter with no VF now would steal its frames, and on a
                # port that is no VF now would carry its frames past the switch's policies.
                for dev in sorted({a.name for a in cfg.sriov_adapters} | self._record.recorded()):
                    self._nic.clear(dev)
                # The forwarder outlives a restarted daemon (daemon/forwarder.py) and keeps the NIC-switch state
                # and socket filters the last one gave it: start from none, and let this plan set what it needs.
                # Only where SR-IOV was or is in play: resetting a switch's NIC-switch state recompiles it in
                # the forwarding loop, which stalled every port ~300 ms per restart on hosts without SR-IOV.
                iov_devs = {a.name for a in cfg.sriov_adapters} | self._record.recorded()
                iov_switches = {
                    p.switch
                    for p in cfg.ports
                    if p.switch is not None and (p.interface or p.name) in iov_devs
                }
                for sc in cfg.switches:
                    if sc.name in iov_switches:
                        self._engine.set_nic_switched(sc.name, {})
                for p in cfg.ports:
                    if p.switch in iov_switches:
                        try:
                            self._filter(p.name, None)
                        except OSError as exc:  # best effort: a device that is no socket has no filter
                            log.debug("no socket filter to clear on %s: %s", p.name, exc)
            new = plan(cfg, facts, previous=self.state.ports)
            old = self.state.ports
            changes = self.state.update(new)
            for t in changes:
                log.info("SR-IOV: port %s -> %s (%s, VF %s)", t.port, t.to, t.reason, t.vf,
                         extra={"event": "sriov.path", "fields": {"key": t.port, "port": t.port, "path": str(t.to),
                                "reason": str(t.reason), "vf": t.vf}})  # fmt: skip
            self._realise(cfg, old, new)
            self._seen = (cfg, facts)

    def _realise(self, cfg: HostConfig, old: dict[str, PortIov], new: dict[str, PortIov]) -> None:
        def vfs(states: dict[str, PortIov]) -> dict[str, PortIov]:
            return {n: s for n, s in states.items() if s.path is IovPath.VF}

        before, after = vfs(old), vfs(new)
        keep = {n: s for n, s in after.items() if n in before and before[n].uplink == s.uplink}
        leaving = {n: s for n, s in before.items() if n not in keep}
        uplink_port = {
            p.interface or p.name: p.name
            for p in cfg.ports
            if p.kind is PortKind.UPLINK and p.switch is not None
        }
        switch_of_uplink = {
            p.interface or p.name: p.switch
            for p in cfg.ports
            if p.kind is PortKind.UPLINK and p.switch is not None
        }
        uplinks = {s.uplink for s in (*before.values(), *after.values()) if s.uplink} | set(self._plans)

        # 1. relax: pyvswitch takes back what leaves the kernel path.
        for name in leaving:
            self._filter(name, None)
        self._flags_and_uplinks(keep, uplinks, uplink_port, switch_of_uplink)
        # 2. the NIC switch itself.
        for up in sorted(uplinks):
            mine = sorted((s for s in after.values() if s.uplink == up), key=lambda s: s.vf or 0)
            sw = switch_of_uplink.get(up)
            soft_macs = tuple(
                sorted(
                    p.mac
                    for p in cfg.ports
                    if p.switch == sw
                    and p.mac
                    and p.kind in (PortKind.VM, PortKind.HOST)
                    and p.name not in after
                )
            )
            want = NicSwitchPlan(up, tuple(VfPort(s.mac or "", s.interface or "") for s in mine), soft_macs)
            if not want.vfs:
                if up in self._plans:
                    self._nic.clear(up)
                    del self._plans[up]
            elif self._plans.get(up) != want:
                self._nic.program(want)
                self._plans[up] = want
        for s in leaving.values():
            if s.interface:
                self._nic.clear(s.interface)
        # 3. tighten: the new VF set is the kernel's.
        for name, s in after.items():
            sw = switch_of_uplink.get(s.uplink or "")
            soft = [p.mac for p in cfg.ports if p.switch == sw and p.mac and p.name not in after]
            self._filter(name, vf_port_filter(s.mac or "", soft))
        self._flags_and_uplinks(after, uplinks, uplink_port, switch_of_uplink)

    def _flags_and_uplinks(
        self,
        vf: dict[str, PortIov],
        uplinks: set[str],
        uplink_port: dict[str, str],
        switch_of_uplink: Mapping[str, str | None],
    ) -> None:
        for up in uplinks:
            mine = [s for s in vf.values() if s.uplink == up]
            port = uplink_port.get(up)
            if port is None:
                continue
            self._filter(port, uplink_filter([s.mac for s in mine if s.mac]) if mine else None)
            sw = switch_of_uplink.get(up)
            if sw is None:
                continue
            served: dict[str, frozenset[str]] = {}
            if mine:
                served[port] = frozenset(s.port for s in mine)
                for s in mine:
                    served[s.port] = frozenset({port})
            self._engine.set_nic_switched(sw, served)

    def _filter(self, port: str, prog: list[Insn] | None) -> None:
        fd = self._engine.port_fileno(port)
        if fd is not None:
            self._attach(fd, prog)

    # ---- requests ----

    def revoke(self, port: str, by: str = "operator") -> None:
        """A forwarding extension (or the operator) pulls ``port`` back onto the switch."""
        with self._lock:
            self._revoked[port] = by
        self.reconcile()

    def restore(self, port: str) -> None:
        with self._lock:
            self._revoked.pop(port, None)
        self.reconcile()

    def set_migrating(self, port: str, moving: bool) -> None:
        """Live migration: the VF goes first, the port moves on the software path (daemon/migration.py)."""
        with self._lock:
            if moving:
                self._migrating.add(port)
            else:
                self._migrating.discard(port)
        self.reconcile()

    def adapters(self) -> list[dict[str, Any]]:
        self.reconcile()
        cfg = self._config()
        out = []
        for a in cfg.sriov_adapters:
            used = [s for s in self.state.ports.values() if s.uplink == a.name and s.path is IovPath.VF]
            out.append(
                {
                    "name": a.name,
                    "enabled": a.enabled,
                    "num_vfs": a.num_vfs,
                    "vfs_in_use": len(used),
                    "carrier": self._carrier(a.name),
                    "sriov_support": "Supported",
                    "nic_switch": "tc u32 + mirred (emulated)",
                }
            )
        return out

    def adapter(self, name: str) -> dict[str, Any]:
        for a in self.adapters():
            if a["name"] == name:
                return a
        raise NotFoundError(f"SR-IOV is not enabled on {name!r} (Enable-NetAdapterSriov)")

    def vfs(self, adapter: str | None = None) -> list[dict[str, Any]]:
        """Get-NetAdapterSriovVf: the VFs in use (function id, VM, MAC, port)."""
        self.reconcile()
        cfg = self._config()
        vm_of = {p.name: p.vm for p in cfg.ports}
        return [
            {
                "adapter": s.uplink,
                "function_id": s.vf,
                "vm": vm_of.get(s.port),
                "port": s.port,
                "mac": s.mac,
                "interface": s.interface,
            }
            for s in sorted(self.state.ports.values(), key=lambda s: (s.uplink or "", s.vf or 0))
            if s.path is IovPath.VF and (adapter is None or s.uplink == adapter)
        ]

    def port(self, name: str) -> dict[str, Any]:
        self.reconcile()
        st = self.state.ports.get(name)
        if st is None:
            cfg = self._config()
            if not any(p.name == name for p in cfg.ports):
                raise NotFoundError(f"no port {name!r}")
            return {
                "port": name,
                "path": "Software",
                "reason": "NotAVmPort",
                "vf": None,
                "policies": "applied",
            }
        out = st.as_dict()
        if name in self._revoked:
            out["revoked_by"] = self._revoked[name]
        return out

    def status(self) -> dict[str, Any]:
        self.reconcile()
        return {
            "ports": [s.as_dict() for s in sorted(self.state.ports.values(), key=lambda s: s.port)],
            "transitions": dict(self.state.transitions),
            "history": [
                {"port": t.port, "to": str(t.to), "reason": str(t.reason), "vf": t.vf}
                for t in self.state.history[-50:]
            ],
            "errors": self.errors,
            "last_error": self.last_error,
        }

    def set_adapter(
        self, name: str, enabled: bool | None = None, num_vfs: int | None = None
    ) -> dict[str, Any]:
        """Enable-/Disable-/Set-NetAdapterSriov: committed like any configuration change."""
        cfg = self._config()
        adapters = {a.name: a for a in cfg.sriov_adapters}
        if name not in adapters:
            if enabled is False and num_vfs is None:
                raise NotFoundError(f"SR-IOV is not enabled on {name!r}")
            if any(t.name == name for t in cfg.teams):
                # hyperv-networking.md §4: VF traffic never passes a host team, and the NIC switch here is one
                # NIC's tc hooks (the team's members would each need one).
                raise ConflictError(
                    f"{name!r} is a NIC team: SR-IOV is a single NIC's (enable it on no team)"
                )
            uplinks = {p.interface for p in cfg.ports if p.kind is PortKind.UPLINK}
            if name not in uplinks:
                raise ConflictError(
                    f"{name!r} is not an External switch's uplink (New-VMSwitch -NetAdapterName)"
                )
            a = SriovAdapterConfig(name=name)
        else:
            a = adapters[name]
        update: dict[str, Any] = {}
        if enabled is not None:
            update["enabled"] = enabled
        if num_vfs is not None:
            update["num_vfs"] = num_vfs
        a = SriovAdapterConfig.model_validate({**a.model_dump(), **update})
        adapters[name] = a
        what = "enable" if a.enabled else "disable"
        self._commit(
            cfg.model_copy(update={"sriov_adapters": list(adapters.values())}),
            f"{what} SR-IOV on {name} ({a.num_vfs} VFs)",
        )
        if dry_run.active() is None:  # a dry run (-WhatIf) programs no VF
            self.reconcile(force=True)
        return self.adapter(name)


class AdapterBody(BaseModel):
    enabled: bool | None = None
    num_vfs: int | None = Field(default=None, ge=0, le=256)


class RevokeBody(BaseModel):
    by: str = "operator"


def add_iov_routes(app: FastAPI, iov: IovManager) -> None:
    """/v1/sriov: adapters (Enable/Disable/Set/Get-NetAdapterSriov), VFs, per-port state, revoke/restore."""

    @app.get("/v1/sriov/adapters")
    def sriov_adapters() -> list[dict[str, Any]]:
        return iov.adapters()

    @app.get("/v1/sriov/adapters/{name}")
    def sriov_adapter(name: str) -> dict[str, Any]:
        return iov.adapter(name)

    @app.put("/v1/sriov/adapters/{name}", openapi_extra=DRY_RUN)
    def sriov_set(name: str, body: AdapterBody) -> dict[str, Any]:
        return iov.set_adapter(name, body.enabled, body.num_vfs)

    @app.delete("/v1/sriov/adapters/{name}", openapi_extra=DRY_RUN)
    def sriov_disable(name: str) -> dict[str, Any]:
        return iov.set_adapter(name, False)

    @app.get("/v1/sriov/vfs")
    def sriov_vfs(adapter: str | None = None) -> list[dict[str, Any]]:
        return iov.vfs(adapter)

    @app.get("/v1/sriov/status")
    def sriov_status() -> dict[str, Any]:
        return iov.status()

    @app.get("/v1/sriov/ports/{name}")
    def sriov_port(name: str) -> dict[str, Any]:
        return iov.port(name)

    @app.post("/v1/sriov/ports/{name}/revoke")
    def sriov_revoke(name: str, body: RevokeBody) -> dict[str, Any]:
        iov.revoke(name, body.by)
        return iov.port(name)

    @app.post("/v1/sriov/ports/{name}/restore")
    def sriov_restore(name: str) -> dict[str, Any]:
        iov.restore(name)
        return iov.port(name)
