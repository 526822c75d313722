"""A clock the test moves by hand."""

from __future__ import annotations


class FakeClock:
    """Implements pyvswitch.clock.Clock; time only moves when ``advance`` is called."""

    def __init__(self, start: float = 1000.0) -> None:
        self._now = start

    def now(self) -> float:
        return self._now

    def advance(self, seconds: float) -> None:
        self._now += seconds
