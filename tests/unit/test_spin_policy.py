"""When the forwarding loop busy-polls (switch/runner.py SpinPolicy): only after dense traffic, for busy_poll_s."""

from __future__ import annotations

import pytest

from pyvswitch.switch.engine import Engine
from pyvswitch.switch.runner import DENSE_FRAMES_PER_S, SpinPolicy
from pyvswitch.testing.clock import FakeClock

WINDOW = 0.05


def feed(policy: SpinPolicy, start: float, rate: float, seconds: float, total: int) -> tuple[float, int]:
    """Batches of one frame at ``rate`` frames/s; returns (time, frames so far) after the last."""
    t = start
    step = 1 / rate
    while t < start + seconds:
        total += 1
        policy.traffic(t, total)
        t += step
    return t - step, total


def test_1ms_pings_never_make_the_loop_spin() -> None:
    p = SpinPolicy(WINDOW, 0.0)
    t, _ = feed(p, 0.0, 2000, 1.0, 0)  # a request and its reply every millisecond
    assert not p.dense
    assert not p.spinning(t + 0.0001)


def test_dense_traffic_spins_for_the_window_after_its_last_frame_then_waits() -> None:
    p = SpinPolicy(WINDOW, 0.0)
    t, _ = feed(p, 0.0, 4 * DENSE_FRAMES_PER_S, 0.2, 0)
    assert p.dense
    assert p.spinning(t + WINDOW / 2)
    assert not p.spinning(t + WINDOW * 1.01)


def test_traffic_that_thins_out_stops_the_spinning_after_one_window() -> None:
    p = SpinPolicy(WINDOW, 0.0)
    t, total = feed(p, 0.0, 4 * DENSE_FRAMES_PER_S, 0.2, 0)
    assert p.dense
    t, _ = feed(p, t + 0.001, 1000, 0.2, total)
    assert not p.dense and not p.spinning(t + 0.0001)


def test_a_flow_after_a_long_pause_is_judged_by_its_own_rate() -> None:
    p = SpinPolicy(WINDOW, 0.0)
    t, total = feed(p, 0.0, 100, 0.1, 0)
    assert not p.dense
    t, _ = feed(p, t + 5.0, 4 * DENSE_FRAMES_PER_S, 0.2, total)  # the first window spans the pause: not dense
    assert p.dense


def test_always_spins_after_any_frame_and_off_never() -> None:
    for mode, expected in (("always", True), ("off", False)):
        p = SpinPolicy(WINDOW, 0.0, mode)
        t, _ = feed(p, 0.0, 1000, 0.2, 0)
        assert p.spinning(t + 0.001) is expected, mode
    p = SpinPolicy(WINDOW, 0.0, "off")
    t, _ = feed(p, 0.0, 4 * DENSE_FRAMES_PER_S, 0.2, 0)
    assert p.dense and not p.spinning(t + 0.001)


def test_the_engine_refuses_an_unknown_mode() -> None:
    engine = Engine(clock=FakeClock())
    engine.set_busy_poll("always")
    assert engine.health()["busy_poll"] == "always"
    with pytest.raises(ValueError, match="expected one of dense, always, off"):
        engine.set_busy_poll("sometimes")


def test_the_daemons_choices_are_the_loops_modes() -> None:
    """pyvswitchd --busy-poll offers exactly the modes the loop knows (the parser does not import the loop)."""
    from pyvswitch.daemon.main import build_parser
    from pyvswitch.switch.runner import BUSY_POLL_MODES

    action = next(a for a in build_parser()._actions if a.dest == "busy_poll")
    assert tuple(action.choices or ()) == BUSY_POLL_MODES and action.default in BUSY_POLL_MODES
