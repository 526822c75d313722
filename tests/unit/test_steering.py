"""Adaptive receive steering: the policy's thresholds, hysteresis and dwell, and what a change applies."""

from __future__ import annotations

import pytest

from pyvswitch.daemon.steering import ReceiveSteering, SteeringPolicy
from pyvswitch.testing.clock import FakeClock


def test_turns_on_when_saturated_and_off_only_when_clearly_idle() -> None:
    p = SteeringPolicy(on=0.9, off=0.6, dwell_s=3, off_dwell_s=3)
    assert p.update(0.85, now=0) is None  # busy but not saturated
    assert p.update(0.97, now=1) is True
    assert p.update(0.70, now=10) is None  # inside the band: keeps steering
    assert p.update(0.55, now=11) is False
    assert p.update(0.80, now=20) is None  # inside the band: stays off


def test_dwell_time_prevents_flapping() -> None:
    p = SteeringPolicy(on=0.9, off=0.6, dwell_s=3)
    assert p.update(1.0, now=0) is True
    assert p.update(0.1, now=2) is None  # too soon after the last change
    assert p.update(0.1, now=14) is None  # off waits longer than on: a pause between bursts keeps steering
    assert p.update(0.1, now=15.5) is False
    assert p.update(1.0, now=17) is None
    assert p.update(1.0, now=18.5) is True  # on again after the shorter dwell


def test_bad_thresholds_rejected() -> None:
    with pytest.raises(ValueError):
        SteeringPolicy(on=0.5, off=0.6)


def test_tick_applies_the_change_to_every_guest_nic_and_new_ones() -> None:
    clock = FakeClock()
    busy = [0.0]
    applied: list[tuple[str, frozenset[int], str | None]] = []
    defaults: list[frozenset[int]] = []
    st = ReceiveSteering(
        busy_seconds=lambda: busy[0],
        guest_nics=lambda: [("vm1", "eth0"), (None, "hostnic")],
        steer=lambda ifname, cpus, netns: applied.append((ifname, cpus, netns)),
        set_default=defaults.append,
        cpus=frozenset({0}),
        clock=clock.now,
    )
    assert st.tick() is None  # first sample only sets the baseline
    clock.advance(1)
    busy[0] += 0.99
    assert st.tick() is True
    assert applied == [("eth0", frozenset({0}), "vm1"), ("hostnic", frozenset({0}), None)]
    assert defaults == [frozenset({0})]
    clock.advance(20)
    busy[0] += 2.0  # 10 % busy over 20 s
    assert st.tick() is False
    assert applied[-1] == ("hostnic", frozenset(), None) and defaults[-1] == frozenset()
