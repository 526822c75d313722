"""Time as an injected dependency: the Clock protocol and the real monotonic clock."""

from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    """Seconds from an arbitrary origin; only differences matter."""

    def now(self) -> float: ...


class MonotonicClock:
    """The real clock (time.monotonic)."""

    def now(self) -> float:
        return time.monotonic()
