"""QEMU guests on the switch (issue 12): boot time, and TCP rates through pyvswitch against the Linux bridge.

One topology, two forwarders taking turns on the very same interfaces, so the only difference is the switch:

* two namespace VMs (veth, ``eth0`` inside) and two QEMU guests (virtio-net on persistent TAPs with virtio-net
  headers: QEMU's userspace backend, this host has no vhost-net), all four "NICs" in this namespace;
* ``linux-bridge``: a kernel bridge enslaving the two veth ends and the two TAPs;
* ``pyvswitch``: pyvswitchd (its own state directory, forwarding thread on the last CPU) with a Private switch
  and the same four interfaces bound as interface ports.

The guests boot once and stay up while the forwarders alternate (they keep their MACs; ARP entries stay valid).
QEMU runs on the CPUs the forwarding thread does not use, as pyvswitchd places its own guests. Flows, one TCP
stream each for ``--seconds``, medians of ``--reps``: guest -> namespace VM, namespace VM -> guest, guest ->
guest, and namespace VM -> namespace VM for reference. The guest's offloads (virtio feature bits it negotiated:
checksum, TSO4 both ways, mergeable buffers) are reported.

Boot: ``--boots`` guests started one after another on the pyvswitch switch; for each, the time from starting
QEMU to the guest's init reporting its NIC configured and its agent answering, and to the first ping reply
from a namespace VM (a working NIC). Medians reported.

    python -m pyvswitch.lab.guestbench [--reps 3] [--seconds 5] [--boots 5] [--json FILE]
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import os
import platform
import signal
import statistics
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from pyvswitch.guest.qemu import (
    Guest,
    GuestNic,
    GuestSpec,
    accelerator,
    create_tap,
    delete_tap,
    guests_unavailable,
    start_guest,
)
from pyvswitch.lab.harness import venv_bin
from pyvswitch.lab.traffic import IperfResult, TrafficError, iperf3_server, parse_iperf3_json, run_iperf3
from pyvswitch.testing.netns import NetnsPool, netns_pool, sh, unique, wait_for

SUBNET = "10.77.0"


@dataclass
class Topology:
    ns: list[tuple[str, str, str]]  # (netns, host-side veth end, ip)
    guests: list[Guest]

    @property
    def interfaces(self) -> list[str]:
        return [end for _, end, _ in self.ns] + [g.spec.nics[0].tap for g in self.guests]


def guest_cpus() -> frozenset[int]:
    """The CPUs pyvswitchd leaves to guests: all but the last (its forwarding CPU), or all on one CPU."""
    cpus = sorted(os.sched_getaffinity(0))
    return frozenset(cpus[:-1]) if len(cpus) > 1 else frozenset(cpus)


def _mac() -> str:
    return "52:54:00:" + ":".join(f"{b:02x}" for b in os.urandom(3))


@contextlib.contextmanager
def topology(pool: NetnsPool) -> Iterator[Topology]:
    ns = []
    for i in (1, 2):
        name = pool.netns("pvgb", ipv6=False)
        end = unique("pvgv")
        pool.veth(end, "eth0", b_ns=name)
        sh("ip", "addr", "add", f"{SUBNET}.{i}/24", "dev", "eth0", netns=name)
        ns.append((name, end, f"{SUBNET}.{i}"))
    guests: list[Guest] = []
    taps: list[str] = []
    try:
        for i in (11, 12):
            tap = unique("pvgq")
            create_tap(tap)
            taps.append(tap)
            spec = GuestSpec(unique("pvgb"), (GuestNic(tap, _mac(), (f"{SUBNET}.{i}/24",)),))
            guests.append(start_guest(spec, cpus=guest_cpus(), timeout_s=120))
        yield Topology(ns, guests)
    finally:
        for g in guests:
            g.stop()
        for tap in taps:
            delete_tap(tap)


class Bridge:
    name = "linux-bridge"

    def __init__(self) -> None:
        self.br = ""

    def start(self, interfaces: list[str]) -> None:
        self.br = unique("pvgbr")
        sh("ip", "link", "add", self.br, "type", "bridge")
        for ifname in interfaces:
            sh("ip", "link", "set", ifname, "master", self.br)
        sh("ip", "link", "set", self.br, "up")

    def stop(self) -> None:
        if self.br:
            sh("ip", "link", "del", self.br, check=False)
            self.br = ""


class Pyvswitch:
    name = "pyvswitch"

    def __init__(self) -> None:
        self.bin = venv_bin()
        self.tmp: tempfile.TemporaryDirectory[str] | None = None
        self.proc: subprocess.Popen[bytes] | None = None
        self.socket = Path()

    def cli(self, *args: str) -> str:
        res = subprocess.run([str(self.bin / "pyvswitch"), "--socket", str(self.socket), *args],
                             capture_output=True, text=True, timeout=60)  # fmt: skip
        if res.returncode != 0:
            raise RuntimeError(f"pyvswitch {' '.join(args)}: {res.stderr.strip() or res.stdout.strip()}")
        return res.stdout

    def start(self, interfaces: list[str]) -> None:
        self.tmp = tempfile.TemporaryDirectory(prefix="pyvswitch-guestbench-")
        state = Path(self.tmp.name)
        self.socket = state / "sock"
        log = open(state / "log", "ab")  # noqa: SIM115 - the daemon's stdout for its lifetime
        self.proc = subprocess.Popen(
            [str(self.bin / "pyvswitchd"), "--state-dir", str(state), "--socket", str(self.socket)],
            stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        log.close()
        wait_for(lambda: self.socket.exists(), timeout_s=30, what="pyvswitchd socket")
        wait_for(lambda: self._healthy(), timeout_s=30, what="pyvswitchd answering")
        self.cli("switch", "add", "sw", "--type", "private")
        for i, ifname in enumerate(interfaces):
            self.cli("port", "add", f"p{i}", "--interface", ifname, "--switch", "sw")

    def _healthy(self) -> bool:
        try:
            self.cli("switch", "list")
            return True
        except RuntimeError:
            return False

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None
        if self.tmp is not None:
            self.tmp.cleanup()
            self.tmp = None


def guest_iperf3(g: Guest, server_ip: str, seconds: int, reverse: bool = False) -> IperfResult:
    """A TCP stream from guest ``g`` (with ``reverse``: to it) and the server at ``server_ip``."""
    res = g.run(f"iperf3 -c {server_ip} -t {seconds} -J {'-R' if reverse else ''}", timeout_s=seconds + 30)
    if not res.stdout.strip():
        raise TrafficError(
            f"iperf3 in guest {g.spec.name} failed ({res.returncode}): {res.stderr.strip()[-300:]}"
        )
    return parse_iperf3_json(res.stdout)


def reachable(topo: Topology) -> None:
    """Everyone answers everyone's first ping (ARP settled) before a measurement."""
    ns1 = topo.ns[0][0]
    for ip in [f"{SUBNET}.2", f"{SUBNET}.11", f"{SUBNET}.12"]:
        wait_for(functools.partial(_ping_ok, ns1, ip), timeout_s=20, what=f"{ip} from {ns1}")


def _ping_ok(netns: str, ip: str) -> bool:
    return (
        subprocess.run(
            ["ip", "netns", "exec", netns, "ping", "-c1", "-W1", ip], capture_output=True
        ).returncode
        == 0
    )


def flows(topo: Topology, seconds: int) -> dict[str, float]:
    """Gbit/s of each flow (one at a time)."""
    (ns1, _, ip1), (ns2, _, _) = topo.ns
    g1, g2 = topo.guests
    out: dict[str, float] = {}
    with iperf3_server(ns1):
        out["guest -> ns VM"] = guest_iperf3(g1, ip1, seconds).gbps
        out["ns VM -> guest"] = guest_iperf3(g1, ip1, seconds, reverse=True).gbps
    g2.run("iperf3 -s -D")
    try:
        out["guest -> guest"] = guest_iperf3(g1, f"{SUBNET}.12", seconds).gbps
    finally:
        g2.run("killall iperf3")
    out["ns VM -> ns VM"] = run_iperf3(ns1, ns2, ip1, seconds).gbps
    return out


def boot_times(topo: Topology, sw: Pyvswitch, n: int) -> list[tuple[float, float]]:
    """(to NIC configured + agent, to the first ping reply from a namespace VM) for ``n`` fresh guests on the
    switch; each guest uses a new TAP that the running pyvswitchd binds first."""
    out = []
    ns1 = topo.ns[0][0]
    for i in range(n):
        tap = unique("pvgq")
        create_tap(tap)
        try:
            sw.cli("port", "add", f"boot{i}", "--interface", tap, "--switch", "sw")
            ip = f"{SUBNET}.{100 + i}"
            g = start_guest(GuestSpec(unique("pvgb"), (GuestNic(tap, _mac(), (f"{ip}/24",)),)),
                            cpus=guest_cpus(), timeout_s=120)  # fmt: skip
            try:
                ready = g.uptime()
                wait_for(
                    functools.partial(_ping_ok, ns1, ip),
                    timeout_s=30,
                    interval_s=0.01,
                    what=f"{ip} answering",
                )
                out.append((ready, g.uptime()))
            finally:
                g.stop()
                sw.cli("port", "del", f"boot{i}")
        finally:
            delete_tap(tap)
    return out


def run(reps: int, seconds: int, boots: int, json_path: str | None) -> int:
    console = Console()
    if os.geteuid() != 0:
        console.print("[red]needs root (namespaces, TAPs, QEMU)[/red]")
        return 2
    why = guests_unavailable()
    if why is not None:
        console.print(f"[red]QEMU guests cannot run here: {why}[/red]")
        return 2
    started = time.time()
    rates: dict[str, dict[str, list[float]]] = {"linux-bridge": {}, "pyvswitch": {}}
    errors: list[str] = []
    doc: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d"), "kernel": platform.release(), "accelerator": accelerator(),
        "seconds": seconds, "reps": reps,
    }  # fmt: skip
    console.print(f"QEMU guests under {doc['accelerator'].upper()}, on CPUs {sorted(guest_cpus())}")
    with netns_pool() as pool, topology(pool) as topo:
        doc["guest_offloads"] = topo.guests[0].offloads()
        console.print(f"guest virtio-net features negotiated: {doc['guest_offloads']}")
        for rep in range(reps):
            for fwd in (Bridge(), Pyvswitch()):
                fwd.start(topo.interfaces)
                try:
                    reachable(topo)
                    for flow, gbps in flows(topo, seconds).items():
                        rates[fwd.name].setdefault(flow, []).append(gbps)
                        console.print(f"  [dim]{fwd.name} rep {rep + 1}: {flow} {gbps:.2f} Gbit/s[/dim]")
                except (TrafficError, RuntimeError, TimeoutError) as exc:
                    errors.append(f"{fwd.name} rep {rep + 1}: {exc}")
                    console.print(f"  [red]{fwd.name} rep {rep + 1}: {exc}[/red]")
                finally:
                    fwd.stop()
        if boots:
            sw = Pyvswitch()
            sw.start(topo.interfaces)
            try:
                times = boot_times(topo, sw, boots)
            finally:
                sw.stop()
            doc["boot_s"] = {
                "ready": [round(a, 2) for a, _ in times],
                "first_ping": [round(b, 2) for _, b in times],
            }
            doc["boot_median_s"] = {
                "ready": round(statistics.median(a for a, _ in times), 2),
                "first_ping": round(statistics.median(b for _, b in times), 2),
            }
    med = {fwd: {flow: statistics.median(v) for flow, v in per.items()} for fwd, per in rates.items()}
    doc["gbps"], doc["medians"], doc["errors"] = rates, med, errors
    t = Table(
        title=f"TCP through the switch, one stream, medians of {reps} x {seconds} s ({doc['accelerator']} guests)"
    )
    for col in ("flow", "linux-bridge Gbit/s", "pyvswitch Gbit/s", "pyvswitch / bridge"):
        t.add_column(col, justify="left" if col == "flow" else "right")
    doc["ratio"] = {}
    for flow in med.get("pyvswitch", {}):
        b, p = med["linux-bridge"].get(flow), med["pyvswitch"][flow]
        ratio = p / b if b else None
        doc["ratio"][flow] = round(ratio, 3) if ratio else None
        t.add_row(flow, f"{b:.2f}" if b else "—", f"{p:.2f}", f"{ratio:.2f}" if ratio else "—")
    console.print(t)
    if "boot_median_s" in doc:
        console.print(
            f"guest boot, median of {boots}: NIC configured + agent {doc['boot_median_s']['ready']:.2f} s, "
            f"first ping reply {doc['boot_median_s']['first_ping']:.2f} s (runs {doc['boot_s']})"
        )
    for e in errors:
        console.print(f"[red]{e}[/red]")
    console.print(f"[dim]{time.time() - started:.0f} s, {doc['date']}, kernel {doc['kernel']}[/dim]")
    if json_path:
        Path(json_path).write_text(json.dumps(doc, indent=2))
        console.print(f"wrote {json_path}")
    return 1 if errors else 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m pyvswitch.lab.guestbench", description=__doc__.split("\n")[0])
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--seconds", type=int, default=5)
    p.add_argument("--boots", type=int, default=5)
    p.add_argument("--json", dest="json_path")
    a = p.parse_args(argv)
    return run(a.reps, a.seconds, a.boots, a.json_path)


if __name__ == "__main__":
    raise SystemExit(main())
