"""One switch's extension stack: instances in configured order, the calls around each batch, containment.

Containment (issue 10): whatever an extension raises in the data path, BaseException included (SystemExit,
KeyboardInterrupt), is caught at the stack boundary, counted and handled by its ``on_error``. An extension call
that takes longer than ``BATCH_BUDGET_S`` for one batch (wall time, less the time the thread stood waiting for a CPU:
a busy machine preempting the forwarding thread is not the extension's fault) cannot be interrupted (Python threads cannot be), but once
it returns the extension is *benched*: handled as if it had failed (its ``on_error``) without being called, for
``BENCH_S`` doubling with each overrun up to ``BENCH_MAX_S``, so one slow plug-in stalls the single forwarding
thread (every switch) once per bench period instead of on every batch.

Compiled when the switch's configuration changes; an empty stack (nothing enabled) is ``None`` in the switch,
so a switch without extensions pays nothing per batch. Instances live as long as the extension stays installed
on the switch, across enable/disable and reordering, so their state survives reconfiguration.
"""

from __future__ import annotations

import logging
import sys
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Protocol

from pydantic import BaseModel, ValidationError

from pyvswitch.clock import cpu_wait
from pyvswitch.drops import DropReason
from pyvswitch.ext.api import (
    CapturedFrame,
    CaptureExtension,
    Context,
    Direction,
    Extension,
    ExtensionKind,
    FilterExtension,
    ForwardingExtension,
    Gate,
    OnError,
    PortEvent,
    PortInfo,
    Sample,
    SamplingExtension,
    Veto,
)
from pyvswitch.ext.registry import Registry
from pyvswitch.packet.frame import Packet, uncache

log = logging.getLogger(__name__)

KIND_ORDER = {ExtensionKind.CAPTURE: 0, ExtensionKind.FILTER: 1, ExtensionKind.FORWARDING: 2}
LOG_FIRST = 10  # errors of one extension logged in full; then one line every LOG_EVERY
LOG_EVERY = 1000
BATCH_BUDGET_S = 0.1  # one extension call on one batch; a batch of 256 frames normally takes ~1 ms in all
BENCH_S = 5.0
BENCH_MAX_S = 300.0
RECENT_FAILURE_S = 60.0  # a failure this recent makes the host's health "degraded"


class ExtensionDrop(DropReason):
    """Why the extension stack drops frames (``show drops``, per extension; an extension's own reasons are its
    strings)."""

    EXTENSION_ERROR = (
        "extension-error",
        "an extension with on_error=drop raised, overran its budget or is benched",
    )
    NO_DESTINATION = (
        "no-destination",
        "a flood with nobody else in the VLAN, or a forwarding extension chose none",
    )


class ExtensionVeto(Exception):
    """An extension refused a port or a policy; nothing was changed."""

    def __init__(self, extension: str, port: str, event: PortEvent, reason: str) -> None:
        self.extension = extension
        self.port = port
        self.event = event
        self.reason = reason
        super().__init__(f"extension {extension!r} refused {event.value} of port {port!r}: {reason}")


class ExtensionSettingLike(Protocol):
    """What the stack needs of a configured setting (config.schema.ExtensionSetting satisfies it)."""

    @property
    def name(self) -> str: ...

    @property
    def enabled(self) -> bool: ...

    # and optionally ``settings``: a mapping validated against the extension's settings_model


def settings_of(setting: ExtensionSettingLike | None) -> Mapping[str, Any]:
    return getattr(setting, "settings", None) or {}


def validated_settings(cls: type[Extension], data: Mapping[str, Any]) -> BaseModel | None:
    """``data`` as the extension's settings model (defaults for what is missing); raises ValidationError."""
    model = cls.settings_model
    return None if model is None else model.model_validate(dict(data))


@dataclass(slots=True)
class ExtensionSlot:
    """One installed extension on one switch: its instance, whether it is enabled, and its counters."""

    name: str
    instance: Extension
    enabled: bool
    position: int
    calls: int = 0
    errors: int = 0
    drops: Counter[str] = field(default_factory=Counter)
    overruns: int = 0  # calls over BATCH_BUDGET_S
    preempted: int = 0  # calls over it on the wall clock only because the thread waited for a CPU
    benched_until: float = 0.0  # until then the extension is handled as failed without being called
    problem: str | None = None  # the last failure or overrun, for health and `extension show`
    failed_at: float = 0.0
    settings: BaseModel | None = None  # what configure() was last given
    #: Why the extension could not be constructed on this switch (issue 11): it then runs nowhere (``enabled``
    #: is False, ``instance`` a stand-in) whatever the configuration asks, which ``wanted`` keeps.
    broken: str | None = None
    wanted: bool | None = None

    @property
    def kind(self) -> ExtensionKind:
        return self.instance.kind

    def as_dict(self) -> dict[str, object]:
        try:
            status = self.instance.status()
        except Exception as exc:  # status is advisory; a broken one must not break the API
            status = {"error": repr(exc)}
        return {
            "name": self.name,
            "kind": self.kind.value,
            # What the configuration asks; "running" says whether it is in the data path (not if it is broken).
            "enabled": self.enabled if self.wanted is None else self.wanted,
            "running": self.enabled,
            "position": self.position,
            "on_error": self.instance.on_error.value,
            "calls": self.calls,
            "errors": self.errors,
            "overruns": self.overruns,
            "preempted": self.preempted,
            "benched_until": self.benched_until or None,
            "problem": self.problem,
            "drops": dict(self.drops),
            "status": status,
        }


def stack_order(
    registry: Registry, settings: Sequence[ExtensionSettingLike]
) -> list[tuple[str, type[Extension], bool]]:
    """(name, class, enabled) in stack order: by kind (capture, filter, forwarding), then as configured, then
    the unconfigured ones by name with their default. Names not installed are skipped (validation reports them)."""
    configured = {s.name: (i, s.enabled) for i, s in enumerate(settings)}
    rows: list[tuple[int, int, str, type[Extension], bool]] = []
    for inst in registry.usable():
        assert inst.cls is not None
        # enabled_by_default counts for built-ins only (issue 11): a package cannot go live unconfigured.
        pos, enabled = configured.get(inst.name, (len(configured), inst.on_by_default))
        rows.append((KIND_ORDER[inst.cls.kind], pos, inst.name, inst.cls, enabled))
    rows.sort(key=lambda r: (r[0], r[1], r[2]))
    return [(name, cls, enabled) for _, _, name, cls, enabled in rows]


def settings_problems(registry: Registry, settings: Sequence[ExtensionSettingLike]) -> list[tuple[str, str]]:
    """Configuration errors (field path relative to the switch, message)."""
    problems: list[tuple[str, str]] = []
    seen: set[str] = set()
    for i, s in enumerate(settings):
        inst = registry.get(s.name)
        if s.name in seen:
            problems.append((f"extensions[{i}].name", f"extension {s.name!r} listed twice"))
        seen.add(s.name)
        if inst is None:
            problems.append((f"extensions[{i}].name", f"no extension {s.name!r} is installed"))
        elif inst.cls is None:
            problems.append((f"extensions[{i}].name", f"extension {s.name!r} cannot be used: {inst.problem}"))
        elif settings_of(s) and inst.cls.settings_model is None:
            problems.append((f"extensions[{i}].settings", f"extension {s.name!r} takes no settings"))
        else:
            try:
                validated_settings(inst.cls, settings_of(s))
            except ValidationError as exc:
                for err in exc.errors():
                    where = ".".join(str(part) for part in err["loc"])
                    problems.append(
                        (f"extensions[{i}].settings" + (f".{where}" if where else ""), err["msg"])
                    )
    forwarders = [
        n for n, cls, on in stack_order(registry, settings) if on and cls.kind is ExtensionKind.FORWARDING
    ]
    if len(forwarders) > 1:
        problems.append(
            ("extensions", f"at most one forwarding extension may be enabled, not {', '.join(forwarders)}")
        )
    return problems


class _Unconstructed(Extension):
    """Stands in, in a slot, for an extension whose constructor raised: never enabled, so never called in the data
    path; the control-path calls made on every slot (``save_state``, ``status``) find the base class's no-ops."""

    def __init__(self, switch: str, kind: ExtensionKind, on_error: OnError) -> None:
        super().__init__(switch)
        self.kind = kind  # type: ignore[misc]  # per instance: the kind of the class it stands in for
        self.on_error = on_error  # type: ignore[misc]


def _construct(
    switch: str,
    name: str,
    ext_cls: type[Extension],
    enabled: bool,
    pos: int,
    now: Callable[[], float],
    prev: ExtensionSlot | None,
) -> ExtensionSlot:
    """A new slot for ``ext_cls`` on ``switch``. A constructor that raises (BaseException included, as in the data
    path) disables that extension on this switch only (issue 11): the slot is kept, with the error, so the switch
    and every configuration change still apply and Get-VMSwitchExtension shows why; the next change retries."""
    try:
        return ExtensionSlot(name, ext_cls(switch), enabled, pos)
    except BaseException as exc:  # a plug-in must not stop the daemon from applying any configuration
        problem = f"cannot start: {ext_cls.__name__}({switch!r}) raised {type(exc).__name__}: {exc}"
        if prev is None or prev.problem != problem:  # once per distinct failure, not on every change
            log.error("extension %r on switch %r: %s", name, switch, problem, exc_info=True,
                      extra={"event": "extension.fault", "fields": {"key": f"{switch}/{name}", "switch": switch,
                             "extension": name, "problem": problem}})  # fmt: skip
        stand_in = _Unconstructed(switch, ext_cls.kind, ext_cls.on_error)
        slot = ExtensionSlot(name, stand_in, False, pos, broken=problem, wanted=enabled, problem=problem)
        slot.failed_at = now()
        if prev is not None:
            slot.errors = prev.errors
        slot.errors += 1
        return slot


class ExtensionStack:
    """The enabled extensions of one switch, called around each batch."""

    def __init__(self, switch: str, slots: list[ExtensionSlot], now: Callable[[], float]) -> None:
        self.switch = switch
        self.slots = slots
        self.ctx = Context(switch, now, {})
        self.pending: list[tuple[bytes, int | None, int]] = []
        self.refresh()

    def refresh(self) -> None:
        """Recompute who is in the data path: enabled and not idle (call after port events)."""
        enabled = [s for s in self.slots if s.enabled and not self._idle(s)]
        # Sampling extensions (API 1.4) are fed by the switch's sampler, not by the chains: they neither make
        # the stack active nor keep a port off the flow cache.
        self.samplers = [s for s in enabled if isinstance(s.instance, SamplingExtension)]
        enabled = [s for s in enabled if s not in self.samplers]
        self.captures = [s for s in enabled if s.kind is ExtensionKind.CAPTURE]
        self.filters = [s for s in enabled if s.kind is ExtensionKind.FILTER]
        fwd = [s for s in enabled if s.kind is ExtensionKind.FORWARDING]
        self.forwarder: ExtensionSlot | None = fwd[0] if fwd else None
        # Filters on ingress, the forwarder's own filter step last; egress is the mirror image.
        self.ingress_filters = self.filters + fwd
        self.egress_filters = list(reversed(self.ingress_filters))
        self.active = bool(enabled)

    def _idle(self, slot: ExtensionSlot) -> bool:
        try:
            return slot.instance.idle()
        except Exception:
            self._failed(slot, "idle")
            return False

    @classmethod
    def build(
        cls,
        switch: str,
        registry: Registry,
        settings: Sequence[ExtensionSettingLike],
        now: Callable[[], float],
        previous: ExtensionStack | None = None,
    ) -> ExtensionStack:
        old = {s.name: s for s in previous.slots} if previous is not None else {}
        given = {s.name: s for s in settings}
        slots: list[ExtensionSlot] = []
        for pos, (name, ext_cls, enabled) in enumerate(stack_order(registry, settings)):
            prev = old.get(name)
            if prev is not None and type(prev.instance) is ext_cls:
                prev.enabled = enabled
                prev.position = pos
                slot = prev
            else:
                slot = _construct(switch, name, ext_cls, enabled, pos, now, prev)
                if slot.broken is not None:
                    slots.append(slot)
                    continue
            # Validated before (settings_problems): only a change reaches configure().
            wanted = validated_settings(ext_cls, settings_of(given.get(name)))
            if wanted is not None and (slot.settings is None or wanted != slot.settings):
                try:
                    slot.instance.configure(wanted)
                    slot.settings = wanted
                except Exception as exc:  # contained like any extension failure: the switch still applies
                    slot.errors += 1
                    slot.problem = f"configure raised {type(exc).__name__}: {exc}"
                    log.exception("extension %r on switch %r: configure failed", name, switch)
            slots.append(slot)
        return cls(switch, slots, now)

    # ---- containment ----

    def _failed(self, slot: ExtensionSlot, what: str) -> None:
        slot.errors += 1
        exc = sys.exception()
        slot.failed_at = self.ctx.now()
        slot.problem = f"{what} raised {type(exc).__name__}: {exc} ({slot.errors} errors, handled: {slot.instance.on_error.value})"
        fault = {"event": "extension.fault", "fields": {"key": f"{self.switch}/{slot.name}", "switch": self.switch,
                 "extension": slot.name, "problem": slot.problem, "errors": slot.errors}}  # fmt: skip
        if slot.errors <= LOG_FIRST:
            log.exception("extension %r on switch %r raised in %s", slot.name, self.switch, what, extra=fault)
        elif slot.errors % LOG_EVERY == 0:
            log.error(
                "extension %r on switch %r: %d errors so far",
                slot.name,
                self.switch,
                slot.errors,
                extra=fault,
            )

    def _call(self, slot: ExtensionSlot, what: str, fn: Callable[[], object]) -> bool:
        """Run one data-path call of ``slot``; False if it failed, overran its budget or is benched."""
        slot.calls += 1
        now = self.ctx.now
        start = now()
        waited = cpu_wait()
        if slot.benched_until:
            if start < slot.benched_until:
                slot.errors += 1
                return False
            slot.benched_until = 0.0
        try:
            fn()
        except BaseException:  # an extension must not take the forwarding thread down, whatever it raises
            self._failed(slot, what)
            return False
        took = now() - start
        if took <= BATCH_BUDGET_S:
            return True
        took -= cpu_wait() - waited  # preempted, not slow: seen under a flood on a machine with a CPU hog
        if took <= BATCH_BUDGET_S:
            slot.preempted += 1
            return True
        slot.overruns += 1
        bench = min(BENCH_MAX_S, BENCH_S * 2 ** (slot.overruns - 1))
        slot.benched_until = start + took + bench
        slot.problem = (
            f"{what} took {took:.3f} s on one batch (budget {BATCH_BUDGET_S} s): "
            f"handled as failed ({slot.instance.on_error.value}) for {bench:.0f} s"
        )
        log.error("extension %r on switch %r: %s", slot.name, self.switch, slot.problem,
                  extra={"event": "extension.fault", "fields": {"key": f"{self.switch}/{slot.name}",
                         "switch": self.switch, "extension": slot.name, "problem": slot.problem}})  # fmt: skip
        return False

    def problems(self, now: float) -> list[str]:
        """Benched extensions, ones that failed recently and enabled ones that could not be constructed, for the
        host's health (a broken extension nobody enabled is shown in its stack, but does not degrade the host)."""
        return [
            f"extension {s.name!r} on switch {self.switch!r}: {s.problem}"
            for s in self.slots
            if s.problem
            and (
                bool(s.wanted) if s.broken else s.benched_until > now or now - s.failed_at < RECENT_FAILURE_S
            )
        ]

    # ---- data path ----

    def ingress(self, pkts: list[Packet], port: int) -> list[Packet]:
        """Capture then filter extensions over a batch received from ``port``; returns the survivors."""
        ctx = self.ctx
        self._capture(self.captures, pkts, Direction.INGRESS, port)
        for slot in self.ingress_filters:
            if not pkts:
                break
            pkts = self._filter(slot, pkts, Gate(Direction.INGRESS))
        self._collect(ctx)
        return pkts

    def _capture(
        self, slots: Iterable[ExtensionSlot], pkts: list[Packet], direction: Direction, port: int
    ) -> None:
        for slot in slots:
            ext = slot.instance
            assert isinstance(ext, CaptureExtension)
            frames = [CapturedFrame.of(p) for p in pkts]
            self._call(slot, "capture", partial(ext.capture, self.ctx, frames, direction, port))

    def sampled(self, slot: ExtensionSlot, samples: list[Sample]) -> None:
        """Hand samples to a sampling extension (switch/sampling.py: up to 32, or what a tick finds), contained
        as any call."""
        ext = slot.instance
        assert isinstance(ext, SamplingExtension)
        self._call(slot, "sampled", partial(ext.sampled, self.ctx, samples))

    def tick(self, now: float) -> None:
        """The sampling extensions' periodic call (the forwarding loop's aging tick, about once a second)."""
        for slot in self.samplers:
            ext = slot.instance
            assert isinstance(ext, SamplingExtension)
            self._call(slot, "tick", partial(ext.tick, self.ctx, now))

    def _filter(self, slot: ExtensionSlot, pkts: list[Packet], gate: Gate) -> list[Packet]:
        ext = slot.instance
        assert isinstance(ext, FilterExtension)
        step = ext.ingress if gate.direction is Direction.INGRESS else ext.egress
        if not self._call(slot, gate.direction, lambda: step(self.ctx, pkts, gate)):
            if ext.on_error is OnError.DROP:
                slot.drops[ExtensionDrop.EXTENSION_ERROR] += len(pkts)
                return []
            uncache(pkts)  # bypassed this time: the next packets of these flows must meet it again
            return pkts  # bypass: as if the extension were not there
        injected = gate.take_injected()
        if injected:
            self.pending.extend(injected)
            uncache(pkts)  # it may have injected in answer to any of them: a replay would not
        decided = gate.decisions()
        if not decided:
            return pkts
        out: list[Packet] = []
        for p in pkts:
            reason = decided.get(id(p))
            if reason is None:
                out.append(p)
            else:
                slot.drops[reason] += 1
        return out

    @property
    def flow_cacheable(self) -> bool:
        """Whether the switch may cache this stack's decisions per flow (ext/api.py, API 1.2): every enabled
        extension says so, and none is a capture extension."""
        return not self.captures and all(
            s.instance.flow_cacheable
            for s in (*self.ingress_filters, *self.egress_filters, self.forwarder)
            if s
        )

    def forward(self, pkts: list[Packet], port_count: int) -> list[Packet]:
        """The forwarding extension sets destinations; packets left without any are dropped."""
        slot = self.forwarder
        assert slot is not None
        ext = slot.instance
        assert isinstance(ext, ForwardingExtension)
        for p in pkts:
            p.dsts = None
        if not self._call(slot, "forward", lambda: ext.forward(self.ctx, pkts)):
            slot.drops[ExtensionDrop.EXTENSION_ERROR] += len(pkts)
            return []  # no destinations decided: nothing can be sent, whatever on_error says
        out: list[Packet] = []
        for p in pkts:
            dsts = p.dsts
            if not dsts:
                slot.drops[ExtensionDrop.NO_DESTINATION] += 1
                continue
            valid = [d for d in dsts if 0 <= d < port_count and d != p.in_port]
            if not valid:
                slot.drops[ExtensionDrop.NO_DESTINATION] += 1
                continue
            p.dsts = valid
            out.append(p)
        return out

    def egress(self, pkts: list[Packet], tcis: list[int], port: int) -> tuple[list[Packet], list[int]]:
        """Filters (reversed) then captures (reversed) over a batch for destination ``port``."""
        if self.egress_filters:
            keep = pkts
            for slot in self.egress_filters:
                if not keep:
                    break
                keep = self._filter(slot, keep, Gate(Direction.EGRESS, port))
            if len(keep) != len(pkts):
                kept = {id(p) for p in keep}
                tcis = [t for p, t in zip(pkts, tcis, strict=True) if id(p) in kept]
                pkts = keep
        if pkts:
            self._capture(reversed(self.captures), pkts, Direction.EGRESS, port)
        self._collect(self.ctx)
        return pkts, tcis

    def _collect(self, ctx: Context) -> None:
        originated = ctx.take_originated()
        if originated:
            self.pending.extend(originated)

    def take_pending(self) -> list[tuple[bytes, int | None, int]]:
        out, self.pending = self.pending, []
        return out

    # ---- control path ----

    def deliver(self, events: Sequence[tuple[PortEvent, PortInfo]]) -> None:
        """Port events to every enabled extension, in stack order. A Veto on create/connect/update stops
        everything: extensions that already accepted a refused port's creation are told it is deleted, and
        ExtensionVeto is raised before the switch changes anything."""
        enabled = [s for s in self.slots if s.enabled]
        accepted: list[tuple[ExtensionSlot, PortInfo]] = []
        for event, port in events:
            for slot in enabled:
                try:
                    slot.instance.port_event(event, port)
                except Veto as v:
                    vetoable = event in (PortEvent.CREATE, PortEvent.CONNECT, PortEvent.UPDATE)
                    if vetoable and slot.kind is not ExtensionKind.CAPTURE:
                        for other, p in accepted:
                            self._quiet_event(other, PortEvent.DELETE, p)
                        raise ExtensionVeto(slot.name, port.name, event, str(v) or "vetoed") from v
                    log.warning(
                        "extension %r cannot veto %s of %s; ignored", slot.name, event.value, port.name
                    )
                except Exception:
                    self._failed(slot, f"port_event({event.value})")
                else:
                    if event is PortEvent.CREATE:
                        accepted.append((slot, port))

    def tell(self, slot: ExtensionSlot, event: PortEvent, port: PortInfo) -> None:
        """One event to one extension, no veto possible (a Veto is logged and ignored)."""
        try:
            slot.instance.port_event(event, port)
        except Veto:
            log.warning(
                "extension %r cannot veto %s of existing port %s; ignored", slot.name, event.value, port.name
            )
        except Exception:
            self._failed(slot, f"port_event({event.value})")

    def abandon(self, created: Sequence[PortInfo]) -> None:
        """A prepared change was not made: tell the extensions the ports they saw created are gone."""
        for port in created:
            for slot in self.slots:
                if slot.enabled:
                    self._quiet_event(slot, PortEvent.DELETE, port)

    def _quiet_event(self, slot: ExtensionSlot, event: PortEvent, port: PortInfo) -> None:
        try:
            slot.instance.port_event(event, port)
        except Exception:
            self._failed(slot, f"port_event({event.value})")

    def save_port_state(self, port: str) -> dict[str, bytes]:
        out: dict[str, bytes] = {}
        for slot in self.slots:
            try:
                blob = slot.instance.save_state(port)
            except Exception:
                self._failed(slot, "save_state")
                continue
            if blob is not None:
                out[slot.name] = bytes(blob)
        return out

    def restore_port_state(self, port: str, blobs: dict[str, bytes]) -> list[str]:
        """Hands each blob to the extension that saved it; returns the names it had nobody for."""
        by_name = {s.name: s for s in self.slots}
        orphans: list[str] = []
        for name, blob in blobs.items():
            slot = by_name.get(name)
            if slot is None:
                orphans.append(name)
                continue
            try:
                slot.instance.restore_state(port, blob)
            except Exception:
                self._failed(slot, "restore_state")
        return orphans

    def counters(self) -> list[dict[str, object]]:
        return [s.as_dict() for s in self.slots]
