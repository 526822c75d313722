"""LACP in simulated time (TM-03; OVS's 'lacp - negotiation' scenario; peers-and-testing §4.1/§4.6).

Two teams of two members each, wired member to member through a test wire that can drop a direction.
"""

from __future__ import annotations

from collections import Counter

from pyvswitch.switch.lacp import Lacpdu, decode
from pyvswitch.switch.lacp_port import ActorConfig, LacpAggregator, LacpPort, MuxState, RxState
from pyvswitch.testing.clock import FakeClock

STEP = 0.1


def team(
    system: int, keys: tuple[int, int] = (1, 1), fast: bool = True, active: bool = True
) -> LacpAggregator:
    return LacpAggregator(
        [
            LacpPort(f"m{i}", system + i + 1, ActorConfig(system, keys[i], i + 1, fast=fast, active=active))
            for i in range(2)
        ]
    )


class Wire:
    def __init__(self, a: LacpAggregator, b: LacpAggregator, clock: FakeClock) -> None:
        self.a, self.b, self.clock = a, b, clock
        self.cut: set[str] = set()  # "a>b" or "b>a"
        self.sent: list[tuple[float, str]] = []
        for p in a.ports + b.ports:
            p.set_enabled(True, clock.now())

    def run(self, seconds: float) -> None:
        end = self.clock.now() + seconds
        while self.clock.now() < end - 1e-9:
            self.clock.advance(STEP)
            now = self.clock.now()
            for src, dst, name in ((self.a, self.b, "a>b"), (self.b, self.a, "b>a")):
                for port, frame in src.tick(now):
                    self.sent.append((now, f"{name}:{port.name}"))
                    if name not in self.cut:
                        pdu = decode(frame)
                        assert isinstance(pdu, Lacpdu)
                        dst.ports[src.ports.index(port)].receive(pdu, now)


def test_negotiation_reaches_collecting_distributing_within_5s() -> None:
    clock = FakeClock()
    a, b = team(0x020000000100), team(0x020000000200)
    w = Wire(a, b, clock)
    w.run(5.0)
    assert [p.mux for p in a.ports + b.ports] == [MuxState.COLLECTING_DISTRIBUTING] * 4
    show = a.show()[0]
    assert show["partner"]["system"] == 0x020000000200 and "distributing" in str(show["partner"]["state"])  # type: ignore[index]


def run_until(w: Wire, cond: object, limit: float) -> float:
    start = w.clock.now()
    while not cond() and w.clock.now() - start < limit:  # type: ignore[operator]
        w.run(STEP)
    return w.clock.now()


def test_silent_partner_expires_at_3s_then_defaults_fast_timers() -> None:
    clock = FakeClock()
    a, b = team(0x100), team(0x200)
    w = Wire(a, b, clock)
    w.run(5.0)
    w.cut.add("b>a")
    port = a.ports[0]
    expired_at = run_until(w, lambda: port.rx is RxState.EXPIRED, 10)
    assert abs(expired_at - port.last_rx - 3.0) <= STEP + 1e-6  # short timeout: 3 s after the last LACPDU
    assert not port.distributing
    defaulted_at = run_until(w, lambda: port.rx is RxState.DEFAULTED, 10)
    assert abs(defaulted_at - expired_at - 3.0) <= STEP + 1e-6
    assert not a.distributing()
    w.cut.clear()
    w.run(5.0)  # the partner speaks again: re-aggregated
    assert len(a.distributing()) == 2


def test_slow_timers_expire_at_90s() -> None:
    clock = FakeClock()
    a, b = team(0x100, fast=False), team(0x200, fast=False)
    w = Wire(a, b, clock)
    w.run(70.0)  # slow periodic: negotiation takes a few 30 s rounds at worst
    assert a.distributing() and b.distributing()
    w.cut.add("b>a")
    port = a.ports[0]
    expired_at = run_until(w, lambda: port.rx is RxState.EXPIRED, 200)
    assert abs(expired_at - port.last_rx - 90.0) <= STEP + 1e-6  # long timeout


def test_mismatched_key_stays_individual() -> None:
    clock = FakeClock()
    a, b = team(0x100), team(0x200, keys=(1, 2))  # b's second member is in another aggregation
    w = Wire(a, b, clock)
    w.run(6.0)
    assert a.ports[0].distributing and not a.ports[1].distributing
    assert a.ports[1].mux is MuxState.DETACHED


def test_lacpdu_rate_at_most_3_per_second() -> None:
    clock = FakeClock()
    a, b = team(0x100), team(0x200)
    w = Wire(a, b, clock)
    w.run(20.0)
    per_port_second: Counter[tuple[str, int]] = Counter((who, int(t)) for t, who in w.sent)
    assert max(per_port_second.values()) <= 3
    assert sum(1 for _, who in w.sent if who == "a>b:m0") >= 15  # and it keeps talking (fast periodic)


def test_passive_both_ends_never_talk() -> None:
    clock = FakeClock()
    a, b = team(0x100, active=False), team(0x200, active=False)
    w = Wire(a, b, clock)
    w.run(10.0)
    assert not w.sent and not a.distributing()
