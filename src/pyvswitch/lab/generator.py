"""Traffic generation for the RFC 2544 / RFC 2889 benchmark: how frames are paced, who sends them, and what the
generator itself can do.

Pacing matters more than the rate on this platform (platform.md, "Small-frame loss on this platform"): a
userspace switch absorbs a burst only up to its receive ring, so the same average rate is lossless evenly
paced and lossy in bursts. Every trial therefore records which of these the generator used:

``smooth``
    ``lab/pktgen.py``: a Python sender on a schedule, micro-bursts of at most 8 frames, up to ~0.45 M frames/s;
    it reports how far behind its schedule it fell (``max_lag`` frames), i.e. how smooth the trial was.
``burst``
    ``trafgen -b Npps``: each second's N frames as fast as trafgen's slow path goes (~0.3 M frames/s), then
    silence until the next second. What the classic rate search has always used.
``gap``
    ``trafgen -t GAP``: one frame, then a sleep; even, but the sleep's own cost caps it near 40k frames/s. The
    gap is the target period less the per-frame overhead measured on the direct veth pair in the same run.
``unpaced``
    ``trafgen -n COUNT`` alone: its TX ring, as fast as it goes: a back-to-back burst.

The generator's own ceilings are measured on a direct veth pair (no forwarder) in the same run
(``measure_generator``), so a figure that equals the ceiling is reported as bounded by the generator and
not by the forwarder.

Frames are built here (``udp_frame``) and sent as the same bytes by either tool (trafgen reads them as a raw
byte configuration). Addresses in frames are from 198.18.0.0/15 (RFC 2544's benchmarking block), which no
host owns: a receiving host drops them without answering (no ICMP port-unreachable traffic back through the
forwarder), and the interface counters count only the trial's frames.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import logging
import os
import re
import signal
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any

from pyvswitch.lab.harness import Endpoint
from pyvswitch.lab.pktgen import Phase, Spec
from pyvswitch.lab.traffic import FCS_LEN, MAX_FRAME, MIN_FRAME, TrafficError, link_counters
from pyvswitch.packet.checksum import internet_checksum
from pyvswitch.packet.mac import parse_mac

log = logging.getLogger(__name__)

BENCH_SRC_IP = "198.18.0.1"
BENCH_DST_IP = "198.19.0.1"
PAYLOAD_OFFSET = 14 + 20 + 8  # Ethernet + IPv4 + UDP headers
SEQ_OFFSET = PAYLOAD_OFFSET  # 4-byte sequence number (pktgen) ...
TS_OFFSET = PAYLOAD_OFFSET + 4  # ... then the 8-byte send time
SRC_MAC_OFFSET = 6
DST_MAC_OFFSET = 0


class Pacing(StrEnum):
    SMOOTH = "smooth"
    BURST = "burst"
    GAP = "gap"
    UNPACED = "unpaced"


PACING_HOW: dict[Pacing, str] = {
    Pacing.SMOOTH: "pyvswitch.lab.pktgen: on a schedule, micro-bursts of <= 8 frames",
    Pacing.BURST: "trafgen -b Npps: each second's frames in one burst at the start of the second",
    Pacing.GAP: "trafgen -t GAP: one frame per sleep (even, ~40k frames/s at most)",
    Pacing.UNPACED: "trafgen -n COUNT, TX ring, no rate: back-to-back at the generator's speed",
}


# ------------------------------------------------------------------------------------------------ frames


def udp_frame(
    dst_mac: str,
    src_mac: str,
    frame_size: int = MIN_FRAME,
    *,
    src_ip: str = BENCH_SRC_IP,
    dst_ip: str = BENCH_DST_IP,
    sport: int = 9,
    dport: int = 9,
) -> bytes:
    """An IPv4/UDP frame of ``frame_size`` bytes on the wire (FCS included, so 4 fewer bytes here)."""
    if not MIN_FRAME <= frame_size <= MAX_FRAME:
        raise ValueError(f"frame size {frame_size} outside {MIN_FRAME}-{MAX_FRAME}")
    payload = bytes(frame_size - FCS_LEN - PAYLOAD_OFFSET)
    udp = struct.pack(">HHHH", sport, dport, 8 + len(payload), 0) + payload  # checksum 0: none (IPv4)
    ip = struct.pack(
        ">BBHHHBBH4s4s",
        0x45,
        0,
        20 + len(udp),
        0,
        0x4000,  # don't fragment
        64,
        17,
        0,
        ipaddress.IPv4Address(src_ip).packed,
        ipaddress.IPv4Address(dst_ip).packed,
    )
    ip = ip[:10] + struct.pack(">H", internet_checksum(ip)) + ip[12:]
    return (
        parse_mac(dst_mac).to_bytes(6, "big")
        + parse_mac(src_mac).to_bytes(6, "big")
        + struct.pack(">H", 0x0800)
        + ip
        + udp
    )


def trafgen_config(frames: Sequence[bytes]) -> str:
    """A trafgen configuration sending ``frames`` in turn, as raw bytes."""
    if not frames:
        raise ValueError("no frames")
    blocks = []
    for f in frames:
        lines = [", ".join(f"0x{b:02x}" for b in f[i : i + 16]) for i in range(0, len(f), 16)]
        blocks.append("{\n  " + ",\n  ".join(lines) + "\n}\n")
    return "".join(blocks)


_TRAFGEN_CPU_TIME = re.compile(r"(\d+) sec, (\d+) usec on CPU\d+ \((\d+) packets\)")


def parse_trafgen_send_s(text: str) -> float | None:
    """How long trafgen's worker sent (its ``S sec, U usec on CPUn (N packets)`` line: wall time of its send
    loop, sleeps included, process start-up not)."""
    m = _TRAFGEN_CPU_TIME.search(text)
    return int(m[1]) + int(m[2]) / 1e6 if m else None


def parse_trafgen_send_rate(text: str) -> float | None:
    """Frames/s while trafgen was sending, from the same line."""
    m = _TRAFGEN_CPU_TIME.search(text)
    if not m:
        return None
    secs = int(m[1]) + int(m[2]) / 1e6
    return int(m[3]) / secs if secs > 0 else None


def gap_ns(rate_pps: float, overhead_ns: float) -> int:
    """trafgen's ``-t`` gap for ``rate_pps``: the period less what each frame costs on top of the gap."""
    if rate_pps <= 0:
        raise ValueError("rate must be positive")
    return max(1000, round(1e9 / rate_pps - overhead_ns))


# ---------------------------------------------------------------------------------------------- senders


@dataclass
class Sender:
    """One generator process: ``phases`` in order from ``ifname`` in ``netns``. Only ``smooth`` pacing runs
    more than one phase or writes sequence numbers/timestamps."""

    netns: str
    ifname: str
    pacing: Pacing
    phases: list[Phase]
    start_delay_s: float = 0.0  # join this long after the others start

    @staticmethod
    def simple(
        netns: str, ifname: str, pacing: Pacing, frames: Sequence[bytes], rate_pps: float, count: int
    ) -> Sender:
        return Sender(netns, ifname, pacing, [Phase(rate_pps, count, [f.hex() for f in frames])])

    @property
    def target_pps(self) -> float:
        return self.phases[0].rate_pps

    @property
    def count(self) -> int:
        return sum(p.count for p in self.phases)

    def expected_s(self) -> float:
        if self.pacing is Pacing.UNPACED:
            return self.start_delay_s + self.count / 300_000
        return self.start_delay_s + sum(p.count / p.rate_pps for p in self.phases)


@dataclass
class SenderReport:
    pacing: str
    target_pps: float
    reported_sent: int | None
    elapsed_s: float  # the process's wall time, start-up included
    send_s: float  # time spent sending: trafgen's own figure, pktgen's phases; else elapsed_s
    send_rate_pps: float | None = None  # trafgen: frames/s while it was sending
    max_lag: int | None = None  # smooth: largest catch-up, frames
    phases: list[dict[str, Any]] = field(default_factory=list)  # smooth: one report per phase
    stopped: bool = False  # did not finish in time and was interrupted
    start_wall: float | None = None  # when it was started (trafgen: plus its delay)
    end_wall: float | None = None  # when its process was seen to exit


@dataclass
class _Running:
    sender: Sender
    proc: subprocess.Popen[str]
    path: str
    started: float
    start_wall: float
    ended: float | None = None  # monotonic, when the process was seen to have exited
    end_wall: float | None = None


def _command(s: Sender, path: str, gap_overhead_ns: float) -> list[str]:
    if s.pacing is Pacing.SMOOTH:
        return [sys.executable, "-m", "pyvswitch.lab.pktgen", path]
    if len(s.phases) != 1 or s.phases[0].seq_offset is not None or s.phases[0].ts_offset is not None:
        raise ValueError("trafgen senders run one phase without sequence numbers")
    p = s.phases[0]
    cmd = ["trafgen", "--no-sock-mem", "-o", s.ifname, "-i", path, "-P", "1", "-n", str(p.count)]
    if s.pacing is Pacing.BURST:
        cmd += ["-b", f"{max(1, round(p.rate_pps))}pps"]
    elif s.pacing is Pacing.GAP:
        cmd += ["-t", f"{gap_ns(p.rate_pps, gap_overhead_ns)}ns"]
    return cmd


def _start(s: Sender, cpu: int | None, gap_overhead_ns: float) -> _Running:
    if s.pacing is Pacing.SMOOTH:
        fd, path = tempfile.mkstemp(prefix="pyvswitch-pktgen-", suffix=".json")
        body = Spec(s.ifname, s.phases, start_delay_s=s.start_delay_s).to_json()
    else:
        fd, path = tempfile.mkstemp(prefix="pyvswitch-trafgen-", suffix=".cfg")
        body = trafgen_config([bytes.fromhex(f) for f in s.phases[0].frames])
    with os.fdopen(fd, "w") as f:
        f.write(body)
    cmd = _command(s, path, gap_overhead_ns)
    if s.start_delay_s and s.pacing is not Pacing.SMOOTH:
        # Started now, running from the deadline on (lab/launch.py: an exec after the wait, no shell).
        at = time.monotonic() + s.start_delay_s
        cmd = [sys.executable, "-m", "pyvswitch.lab.launch", "--at", f"{at:.6f}", "--", *cmd]
    if cpu is not None:
        cmd = ["taskset", "-c", str(cpu), *cmd]
    cmd = ["ip", "netns", "exec", s.netns, *cmd]
    start_wall = time.time()
    proc = subprocess.Popen(
        cmd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # trafgen forks a worker: signals go to the group
    )
    return _Running(s, proc, path, time.monotonic(), start_wall)


def _wait_all(running: Sequence[_Running], deadline: float) -> None:
    """Until every process exited or ``deadline``, noting when each exited (to a millisecond or two)."""
    while True:
        now = time.monotonic()
        for r in running:
            if r.ended is None and r.proc.poll() is not None:
                r.ended, r.end_wall = now, time.time()
        if all(r.ended is not None for r in running) or now >= deadline:
            return
        time.sleep(0.001)


def _finish(r: _Running) -> SenderReport:
    stopped = False
    try:
        try:
            out, err = r.proc.communicate(timeout=0.1 if r.ended is None else 5)
        except subprocess.TimeoutExpired:
            stopped = True
            os.killpg(r.proc.pid, signal.SIGINT)
            try:
                out, err = r.proc.communicate(timeout=5)
            except subprocess.TimeoutExpired:
                os.killpg(r.proc.pid, signal.SIGKILL)
                out, err = r.proc.communicate()
    finally:
        if r.proc.poll() is None:
            os.killpg(r.proc.pid, signal.SIGKILL)
            r.proc.wait()
        with contextlib.suppress(OSError):
            os.unlink(r.path)
    if r.ended is None:
        r.ended, r.end_wall = time.monotonic(), time.time()
    elapsed = r.ended - r.started
    s = r.sender
    if s.pacing is not Pacing.SMOOTH:
        elapsed -= s.start_delay_s
    if s.pacing is Pacing.SMOOTH:
        if r.proc.returncode != 0 and not stopped:
            raise TrafficError(f"pktgen failed ({r.proc.returncode}): {err.strip()[-500:]}")
        phases: list[dict[str, Any]] = json.loads(out) if out.strip() else []
        return SenderReport(
            pacing=s.pacing.value,
            target_pps=s.target_pps,
            reported_sent=sum(int(p["sent"]) for p in phases) if phases else None,
            elapsed_s=elapsed,
            send_s=sum(float(p["elapsed_s"]) for p in phases) if phases else elapsed,
            max_lag=max((int(p["max_lag"]) for p in phases), default=None),
            phases=phases,
            stopped=stopped,
            start_wall=r.start_wall,
            end_wall=r.end_wall,
        )
    if r.proc.returncode not in (0, 1) and r.proc.returncode != -signal.SIGINT and not stopped:
        raise TrafficError(f"trafgen failed ({r.proc.returncode}): {err.strip()[-500:]}")
    m = re.search(r"(\d+) packets outgoing", out)
    secs = parse_trafgen_send_s(out) or elapsed
    if s.pacing is Pacing.BURST and not stopped:
        # -b N sends each second's N frames at the start of the second: a trial's time is its schedule (the
        # last second's silence included), not the time it took to send the last burst.
        secs = max(secs, s.count / s.target_pps)
    return SenderReport(
        pacing=s.pacing.value,
        target_pps=s.target_pps,
        reported_sent=int(m[1]) if m else None,
        elapsed_s=elapsed,
        send_s=secs,
        send_rate_pps=parse_trafgen_send_rate(out),
        stopped=stopped,
        start_wall=r.start_wall + s.start_delay_s,
        end_wall=r.end_wall,
    )


def run_senders(
    senders: Sequence[Sender],
    cpu: int | None,
    gap_overhead_ns: float = 24_000.0,
    slack: float = 1.5,
    max_s: float | None = None,
) -> list[SenderReport]:
    """Run every sender at once and wait for all; one that runs past ``slack`` times its schedule + 2 s (or
    past ``max_s``) is interrupted (the interface counters still say what it sent)."""
    running: list[_Running] = []
    try:
        for s in senders:
            running.append(_start(s, cpu, gap_overhead_ns))
        limit = max(s.expected_s() for s in senders) * slack + 2.0
        deadline = time.monotonic() + (limit if max_s is None else min(limit, max_s))
        _wait_all(running, deadline)
        return [_finish(r) for r in running]
    finally:
        for r in running:
            if r.proc.poll() is None:
                os.killpg(r.proc.pid, signal.SIGKILL)
                r.proc.wait()
            with contextlib.suppress(OSError):
                os.unlink(r.path)


# --------------------------------------------------------------------------------------------- counting


Port = tuple[str, str]  # (netns, ifname)


def snapshot(ports: Sequence[Port]) -> dict[Port, tuple[int, int]]:
    """(frames transmitted incl. those the veth refused, frames received) per port."""
    out = {}
    for ns, ifname in ports:
        c = link_counters(ns, ifname)
        out[(ns, ifname)] = (c.tx_packets + c.tx_dropped, c.rx_packets)
    return out


# How long the receive counters must stand still before a trial counts as over: longer than a userspace
# forwarder's pauses (its poll() times out at 200 ms; one that paused with frames in its ring and resumed
# after the next trial started would move them into the next trial's counts).
QUIET_S = 0.3


def settle(
    ports: Sequence[Port], interval_s: float = 0.1, max_s: float = 3.0, quiet_s: float = QUIET_S
) -> dict[Port, tuple[int, int]]:
    """Counters once the receive counts stood still for ``quiet_s`` (a userspace forwarder may still be
    draining its rings: frames it delivers late are delivered, not lost); at most ``max_s``."""
    last = snapshot(ports)
    still_since = time.monotonic()
    deadline = still_since + max_s
    while time.monotonic() < deadline:
        time.sleep(interval_s)
        now = snapshot(ports)
        if any(now[p][1] != last[p][1] for p in ports):
            still_since = time.monotonic()
        elif time.monotonic() - still_since >= quiet_s:
            return now
        last = now
    return last


@contextlib.contextmanager
def counting(ports: Sequence[Port], settle_max_s: float = 3.0) -> Iterator[dict[Port, tuple[int, int]]]:
    """``with counting(ports) as delta:`` — after the block, ``delta[port]`` is (tx, rx) during it, read once
    the receivers settled (at most ``settle_max_s`` after it)."""
    before = snapshot(ports)
    delta: dict[Port, tuple[int, int]] = {}
    yield delta
    after = settle(ports, max_s=settle_max_s)
    for p in ports:
        delta[p] = (after[p][0] - before[p][0], after[p][1] - before[p][1])


# ----------------------------------------------------------------------------------------- the generator


@dataclass
class Ceiling:
    pacing: str
    frame_size: int
    senders: int
    target_pps: float
    achieved_pps: float  # frames/s over the trial, as the direct pair's counters saw them
    delivered_pps: float
    send_rate_pps: float | None = None
    max_lag: int | None = None


@dataclass
class GeneratorProfile:
    """What the generator can do on a direct veth pair (no forwarder), in this run."""

    ceilings: list[Ceiling] = field(default_factory=list)
    gap_overhead_ns: float = 24_000.0
    errors: dict[str, str] = field(default_factory=dict)

    def ceiling(self, pacing: Pacing | str, frame_size: int = MIN_FRAME, senders: int = 1) -> float | None:
        for c in self.ceilings:
            if c.pacing == pacing and c.frame_size == frame_size and c.senders == senders:
                return c.achieved_pps
        return None

    def as_dict(self) -> dict[str, Any]:
        return {
            "ceilings": [asdict(c) for c in self.ceilings],
            "gap_overhead_ns": round(self.gap_overhead_ns),
            "pacing": {p.value: PACING_HOW[p] for p in Pacing},
            "errors": self.errors,
        }


def port_of(e: Endpoint) -> Port:
    return (e.netns, e.ifname)


@dataclass
class Trial:
    """One trial: frames offered by the senders' interfaces and delivered to the sinks', over the senders'
    own sending time (start-up excluded)."""

    pacing: str
    target_pps: float
    offered: int
    delivered: int
    send_s: float
    max_lag: int | None = None
    stopped: bool = False

    @property
    def offered_pps(self) -> float:
        return self.offered / self.send_s if self.send_s > 0 else 0.0

    @property
    def delivered_pps(self) -> float:
        return self.delivered / self.send_s if self.send_s > 0 else 0.0

    @property
    def loss_pct(self) -> float:
        return 100.0 * max(0, self.offered - self.delivered) / self.offered if self.offered else 100.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "pacing": self.pacing,
            "target_pps": round(self.target_pps),
            "offered": self.offered,
            "delivered": self.delivered,
            "send_s": round(self.send_s, 4),
            "offered_pps": round(self.offered_pps),
            "delivered_pps": round(self.delivered_pps),
            "loss_pct": round(self.loss_pct, 4),
            # More delivered than offered: frames of an earlier trial arrived in this one (should be 0).
            "excess": max(0, self.delivered - self.offered),
            "max_lag": self.max_lag,
            "stopped": self.stopped,
        }


def trial_of(
    pacing: Pacing, target_pps: float, reports: Sequence[SenderReport], offered: int, delivered: int
) -> Trial:
    lags = [r.max_lag for r in reports if r.max_lag is not None]
    return Trial(
        pacing=pacing.value,
        target_pps=target_pps,
        offered=offered,
        delivered=delivered,
        send_s=max((r.send_s for r in reports), default=0.0),
        max_lag=max(lags) if lags else None,
        stopped=any(r.stopped for r in reports),
    )


def pair_trial(
    pairs: Sequence[tuple[Endpoint, Endpoint]],
    pacing: Pacing,
    rate_pps: float,
    duration_s: float,
    cpu: int | None,
    frame_size: int = MIN_FRAME,
    gap_overhead_ns: float = 24_000.0,
    count: int | None = None,
) -> tuple[Trial, list[SenderReport]]:
    """Every pair's first end sends to its second at ``rate_pps``, all at once, for ``duration_s`` (or
    ``count`` frames each, stopped after ``duration_s`` anyway)."""
    n = count if count is not None else max(1, int(rate_pps * duration_s))
    senders = [
        Sender.simple(a.netns, a.ifname, pacing, [udp_frame(b.mac, a.mac, frame_size)], rate_pps, n)
        for a, b in pairs
    ]
    ports = [port_of(e) for pair in pairs for e in pair]
    with counting(ports) as delta:
        reports = run_senders(senders, cpu, gap_overhead_ns, max_s=duration_s if count is not None else None)
    offered = sum(delta[port_of(a)][0] for a, _ in pairs)
    delivered = sum(delta[port_of(b)][1] for _, b in pairs)
    return trial_of(pacing, rate_pps, reports, offered, delivered), reports


# What no pacing here exceeds (frames/s per sender): the frame count of a ceiling trial, which the time limit
# stops.
MAX_GENERATOR_PPS = 700_000


def measure_generator(
    pairs: Sequence[tuple[Endpoint, Endpoint]], cpu: int | None, quick: bool, mesh_senders: int = 4
) -> GeneratorProfile:
    """Ceilings per pacing on direct veth pairs. ``pairs``: at least ``mesh_senders`` / 2 pairs of ends; one
    sender for the single-stream ceilings, ``mesh_senders`` at once (both directions of each pair) for the
    many-to-many tests."""
    prof = GeneratorProfile()
    trial_s = 0.5 if quick else 1.0
    single = [pairs[0]]
    both_ways = [p for a, b in pairs for p in ((a, b), (b, a))][:mesh_senders]

    def add(
        pacing: Pacing, rate: float, who: Sequence[tuple[Endpoint, Endpoint]], size: int = MIN_FRAME
    ) -> None:
        key = f"{pacing.value}_{size}_{len(who)}"
        count = int(min(rate, MAX_GENERATOR_PPS) * trial_s)
        try:
            tr, reps = pair_trial(who, pacing, rate, trial_s, cpu, size, prof.gap_overhead_ns, count=count)
        except (TrafficError, RuntimeError, OSError) as exc:
            prof.errors[key] = str(exc)
            log.warning("generator ceiling %s: %s", key, exc)
            return
        rates = [r.send_rate_pps for r in reps if r.send_rate_pps]
        prof.ceilings.append(
            Ceiling(
                pacing=pacing.value,
                frame_size=size,
                senders=len(who),
                target_pps=rate,
                achieved_pps=round(tr.offered_pps),
                delivered_pps=round(tr.delivered_pps),
                send_rate_pps=round(sum(rates)) if rates else None,
                max_lag=tr.max_lag,
            )
        )

    # gap: the per-frame cost on top of trafgen's sleep, from two gaps (period = gap + overhead); its
    # ceiling is then the 1 us gap.
    try:
        estimates = []
        for g_us in (1, 20):
            tr, _ = pair_trial(single, Pacing.GAP, 1e6 / g_us, 0.3, cpu, gap_overhead_ns=0, count=6000)
            if tr.offered_pps > 0:
                estimates.append(1e9 / tr.offered_pps - g_us * 1000)
        if estimates:
            prof.gap_overhead_ns = max(0.0, sum(estimates) / len(estimates))
    except (TrafficError, RuntimeError, OSError) as exc:
        prof.errors["gap_calibration"] = str(exc)
    add(Pacing.GAP, 1e9 / (1000 + prof.gap_overhead_ns), single)
    add(Pacing.SMOOTH, 5_000_000, single)
    # -b N: N frames a second in one burst; asking more than it makes gives the rate of its slow path.
    add(Pacing.BURST, 3_000_000, single)
    add(Pacing.UNPACED, 3_000_000, single)
    add(Pacing.BURST, 3_000_000, single, MAX_FRAME)
    add(Pacing.SMOOTH, 5_000_000, both_ways)
    return prof
