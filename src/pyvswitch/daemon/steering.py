"""Adaptive receive steering: move guests' receive processing off the forwarding CPU when that CPU is full.

Why: a frame the switch sends into a VM's veth is processed by the VM's whole receiving stack (IP, TCP, the
copy to the socket) inside the switch's send() call, on the forwarding CPU. With small frames (offloads
off) that work saturates the forwarding CPU and halves throughput; RPS on the VM end of the veth moves it to
the other CPUs, as a real guest's stack runs on its own vCPUs. With large GSO frames the forwarding CPU has
time to spare, and RPS only adds an inter-processor hop per frame (measured: 17.0 Gbit/s without, 13.6
with). So steering follows the load: on when the forwarding thread is busy >= ``on`` of the time, off when
it is <= ``off``, with a dwell time so it does not flap. Measured busy fractions on this machine, iperf3 TCP:
offloads on 0.72 unsteered / 0.53 steered; offloads off 1.00 unsteered / 0.96 steered.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable

log = logging.getLogger(__name__)


class SteeringPolicy:
    """The decision alone (no I/O), so it can be tested with a fake clock."""

    def __init__(
        self, on: float = 0.9, off: float = 0.6, dwell_s: float = 3.0, off_dwell_s: float = 15.0
    ) -> None:
        """``dwell_s`` after a change before steering turns on again; ``off_dwell_s`` before it turns off: turning
        on is urgent (frames overflow the ring meanwhile), turning off only an optimisation, and turning off
        between two bursts made the next one lose 7 % of 50k frames/s (issue 10)."""
        if not 0 <= off < on <= 1:
            raise ValueError("need 0 <= off < on <= 1")
        self.on = on
        self.off = off
        self.dwell_s = dwell_s
        self.off_dwell_s = off_dwell_s
        self.steering = False
        self._changed_at = float("-inf")

    def update(self, busy: float, now: float) -> bool | None:
        """Feed one measurement (fraction of time the forwarding thread was busy); returns the new state
        when it changes, else None."""
        if now - self._changed_at < (self.off_dwell_s if self.steering else self.dwell_s):
            return None
        want = busy >= self.on if not self.steering else busy > self.off
        if want == self.steering:
            return None
        self.steering = want
        self._changed_at = now
        return want


class ReceiveSteering:
    """Samples the engine's busy time every ``interval_s`` and applies the policy to every guest NIC."""

    def __init__(
        self,
        busy_seconds: Callable[[], float],
        guest_nics: Callable[[], Iterable[tuple[str | None, str]]],
        steer: Callable[[str, frozenset[int], str | None], None],
        set_default: Callable[[frozenset[int]], None],
        cpus: frozenset[int],
        policy: SteeringPolicy | None = None,
        interval_s: float = 0.25,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._busy_seconds = busy_seconds
        self._guest_nics = guest_nics
        self._steer = steer
        self._set_default = set_default
        self.cpus = cpus
        self.policy = policy or SteeringPolicy()
        self.interval_s = interval_s
        self._clock = clock
        self._last: tuple[float, float] | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def tick(self) -> bool | None:
        """One sample; returns the new state if it changed."""
        now, busy = self._clock(), self._busy_seconds()
        last, self._last = self._last, (now, busy)
        if last is None or now <= last[0]:
            return None
        fraction = (busy - last[1]) / (now - last[0])
        change = self.policy.update(fraction, now)
        if change is not None:
            cpus = self.cpus if change else frozenset()
            log.info(
                "forwarding CPU busy %.0f %%: guests' receive processing %s",
                fraction * 100,
                f"steered to CPUs {sorted(cpus)}" if change else "back where frames arrive",
            )
            self._set_default(cpus)
            for netns, ifname in self._guest_nics():
                self._steer(ifname, cpus, netns)
        return change

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="pyvswitch-steering", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.tick()
            except Exception:
                log.exception("receive steering")

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
