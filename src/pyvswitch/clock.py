"""Time as an injected dependency: the Clock protocol and the real monotonic clock; a thread's CPU wait."""

from __future__ import annotations

import os
import threading
import time
from typing import Protocol


class Clock(Protocol):
    """Seconds from an arbitrary origin; only differences matter."""

    def now(self) -> float: ...


class MonotonicClock:
    """The real clock (time.monotonic)."""

    def now(self) -> float:
        return time.monotonic()


class _SchedStat:
    """The calling thread's /proc/thread-self/schedstat, kept open (a pread costs ~1 us); closed with the thread."""

    def __init__(self) -> None:
        try:
            self.fd = os.open("/proc/thread-self/schedstat", os.O_RDONLY | os.O_CLOEXEC)
        except OSError:  # no procfs or a kernel without schedstats: nothing is excused
            self.fd = -1

    def __del__(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)


_this_thread = threading.local()


def cpu_wait() -> float:
    """Seconds the calling thread has spent runnable but waiting for a CPU (the kernel's run-queue delay,
    schedstat's second field), 0.0 where the kernel does not say. A wall-clock budget subtracts the growth
    of this over a call, so that a busy machine preempting the thread is not blamed on the code it ran."""
    stat: _SchedStat | None = getattr(_this_thread, "schedstat", None)
    if stat is None:
        stat = _this_thread.schedstat = _SchedStat()
    if stat.fd < 0:
        return 0.0
    try:
        return int(os.pread(stat.fd, 64, 0).split()[1]) / 1e9
    except (OSError, IndexError, ValueError):
        return 0.0
