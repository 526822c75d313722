"""Traffic runners and their output parsers: iperf3 (TCP throughput), ping (loss, RTT percentiles), trafgen (offered vs delivered frames).

Every runner works between network namespaces the caller created, has a bounded duration (a hung tool is
killed, never waited on forever) and returns a small frozen result. Parsers are pure functions over the
tools' text so that they can be unit-tested on captured output.

Frame counting for trafgen trials uses the kernel's per-interface counters (``ip -s -j link show``):
offered = frames the generator's interface transmitted (plus those the veth peer refused, ``tx_dropped``),
delivered = frames the sink's interface received. Both are exact and cost nothing per frame; the caller
must keep other traffic off those interfaces during a trial (the harness disables IPv6 and uses static
neighbour entries for that).
"""

from __future__ import annotations

import contextlib
import itertools
import json
import logging
import math
import os
import re
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from pyvswitch.testing.netns import sh, wait_for

log = logging.getLogger(__name__)

# RFC 2544 frame sizes include the 4-byte FCS, which the NIC (here: nobody) appends; the bytes we write
# are 4 fewer.
FCS_LEN = 4
ETH_HDR_LEN = 14
IPV4_HDR_LEN = 20
UDP_HDR_LEN = 8
MIN_FRAME = 64
MAX_FRAME = 1518


class TrafficError(RuntimeError):
    """A traffic tool failed or its output could not be understood."""


# --------------------------------------------------------------------------------------------- helpers


def _ns_cmd(netns: str | None, cpu: int | None, args: Sequence[str]) -> list[str]:
    """Command line for ``args`` run inside ``netns`` and pinned to ``cpu`` (either optional)."""
    cmd = list(args)
    if cpu is not None:
        cmd = ["taskset", "-c", str(cpu), *cmd]
    if netns is not None:
        cmd = ["ip", "netns", "exec", netns, *cmd]
    return cmd


def _stop(proc: subprocess.Popen[str], sig: int = signal.SIGTERM, grace_s: float = 3.0) -> None:
    """Stop a child we started: ``sig`` first, SIGKILL if it does not exit within ``grace_s``."""
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=grace_s)


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0-100) with linear interpolation between closest ranks (numpy's default)."""
    if not values:
        raise ValueError("percentile of no values")
    if not 0 <= q <= 100:
        raise ValueError(f"percentile {q} outside 0-100")
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100
    lo = math.floor(pos)
    hi = math.ceil(pos)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


# ---------------------------------------------------------------------------------------------- iperf3


@dataclass(frozen=True)
class IperfResult:
    """One iperf3 TCP test: receiver-side goodput and the sender's retransmissions."""

    gbps: float
    sent_gbps: float
    retransmits: int
    seconds: float
    bytes_received: int


def parse_iperf3_json(text: str) -> IperfResult:
    """Parse ``iperf3 -c ... -J`` output. Raises TrafficError for iperf3's own error report or bad JSON."""
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise TrafficError(f"iperf3 output is not JSON: {text[:200]!r}") from exc
    if not isinstance(doc, dict):
        raise TrafficError("iperf3 JSON is not an object")
    if doc.get("error"):
        raise TrafficError(f"iperf3: {doc['error']}")
    end = doc.get("end") or {}
    sent = end.get("sum_sent")
    received = end.get("sum_received")
    if not isinstance(sent, dict) or not isinstance(received, dict):
        raise TrafficError("iperf3 JSON has no end.sum_sent/sum_received (not a TCP client report?)")
    return IperfResult(
        # The receiver's figure: what actually crossed the forwarder, not what the sender queued.
        gbps=float(received["bits_per_second"]) / 1e9,
        sent_gbps=float(sent["bits_per_second"]) / 1e9,
        retransmits=int(sent.get("retransmits", 0)),
        seconds=float(received.get("seconds") or sent.get("seconds") or 0.0),
        bytes_received=int(received.get("bytes", 0)),
    )


def _listening(netns: str | None, port: int) -> bool:
    out = sh("ss", "-Hltn", f"sport = :{port}", netns=netns, check=False)
    return bool(out.strip())


@contextlib.contextmanager
def iperf3_server(
    netns: str | None, port: int = 5201, bind: str | None = None, once: bool = False
) -> Iterator[subprocess.Popen[str]]:
    """An iperf3 server in ``netns``, listening when this enters (no sleep: ``ss`` says so); stopped when it
    leaves. ``once``: it serves one test and exits by itself."""
    args = ["iperf3", "-s", "-p", str(port), *(["-B", bind] if bind else []), *(["-1"] if once else [])]
    proc = subprocess.Popen(
        _ns_cmd(netns, None, args), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    try:
        wait_for(
            lambda: proc.poll() is not None or _listening(netns, port),
            timeout_s=10,
            what=f"iperf3 server on {netns}:{port}",
        )
        if proc.poll() is not None:
            err = proc.stderr.read() if proc.stderr else ""
            raise TrafficError(f"iperf3 server exited with {proc.returncode}: {err.strip()}")
        yield proc
    finally:
        _stop(proc)


def run_iperf3(
    server_ns: str | None,
    client_ns: str | None,
    server_ip: str,
    duration_s: float = 5.0,
    *,
    port: int = 5201,
    server_cpu: int | None = None,
    client_cpu: int | None = None,
    connect_timeout_s: float = 3.0,
) -> IperfResult:
    """One TCP stream client_ns -> server_ns (None: this namespace) for ``duration_s``; the server serves this one test and exits.

    Bounded: the client is killed after ``duration_s`` + 20 s, the server always stopped afterwards.
    """
    server = subprocess.Popen(
        _ns_cmd(server_ns, server_cpu, ["iperf3", "-s", "-1", "-B", server_ip, "-p", str(port)]),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for(
            lambda: server.poll() is not None or _listening(server_ns, port),
            timeout_s=10,
            what=f"iperf3 server on {server_ns}:{port}",
        )
        if server.poll() is not None:
            err = server.stderr.read() if server.stderr else ""
            raise TrafficError(f"iperf3 server exited with {server.returncode}: {err.strip()}")
        secs = max(1, round(duration_s))
        cmd = [
            "iperf3",
            "-c",
            server_ip,
            "-p",
            str(port),
            "-t",
            str(secs),
            "-J",
            "--connect-timeout",
            str(int(connect_timeout_s * 1000)),
        ]
        try:
            res = subprocess.run(
                _ns_cmd(client_ns, client_cpu, cmd), capture_output=True, text=True, timeout=secs + 20
            )
        except subprocess.TimeoutExpired as exc:
            raise TrafficError(f"iperf3 client to {server_ip} did not finish in {secs + 20} s") from exc
        if not res.stdout.strip():
            raise TrafficError(f"iperf3 client failed ({res.returncode}): {res.stderr.strip()}")
        return parse_iperf3_json(res.stdout)
    finally:
        _stop(server)


# ------------------------------------------------------------------------------------------------ ping


# Gap (blackout) measurement: a request every few milliseconds and the receive time of every reply. Not iputils
# ping: below 10 ms it busy-waits between requests (measured here: ``ping -i 0.002`` uses 3.0 s of CPU in 3 s),
# which on this 2-vCPU host takes a whole CPU from what is measured; run real-time (to keep its own timing under
# load) it starved the forwarding thread for ~300 ms whenever it landed on the forwarding CPU, and those were
# the "restart gaps" issue 11 first reported. fping sleeps between requests: 4 % of a CPU at 2 ms, 7 % at 1 ms.
# Its output goes to a file, never a pipe: at 1 ms a pipe's 64 KiB fill in 0.9 s, fping blocks on the write
# and stops sending, and a blackout after that point was invisible (issue 11's first migration figures).
_FPING_REPLY = re.compile(r"^\[(\d+\.\d+)\] \S+ : \[(\d+)\], ", re.M)
_FPING_SENT = re.compile(r"xmt/rcv/%loss = (\d+)/(\d+)/")


def reply_times(output: str) -> list[tuple[float, int]]:
    """(receive time, sequence number) of every reply in fping ``-l -D`` output."""
    return [(float(m.group(1)), int(m.group(2))) for m in _FPING_REPLY.finditer(output)]


def fping_sent(summary: str) -> int | None:
    """Requests sent, from fping's summary line (its stderr at exit); None without one."""
    m = _FPING_SENT.search(summary)
    return int(m.group(1)) if m else None


@dataclass(frozen=True)
class GapLog:
    """What a ``GapPinger`` saw: every reply, how many requests went out, and when pinging stopped."""

    replies: list[tuple[float, int]]
    sent: int
    stopped: float

    @property
    def lost(self) -> int:
        """Requests without a reply, those after the last reply included."""
        return max(0, self.sent - len({seq for _, seq in self.replies}))

    def longest_gap(self) -> float:
        """Longest interval without a reply, from the first reply to the stop (a silence that lasts until the
        stop counts up to the stop, so a VM that never answers again is not a short gap)."""
        if not self.replies:
            return float("inf")
        stamps = [t for t, _ in self.replies]
        return max(
            (b - a for a, b in itertools.pairwise([*stamps, max(self.stopped, stamps[-1])])), default=0.0
        )


class GapPinger:
    """Ping ``dst`` from ``netns`` every ``interval_ms`` (1 or more) from construction until ``stop``.

    ``realtime``: SCHED_FIFO, so that the pinger's own wait for a CPU is not counted as the switch's gap (safe
    because fping sleeps between requests). Use as a context manager so a failing caller never leaks it."""

    def __init__(self, netns: str | None, dst: str, interval_ms: int, *, realtime: bool = False) -> None:
        cmd = ["fping", "-l", "-D", "-i", "1", "-p", str(max(1, interval_ms)), "-t", "1000", dst]
        if realtime:
            cmd = ["chrt", "-f", "10", *cmd]
        # Owned by this object, closed by stop() or __exit__.
        self._out = tempfile.TemporaryFile("w+")  # noqa: SIM115
        self._err = tempfile.TemporaryFile("w+")  # noqa: SIM115
        self.proc = subprocess.Popen(_ns_cmd(netns, None, cmd), stdout=self._out, stderr=self._err, text=True)

    def stop(self) -> GapLog:
        """SIGINT (fping prints its summary), wait, and parse."""
        stopped = time.time()
        _stop(self.proc, signal.SIGINT, grace_s=10.0)
        self._out.seek(0)
        self._err.seek(0)
        out, err = self._out.read(), self._err.read()
        self._out.close()
        self._err.close()
        replies = reply_times(out)
        sent = fping_sent(err)
        if sent is None:  # no summary (killed): count up to the last reply's sequence number
            sent = max((seq for _, seq in replies), default=-1) + 1
        return GapLog(replies, sent, stopped)

    def __enter__(self) -> GapPinger:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self._out.close()
        self._err.close()


@dataclass(frozen=True)
class PingResult:
    """A ping run: counts, loss, the summary RTTs (ms, None without replies) and every reply's RTT."""

    transmitted: int
    received: int
    loss_pct: float
    rtt_min_ms: float | None
    rtt_avg_ms: float | None
    rtt_max_ms: float | None
    rtts_ms: tuple[float, ...]
    errors: int = 0


_PING_STATS = re.compile(
    r"(?P<tx>\d+) packets transmitted, (?P<rx>\d+) (?:packets )?received"
    r"(?:, \+(?P<dup>\d+) duplicates)?(?:, \+(?P<err>\d+) errors)?, (?P<loss>[\d.]+)% packet loss"
)
_PING_RTT = re.compile(r"(?:rtt|round-trip) min/avg/max(?:/(?:mdev|stddev))? = ([\d.]+)/([\d.]+)/([\d.]+)")
_PING_REPLY = re.compile(r"bytes from .*?time[=<]([\d.]+) ms")


def parse_ping(text: str) -> PingResult:
    """Parse iputils ``ping`` output (per-reply lines and the statistics block)."""
    stats = _PING_STATS.search(text)
    if stats is None:
        raise TrafficError(f"no statistics in ping output: {text[-300:]!r}")
    rtt = _PING_RTT.search(text)
    return PingResult(
        transmitted=int(stats["tx"]),
        received=int(stats["rx"]),
        loss_pct=float(stats["loss"]),
        rtt_min_ms=float(rtt[1]) if rtt else None,
        rtt_avg_ms=float(rtt[2]) if rtt else None,
        rtt_max_ms=float(rtt[3]) if rtt else None,
        rtts_ms=tuple(float(m) for m in _PING_REPLY.findall(text)),
        errors=int(stats["err"] or 0),
    )


def run_ping(
    netns: str | None,
    dst: str,
    count: int = 3,
    interval_s: float = 0.2,
    *,
    size: int = 56,
    reply_timeout_s: float = 1.0,
    cpu: int | None = None,
) -> PingResult:
    """Ping ``dst`` from ``netns`` (None: this namespace). Never raises for loss (that is a result); only for a broken tool."""
    # -w bounds the whole run even if every reply is lost; intervals below 0.2 s need root (we are).
    deadline = math.ceil(count * interval_s + reply_timeout_s + 1)
    cmd = [
        "ping",
        "-n",
        "-c",
        str(count),
        "-i",
        f"{interval_s:g}",
        "-s",
        str(size),
        "-W",
        f"{reply_timeout_s:g}",
        "-w",
        str(deadline),
        dst,
    ]
    try:
        res = subprocess.run(_ns_cmd(netns, cpu, cmd), capture_output=True, text=True, timeout=deadline + 10)
    except subprocess.TimeoutExpired as exc:
        raise TrafficError(f"ping {dst} from {netns} did not finish") from exc
    if res.returncode not in (0, 1):  # 1 = some replies missing: a result, not a failure
        raise TrafficError(f"ping failed ({res.returncode}): {res.stderr.strip() or res.stdout.strip()}")
    return parse_ping(res.stdout)


@dataclass(frozen=True)
class LatencyResult:
    """Round-trip latency percentiles (ms) from per-packet RTTs of one ping run."""

    samples: int
    loss_pct: float
    p50_ms: float
    p99_ms: float
    min_ms: float
    max_ms: float
    mean_ms: float


def latency_from_ping(result: PingResult) -> LatencyResult:
    """Percentiles over the per-reply RTTs. Raises TrafficError if no reply came back."""
    rtts = result.rtts_ms
    if not rtts:
        raise TrafficError(f"no ping replies ({result.transmitted} sent): cannot measure latency")
    return LatencyResult(
        samples=len(rtts),
        loss_pct=result.loss_pct,
        p50_ms=percentile(rtts, 50),
        p99_ms=percentile(rtts, 99),
        min_ms=min(rtts),
        max_ms=max(rtts),
        mean_ms=sum(rtts) / len(rtts),
    )


def sample_latency(
    netns: str, dst: str, count: int = 500, interval_s: float = 0.01, cpu: int | None = None
) -> LatencyResult:
    """``count`` pings at a modest rate (default 100/s) and their RTT percentiles."""
    return latency_from_ping(run_ping(netns, dst, count=count, interval_s=interval_s, cpu=cpu))


# ------------------------------------------------------------------------------------- link counters


@dataclass(frozen=True)
class LinkCounters:
    rx_packets: int
    tx_packets: int
    rx_dropped: int
    tx_dropped: int


def parse_link_stats(text: str) -> LinkCounters:
    """Parse ``ip -s -j link show DEV`` (one interface)."""
    try:
        doc = json.loads(text)
        stats = doc[0].get("stats64") or doc[0]["stats"]
        return LinkCounters(
            rx_packets=int(stats["rx"]["packets"]),
            tx_packets=int(stats["tx"]["packets"]),
            rx_dropped=int(stats["rx"]["dropped"]),
            tx_dropped=int(stats["tx"]["dropped"]),
        )
    except (json.JSONDecodeError, IndexError, KeyError, TypeError) as exc:
        raise TrafficError(f"cannot parse link statistics: {text[:200]!r}") from exc


def link_counters(netns: str | None, ifname: str) -> LinkCounters:
    return parse_link_stats(sh("ip", "-s", "-j", "link", "show", "dev", ifname, netns=netns))


# --------------------------------------------------------------------------------------------- trafgen


def udp_frame_config(
    src_mac: str,
    dst_mac: str,
    src_ip: str,
    dst_ip: str,
    frame_size: int = MIN_FRAME,
    sport: int = 9,
    dport: int = 9,
) -> str:
    """A trafgen packet config for one IPv4/UDP frame of ``frame_size`` bytes on the wire (FCS included).

    trafgen's ``ipv4()``/``udp()`` helpers fill in lengths and checksums, so the frame is valid and a
    forwarder that parses L3/L4 sees nothing odd.
    """
    if not MIN_FRAME <= frame_size <= MAX_FRAME:
        raise ValueError(f"frame size {frame_size} outside {MIN_FRAME}-{MAX_FRAME}")
    payload = frame_size - FCS_LEN - ETH_HDR_LEN - IPV4_HDR_LEN - UDP_HDR_LEN
    return (
        "{\n"
        f"  eth(da={dst_mac}, sa={src_mac}),\n"
        f"  ipv4(saddr={src_ip}, daddr={dst_ip}, ttl=64),\n"
        f"  udp(sp={sport}, dp={dport}),\n"
        f"  fill(0x00, {payload}),\n"
        "}\n"
    )


_TRAFGEN_SENT = re.compile(r"(\d+) packets outgoing")


def parse_trafgen_sent(text: str) -> int | None:
    """The ``N packets outgoing`` total trafgen prints on exit (None if absent)."""
    m = _TRAFGEN_SENT.search(text)
    return int(m[1]) if m else None


@dataclass(frozen=True)
class TrialResult:
    """One fixed-rate trial. ``offered`` counts frames the generator put on the wire (its own report is
    ``generator_reported``); ``offered_pps`` is what was achieved, which may be below the target when
    the generator is the bottleneck."""

    frame_size: int
    target_pps: int
    duration_s: float
    offered: int
    delivered: int
    generator_reported: int | None

    @property
    def offered_pps(self) -> float:
        return self.offered / self.duration_s if self.duration_s > 0 else 0.0

    @property
    def delivered_pps(self) -> float:
        return self.delivered / self.duration_s if self.duration_s > 0 else 0.0

    @property
    def lost(self) -> int:
        return max(0, self.offered - self.delivered)

    @property
    def loss_pct(self) -> float:
        return 100.0 * self.lost / self.offered if self.offered else 100.0


def loss_pct(offered: int, delivered: int) -> float:
    """Percentage of offered frames not delivered (delivered beyond offered — stray frames — counts 0)."""
    if offered <= 0:
        return 100.0
    return 100.0 * max(0, offered - delivered) / offered


def run_trafgen_trial(
    gen_ns: str,
    gen_if: str,
    sink_ns: str,
    sink_if: str,
    packet_config: str,
    *,
    frame_size: int,
    rate_pps: int,
    duration_s: float,
    cpu: int | None = None,
    settle_s: float = 0.3,
) -> TrialResult:
    """Send ``rate_pps * duration_s`` frames from ``gen_if`` and count what reaches ``sink_if``.

    trafgen paces with ``--rate Npps`` (its per-frame send path; ~0.2-0.5 M frames/s per core here). If it
    cannot keep up it is stopped at 1.5 times the trial length + 1 s so a trial stays bounded; the achieved
    rate is then below the target and the result says so (``offered_pps``). The trial's duration is the
    generator's wall time, process start-up included (~1 % of a 2 s trial, on the low side of the rate).
    """
    if rate_pps <= 0:
        raise ValueError("rate must be positive")
    count = max(1, int(rate_pps * duration_s))
    fd, cfg_path = tempfile.mkstemp(prefix="pyvswitch-trafgen-", suffix=".cfg")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(packet_config)
        # --no-sock-mem: trafgen otherwise tries to raise net.core.*mem_*, which are not writable in a
        # namespace. -P 1: one generator process, so pinning with taskset means what it says.
        cmd = [
            "trafgen",
            "--no-sock-mem",
            "-o",
            gen_if,
            "-i",
            cfg_path,
            "-P",
            "1",
            "-b",
            f"{rate_pps}pps",
            "-n",
            str(count),
        ]
        before_gen = link_counters(gen_ns, gen_if)
        before_sink = link_counters(sink_ns, sink_if)
        start = time.monotonic()
        proc = subprocess.Popen(
            _ns_cmd(gen_ns, cpu, cmd),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            # trafgen forks its worker; a signal must reach the whole group, as Ctrl-C in a terminal does.
            start_new_session=True,
        )
        limit = duration_s * 1.5 + 1.0
        try:
            try:
                out, err = proc.communicate(timeout=limit)
            except subprocess.TimeoutExpired:
                # The generator could not reach the target rate: stop it (SIGINT to its process group makes
                # trafgen and its worker print totals and exit). The interface counters are the figures.
                os.killpg(proc.pid, signal.SIGINT)
                try:
                    out, err = proc.communicate(timeout=5)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    out, err = proc.communicate()
        finally:
            if proc.poll() is None:  # interrupted (KeyboardInterrupt): leave no generator running
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        elapsed = time.monotonic() - start
        if proc.returncode not in (0, 1) and proc.returncode != -signal.SIGINT:
            raise TrafficError(f"trafgen failed ({proc.returncode}): {err.strip()[-500:]}")
        time.sleep(settle_s)  # frames still queued in the forwarder count as delivered, not lost
        after_gen = link_counters(gen_ns, gen_if)
        after_sink = link_counters(sink_ns, sink_if)
    finally:
        os.unlink(cfg_path)
    offered = (after_gen.tx_packets - before_gen.tx_packets) + (after_gen.tx_dropped - before_gen.tx_dropped)
    delivered = after_sink.rx_packets - before_sink.rx_packets
    result = TrialResult(
        frame_size=frame_size,
        target_pps=rate_pps,
        duration_s=elapsed,
        offered=offered,
        delivered=delivered,
        generator_reported=parse_trafgen_sent(out),
    )
    log.info(
        "trial %dB target %d pps: offered %d (%.0f pps) delivered %d, loss %.3f%%",
        frame_size,
        rate_pps,
        offered,
        result.offered_pps,
        delivered,
        result.loss_pct,
    )
    return result


def run_trafgen_flood(netns: str, iface: str, packet_config: str, seconds: float) -> int:
    """Send ``packet_config``'s frame from ``iface`` as fast as trafgen's transmit ring goes for ``seconds``;
    returns the frames the interface sent (its tx counter, so frames from a run that ended early count too).

    trafgen's ring path gives up ("Flushing TX_RING failed: Resource temporarily unavailable") when a flush
    finds its socket's send buffer still full of earlier frames (they are charged to the socket until the
    receiving CPU's backlog frees them, which can lag when receive steering put that backlog on a busy CPU).
    That is the generator's limit, not the interface's: it is restarted after 20 ms until the time is up."""
    fd, cfg_path = tempfile.mkstemp(prefix="pyvswitch-trafgen-", suffix=".cfg")
    failures: list[str] = []
    try:
        with os.fdopen(fd, "w") as f:
            f.write(packet_config)
        before = link_counters(netns, iface)
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0.05:
            res = subprocess.run(
                _ns_cmd(netns, None, ["timeout", "-s", "INT", f"{left:.2f}",
                                      "trafgen", "--no-sock-mem", "-o", iface, "-i", cfg_path, "-P", "1"]),
                capture_output=True, text=True, timeout=left + 30,
            )  # fmt: skip
            if res.returncode not in (0, 124, -signal.SIGINT):
                failures.append(res.stderr.strip()[-200:])
                time.sleep(0.02)
        after = link_counters(netns, iface)
    finally:
        os.unlink(cfg_path)
    sent = after.tx_packets - before.tx_packets
    if sent == 0:
        raise TrafficError(f"trafgen sent nothing from {iface} in {netns}: {failures[-3:]}")
    log.info(
        "flood from %s/%s: %d frames in %.1f s (%d restarts)", netns, iface, sent, seconds, len(failures)
    )
    return sent


class Capture:
    """tcpdump in a namespace, ready (its "listening on" line seen) before the caller sends; lines collected.

    ``-l`` makes tcpdump flush each packet line, and a reader thread collects them, so callers wait for the
    packets they expect instead of sleeping.
    """

    def __init__(self, netns: str | None, iface: str, bpf: str) -> None:
        cmd = (["ip", "netns", "exec", netns] if netns else []) + [
            "tcpdump",
            "-i",
            iface,
            "-nn",
            "-e",
            "-l",
            bpf,
        ]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert self.proc.stderr is not None
        line = ""
        for _ in range(5):  # "verbose output suppressed..." may come first
            line = self.proc.stderr.readline()
            if "listening" in line or not line:
                break
        if "listening" not in line:
            self.proc.kill()
            self.proc.wait()
            raise TrafficError(f"tcpdump did not start on {iface}: {line.strip()}")
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for ln in self.proc.stdout:
            if ln.strip():
                self.lines.append(ln.rstrip("\n"))

    def wait_lines(self, n: int, timeout_s: float = 10.0) -> list[str]:
        """Wait until at least ``n`` packets were captured (TimeoutError if not); return all so far."""
        wait_for(lambda: len(self.lines) >= n, timeout_s=timeout_s, what=f"{n} packets captured")
        return list(self.lines)

    def stop(self) -> list[str]:
        """Stop and return the captured packets, one line each."""
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._reader.join(timeout=5)
        return list(self.lines)
