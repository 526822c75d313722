"""Team failover figure (issue 4): UDP at 10,000 packets/s from a VM through a pyvswitch LACP team to an
Open vSwitch bond; the member carrying the flow loses its carrier mid-stream; the receiver's longest gap and
the packets lost are the figure. Then a long-running TCP flow (iperf3) through the same team while the member
carrying it is cut and restored: did it survive (iperf3 exit 0, no reset), the longest stretch of the
receiver's 0.1 s intervals with zero bytes, and the retransmissions. Medians over repetitions.
Run: ``python -m pyvswitch.lab.failover``.

The members' checksum offload is turned off: OVS's userspace datapath reads veths with AF_PACKET and would
otherwise forward the VM's partially checksummed UDP as is, and the receiving stack drops it (a physical NIC
would compute the checksum on transmit; a veth passes it on unfinished).

The TCP flow is paced at 100 Mbit/s (``--tcp-rate``): OVS's userspace datapath in its namespace loses packets
above a few hundred Mbit/s on a 2-vCPU machine, and those retransmissions would drown the failover's; at
100 Mbit/s an uncut flow has none. The VM's TSO/GSO is off for it: its 64 KB super-frames, segmented by the
kernel for the TSO-off member, reach OVS as bursts of ~45 frames that it partly drops even at that pace (about
1,200 retransmissions before any cut in a 10 s flow, none without GSO), which would again hide the failover's.

The measuring pieces (``UdpStream``, ``TcpFlow``, ``carrying_member``, ``wait_aggregated``) are shared with
the demo's teaming scene (lab/demo_team.py).
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyvswitch.testing.ovs as ovs_peer
from pyvswitch.lab.harness import venv_bin
from pyvswitch.testing.netns import netns_pool, sh, unique, wait_for

PEER_IP = "10.112.0.100"
VM_IP = "10.112.0.1"
UDP_PORT = 9999
TCP_PORT = 5201
TCP_INTERVAL_S = 0.1  # iperf3's smallest report interval: the resolution of the TCP stall figure
SEND = """
import socket, sys, time
rate, seconds = int(sys.argv[1]), float(sys.argv[2])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
n, start = 0, time.monotonic()
while True:
    due = start + n / rate
    now = time.monotonic()
    if now - start >= seconds:
        break
    if due > now:
        time.sleep(due - now)
    s.sendto(n.to_bytes(8, "big"), (sys.argv[3], int(sys.argv[4])))
    n += 1
print(n)
"""
# Arrival times are CLOCK_MONOTONIC, which network namespaces share: comparable with the cut's time here.
RECV = """
import json, socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("0.0.0.0", int(sys.argv[2])))
s.settimeout(30)  # until the first packet; then a quiet spell ends the run
times, last_seq = [], -1
try:
    while True:
        data = s.recv(64)
        times.append(time.monotonic())
        last_seq = max(last_seq, int.from_bytes(data[:8], "big"))
        s.settimeout(float(sys.argv[1]))
except socket.timeout:
    pass
gaps = sorted(((b - a, a) for a, b in zip(times, times[1:])), reverse=True)[:50]
gap, at = gaps[0] if gaps else (0.0, 0.0)
print(json.dumps({"received": len(times), "gap_s": gap, "gap_at": at, "last_seq": last_seq,
                  "first_t": times[0] if times else 0.0, "last_t": times[-1] if times else 0.0,
                  "gaps": [[a, g] for g, a in gaps]}))
"""


# ------------------------------------------------------------------------------------------------ UDP


@dataclass(frozen=True)
class UdpGap:
    """A UDP stream's outcome: packets sent and received, the longest gap between arrivals (and when it began,
    on CLOCK_MONOTONIC), and the highest sequence number that arrived."""

    sent: int
    received: int
    gap_ms: float
    gap_at: float
    last_seq: int
    last_t: float
    gaps: tuple[tuple[float, float], ...] = ()  # the longest gaps: (start, seconds), longest first

    def gap_near(self, t: float, before_s: float = 0.05, after_s: float = 1.0) -> float:
        """The longest gap (ms) that began between ``before_s`` before and ``after_s`` after time ``t`` (a cut):
        the failover's own gap, apart from any scheduling hiccup elsewhere in the stream."""
        return 1000 * max((g for a, g in self.gaps if t - before_s <= a <= t + after_s), default=0.0)

    @property
    def lost(self) -> int:
        return max(0, self.sent - self.received)

    @property
    def recovered(self) -> bool:
        """Packets from the stream's final 2 % arrived: traffic flowed again after a cut."""
        return self.received > 0 and self.last_seq >= self.sent * 0.98 - 1


def parse_udp(sent_text: str, recv_text: str) -> UdpGap:
    """The sender's count and the receiver's JSON line (the scripts above)."""
    r = json.loads(recv_text or "{}")
    return UdpGap(
        sent=int((sent_text or "0").strip() or 0),
        received=int(r.get("received", 0)),
        gap_ms=float(r.get("gap_s", 0.0)) * 1000,
        gap_at=float(r.get("gap_at", 0.0)),
        last_seq=int(r.get("last_seq", -1)),
        last_t=float(r.get("last_t", 0.0)),
        gaps=tuple((float(a), float(g)) for a, g in r.get("gaps", [])),
    )


class UdpStream:
    """``rate`` packets/s of UDP for ``seconds`` from ``sender_ns`` to ``dst_ip`` in ``receiver_ns``; the receiver
    stops after ``quiet_s`` without packets. ``start`` then ``finish``."""

    def __init__(self, sender_ns: str, receiver_ns: str, dst_ip: str, rate: int = 10_000,
                 seconds: float = 3.0, quiet_s: float = 1.0) -> None:  # fmt: skip
        self.sender_ns, self.receiver_ns, self.dst_ip = sender_ns, receiver_ns, dst_ip
        self.rate, self.seconds, self.quiet_s = rate, seconds, quiet_s
        self._send: subprocess.Popen[str] | None = None
        self._recv: subprocess.Popen[str] | None = None
        self.started_at = 0.0

    def start(self) -> None:
        self._recv = subprocess.Popen(["ip", "netns", "exec", self.receiver_ns, sys.executable, "-c", RECV,
                                       str(self.quiet_s), str(UDP_PORT)], stdout=subprocess.PIPE, text=True)  # fmt: skip
        wait_for(lambda: bool(sh("ss", "-Hlun", f"sport = :{UDP_PORT}", netns=self.receiver_ns, check=False)),
                 timeout_s=10, what="the UDP receiver")  # fmt: skip
        self.started_at = time.monotonic()
        self._send = subprocess.Popen(["ip", "netns", "exec", self.sender_ns, sys.executable, "-c", SEND,
                                       str(self.rate), str(self.seconds), self.dst_ip, str(UDP_PORT)],
                                      stdout=subprocess.PIPE, text=True)  # fmt: skip

    def finish(self) -> UdpGap:
        assert self._send is not None and self._recv is not None, "start() first"
        try:
            sent = self._send.communicate(timeout=self.seconds + 60)[0]
            got = self._recv.communicate(timeout=self.quiet_s + 60)[0]
        finally:
            self.kill()
        return parse_udp(sent, got)

    def kill(self) -> None:
        for p in (self._send, self._recv):
            if p is not None and p.poll() is None:
                p.kill()
                p.wait()


# ------------------------------------------------------------------------------------------------ TCP


@dataclass(frozen=True)
class TcpFailover:
    """A long TCP flow across a cut: ``survived`` = iperf3 exited 0 with no error (no reset), ``stall_s`` = the
    longest stretch of consecutive receiver intervals (0.1 s each) that carried zero bytes."""

    survived: bool
    error: str
    stall_s: float
    retransmits: int
    gbps: float
    seconds: float
    retransmits_before_cut: int = 0  # the background: retransmissions in the intervals before the cut


def longest_zero_stretch(intervals: Sequence[dict[str, Any]]) -> float:
    """Seconds of the longest run of consecutive iperf3 intervals with zero bytes (``intervals[i]["sum"]``).
    A short last interval (iperf3's remainder after the test's end, a few ms) is not a stall."""
    ivs = list(intervals)
    if len(ivs) > 1 and float((ivs[-1].get("sum") or {}).get("seconds", 0.0)) < TCP_INTERVAL_S / 2:
        ivs.pop()
    best = run = 0.0
    for iv in ivs:
        s = iv.get("sum") or {}
        if int(s.get("bytes", 0)) == 0:
            run += float(s.get("seconds", 0.0))
            best = max(best, run)
        else:
            run = 0.0
    return best


def parse_tcp(client_rc: int, client_text: str, server_text: str, cut_s: float | None = None) -> TcpFailover:
    """iperf3's client JSON (retransmits, errors) and the server's (receiver intervals: the stall); ``cut_s``
    (seconds into the flow) splits off the retransmissions before the cut."""
    errors: list[str] = []
    try:
        client: dict[str, Any] = json.loads(client_text)
    except json.JSONDecodeError:
        client = {}
        errors.append(f"client output is not JSON: {client_text.strip()[:120]!r}")
    try:
        server: dict[str, Any] = json.loads(server_text)
    except json.JSONDecodeError:
        server = {}
        errors.append(f"server output is not JSON: {server_text.strip()[:120]!r}")
    for doc in (client, server):
        if doc.get("error"):
            errors.append(str(doc["error"]))
    if client_rc != 0 and not errors:
        errors.append(f"iperf3 client exited {client_rc}")
    end = client.get("end") or {}
    sent, received = end.get("sum_sent") or {}, end.get("sum_received") or {}
    intervals = server.get("intervals") or []
    return TcpFailover(
        survived=client_rc == 0 and not errors and bool(received),
        error="; ".join(errors),
        stall_s=longest_zero_stretch(intervals),
        retransmits=int(sent.get("retransmits", 0)),
        gbps=float(received.get("bits_per_second", 0.0)) / 1e9,
        seconds=float(received.get("seconds", 0.0)),
        retransmits_before_cut=sum(
            int((iv.get("sum") or {}).get("retransmits", 0))
            for iv in client.get("intervals") or []
            if cut_s is not None and float((iv.get("sum") or {}).get("end", 0.0)) <= cut_s
        ),
    )


class TcpFlow:
    """One iperf3 TCP stream ``client_ns`` -> ``server_ip`` in ``server_ns`` for ``seconds``; the server reports
    every 0.1 s (the receiver's view of stalls). ``start`` then ``finish``."""

    def __init__(self, server_ns: str, client_ns: str, server_ip: str, seconds: int = 10,
                 rate: str = "0") -> None:  # fmt: skip
        self.server_ns, self.client_ns, self.server_ip = server_ns, client_ns, server_ip
        self.seconds, self.rate = seconds, rate
        self._server: subprocess.Popen[str] | None = None
        self._client: subprocess.Popen[str] | None = None
        self.started_at = 0.0

    def start(self) -> None:
        iv = f"{TCP_INTERVAL_S:g}"
        self._server = subprocess.Popen(["ip", "netns", "exec", self.server_ns, "iperf3", "-s", "-1", "-J", "-i", iv,
                                         "-B", self.server_ip, "-p", str(TCP_PORT)],
                                        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)  # fmt: skip
        wait_for(lambda: bool(sh("ss", "-Hltn", f"sport = :{TCP_PORT}", netns=self.server_ns, check=False)),
                 timeout_s=10, what="the iperf3 server")  # fmt: skip
        self._client = subprocess.Popen(["ip", "netns", "exec", self.client_ns, "iperf3", "-c", self.server_ip,
                                         "-p", str(TCP_PORT), "-t", str(self.seconds), "-b", self.rate, "-J", "-i", iv,
                                         "--connect-timeout", "3000"],
                                        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)  # fmt: skip
        self.started_at = time.monotonic()

    def finish(self, cut_at: float | None = None) -> TcpFailover:
        """The flow's outcome; ``cut_at`` (time.monotonic()) marks the cut for the background retransmits."""
        assert self._client is not None and self._server is not None, "start() first"
        try:
            try:
                out = self._client.communicate(timeout=self.seconds + 60)[0]
            except subprocess.TimeoutExpired:
                return TcpFailover(False, f"iperf3 did not finish in {self.seconds + 60} s", 0.0, 0, 0.0, 0.0)
            try:
                srv = self._server.communicate(timeout=10)[0]
            except subprocess.TimeoutExpired:
                srv = ""
            cut_s = None if cut_at is None else cut_at - self.started_at
            return parse_tcp(self._client.returncode, out, srv, cut_s)
        finally:
            self.kill()

    def kill(self) -> None:
        for p in (self._client, self._server):
            if p is not None and p.poll() is None:
                p.kill()
                p.wait()


# ---------------------------------------------------------------------------------------------- team


def carrying_member(
    tx: Callable[[], list[int]], before: list[int] | None = None, window_s: float = 1.0
) -> int:
    """The index of the member that sent the most frames over ``window_s`` (from ``before`` if given)."""
    if before is None:
        before = tx()
        time.sleep(window_s)
    after = tx()
    deltas = [a - b for a, b in zip(after, before, strict=True)]
    return max(range(len(deltas)), key=deltas.__getitem__)


def parse_lacp_show(text: str) -> dict[str, str]:
    """Each member's line of ``ovs-appctl lacp/show``: ``{"eth1": "current attached", ...}``."""
    return {m[1]: m[2].strip() for m in re.finditer(r"^(?:slave|member):? (\S+?): (.*)$", text, re.M)}


def ovs_member_states(peer: ovs_peer.Ovs, bond: str = "bond0") -> dict[str, str]:
    """OVS's view of each bond member."""
    return parse_lacp_show(peer.appctl("lacp/show", bond))


def wait_aggregated(active: Callable[[], list[bool]], peer: ovs_peer.Ovs | None = None,
                    timeout_s: float = 20.0) -> float:  # fmt: skip
    """Wait until every member is active here (LACP: collecting+distributing) and, with an OVS peer, attached
    there too. Returns the seconds it took; TimeoutError after ``timeout_s``."""
    t0 = time.monotonic()

    def done() -> bool:
        if not all(active()):
            return False
        return peer is None or all(s == "current attached" for s in ovs_member_states(peer).values())

    wait_for(done, timeout_s=timeout_s, interval_s=0.05, what="every team member aggregated")
    return time.monotonic() - t0


# --------------------------------------------------------------------------------------------- bench


@dataclass(frozen=True)
class Run:
    udp: UdpGap
    tcp: TcpFailover | None


def one_run(rate: int, seconds: float, tcp_seconds: int = 10, cut_side: str = "member",
            tcp_rate: str = "100M") -> Run:  # fmt: skip
    with netns_pool() as pool:
        ns = pool.netns("pvf", ipv6=False)
        sh("sysctl", "-qw", "net.ipv4.conf.all.arp_ignore=1", netns=ns)
        members = [unique("pvf"), unique("pvf")]
        for i, m in enumerate(members):
            pool.veth(m, f"eth{i + 1}", b_ns=ns)
            sh("ethtool", "-K", m, "tx", "off", check=False)
        peer = ovs_peer.Ovs(ns)
        state = Path(tempfile.mkdtemp(prefix="pyvswitch-failover-"))
        sock = state / "sock"
        daemon = subprocess.Popen([str(venv_bin() / "pyvswitchd"), "--state-dir", str(state), "--socket", str(sock)],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
        vm = unique("pvfvm")
        udp: UdpStream | None = None
        flow: TcpFlow | None = None

        def cli(*args: str) -> str:
            return subprocess.run([str(venv_bin() / "pyvswitch"), "--socket", str(sock), *args],
                                  check=True, capture_output=True, text=True).stdout  # fmt: skip

        def link(i: int, up: bool) -> None:
            # "member": our end goes down (the figure in the README); "switch": the switch's end (cable pulled
            # at the switch); either way the member's carrier drops.
            if cut_side == "switch":
                sh("ip", "link", "set", f"eth{i + 1}", "up" if up else "down", netns=ns)
            else:
                sh("ip", "link", "set", members[i], "up" if up else "down")

        def status() -> list[dict[str, Any]]:
            return list(json.loads(cli("--json", "team", "show", "t1"))["status"]["members"])

        def tx() -> list[int]:
            return [m["counters"]["tx_frames"] for m in status()]

        try:
            peer.start()
            peer.lacp_bond(["eth1", "eth2"], f"{PEER_IP}/24")
            wait_for(sock.exists, timeout_s=30, what="pyvswitchd")
            cli("New-NetLbfoTeam", "-Name", "t1", "-TeamMembers", ",".join(members), "-TeamingMode", "Lacp",
                "-LacpTimer", "Fast")  # fmt: skip
            cli("New-VMSwitch", "-Name", "ext", "-NetAdapterName", "t1", "-AllowManagementOS:false")
            cli("vm", "add", vm, "--switch", "ext", "--ip", f"{VM_IP}/24")
            wait_for(lambda: peer.appctl("lacp/show", "bond0").count("current attached") == 2, timeout_s=20,
                     what="negotiated")  # fmt: skip
            wait_for(lambda: " 0% packet loss" in sh("ping", "-c", "1", "-W", "1", PEER_IP, netns=vm, check=False),
                     timeout_s=20, what="reachable")  # fmt: skip

            udp = UdpStream(vm, ns, PEER_IP, rate, seconds)
            before = tx()
            udp.start()
            time.sleep(seconds / 3)
            victim = carrying_member(tx, before)
            link(victim, False)
            gap = udp.finish()
            if tcp_seconds <= 0:
                return Run(gap, None)

            # The same team, whole again, carries a long TCP flow; its member is cut a third of the way in and
            # restored at two thirds.
            link(victim, True)
            wait_aggregated(lambda: [m["active"] for m in status()], peer)
            sh("ethtool", "-K", "eth0", "tso", "off", "gso", "off", netns=vm)  # see the module docstring
            flow = TcpFlow(ns, vm, PEER_IP, tcp_seconds, tcp_rate)
            flow.start()
            time.sleep(tcp_seconds / 3 - 1)
            victim = carrying_member(tx)
            link(victim, False)
            cut_at = time.monotonic()
            time.sleep(tcp_seconds / 3)
            link(victim, True)
            return Run(gap, flow.finish(cut_at))
        finally:
            for stream in (udp, flow):
                if stream is not None:
                    stream.kill()
            daemon.terminate()
            daemon.wait(timeout=10)
            subprocess.run(["ip", "netns", "del", vm], capture_output=True)
            peer.close()
            shutil.rmtree(state, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--rate", type=int, default=10_000)
    p.add_argument("--seconds", type=float, default=3.0)
    p.add_argument("--tcp-seconds", type=int, default=10, help="the TCP flow's length; 0 skips it")
    p.add_argument("--tcp-rate", default="100M", help="the TCP flow's pace (iperf3 -b; 0: unpaced)")
    p.add_argument("--cut", choices=("member", "switch"), default="member",
                   help="which end of the member's link goes down: ours (default) or the switch's")  # fmt: skip
    args = p.parse_args(argv)
    runs = [
        one_run(args.rate, args.seconds, args.tcp_seconds, args.cut, args.tcp_rate) for _ in range(args.reps)
    ]
    for r in runs:
        note = "" if r.udp.recovered else "   (traffic did not recover)"
        print(f"  gap {r.udp.gap_ms:7.1f} ms   lost {r.udp.lost}{note}")
    gaps, losses = [r.udp.gap_ms for r in runs], [r.udp.lost for r in runs]
    print(f"median gap {statistics.median(gaps):.1f} ms, median lost {statistics.median(losses):.0f} packets "
          f"at {args.rate} packets/s ({args.reps} runs)")  # fmt: skip
    tcps = [r.tcp for r in runs if r.tcp is not None]
    if tcps:
        for t in tcps:
            print(f"  tcp {'survived' if t.survived else 'FAILED  '}   longest zero-byte stretch "
                  f"{t.stall_s * 1000:5.0f} ms   retransmits {t.retransmits:5d} ({t.retransmits_before_cut} before the "
                  f"cut)   {t.gbps:.2f} Gbit/s"
                  + (f"   ({t.error})" if t.error else ""))  # fmt: skip
        survived = sum(t.survived for t in tcps)
        print(f"TCP flow of {args.tcp_seconds} s, carrying member cut at {args.tcp_seconds / 3:.1f} s and restored "
              f"at {2 * args.tcp_seconds / 3:.1f} s: survived {survived} of {len(tcps)} runs (iperf3 exit 0, no "
              f"reset), median longest zero-byte stretch "
              f"{statistics.median(t.stall_s for t in tcps) * 1000:.0f} ms (0.1 s intervals), median "
              f"retransmits {statistics.median(t.retransmits for t in tcps):.0f} "
              f"({statistics.median(t.retransmits_before_cut for t in tcps):.0f} before the cut)")  # fmt: skip
    return 0 if all(r.udp.recovered for r in runs) and all(t.survived for t in tcps) else 1


if __name__ == "__main__":
    raise SystemExit(main())
