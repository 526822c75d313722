"""Supervision of the forwarding loop (issue 10): restarts, stuck receive rings, and what health reports.

The loop never dies silently. Whatever escapes it, BaseException included, is recorded here, logged, and the
loop starts again after a back-off that grows while it keeps dying (extensions' own errors are contained
earlier, in ext/stack.py). Every SUPERVISE_S the loop asks the kernel, with one poll(), which ports are readable;
a port that stays readable for STUCK_CHECKS checks in a row without delivering a frame has a receive ring out
of step with the kernel and is resynchronised (datapath/afpacket.py). ``problems`` says why forwarding is
degraded: the thread is gone, a pass has not completed for HEARTBEAT_STALE_S (a slow extension or a wedge), or
the loop restarted recently. Times are wall-clock ``time.monotonic``: this watches real progress, whatever
clock the switch runs on.
"""

from __future__ import annotations

import logging
import select
import threading
import time
from collections import deque
from collections.abc import Iterable

from pyvswitch.datapath.device import Device

log = logging.getLogger(__name__)

SUPERVISE_S = 0.05  # how often the loop checks for ports readable without progress
STUCK_CHECKS = 3  # consecutive such checks before a port's receive ring is resynchronised (>= 100 ms)
HEARTBEAT_STALE_S = 1.0  # a loop pass older than this: forwarding is not progressing
RECENT_S = 60.0  # restarts and resyncs this recent are reported by health()


class Supervisor:
    """The loop's crash and resync bookkeeping; ``beat`` is called once per loop pass."""

    def __init__(self) -> None:
        self.loop_restarts = 0
        self.resyncs = 0
        self.crashes: deque[tuple[float, str]] = deque(maxlen=16)
        self.resynced: deque[tuple[float, str]] = deque(maxlen=16)
        self.heartbeat = time.monotonic()
        self._next_check = 0.0
        self._strikes: dict[int, int] = {}  # fd -> consecutive checks readable without progress
        self._rx_seen: dict[int, int] = {}  # fd -> rx_frames at the last check
        self._overruns: dict[str, int] = {}  # device name -> ring overruns already reported

    def beat(self) -> bool:
        """A loop pass starts; True when it is time to look for stuck ports (``check``)."""
        mono = self.heartbeat = time.monotonic()
        if mono < self._next_check:
            return False
        self._next_check = mono + SUPERVISE_S
        return True

    def crashed(self, exc: BaseException) -> float:
        """Record that the loop died of ``exc``; returns how long to wait before restarting it (no hot crash
        loop: the back-off doubles with each death in the last 10 s, up to 1 s)."""
        now = time.monotonic()
        self.loop_restarts += 1
        recent = sum(1 for at, _ in self.crashes if now - at < 10)
        self.crashes.append((now, f"{type(exc).__name__}: {exc}"))
        log.critical(
            "forwarding loop died (%s), restarting it (restart %d)",
            type(exc).__name__,
            self.loop_restarts,
            exc_info=exc,
        )
        return min(1.0, 0.001 * 2.0**recent)

    def check(self, devices: Iterable[Device], skip: set[int]) -> None:
        """Resynchronise the receive ring of any device that stays readable without delivering a frame
        (``skip``: fds the loop does not read now, paced or PFC-held, which are readable on purpose)."""
        by_fd = {dev.fileno(): dev for dev in devices}
        by_fd = {fd: dev for fd, dev in by_fd.items() if fd >= 0 and fd not in skip}
        probe = select.poll()
        for fd in by_fd:
            probe.register(fd, select.POLLIN)
        readable = {fd for fd, ev in probe.poll(0) if ev & select.POLLIN}
        strikes = self._strikes
        seen = self._rx_seen
        for fd, dev in by_fd.items():
            frames = dev.counters.rx_frames
            if fd in readable and seen.get(fd) == frames:
                strikes[fd] = strikes.get(fd, 0) + 1
                if strikes[fd] >= STUCK_CHECKS:
                    strikes[fd] = 0
                    if dev.resync():
                        self.resyncs += 1
                        self.resynced.append((time.monotonic(), dev.name))
                        log.warning(
                            "port device %s was readable without progress: receive ring resynchronised",
                            dev.name,
                        )
            else:
                strikes.pop(fd, None)
            seen[fd] = frames
        for fd in [fd for fd in seen if fd not in by_fd]:
            del seen[fd]
            strikes.pop(fd, None)
        self._report_overruns(by_fd.values())

    def _report_overruns(self, devices: Iterable[Device]) -> None:
        """A receive ring that overran since the last check: an event (daemon/logs.py rate-limits it per port,
        so a port overrunning every batch says so a few times, then how often it was suppressed)."""
        reported = self._overruns
        for dev in devices:
            n = dev.counters.drops.get("ring-overrun", 0)
            before = reported.get(dev.name, 0)
            if n > before:
                log.warning("port device %s: %d frames lost to receive ring overruns (%d in all)", dev.name,
                            n - before, n, extra={"event": "port.ring_overrun", "fields": {"key": dev.name,
                            "device": dev.name, "lost": n - before, "total": n}})  # fmt: skip
            reported[dev.name] = n

    def problems(self, thread: threading.Thread | None) -> list[str]:
        """Why forwarding is not progressing, or was not lately (read from any thread; no lock needed)."""
        mono = time.monotonic()
        out: list[str] = []
        if thread is not None and not thread.is_alive():
            out.append("the forwarding thread is not running")
        elif thread is not None and mono - self.heartbeat > HEARTBEAT_STALE_S:
            out.append(
                f"forwarding has not completed a pass for {mono - self.heartbeat:.1f} s "
                "(a slow extension or a stuck device)"
            )
        out += [
            f"forwarding loop restarted {mono - at:.0f} s ago after {what}"
            for at, what in list(self.crashes)
            if mono - at < RECENT_S
        ]
        return out

    def status(self, thread: threading.Thread | None) -> dict[str, object]:
        """The counters and recent resyncs that health() reports beside its problems."""
        mono = time.monotonic()
        return {
            "loop_restarts": self.loop_restarts,
            "resyncs": self.resyncs,
            "recent_resyncs": [
                {"device": name, "ago_s": round(mono - at, 1)}
                for at, name in list(self.resynced)
                if mono - at < RECENT_S
            ],
            "heartbeat_age_s": round(mono - self.heartbeat, 3) if thread is not None else None,
        }
