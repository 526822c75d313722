"""An evenly paced frame generator (the benchmark's "smooth" pacing), run as a process inside a namespace.

trafgen has two ways to limit its rate, and neither paces evenly over the range a userspace switch needs
(measured on this platform, see platform.md): ``-b Npps`` sends each second's N frames as fast as it can at
the start of the second (bursts of up to N frames at ~0.3 M frames/s, then silence), and ``-t GAP`` sleeps
between single frames, which tops out at ~40k frames/s. This sender keeps to a schedule instead: at any
moment it has sent ``rate * elapsed`` frames, in batches of at most ``batch`` frames (8 by default: a
micro-burst of 8 frames every 8/rate seconds). When the process was not scheduled for a while it catches up
in batches; the largest catch-up (``max_lag``) is reported, so a trial says how smooth it really was.

One process runs a list of phases back to back (the system-recovery test: a baseline rate, an overload, a
lower rate), each with its own frames. A phase may write a running sequence number (4 bytes, big-endian) and
the send time (``time.time()``, 8-byte little-endian double) into each frame, so that a capture at the sink
tells which frames were lost and how long each took.

Usage (the parent runs it with ``ip netns exec NS taskset -c CPU``)::

    python -m pyvswitch.lab.pktgen SPEC.json     # prints a JSON report on stdout

Sending is one ``send()`` per frame on an AF_PACKET socket with PACKET_QDISC_BYPASS: ~0.45 M frames/s
from Python here, about what trafgen's TX ring makes.
"""

from __future__ import annotations

import ctypes
import errno
import json
import socket
import struct
import sys
import time
from dataclasses import asdict, dataclass, field
from typing import Any

SOL_PACKET = 263
PACKET_QDISC_BYPASS = 20
SO_SNDBUFFORCE = 32
PR_SET_TIMERSLACK = 29
DEFAULT_BATCH = 8
# Below this wait the sender spins instead of sleeping: a sleep costs its own wake-up latency. (Measured: two
# senders sharing a CPU keep within ~1,000 frames of their schedules at 100-150k frames/s each either way.)
SPIN_S = 0.00005


@dataclass
class Phase:
    """``count`` frames at ``rate_pps``, cycling through ``frames`` (hex). ``seq_offset``/``ts_offset``: byte
    offsets where each frame gets its sequence number / send time (None: left as built)."""

    rate_pps: float
    count: int
    frames: list[str]
    seq_offset: int | None = None
    ts_offset: int | None = None
    seq_start: int = 0


@dataclass
class PhaseReport:
    sent: int
    start_wall: float
    end_wall: float
    elapsed_s: float
    achieved_pps: float
    max_lag: int  # largest number of frames the sender was behind its schedule when it looked
    send_retries: int  # sends refused with EAGAIN/ENOBUFS and retried
    interrupted: bool = False  # stopped by SIGINT before its count


@dataclass
class Spec:
    ifname: str
    phases: list[Phase]
    batch: int = DEFAULT_BATCH
    start_delay_s: float = 0.0  # sleep this long before the first phase (a second sender joining later)
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @staticmethod
    def from_json(text: str) -> Spec:
        doc = json.loads(text)
        return Spec(
            ifname=doc["ifname"],
            phases=[Phase(**p) for p in doc["phases"]],
            batch=int(doc.get("batch", DEFAULT_BATCH)),
            start_delay_s=float(doc.get("start_delay_s", 0.0)),
            extra=doc.get("extra", {}),
        )


def due_frames(elapsed_s: float, rate_pps: float, count: int) -> int:
    """How many frames the schedule says should have gone by ``elapsed_s`` (the first one at 0)."""
    if elapsed_s < 0:
        return 0
    return min(count, int(elapsed_s * rate_pps) + 1)


def _set_timer_slack(ns: int) -> None:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_TIMERSLACK, ctypes.c_ulong(ns), 0, 0, 0)
    except (OSError, AttributeError):
        pass  # coarser sleeps; the report's max_lag shows it


def open_socket(ifname: str) -> socket.socket:
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
    s.setsockopt(SOL_PACKET, PACKET_QDISC_BYPASS, 1)
    try:
        # The namespace's wmem_max is not ours to raise (platform.md); SNDBUFFORCE is, as root.
        s.setsockopt(socket.SOL_SOCKET, SO_SNDBUFFORCE, 4 << 20)
    except OSError:
        pass
    s.bind((ifname, 0))
    return s


def run_phase(sock: socket.socket, phase: Phase, batch: int) -> PhaseReport:
    bufs = [bytearray(bytes.fromhex(f)) for f in phase.frames]
    nbufs = len(bufs)
    send = sock.send
    pack_seq = struct.Struct(">I").pack_into
    pack_ts = struct.Struct("<d").pack_into
    seq_off, ts_off = phase.seq_offset, phase.ts_offset
    wall = time.time
    clock = time.perf_counter
    rate, count = phase.rate_pps, phase.count
    sent = retries = max_lag = 0
    interrupted = False
    start_wall = wall()
    t0 = clock()
    try:
        while sent < count:
            now = clock()
            due = due_frames(now - t0, rate, count)
            behind = due - sent
            if behind <= 0:
                wait = sent / rate - (now - t0)
                if wait > SPIN_S:
                    time.sleep(wait - SPIN_S / 2)
                continue
            if behind > max_lag:
                max_lag = behind
            for _ in range(min(behind, batch)):
                buf = bufs[sent % nbufs]
                if seq_off is not None:
                    pack_seq(buf, seq_off, (phase.seq_start + sent) & 0xFFFFFFFF)
                if ts_off is not None:
                    pack_ts(buf, ts_off, wall())
                while True:
                    try:
                        send(buf)
                        break
                    except OSError as exc:
                        if exc.errno not in (errno.EAGAIN, errno.ENOBUFS):
                            raise
                        retries += 1
                sent += 1
    except KeyboardInterrupt:  # the parent's time limit: report what went out
        interrupted = True
    elapsed = clock() - t0
    return PhaseReport(
        sent=sent,
        start_wall=start_wall,
        end_wall=wall(),
        elapsed_s=elapsed,
        achieved_pps=sent / elapsed if elapsed > 0 else 0.0,
        max_lag=max_lag,
        send_retries=retries,
        interrupted=interrupted,
    )


def run(spec: Spec) -> list[PhaseReport]:
    _set_timer_slack(1000)
    sock = open_socket(spec.ifname)
    reports: list[PhaseReport] = []
    try:
        if spec.start_delay_s > 0:
            time.sleep(spec.start_delay_s)
        for p in spec.phases:
            reports.append(run_phase(sock, p, spec.batch))
            if reports[-1].interrupted:
                break
    finally:
        sock.close()
    return reports


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m pyvswitch.lab.pktgen SPEC.json", file=sys.stderr)
        return 2
    with open(args[0]) as f:
        spec = Spec.from_json(f.read())
    reports = run(spec)
    print(json.dumps([asdict(r) for r in reports]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
