"""A control call reaches the forwarding thread and comes back promptly while the loop is busy (issue 12: a
migration's save of port state waited 50-1,300 ms for the GIL on a busy forwarder, most of the blackout)."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from time import perf_counter

import pytest

from pyvswitch.switch import runner as runner_mod
from pyvswitch.switch.runner import Runner
from pyvswitch.testing.clock import FakeClock


@pytest.fixture
def busy_runner() -> Iterator[Runner]:
    """A running loop that never idles and, like recv()/send() on real devices, makes a system call (releasing
    the GIL) every few microseconds."""
    saved = sys.getswitchinterval()
    r = Runner(FakeClock(), batch_size=64, busy_poll_s=1.0, cpu=None)
    rd, wr = os.pipe()

    def busy_once() -> int:
        while r.control:
            r.control.popleft()()
        for _ in range(50):
            os.write(wr, b"x")
            os.read(rd, 1)
        return 1

    r.run_once = busy_once  # type: ignore[method-assign]
    r.start()
    try:
        yield r
    finally:
        r.stop()
        os.close(rd)
        os.close(wr)
        sys.setswitchinterval(saved)


def call_latencies(r: Runner, n: int = 40) -> list[float]:
    out = []
    for _ in range(n):
        t0 = perf_counter()
        r.call(lambda: None)
        out.append(perf_counter() - t0)
    return sorted(out)


def test_calls_are_not_starved_by_a_busy_loop(busy_runner: Runner) -> None:
    lat = call_latencies(busy_runner)
    # Starved, calls took 50-1,300 ms; served, a few switch intervals (0.5 ms each) at worst.
    assert lat[len(lat) // 2] < 0.02, f"median {lat[len(lat) // 2] * 1000:.1f} ms"
    assert lat[-1] < 0.2, f"slowest {lat[-1] * 1000:.1f} ms"


def test_the_loop_sets_a_short_switch_interval(busy_runner: Runner) -> None:
    assert sys.getswitchinterval() <= runner_mod.SWITCH_INTERVAL_S
