"""The forwarding loop: one thread polls every device, pushes each received batch through its switch to completion,
sends the results, and only then gives the receive slots back.

Waiting for frames: after dense traffic the loop keeps polling the rings without sleeping for ``busy_poll_s`` (a
sleeping forwarder lost frames to wake-up latency on a shared 2-vCPU host with small rings, platform.md), then
blocks in poll() with a short timeout so an idle switch costs no CPU; sparse traffic (``SpinPolicy``) waits in
poll() at once. Configuration changes, capture sessions and every other
change of what the loop reads come in through ``call``: run in this thread between two batches, so nothing the
loop reads needs a lock. The engine (switch/engine.py) installs what the loop reads: ``rx`` (device, switch,
port) to receive from, ``egress`` (the ports with a QoS scheduler, drained after each round), ``teams`` (their
timers), ``taps`` (None unless a capture session covers a port: a batch then costs one attribute check) and
``switches`` (MAC aging).
"""

from __future__ import annotations

import logging
import math
import os
import select
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from time import perf_counter

from pyvswitch.clock import Clock
from pyvswitch.datapath import link
from pyvswitch.datapath.device import Device
from pyvswitch.drops import DropReason
from pyvswitch.errors import DeviceError
from pyvswitch.observe.capture import CaptureTaps
from pyvswitch.packet.frame import UNTAGGED, Packet
from pyvswitch.packet.pfc import encode_pfc
from pyvswitch.switch import qos
from pyvswitch.switch.supervision import Supervisor
from pyvswitch.switch.switch import Switch, SwitchPort
from pyvswitch.switch.team import TeamDevice

log = logging.getLogger(__name__)

AGING_INTERVAL_S = 1.0
# Team carrier is polled this often (sysfs; netlink notifications come late, see datapath.link.LinkEvents):
# the failover detection time. Two sysfs reads per member per tick: ~0.5 % of a CPU for a 2-member team.
TEAM_TICK_S = 0.005
IDLE_POLL_MS = 10
# Busy-polling only while traffic is dense: at least this many frames a second over the last busy_poll_s.
# Below it, waiting in poll() loses nothing (each frame wakes the loop; the RX ring holds 32,768 frames, the
# missed-wake-up case is bounded by IDLE_POLL_MS) and spinning only burns a CPU: 1 ms pings (1-2k frames/s) kept
# every forwarder on their path spinning without a pause, two of this machine's 2 vCPUs, and starved the control
# plane (a cluster migration's blackout, etcd, the API). Measured in issue 13's blackout work, 2026-12-07.
DENSE_FRAMES_PER_S = 5000
# pyvswitchd --busy-poll: "dense" (the default, above), "always" (spin busy_poll_s after any frame: the lowest
# latency, at a CPU per forwarder whenever traffic is steady, the behaviour before 2026-12-07), "off" (never).
BUSY_POLL_MODES = ("dense", "always", "off")
# The GIL's switch interval while a forwarding loop runs (CPython's default: 5 ms). A thread waiting for the GIL
# asks the holder to let go only when its wait *times out*; but a busy forwarding thread releases and retakes
# the GIL around every system call, each release wakes the waiter early (not a time-out), and the forwarding
# thread, still on its CPU, retakes the GIL before the waiter runs: a control call's thread (an API request, a
# migration saving a port's state) starved for 50-1,300 ms while forwarding ran on (measured on the source of a
# guest migration under 1 ms pings and a TCP flow, issue 12). With 0.5 ms the wait times out between two of the
# loop's system calls often enough: no call waited > 50 ms in the same bench. It costs nothing while no other
# thread wants the GIL.
SWITCH_INTERVAL_S = 0.0005


class PortDrop(DropReason):
    """Why the forwarding loop drops frames of a port (``show drops``, per port)."""

    QOS_QUEUE_FULL = "qos-queue-full", "the destination's egress queue (QoS) was full"
    INTERNAL_ERROR = "internal-error", "a bug in the switch raised while processing the batch (logged)"


# Bounds of the batch-size histogram: powers of two up to the largest batch the loop takes (256 by default).
BATCH_BOUNDS = (1, 2, 4, 8, 16, 32, 64, 128, 256)
BATCH_LAST = len(BATCH_BOUNDS)


class SpinPolicy:
    """Whether the idle loop polls the rings again at once (busy-polling) or waits in poll(): for ``busy_poll_s``
    after the last frame, and only while traffic is dense (DENSE_FRAMES_PER_S over the last window of
    ``busy_poll_s``; the window's rate is read at the first batch after it ends, so a flow that starts after a
    pause waits in poll() for one window first, which costs a wake-up per batch and no frame)."""

    def __init__(self, busy_poll_s: float, now: float, mode: str = "dense") -> None:
        self.busy_poll_s = busy_poll_s
        self.mode = mode  # BUSY_POLL_MODES: "always" spins after any frame (lowest latency), "off" never
        self.dense = False
        self._last = now
        self._window_start = now
        self._window_frames = 0

    def traffic(self, now: float, frames_total: int) -> None:
        """A batch with frames was forwarded; ``frames_total``: every frame forwarded so far."""
        self._last = now
        elapsed = now - self._window_start
        if elapsed >= self.busy_poll_s:
            self.dense = frames_total - self._window_frames >= DENSE_FRAMES_PER_S * elapsed
            self._window_start, self._window_frames = now, frames_total

    def spinning(self, now: float) -> bool:
        wanted = self.dense if self.mode == "dense" else self.mode == "always"
        return wanted and now - self._last < self.busy_poll_s


class Runner:
    """The forwarding thread and everything only it touches."""

    def __init__(self, clock: Clock, batch_size: int, busy_poll_s: float, cpu: int | None) -> None:
        self.clock = clock
        self.batch_size = batch_size
        # When the idle loop spins (its busy_poll_s and mode are the engine's settings, set between batches).
        self.spin = SpinPolicy(busy_poll_s, clock.now())
        self.cpu = cpu
        self.switches: dict[str, Switch] = {}
        self.rx: list[tuple[Device, Switch, SwitchPort]] = []
        self.egress: list[tuple[Switch, SwitchPort, qos.EgressQos]] = []
        self.held: set[int] = set()  # id() of ports not read now: PFC-paused (lossless class over XOFF)
        self.teams: list[TeamDevice] = []
        self.taps: CaptureTaps | None = None
        self.control: deque[Callable[[], None]] = deque()
        self._wake_r, self._wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self.thread: threading.Thread | None = None
        self.running = False
        self.loop_errors = 0
        # Wall time the forwarding thread spent on batches that had frames (not idle polling): how loaded the
        # forwarding CPU is, for the receive-steering controller and for operators.
        self.busy_s = 0.0
        # Frames per received batch, bucketed by BATCH_BOUNDS (the last bucket: more than the largest bound),
        # for metrics (daemon/metrics.py): one list increment per batch.
        self.batch_counts = [0] * (len(BATCH_BOUNDS) + 1)
        self.batch_frames = 0
        self.supervisor = Supervisor()
        self._next_aging = 0.0
        self._next_team_tick = 0.0
        self._qos_deadline: float | None = None
        self._port_macs: dict[str, int] = {}  # MAC Control frames' source, by interface

    def start(self) -> None:
        if self.thread is not None:
            return
        self.running = True
        sys.setswitchinterval(min(sys.getswitchinterval(), SWITCH_INTERVAL_S))
        self.thread = threading.Thread(target=self.loop, name="pyvswitch-forwarding", daemon=True)
        self.thread.start()

    def stop(self) -> None:
        if self.thread is not None:
            self.running = False
            self.wake()
            self.thread.join(timeout=5)
            self.thread = None
        self.rx = []
        self.switches = {}

    def call(self, fn: Callable[[], None]) -> None:
        """Run ``fn`` in the forwarding thread between batches and wait for it (inline if not started)."""
        if self.thread is None or threading.current_thread() is self.thread:
            fn()
            return
        done = threading.Event()
        error: list[BaseException] = []

        def wrapped() -> None:
            try:
                fn()
            except BaseException as e:  # handed back to the caller
                error.append(e)
            finally:
                done.set()

        self.control.append(wrapped)
        self.wake()
        if not done.wait(timeout=30):
            raise DeviceError("forwarding thread did not take the configuration within 30 s")
        if error:
            raise error[0]

    def wake(self) -> None:
        try:
            os.write(self._wake_w, b"x")
        except BlockingIOError:
            pass

    # ---- forwarding ----

    def run_once(self) -> int:
        """Process whatever every device has waiting, once; returns frames received. Tests call this directly."""
        while self.control:
            self.control.popleft()()
        total = 0
        batch_size = self.batch_size
        taps = self.taps
        now = self.clock.now()
        held = self.held
        for dev, sw, port in self.rx:
            pacer = port.pacer
            if pacer is not None and not pacer.ready(now):
                continue  # MaximumBandwidth: its frames wait in its ring until it may send again
            if held and id(port) in held:
                continue  # PFC: a lossless class it feeds is over XOFF
            pkts = dev.recv(batch_size if pacer is None else pacer.allowance(batch_size))
            if not pkts:
                continue
            n = len(pkts)
            total += n
            # (n - 1).bit_length(): 1 -> 0, 2 -> 1, 3-4 -> 2, 5-8 -> 3 ...: the index of the first bound >= n.
            self.batch_counts[min((n - 1).bit_length(), BATCH_LAST)] += 1
            try:
                if pacer is not None:
                    pacer.took(pkts)
                if port.egress is not None:
                    pkts = port.egress.received_control(pkts, now)  # PFC/PAUSE from the link
                if port.host_policy is not None:
                    port.host_policy.apply(pkts)
                # A traced port's batch is recorded after processing, so its trace can be the packets' comment.
                traced = taps is not None and bool(sw.traced) and port.index in sw.traced
                if taps is not None and not traced:
                    taps.received(port.name, pkts)
                outs = sw.process(port, pkts)
                if traced and taps is not None:
                    taps.received(port.name, pkts)
                ports = sw.ports
                if port.host_policy is not None and port.host_policy.marks_priority:
                    qos.mark_priority(outs, ports)
                for idx, (out_pkts, tcis) in outs.items():
                    dport = ports[idx]
                    if dport is not None:
                        egress = dport.egress
                        if egress is not None:
                            before = egress.last_enqueue_drops
                            out_pkts, tcis = egress.enqueue(out_pkts, tcis, now)  # the rest: _drain
                            if egress.last_enqueue_drops != before:
                                dport.drops[PortDrop.QOS_QUEUE_FULL] += egress.last_enqueue_drops - before
                            if not out_pkts:
                                continue
                        if taps is not None:
                            taps.sent(dport.name, out_pkts, tcis)
                        dport.device.send(out_pkts, tcis)
            except BaseException:
                # A bug must not take the data path down: count, log (rate-limited by count), drop the batch.
                self.loop_errors += 1
                port.drops[PortDrop.INTERNAL_ERROR] += len(pkts)
                if self.loop_errors <= 10 or self.loop_errors % 1000 == 0:
                    log.exception(
                        "error processing a batch from port %s (%d so far)", port.name, self.loop_errors
                    )
            finally:
                dev.release()
        if self.egress:
            self.drain(now)
        now = self.clock.now()
        if self.teams and now >= self._next_team_tick:
            # Carrier and LACP timers of teams (switch/team.py), every TEAM_TICK_S even without traffic.
            self._next_team_tick = now + TEAM_TICK_S
            for team in self.teams:
                team.tick(now)
        if now >= self._next_aging:
            self._next_aging = now + AGING_INTERVAL_S
            for sw in self.switches.values():
                sw.age(now)
        self.batch_frames += total
        return total

    def drain(self, now: float) -> None:
        """Send what each egress scheduler lets go now; PFC to the ports that feed a congested lossless class."""
        taps = self.taps
        held: set[int] = set()
        deadline: float | None = None
        for sw, port, egress in self.egress:
            device = port.device
            if egress.per_member and isinstance(device, TeamDevice):
                egress.set_capacity(egress.per_member * len(device.active()), now)
            pkts, tcis = egress.pull(now)
            if pkts:
                if taps is not None:
                    taps.sent(port.name, pkts, tcis)
                port.device.send(pkts, tcis)
            for in_port, quanta in egress.pfc_frames(now):
                src = sw.ports[in_port] if 0 <= in_port < len(sw.ports) else None
                if src is not None:
                    # From the switch port's own address, as a bridge port sends MAC Control frames.
                    mac = self._port_macs.get(src.device.name)
                    if mac is None:
                        mac = self._port_macs[src.device.name] = link.mac(src.device.name) or 0x020000000001
                    src.device.send([Packet(encode_pfc(mac, quanta))], [UNTAGGED])
            held.update(id(sw.ports[i]) for i in egress.held if 0 <= i < len(sw.ports))
            d = egress.deadline(now)
            if d is not None and (deadline is None or d < deadline):
                deadline = d
        self.held = held
        self._qos_deadline = deadline

    def _idle_timeout_ms(self) -> int:
        """How long the idle loop may block: until a queued frame or a paced port may go, at most IDLE_POLL_MS."""
        now = self.clock.now()
        deadline = self._qos_deadline
        for _, _, port in self.rx:
            if port.pacer is not None and not port.pacer.ready(now):
                d = now + port.pacer.wait()
                deadline = d if deadline is None else min(deadline, d)
        if deadline is None:
            return IDLE_POLL_MS
        return max(0, min(IDLE_POLL_MS, math.ceil((deadline - now) * 1000)))

    def _throttled(self) -> set[int]:
        """fds of ports the loop does not read now (paced or PFC-held): polling them would only spin."""
        now = self.clock.now()
        return {
            dev.fileno()
            for dev, _, port in self.rx
            if (port.pacer is not None and not port.pacer.ready(now)) or id(port) in self.held
        }

    def loop(self) -> None:
        if self.cpu is not None:
            try:
                os.sched_setaffinity(0, {self.cpu})  # 0 = this thread only, on Linux
            except OSError as e:
                log.warning("cannot pin the forwarding thread to CPU %d: %s", self.cpu, e)
        while self.running:
            try:
                self._forward()
            except BaseException as e:  # the data path must outlive any bug, even SystemExit from a plug-in
                if not self.running:
                    break
                backoff = self.supervisor.crashed(e)
                for dev, _, _ in self.rx:
                    try:
                        dev.release()  # slots of the interrupted batch, or the ring stays full
                    except Exception:
                        log.exception("releasing %s after a loop failure", dev.name)
                time.sleep(backoff)

    def _forward(self) -> None:
        poller = select.poll()
        registered: list[int] = []
        rx_seen: list[tuple[Device, Switch, SwitchPort]] | None = None
        spin = self.spin
        while self.running:
            t0 = perf_counter()
            if self.supervisor.beat():
                skip = self._throttled() if (self._paced() or self.held) else set()
                self.supervisor.check([dev for dev, _, _ in self.rx], skip)
            if self.run_once():
                self.busy_s += perf_counter() - t0
                spin.traffic(self.clock.now(), self.batch_frames)
                continue
            if spin.spinning(self.clock.now()):
                continue
            if self.taps is not None:
                self.taps.flush()  # idle: what was captured so far is in the file(s), readable while running
            if rx_seen is not self.rx:
                for fd in registered:
                    poller.unregister(fd)
                registered = [self._wake_r] + [d.fileno() for d, _, _ in self.rx if d.fileno() >= 0]
                for fd in registered:
                    poller.register(fd, select.POLLIN)
                rx_seen = self.rx
            timeout = self._idle_timeout_ms() if (self.egress or self._paced()) else IDLE_POLL_MS
            active = poller
            skip = self._throttled() if (self._paced() or self.held) else set()
            if skip:
                active = select.poll()
                for fd in registered:
                    if fd not in skip:
                        active.register(fd, select.POLLIN)
            for fd, _ in active.poll(timeout):
                if fd == self._wake_r:
                    try:
                        os.read(self._wake_r, 4096)
                    except BlockingIOError:
                        pass

    def _paced(self) -> bool:
        return any(port.pacer is not None for _, _, port in self.rx)
