"""LACP state machines (IEEE 802.1AX-2008 §5.4) for a team's members, as pure logic on an injected clock.

One ``LacpPort`` per member runs the receive, periodic, mux and transmit machines; a ``LacpAggregator`` does
selection (which members may aggregate: same partner system and key as the aggregator's) and holds the
aggregate-wait. Nothing here touches a device: callers feed received PDUs (``receive``) and the time
(``tick``) and send what ``tick`` returns, so component tests replay OVS's ``lacp - negotiation`` scenario in
simulated seconds.

Simplifications, stated: the mux machine is the coupled-control variant (collecting and distributing change
together, §5.4.15); churn detection is reported as a counter of partner changes, not a separate machine; one
aggregator per team (members whose partner differs from the aggregator's stay individual, i.e. not used).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from enum import StrEnum

from pyvswitch.switch.lacp import (
    ACTIVITY,
    AGGREGATION,
    COLLECTING,
    DEFAULTED,
    DISTRIBUTING,
    EXPIRED,
    SYNCHRONIZATION,
    TIMEOUT,
    Lacpdu,
    PortInfo,
    encode_lacpdu,
)

FAST_PERIODIC_S = 1.0
SLOW_PERIODIC_S = 30.0
SHORT_TIMEOUT_S = 3.0
LONG_TIMEOUT_S = 90.0
AGGREGATE_WAIT_S = 2.0
MAX_PDUS_PER_FAST_PERIOD = 3  # §5.4.16: no more than 3 LACPDUs in any fast periodic interval


class RxState(StrEnum):
    DISABLED = "port-disabled"
    EXPIRED = "expired"
    DEFAULTED = "defaulted"
    CURRENT = "current"


class MuxState(StrEnum):
    DETACHED = "detached"
    WAITING = "waiting"
    ATTACHED = "attached"
    COLLECTING_DISTRIBUTING = "collecting-distributing"


@dataclass
class ActorConfig:
    system: int  # the team's MAC
    key: int
    port: int
    system_priority: int = 32768
    port_priority: int = 255
    active: bool = True
    fast: bool = True


@dataclass
class LacpPort:
    """One member's LACP machines."""

    name: str
    mac: int
    actor: ActorConfig
    enabled: bool = False
    rx: RxState = RxState.DISABLED
    mux: MuxState = MuxState.DETACHED
    partner: PortInfo = field(default_factory=PortInfo)
    selected: bool = False
    current_while: float = 0.0  # deadline (absolute time); 0 = not running
    periodic_due: float = 0.0
    wait_until: float = 0.0
    ntt: bool = False
    sent_times: deque[float] = field(default_factory=lambda: deque(maxlen=MAX_PDUS_PER_FAST_PERIOD))
    pdus_sent: int = 0
    pdus_received: int = 0
    partner_changes: int = 0
    last_rx: float = 0.0  # when the last LACPDU arrived

    # ---- state ----

    @property
    def actor_state(self) -> int:
        s = AGGREGATION
        if self.actor.active:
            s |= ACTIVITY
        if self.actor.fast:
            s |= TIMEOUT
        if self.mux in (MuxState.ATTACHED, MuxState.COLLECTING_DISTRIBUTING):
            s |= SYNCHRONIZATION
        if self.mux is MuxState.COLLECTING_DISTRIBUTING:
            s |= COLLECTING | DISTRIBUTING
        if self.rx is RxState.DEFAULTED:
            s |= DEFAULTED
        if self.rx is RxState.EXPIRED:
            s |= EXPIRED
        return s

    @property
    def distributing(self) -> bool:
        return self.mux is MuxState.COLLECTING_DISTRIBUTING

    def actor_info(self) -> PortInfo:
        a = self.actor
        return PortInfo(a.system_priority, a.system, a.key, a.port_priority, a.port, self.actor_state)

    # ---- events ----

    def set_enabled(self, up: bool, now: float) -> None:
        """Carrier up/down (the port's MAC_Operational)."""
        if up == self.enabled:
            return
        self.enabled = up
        if up:
            self._expire(now)
        else:
            self.rx = RxState.DISABLED
            self.partner = PortInfo()
            self.current_while = 0.0
            self.selected = False
            self.mux = MuxState.DETACHED

    def _expire(self, now: float) -> None:
        """Receive machine EXPIRED: partner out of sync, short timeout to hear from it again."""
        self.rx = RxState.EXPIRED
        self.partner = PortInfo(self.partner.system_priority, self.partner.system, self.partner.key,
                                self.partner.port_priority, self.partner.port,
                                (self.partner.state & ~SYNCHRONIZATION) | TIMEOUT)  # fmt: skip
        self.current_while = now + SHORT_TIMEOUT_S
        self.ntt = True

    def receive(self, pdu: Lacpdu, now: float) -> None:
        """An LACPDU arrived on this port."""
        if not self.enabled:
            return
        self.pdus_received += 1
        self.last_rx = now
        new = pdu.actor
        old = self.partner
        if (new.system, new.key, new.port, new.system_priority, new.port_priority) != (
            old.system, old.key, old.port, old.system_priority, old.port_priority
        ):  # fmt: skip
            self.selected = False  # update_Selected: a different partner needs selection again
            self.partner_changes += 1
        # update_NTT: the partner's view of us is out of date
        mine = self.actor_info()
        seen = pdu.partner
        if (seen.system, seen.key, seen.port, seen.state & (ACTIVITY | TIMEOUT | AGGREGATION | SYNCHRONIZATION)) != (
            mine.system, mine.key, mine.port, mine.state & (ACTIVITY | TIMEOUT | AGGREGATION | SYNCHRONIZATION)
        ):  # fmt: skip
            self.ntt = True
        self.partner = new
        self.rx = RxState.CURRENT
        self.current_while = now + (SHORT_TIMEOUT_S if self.actor.fast else LONG_TIMEOUT_S)

    def _timers(self, now: float) -> None:
        if self.current_while and now >= self.current_while:
            if self.rx is RxState.CURRENT:
                self._expire(now)
            elif self.rx is RxState.EXPIRED:
                self.rx = RxState.DEFAULTED  # record default (no) partner
                self.partner = PortInfo()
                self.current_while = 0.0
                self.selected = False

    def _periodic(self, now: float) -> None:
        """Periodic machine: fast while the partner asks for short timeouts, slow otherwise; none if both
        sides are passive."""
        if not self.actor.active and not self.partner.state & ACTIVITY:
            self.periodic_due = 0.0
            return
        period = (
            FAST_PERIODIC_S
            if self.partner.state & TIMEOUT or self.rx is not RxState.CURRENT
            else SLOW_PERIODIC_S
        )
        if not self.periodic_due or self.periodic_due > now + period:
            self.periodic_due = now + period
        if now >= self.periodic_due:
            self.ntt = True
            self.periodic_due = now + period

    def _mux(self, now: float, aggregator_ready: bool) -> None:
        if not self.selected:
            self.mux = MuxState.DETACHED
            return
        if self.mux is MuxState.DETACHED:
            self.mux = MuxState.WAITING
            self.wait_until = now + AGGREGATE_WAIT_S
        if self.mux is MuxState.WAITING and now >= self.wait_until and aggregator_ready:
            self.mux = MuxState.ATTACHED
            self.ntt = True
        partner_in_sync = bool(self.partner.state & SYNCHRONIZATION) and self.rx is RxState.CURRENT
        if self.mux is MuxState.ATTACHED and partner_in_sync:
            self.mux = MuxState.COLLECTING_DISTRIBUTING
            self.ntt = True
        elif self.mux is MuxState.COLLECTING_DISTRIBUTING and not partner_in_sync:
            self.mux = MuxState.ATTACHED
            self.ntt = True

    def _transmit(self, now: float) -> bytes | None:
        """Send if there is something to say and the rate limit allows (else it waits: NTT stays set)."""
        if not self.ntt or not self.enabled or (not self.actor.active and not self.partner.state & ACTIVITY):
            return None
        if len(self.sent_times) == MAX_PDUS_PER_FAST_PERIOD and now - self.sent_times[0] < FAST_PERIODIC_S:
            return None
        self.ntt = False
        self.sent_times.append(now)
        self.pdus_sent += 1
        return encode_lacpdu(Lacpdu(self.mac, self.actor_info(), self.partner))


@dataclass
class LacpAggregator:
    """A team's aggregator: selection and the members' machines, ticked together."""

    ports: list[LacpPort]
    partner: tuple[int, int] | None = None  # (partner system, partner key) of the aggregation

    def tick(self, now: float) -> list[tuple[LacpPort, bytes]]:
        """Advance every machine to ``now``; returns the LACPDUs to send, per port."""
        for p in self.ports:
            p._timers(now)
        self._select()
        out: list[tuple[LacpPort, bytes]] = []
        for p in self.ports:
            p._periodic(now)
            p._mux(now, True)  # each member waits out its own aggregate-wait in WAITING
            pdu = p._transmit(now)
            if pdu is not None:
                out.append((p, pdu))
        return out

    def _select(self) -> None:
        """Selection logic (§5.4.14), one aggregator: the first current partner defines it; members with another
        partner system or key stay unselected (individual)."""
        current = [p for p in self.ports if p.rx is RxState.CURRENT and p.partner.state & AGGREGATION]
        partners = {(p.partner.system, p.partner.key) for p in current}
        if self.partner not in partners:
            self.partner = next(((p.partner.system, p.partner.key) for p in current), None)
        for p in self.ports:
            p.selected = (
                p.rx is RxState.CURRENT
                and self.partner is not None
                and (p.partner.system, p.partner.key) == self.partner
                and bool(p.partner.state & AGGREGATION)
            )

    def distributing(self) -> list[LacpPort]:
        return [p for p in self.ports if p.distributing]

    def show(self) -> list[dict[str, object]]:
        """Per member, like ``ovs-appctl lacp/show``."""
        return [
            {
                "member": p.name,
                "status": p.mux.value,
                "rx": p.rx.value,
                "actor": {
                    "system": p.actor.system,
                    "key": p.actor.key,
                    "port": p.actor.port,
                    "state": p.actor_info().flags(),
                },
                "partner": {
                    "system": p.partner.system,
                    "key": p.partner.key,
                    "port": p.partner.port,
                    "state": p.partner.flags(),
                },
                "pdus": {"sent": p.pdus_sent, "received": p.pdus_received},
            }
            for p in self.ports
        ]
