"""Measuring QoS the way a user would (issue 5): simultaneous iperf3 flows from several senders to one LAN host,
per-flow Mbit/s over chosen windows and their shares; and a PFC-honouring UDP generator for lossless classes.

**Flows** (``FlowSet``): one iperf3 server per flow in the receiver's namespace (``-s -1 -J``), one client per
sender, all started together; each flow may start late (``start_s``) and stop early (``seconds``), which is how
a scene makes "one sender stops, the others absorb its share". Rates are taken on the receiver's side: the
servers' JSON intervals (bytes that arrived, per ``interval_s``), aligned on a common clock by each client's
launch time, so a window such as "from 1 s after the start to the moment flow A stopped" can be cut out of
every flow at once. The sender side (bytes written into a socket) would count what still sits in TCP's send
buffer — megabytes at these rates, several per cent of a few-second window.

**PFC generator** (``pfc_send``, ``python -m pyvswitch.lab.qos send ...``): Linux end stations do not honour
802.1Qbb, so a lossless class needs a sender that does. It runs inside the VM's namespace, writes
sequence-numbered UDP frames priority-tagged (VLAN 0, PCP ``priority``) at a fixed rate with a raw AF_PACKET
socket, and reads MAC Control frames (EtherType 0x8808) on the same interface: a PFC frame whose class-enable
vector has its priority stops it for the pause time (``quanta_to_seconds`` at its own link's rate, an unbounded
veth being timed as 10 Gbit/s as ``packet.pfc`` does) or until a zero-quanta resume; an 802.3x PAUSE stops it
likewise. Nothing is sent "to catch up" after a pause: the rate is a ceiling. ``seq_receive`` (``... recv``)
counts the sequence numbers that arrive at a UDP port, so a lossless class can be checked for every frame.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import select
import signal
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from pyvswitch.packet.pfc import (
    ETH_P_MAC_CONTROL,
    PauseFrame,
    PfcFrame,
    decode_mac_control,
    quanta_to_seconds,
)
from pyvswitch.testing.netns import sh, unique, wait_for

IPERF_TIMEOUT_GRACE_S = 20.0
MAGIC = b"PVQS"
SIOCGIFHWADDR = 0x8927


def _ns(netns: str | None, args: Sequence[str]) -> list[str]:
    return ["ip", "netns", "exec", netns, *args] if netns else list(args)


def _listening(netns: str | None, port: int) -> bool:
    out = sh("ss", "-Hltn", f"sport = :{port}", netns=netns, check=False)
    return bool(out.strip())


# --------------------------------------------------------------------------------------------- iperf3 flows


@dataclass(frozen=True)
class Flow:
    """One sender: iperf3 from ``netns`` (None = the management OS) to the receiver's ``port``."""

    name: str
    netns: str | None
    port: int
    seconds: float  # how long it sends
    start_s: float = 0.0  # how long after the set's start it begins
    udp_bps: int | None = None  # UDP at this rate (iperf3 -u -b); TCP when None
    bind: str | None = None  # source address (iperf3 -B)
    parallel: int = 1  # TCP streams (iperf3 -P): a greedier sender


@dataclass
class FlowResult:
    """What arrived of one flow: (start, end, bytes) per receiver interval, on the set's clock (seconds)."""

    name: str
    intervals: list[tuple[float, float, int]]
    lost_packets: int = 0  # UDP only
    error: str = ""

    def bytes_in(self, t0: float, t1: float) -> float:
        """Bytes received in [t0, t1], intervals cut proportionally at the window's edges."""
        total = 0.0
        for a, b, n in self.intervals:
            lo, hi = max(a, t0), min(b, t1)
            if hi > lo and b > a:
                total += n * (hi - lo) / (b - a)
        return total

    def mbps(self, t0: float, t1: float) -> float:
        return self.bytes_in(t0, t1) * 8 / (t1 - t0) / 1e6 if t1 > t0 else 0.0

    def median_mbps(self, t0: float, t1: float) -> float:
        """The median of the whole intervals inside the window (robust to a stall at one instant)."""
        rates = sorted(n * 8 / (b - a) / 1e6 for a, b, n in self.intervals if a >= t0 and b <= t1 and b > a)
        if not rates:
            return 0.0
        mid = len(rates) // 2
        return rates[mid] if len(rates) % 2 else (rates[mid - 1] + rates[mid]) / 2


def parse_server_json(text: str, offset_s: float, name: str = "") -> FlowResult:
    """An iperf3 server's JSON (``-s -1 -J``): receiver intervals shifted by ``offset_s``."""
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        return FlowResult(name, [], error=f"no JSON from iperf3 server: {text[-300:]!r} ({exc})")
    out: list[tuple[float, float, int]] = []
    lost = 0
    for iv in doc.get("intervals", []):
        s = iv.get("sum", {})
        if "start" in s and "end" in s:
            out.append((float(s["start"]) + offset_s, float(s["end"]) + offset_s, int(s.get("bytes", 0))))
            lost += int(s.get("lost_packets", 0) or 0)
    return FlowResult(name, out, lost, str(doc.get("error", "")))


class FlowSet:
    """Simultaneous iperf3 flows from several senders to one receiver (``server_ns``, ``server_ip``).

    ``start()`` launches the servers, then the clients (each after its ``start_s``, on a thread-free schedule:
    late clients are launched from ``poll()``/``wait()``); ``wait()`` returns each flow's ``FlowResult`` on the
    set's clock, 0 = the moment the first client was launched. ``stop(name)`` ends a flow now (SIGINT: iperf3
    finishes its test cleanly and both ends report).
    """

    def __init__(
        self, server_ns: str | None, server_ip: str, flows: Sequence[Flow], interval_s: float = 0.5
    ) -> None:
        self.server_ns = server_ns
        self.server_ip = server_ip
        self.flows = list(flows)
        self.interval_s = interval_s
        self.servers: dict[str, subprocess.Popen[str]] = {}
        self.clients: dict[str, subprocess.Popen[str]] = {}
        self.launched: dict[str, float] = {}
        self.t0 = 0.0

    def __enter__(self) -> FlowSet:
        return self

    def __exit__(self, *exc: object) -> None:
        self.kill()

    def start(self) -> None:
        for f in self.flows:
            self.servers[f.name] = subprocess.Popen(
                _ns(self.server_ns, ["iperf3", "-s", "-1", "-J", "-i", str(self.interval_s),
                                     "-B", self.server_ip, "-p", str(f.port)]),
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            )  # fmt: skip
        for f in self.flows:
            port = f.port

            def up(port: int = port) -> bool:
                return _listening(self.server_ns, port)

            wait_for(up, timeout_s=10, what=f"iperf3 -s on {port}")
        self.t0 = time.monotonic()
        self.poll()

    def _client_cmd(self, f: Flow) -> list[str]:
        args = ["iperf3", "-c", self.server_ip, "-p", str(f.port), "-t", f"{f.seconds:g}", "-J",
                "-i", str(self.interval_s)]  # fmt: skip
        if f.udp_bps is not None:
            args += ["-u", "-b", str(f.udp_bps), "-l", "1400"]
        if f.bind:
            args += ["-B", f.bind]
        if f.parallel > 1:
            args += ["-P", str(f.parallel)]
        return _ns(f.netns, args)

    def poll(self) -> None:
        """Launch the clients whose start time has come."""
        now = time.monotonic()
        for f in self.flows:
            if f.name not in self.clients and now - self.t0 >= f.start_s:
                self.launched[f.name] = time.monotonic() - self.t0
                self.clients[f.name] = subprocess.Popen(
                    self._client_cmd(f), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
                )

    def elapsed(self) -> float:
        return time.monotonic() - self.t0

    def sleep_until(self, t: float) -> None:
        """Sleep until ``t`` on the set's clock, launching late clients on time."""
        while True:
            self.poll()
            left = t - self.elapsed()
            if left <= 0:
                return
            pending = [f.start_s - self.elapsed() for f in self.flows if f.name not in self.clients]
            time.sleep(max(0.0, min([left, *[p for p in pending if p > 0]])))

    def stop(self, name: str) -> None:
        p = self.clients.get(name)
        if p is not None and p.poll() is None:
            p.send_signal(signal.SIGINT)

    def wait(self) -> dict[str, FlowResult]:
        end = max(f.start_s + f.seconds for f in self.flows)
        self.sleep_until(end)
        deadline = time.monotonic() + IPERF_TIMEOUT_GRACE_S
        results: dict[str, FlowResult] = {}
        for f in self.flows:
            c, s = self.clients.get(f.name), self.servers[f.name]
            client_out = ""
            try:
                if c is not None:
                    client_out, _ = c.communicate(timeout=max(1.0, deadline - time.monotonic()))
                server_out, _ = s.communicate(timeout=max(1.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                self.kill()
                results[f.name] = FlowResult(f.name, [], error="iperf3 did not finish")
                continue
            r = parse_server_json(server_out, self.launched.get(f.name, 0.0), f.name)
            if not r.intervals and not r.error:
                r.error = f"no intervals; client said: {client_out[-300:]!r}"
            results[f.name] = r
        return results

    def kill(self) -> None:
        for p in [*self.clients.values(), *self.servers.values()]:
            if p.poll() is None:
                p.kill()
                p.wait(timeout=5)


def shares(rates: dict[str, float]) -> dict[str, float]:
    total = sum(rates.values())
    return {k: (v / total if total else 0.0) for k, v in rates.items()}


def weighted_expectation(weights: dict[str, float]) -> dict[str, float]:
    """Each backlogged sender's expected share: w_i / sum of the backlogged senders' weights (§5.3: idle
    guarantees, the default flow's included, are redistributed in proportion to the weights)."""
    total = sum(weights.values())
    return {k: w / total for k, w in weights.items()}


def run_flows(
    server_ns: str | None, server_ip: str, flows: Sequence[Flow], interval_s: float = 0.5
) -> dict[str, FlowResult]:
    with FlowSet(server_ns, server_ip, flows, interval_s) as fs:
        fs.start()
        return fs.wait()


class LanHost:
    """The 'physical LAN' behind an uplink: a namespace with one host at ``ip`` (a /24), wired by a veth whose
    other end (``uplink``, in the root namespace) an External switch takes as its NIC."""

    def __init__(self, ip: str, prefix: str = "pvq") -> None:
        self.ip = ip
        self.ns = unique(f"{prefix}lan")
        self.uplink = unique(f"{prefix}up")
        self.ifname = "lan0"

    def build(self) -> LanHost:
        sh("ip", "netns", "add", self.ns)
        try:
            sh("ip", "link", "set", "lo", "up", netns=self.ns)
            # Quiet: no router solicitations or DAD among the measured frames.
            for scope in ("all", "default"):
                sh("sysctl", "-qw", f"net.ipv6.conf.{scope}.disable_ipv6=1", netns=self.ns)
            sh("ip", "link", "add", self.uplink, "type", "veth", "peer", "name", self.ifname, "netns", self.ns)  # fmt: skip
            sh("ip", "addr", "add", f"{self.ip}/24", "dev", self.ifname, netns=self.ns)
            sh("ip", "link", "set", self.ifname, "up", netns=self.ns)
            sh("ip", "link", "set", self.uplink, "up")
        except BaseException:
            self.close()
            raise
        return self

    def close(self) -> None:
        pids = subprocess.run(["ip", "netns", "pids", self.ns], capture_output=True, text=True).stdout.split()
        for pid in pids:
            subprocess.run(["kill", "-9", pid], capture_output=True)
        subprocess.run(["ip", "netns", "del", self.ns], capture_output=True)
        subprocess.run(["ip", "link", "del", self.uplink], capture_output=True)


def vm_ifname(netns: str) -> str:
    """The one non-loopback interface of a VM's namespace."""
    links = json.loads(sh("ip", "-j", "link", "show", netns=netns))
    names = [str(i["ifname"]) for i in links if i["ifname"] != "lo"]
    if len(names) != 1:
        raise RuntimeError(f"{netns} has interfaces {names}, expected one")
    return names[0]


# ------------------------------------------------------------------------------------------- PFC generator


def iface_mac(ifname: str) -> bytes:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        info = fcntl.ioctl(s.fileno(), SIOCGIFHWADDR, struct.pack("256s", ifname.encode()[:15]))
    return bytes(info[18:24])


def _csum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    s: int = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def udp_frame(
    dst_mac: bytes, src_mac: bytes, src_ip: str, dst_ip: str, dport: int, size: int, priority: int | None
) -> tuple[bytearray, int]:
    """A UDP frame of ``size`` bytes (without FCS), priority-tagged (VLAN 0, PCP ``priority``) unless None;
    returns it with the offset of its 8-byte sequence number (the UDP checksum is 0: optional in IPv4)."""
    eth = (
        dst_mac
        + src_mac
        + (struct.pack("!HH", 0x8100, (priority or 0) << 13) if priority is not None else b"")
    )
    eth += b"\x08\x00"
    payload_len = max(size - len(eth) - 28, len(MAGIC) + 8)
    ip_len = 20 + 8 + payload_len
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, ip_len, 0, 0x4000, 64, 17, 0,
                     socket.inet_aton(src_ip), socket.inet_aton(dst_ip))  # fmt: skip
    ip = ip[:10] + struct.pack("!H", _csum(ip)) + ip[12:]
    udp = struct.pack("!HHHH", 40000 + dport % 20000, dport, 8 + payload_len, 0)
    frame = bytearray(eth + ip + udp + MAGIC + bytes(payload_len - len(MAGIC)))
    return frame, len(eth) + 28 + len(MAGIC)


@dataclass
class SendReport:
    sent: int = 0
    seconds: float = 0.0
    pfc_frames: int = 0  # MAC Control frames pausing or resuming our priority
    pfc_other: int = 0  # PFC frames that did not name our priority
    pauses: int = 0  # XOFF (non-zero quanta) for our priority
    resumes: int = 0  # zero-quanta for our priority
    expired: int = 0  # pauses that ran out before a resume or refresh
    paused_s: float = 0.0
    send_errors: int = 0
    vectors: list[int] = field(default_factory=list)  # the distinct class-enable vectors seen

    def to_json(self) -> dict[str, Any]:
        return self.__dict__.copy()


def pfc_send(
    ifname: str,
    dst_mac: bytes,
    src_ip: str,
    dst_ip: str,
    dport: int,
    rate_pps: float,
    seconds: float,
    priority: int = 3,
    size: int = 1000,
    link_bps: int = 0,
) -> SendReport:
    """Send for ``seconds`` at up to ``rate_pps``, honouring PFC/PAUSE for ``priority`` (see the module doc)."""
    tx = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
    tx.setsockopt(socket.SOL_SOCKET, 32, 4 << 20)  # SO_SNDBUFFORCE
    tx.bind((ifname, 0))
    rx = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_MAC_CONTROL))
    rx.bind((ifname, ETH_P_MAC_CONTROL))
    rx.setblocking(False)
    frame, seq_at = udp_frame(dst_mac, iface_mac(ifname), src_ip, dst_ip, dport, size, priority)
    rep = SendReport()
    vectors: set[int] = set()
    interval = 1.0 / rate_pps
    start = time.perf_counter()
    end = start + seconds
    next_send = start
    paused_until = 0.0  # perf_counter time; 0 = not paused
    paused_at = 0.0
    seq = 0
    try:
        while True:
            now = time.perf_counter()
            if now >= end:
                break
            # MAC Control frames first: a pause applies before the next frame goes.
            while True:
                try:
                    data = rx.recv(2048)
                except BlockingIOError:
                    break
                try:
                    ctl = decode_mac_control(data)
                except ValueError:
                    continue
                if isinstance(ctl, PfcFrame):
                    vectors.add(ctl.class_enable_vector)
                    if priority not in ctl.quanta:
                        rep.pfc_other += 1
                        continue
                    q = ctl.quanta[priority]
                elif isinstance(ctl, PauseFrame):
                    q = ctl.quanta
                else:
                    continue
                rep.pfc_frames += 1
                now = time.perf_counter()
                if q:
                    if not paused_until:
                        rep.pauses += 1
                        paused_at = now
                    paused_until = now + quanta_to_seconds(q, link_bps)
                elif paused_until:
                    rep.resumes += 1
                    rep.paused_s += now - paused_at
                    paused_until = 0.0
                    next_send = max(next_send, now)  # no catching up
            if paused_until:
                if now < paused_until:
                    select.select([rx], [], [], min(paused_until - now, end - now, 0.002))
                    continue
                rep.expired += 1
                rep.paused_s += paused_until - paused_at
                paused_until = 0.0
                next_send = max(next_send, now)
            burst = 0
            while next_send <= now and burst < 64:
                struct.pack_into("!Q", frame, seq_at, seq)
                try:
                    tx.send(frame)
                    seq += 1
                except OSError:
                    rep.send_errors += 1
                    break
                next_send += interval
                burst += 1
            wait = next_send - time.perf_counter()
            if wait > 0:
                select.select([rx], [], [], min(wait, 0.002))
    finally:
        if paused_until:
            rep.paused_s += time.perf_counter() - paused_at
        tx.close()
        rx.close()
    rep.sent = seq
    rep.seconds = time.perf_counter() - start
    rep.vectors = sorted(vectors)
    return rep


@dataclass
class RecvReport:
    received: int = 0
    unique: int = 0
    max_seq: int = -1
    bytes: int = 0
    first_s: float = 0.0  # arrival of the first and last frame, on the receiver's clock from its start
    last_s: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return self.__dict__.copy()


def seq_receive(ip: str, port: int, seconds: float, idle_s: float = 1.5) -> RecvReport:
    """Count the sequence numbers arriving at UDP ``ip:port`` for at most ``seconds``; stop earlier once
    frames have arrived and none came for ``idle_s``."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, 33, 16 << 20)  # SO_RCVBUFFORCE: a slow reader must not be the loss
    s.bind((ip, port))
    s.settimeout(0.2)
    seen = bytearray()
    rep = RecvReport()
    start = time.monotonic()
    print("ready", flush=True)
    while True:
        now = time.monotonic()
        if now - start > seconds or (rep.received and now - start - rep.last_s > idle_s):
            break
        try:
            data = s.recv(65536)
        except TimeoutError:
            continue
        if data[:4] != MAGIC or len(data) < 12:
            continue
        (seq,) = struct.unpack_from("!Q", data, 4)
        rep.received += 1
        rep.bytes += len(data)
        rep.last_s = time.monotonic() - start
        if rep.received == 1:
            rep.first_s = rep.last_s
        if seq >= len(seen):
            seen.extend(bytes(seq + 1 - len(seen) + 65536))
        if not seen[seq]:
            seen[seq] = 1
            rep.unique += 1
        rep.max_seq = max(rep.max_seq, seq)
    s.close()
    return rep


def missing(sent: int, rx: RecvReport) -> int:
    return sent - rx.unique


def neighbour_mac(netns: str | None, ip: str) -> bytes:
    """The MAC ``netns`` has for ``ip`` (ping it first)."""
    sh("ping", "-c", "1", "-W", "2", ip, netns=netns, check=False)
    out = json.loads(sh("ip", "-j", "neigh", "show", ip, netns=netns) or "[]")
    for n in out:
        if n.get("lladdr"):
            return bytes.fromhex(str(n["lladdr"]).replace(":", ""))
    raise RuntimeError(f"no neighbour entry for {ip} in {netns}")


class LosslessStream:
    """A PFC-honouring sender in ``netns`` and a sequence counter in ``recv_ns``, as two processes."""

    def __init__(self, netns: str, ifname: str, src_ip: str, recv_ns: str, dst_ip: str, port: int,
                 rate_pps: float, seconds: float, priority: int = 3, size: int = 1000) -> None:  # fmt: skip
        self.netns, self.recv_ns = netns, recv_ns
        dst_mac = neighbour_mac(netns, dst_ip)
        py = [sys.executable, "-m", "pyvswitch.lab.qos"]
        self.recv_cmd = _ns(recv_ns, [*py, "recv", "--ip", dst_ip, "--port", str(port),
                                      "--seconds", f"{seconds + 10:g}"])  # fmt: skip
        self.send_cmd = _ns(netns, [*py, "send", "--iface", ifname, "--dst-mac", dst_mac.hex(),
                                    "--src-ip", src_ip, "--dst-ip", dst_ip, "--port", str(port),
                                    "--rate", f"{rate_pps:g}", "--seconds", f"{seconds:g}",
                                    "--priority", str(priority), "--size", str(size)])  # fmt: skip
        self.receiver: subprocess.Popen[str] | None = None
        self.sender: subprocess.Popen[str] | None = None

    def start(self) -> None:
        self.receiver = subprocess.Popen(self.recv_cmd, stdout=subprocess.PIPE, text=True)
        assert self.receiver.stdout is not None
        if self.receiver.stdout.readline().strip() != "ready":
            raise RuntimeError("the sequence receiver did not start")
        self.sender = subprocess.Popen(self.send_cmd, stdout=subprocess.PIPE, text=True)

    def finish(self, timeout_s: float = 60) -> tuple[SendReport, RecvReport]:
        assert self.sender is not None and self.receiver is not None
        out, _ = self.sender.communicate(timeout=timeout_s)
        if self.sender.returncode != 0:
            raise RuntimeError(f"PFC sender failed ({self.sender.returncode}): {out[-500:]}")
        sent = SendReport(**json.loads(out))
        rout, _ = self.receiver.communicate(timeout=timeout_s)
        return sent, RecvReport(**json.loads(rout))

    def kill(self) -> None:
        for p in (self.sender, self.receiver):
            if p is not None and p.poll() is None:
                p.kill()
                p.wait(timeout=5)


def main(argv: Iterable[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m pyvswitch.lab.qos", description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("send", help="PFC-honouring UDP sender (run inside the VM's namespace)")
    s.add_argument("--iface", required=True)
    s.add_argument("--dst-mac", required=True, help="hex, no separators")
    s.add_argument("--src-ip", required=True)
    s.add_argument("--dst-ip", required=True)
    s.add_argument("--port", type=int, required=True)
    s.add_argument("--rate", type=float, required=True, help="frames/s")
    s.add_argument("--seconds", type=float, required=True)
    s.add_argument("--priority", type=int, default=3)
    s.add_argument("--size", type=int, default=1000)
    s.add_argument("--link-bps", type=int, default=0, help="own link rate for pause quanta (0: unbounded)")
    r = sub.add_parser("recv", help="count sequence numbers arriving at a UDP port")
    r.add_argument("--ip", required=True)
    r.add_argument("--port", type=int, required=True)
    r.add_argument("--seconds", type=float, required=True)
    a = ap.parse_args(list(argv) if argv is not None else None)
    if a.cmd == "send":
        rep = pfc_send(a.iface, bytes.fromhex(a.dst_mac), a.src_ip, a.dst_ip, a.port, a.rate, a.seconds,
                       a.priority, a.size, a.link_bps)  # fmt: skip
        print(json.dumps(rep.to_json()))
    else:
        print(json.dumps(seq_receive(a.ip, a.port, a.seconds).to_json()))
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    raise SystemExit(main())
