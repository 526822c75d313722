"""RFC 2544 26.5 (system recovery), the pure part: reading the sink's capture, matching frames to the times they
were sent, and finding when loss ended and latency came back after an overload (lab/rfc2544.py runs the test).
"""

from __future__ import annotations

import statistics
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pyvswitch.lab.generator import SEQ_OFFSET, TS_OFFSET
from pyvswitch.lab.traffic import TrafficError

PCAP_MAGIC_US, PCAP_MAGIC_NS = 0xA1B2C3D4, 0xA1B23C4D


def parse_pcap(data: bytes) -> list[tuple[float, bytes]]:
    """(timestamp, frame) records of a classic pcap file as tcpdump writes it (either byte order, us or ns);
    a record cut off at the end is left out. (The lab does not import the datapath's reader: layers.)"""
    if len(data) < 24:
        return []
    for order in ("<", ">"):
        magic = struct.unpack_from(order + "I", data)[0]
        if magic in (PCAP_MAGIC_US, PCAP_MAGIC_NS):
            break
    else:
        raise TrafficError(f"not a pcap file (magic {data[:4].hex()})")
    div = 1e9 if magic == PCAP_MAGIC_NS else 1e6
    rec = struct.Struct(order + "IIII")
    out = []
    off = 24
    while off + rec.size <= len(data):
        sec, frac, caplen, _ = rec.unpack_from(data, off)
        off += rec.size
        if off + caplen > len(data):
            break
        out.append((sec + frac / div, data[off : off + caplen]))
        off += caplen
    return out


@dataclass(frozen=True)
class Received:
    seq: int
    tx_ts: float
    rx_ts: float


def parse_bench_frame(frame: bytes) -> tuple[int, float] | None:
    """(sequence number, send time) from a frame pktgen stamped, None for anything else."""
    if len(frame) < TS_OFFSET + 8:
        return None
    seq = struct.unpack_from(">I", frame, SEQ_OFFSET)[0]
    ts = struct.unpack_from("<d", frame, TS_OFFSET)[0]
    return int(seq), float(ts)


LATENCY_WINDOW_S = 0.01


def latency_back(
    samples: Sequence[tuple[float, float]],
    t_drop: float,
    threshold_ms: float,
    window_s: float = LATENCY_WINDOW_S,
) -> float | None:
    """Milliseconds from ``t_drop`` to the start of the first ``window_s`` window (by send time) whose median
    one-way delay is at most ``threshold_ms``: the backlog drained. A lone late frame after that (the host
    scheduling something else) does not count. ``samples``: (send time, delay ms), sorted. None: never."""
    i = 0
    n = len(samples)
    while i < n and samples[i][0] < t_drop:
        i += 1
    while i < n:
        start = samples[i][0]
        j = i
        while j < n and samples[j][0] < start + window_s:
            j += 1
        if statistics.median(lat for _, lat in samples[i:j]) <= threshold_ms:
            return max(0.0, (start - t_drop) * 1e3)
        i = j
    return None


def send_times(received: Sequence[Received], seqs: Sequence[int], rate_pps: float) -> dict[int, float]:
    """When frames ``seqs`` (not received) were sent, interpolated between the send times of the received
    frames around them (each received frame carries its own); past either end, at ``rate_pps``."""
    import bisect

    got = sorted({r.seq: r.tx_ts for r in received}.items())
    keys = [k for k, _ in got]
    out: dict[int, float] = {}
    if not got:
        return out
    for s in seqs:
        i = bisect.bisect_left(keys, s)
        lo = got[i - 1] if i > 0 else None
        hi = got[i] if i < len(got) else None
        if lo and hi and hi[0] != lo[0]:
            out[s] = lo[1] + (s - lo[0]) * (hi[1] - lo[1]) / (hi[0] - lo[0])
        elif lo:
            out[s] = lo[1] + (s - lo[0]) / rate_pps
        elif hi:
            out[s] = hi[1] - (hi[0] - s) / rate_pps
    return out


def analyse_recovery(
    received: Sequence[Received], sent: int, rate_pps: float, t_over_start: float, t_drop: float
) -> dict[str, Any]:
    """A steady stream of ``sent`` numbered frames at ``rate_pps``; an overload on top of it from
    ``t_over_start`` to ``t_drop``. Frames are placed in time by their send times.

    recovery_ms: from the drop to the send time of the last frame lost after it (0: none was lost after
    the drop). latency_recovery_ms: see ``latency_back``; the threshold is the baseline's p99 plus 10 % and
    at least 0.2 ms (vsperf's "latency back within 10 %", with an absolute floor for a noisy machine).
    """
    seqs = {r.seq for r in received if r.seq < sent}
    lost = [s for s in range(sent) if s not in seqs]
    when = send_times(received, lost, rate_pps)
    base = [r for r in received if r.tx_ts < t_over_start]
    lat_base = sorted((r.rx_ts - r.tx_ts) * 1e3 for r in base)
    p50 = statistics.median(lat_base) if lat_base else None
    p99 = lat_base[min(len(lat_base) - 1, int(0.99 * len(lat_base)))] if lat_base else None
    lost_before = [s for s in lost if s in when and when[s] < t_over_start]
    lost_during = [s for s in lost if s in when and t_over_start <= when[s] < t_drop]
    lost_after = [s for s in lost if s in when and when[s] >= t_drop]
    recovery_ms = max((when[s] - t_drop) * 1e3 for s in lost_after) if lost_after else 0.0
    threshold = max(p99 * 1.1, p99 + 0.2) if p99 is not None else None
    lat_after = sorted((r.tx_ts, (r.rx_ts - r.tx_ts) * 1e3) for r in received if r.tx_ts >= t_drop)
    latency_recovery_ms = latency_back(lat_after, t_drop, threshold) if threshold is not None else None
    return {
        "stream_sent": sent,
        "stream_lost": len(lost),
        "lost_before_overload": len(lost_before),
        "lost_during_overload": len(lost_during),
        "lost_after_drop": len(lost_after),
        "baseline_latency_p50_ms": round(p50, 4) if p50 is not None else None,
        "baseline_latency_p99_ms": round(p99, 4) if p99 is not None else None,
        "recovery_ms": round(recovery_ms, 2),
        "latency_threshold_ms": round(threshold, 4) if threshold is not None else None,
        "latency_recovery_ms": round(latency_recovery_ms, 2) if latency_recovery_ms is not None else None,
        "max_latency_after_drop_ms": round(max(lat for _, lat in lat_after), 3) if lat_after else None,
    }
