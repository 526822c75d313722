"""Team failover figure (issue 4): UDP at 10,000 packets/s from a VM through a pyvswitch LACP team to an
Open vSwitch bond; the member carrying the flow loses its carrier mid-stream; the receiver's longest gap and
the packets lost are the figure. Medians over repetitions. Run: ``python -m pyvswitch.lab.failover``.

The members' checksum offload is turned off: OVS's userspace datapath reads veths with AF_PACKET and would
otherwise forward the VM's partially checksummed UDP as is, and the receiving stack drops it (a physical NIC
would compute the checksum on transmit; a veth passes it on unfinished).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pyvswitch.testing.ovs as ovs_peer
from pyvswitch.lab.harness import venv_bin
from pyvswitch.testing.netns import netns_pool, sh, unique, wait_for

PEER_IP = "10.112.0.100"
VM_IP = "10.112.0.1"
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
    s.sendto(n.to_bytes(8, "big"), (sys.argv[3], 9999))
    n += 1
print(n)
"""
RECV = """
import socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("0.0.0.0", 9999))
s.settimeout(30)  # until the first packet; then a quiet second ends the run
times = []
try:
    while True:
        s.recv(64)
        times.append(time.monotonic())
        s.settimeout(float(sys.argv[1]))
except socket.timeout:
    pass
gaps = [b - a for a, b in zip(times, times[1:])]
print(len(times), max(gaps, default=0.0))
"""


def one_run(rate: int, seconds: float) -> tuple[float, int]:
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

        def cli(*args: str) -> str:
            return subprocess.run([str(venv_bin() / "pyvswitch"), "--socket", str(sock), *args],
                                  check=True, capture_output=True, text=True).stdout  # fmt: skip

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

            def tx() -> list[int]:
                t = json.loads(cli("--json", "team", "show", "t1"))
                return [m["counters"]["tx_frames"] for m in t["status"]["members"]]

            recv = subprocess.Popen(["ip", "netns", "exec", ns, sys.executable, "-c", RECV, "1.0"],
                                    stdout=subprocess.PIPE, text=True)  # fmt: skip
            time.sleep(0.3)
            before = tx()
            send = subprocess.Popen(["ip", "netns", "exec", vm, sys.executable, "-c", SEND, str(rate), str(seconds),
                                     PEER_IP], stdout=subprocess.PIPE, text=True)  # fmt: skip
            time.sleep(seconds / 3)
            after = tx()
            victim = members[0] if after[0] - before[0] > after[1] - before[1] else members[1]
            sh("ip", "link", "set", victim, "down")
            sent = int((send.communicate(timeout=60)[0] or "0").strip())
            got, gap = (recv.communicate(timeout=60)[0] or "0 0").split()
            return float(gap) * 1000, sent - int(got)
        finally:
            daemon.terminate()
            daemon.wait(timeout=10)
            subprocess.run(["ip", "netns", "del", vm], capture_output=True)
            peer.close()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--rate", type=int, default=10_000)
    p.add_argument("--seconds", type=float, default=3.0)
    args = p.parse_args(argv)
    runs = [one_run(args.rate, args.seconds) for _ in range(args.reps)]
    for gap, lost in runs:
        print(f"  gap {gap:7.1f} ms   lost {lost}")
    gaps, losses = [g for g, _ in runs], [n for _, n in runs]
    print(f"median gap {statistics.median(gaps):.1f} ms, median lost {statistics.median(losses):.0f} packets "
          f"at {args.rate} packets/s ({args.reps} runs)")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
