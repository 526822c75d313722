"""The benchmark topology: two end hosts and a forwarder namespace between them, with pluggable forwarders.

::

    h1 [if1: 10.201.0.1] ==veth== [fw1] fw [fw2] ==veth== [if2: 10.201.0.2] h2
                                    \\ forwarder //

``h1`` and ``h2`` hold the generator/sink and the iperf3 ends; ``fw`` holds the middle veth ends and the
forwarder under test (a Linux bridge, or ``pyvswitchd`` bound to ``fw1``/``fw2``). Every forwarder runs on
the same namespaces and veths in one run, so their figures compare like with like.

Names are unique per run (tests and a demo can run beside it) and everything is removed on ``close()``,
which the context manager calls even after an error or a KeyboardInterrupt.

Counters must count only benchmark traffic, so IPv6 is disabled in all three namespaces (no router/neighbour
solicitations) and each host has a permanent neighbour entry for the other (no ARP during a trial).

CPU pinning (platform notes): on a machine with at least 2 CPUs, the generator, the sink and both iperf3
ends run on CPU 0 and a userspace forwarder on CPU 1. The Linux bridge has no process to pin: it forwards in
softirq context on the CPU that transmitted into the veth, i.e. mostly CPU 0 together with the generator,
which is why its small-frame figure here is bounded by the generator. With offloads off, the end hosts'
receive processing is steered (RPS) to the generator's CPU, as pyvswitchd steers its own VMs' when its
forwarding CPU saturates (``set_offloads``).
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Protocol

import httpx

from pyvswitch.datapath.rps import steer_receive
from pyvswitch.lab.traffic import TrafficError, run_ping
from pyvswitch.testing.netns import NetnsPool, sh, unique, wait_for

log = logging.getLogger(__name__)

H1_IP = "10.201.0.1"
H2_IP = "10.201.0.2"
PREFIX_LEN = 24

# What `ethtool -K` turns off in the offloads-off mode (RFC 2544 small-frame style), and the veth
# defaults it restores for the offloads-on mode (measured on this kernel: GRO is off by default on veth).
OFFLOADS_OFF = ("tso", "off", "gso", "off", "gro", "off", "tx", "off", "rx", "off", "sg", "off")
OFFLOADS_DEFAULT = ("tso", "on", "gso", "on", "gro", "off", "tx", "on", "rx", "on", "sg", "on")


def cpu_plan() -> tuple[int | None, int | None]:
    """(CPU for generator/sink/iperf3, CPU for the forwarder); (None, None) with fewer than 2 CPUs."""
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        return None, None
    return cpus[0], cpus[1]


def answers(socket_path: str | os.PathLike[str], timeout_s: float = 5.0) -> bool:
    """Whether a pyvswitchd serves its API on ``socket_path`` (what whoever starts one waits for): a GET of the
    switches, in process. Tests and labs used to run ``pyvswitch switch list`` for it: ~0.1 s of CPU a try,
    ~1 s per daemon start, and ``make test`` starts a few hundred."""
    try:
        with httpx.Client(transport=httpx.HTTPTransport(uds=os.fspath(socket_path)), timeout=timeout_s) as c:
            return c.get("http://pyvswitchd/v1/switches").status_code == 200
    except (httpx.HTTPError, OSError):
        return False


def venv_bin() -> Path:
    """Directory of this interpreter's console scripts (pyvswitchd, pyvswitch)."""
    return Path(sys.executable).parent


@dataclass(frozen=True)
class Endpoint:
    netns: str
    ifname: str
    ip: str
    mac: str


class Harness:
    """h1 — fw — h2 built from a NetnsPool. Use as a context manager."""

    def __init__(self) -> None:
        self.pool = NetnsPool()
        self.gen_cpu, self.fwd_cpu = cpu_plan()
        self.fw = ""
        self.fw_ifs: tuple[str, str] = ("", "")
        self.h1: Endpoint | None = None
        self.h2: Endpoint | None = None
        self.offloads_on = True

    # ------------------------------------------------------------------ lifecycle

    def __enter__(self) -> Harness:
        try:
            self.build()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def build(self) -> None:
        ns1 = self.pool.netns("pvbh1")
        ns2 = self.pool.netns("pvbh2")
        self.fw = self.pool.netns("pvbfw")
        for ns in (ns1, ns2, self.fw):
            for key in ("all", "default"):
                sh("sysctl", "-qw", f"net.ipv6.conf.{key}.disable_ipv6=1", netns=ns)
        if1, fw1 = self.pool.veth(unique("pvbh"), unique("pvbf"), ns1, self.fw)
        if2, fw2 = self.pool.veth(unique("pvbh"), unique("pvbf"), ns2, self.fw)
        self.fw_ifs = (fw1, fw2)
        sh("ip", "addr", "add", f"{H1_IP}/{PREFIX_LEN}", "dev", if1, netns=ns1)
        sh("ip", "addr", "add", f"{H2_IP}/{PREFIX_LEN}", "dev", if2, netns=ns2)
        self.h1 = Endpoint(ns1, if1, H1_IP, _mac(ns1, if1))
        self.h2 = Endpoint(ns2, if2, H2_IP, _mac(ns2, if2))
        for a, b in ((self.h1, self.h2), (self.h2, self.h1)):
            sh(
                "ip",
                "neigh",
                "replace",
                b.ip,
                "lladdr",
                b.mac,
                "dev",
                a.ifname,
                "nud",
                "permanent",
                netns=a.netns,
            )
        log.info("harness: %s:%s — %s[%s,%s] — %s:%s", ns1, if1, self.fw, fw1, fw2, ns2, if2)

    def close(self) -> None:
        self.pool.close()

    @property
    def namespaces(self) -> list[str]:
        return list(self.pool.namespaces)

    # ------------------------------------------------------------------ configuration

    def ends(self) -> list[tuple[str, str]]:
        """Every veth end as (netns, ifname)."""
        assert self.h1 is not None and self.h2 is not None
        return [
            (self.h1.netns, self.h1.ifname),
            (self.fw, self.fw_ifs[0]),
            (self.fw, self.fw_ifs[1]),
            (self.h2.netns, self.h2.ifname),
        ]

    def set_offloads(self, on: bool) -> None:
        """Kernel default offloads (TSO/GSO/checksum on) or all off, on every veth end."""
        features = OFFLOADS_DEFAULT if on else OFFLOADS_OFF
        for ns, ifname in self.ends():
            # ethtool exits non-zero when a feature is fixed or already set; the state is what matters.
            sh("ethtool", "-K", ifname, *features, netns=ns, check=False)
        self.offloads_on = on
        if self.gen_cpu is not None:
            # What pyvswitchd's receive steering does for its own VMs (daemon/steering.py), done here for the
            # end hosts, which are not the daemon's: with offloads off the forwarder's CPU saturates, and the
            # end hosts' receiving stacks, which would otherwise run inside its send(), go to their own CPU.
            # The bridge is unaffected either way: it forwards on the end hosts' CPU already.
            for end in (self.h1, self.h2):
                assert end is not None
                steer_receive(end.ifname, set() if on else {self.gen_cpu}, end.netns)
        log.info("offloads %s on all veth ends", "on (kernel defaults)" if on else "off")

    def reachable(self, timeout_s: float = 15.0) -> None:
        """Wait until h1 pings h2 through the forwarder (this also teaches a learning forwarder both MACs)."""
        assert self.h1 is not None and self.h2 is not None
        h1, h2 = self.h1, self.h2

        def ok() -> bool:
            try:
                return run_ping(h1.netns, h2.ip, count=1, reply_timeout_s=0.5).received == 1
            except TrafficError:
                return False

        wait_for(ok, timeout_s=timeout_s, interval_s=0.1, what=f"{h1.ip} to reach {h2.ip} through {self.fw}")


def _mac(netns: str, ifname: str) -> str:
    import json

    return str(json.loads(sh("ip", "-j", "link", "show", "dev", ifname, netns=netns))[0]["address"])


# ---------------------------------------------------------------------------------------------- forwarders


class Forwarder(Protocol):
    """Something that forwards between the harness's two middle veth ends while started."""

    name: str

    def start(self, harness: Harness) -> None: ...

    def stop(self) -> None: ...


class LinuxBridge:
    """The kernel's bridge in ``fw`` with both middle ends enslaved: the reference forwarder."""

    name = "linux-bridge"

    def __init__(self) -> None:
        self._harness: Harness | None = None
        self._bridge = ""

    def start(self, harness: Harness) -> None:
        self._harness = harness
        self._bridge = unique("pvbbr")
        fw = harness.fw
        sh("ip", "link", "add", self._bridge, "type", "bridge", netns=fw)
        for ifname in harness.fw_ifs:
            sh("ip", "link", "set", ifname, "master", self._bridge, netns=fw)
        sh("ip", "link", "set", self._bridge, "up", netns=fw)
        harness.reachable()

    def stop(self) -> None:
        if self._harness is not None and self._bridge:
            sh("ip", "link", "del", self._bridge, netns=self._harness.fw, check=False)
        self._bridge = ""


class PyvswitchForwarder:
    """``pyvswitchd`` inside ``fw`` (forwarding thread on the forwarder CPU), a Private switch with the two middle
    ends bound as interface ports, configured through the real CLI."""

    name = "pyvswitch"

    def __init__(self, bin_dir: Path | None = None, start_timeout_s: float = 30.0) -> None:
        self.bin_dir = bin_dir or venv_bin()
        self.start_timeout_s = start_timeout_s
        self._proc: subprocess.Popen[bytes] | None = None
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self._log: Path | None = None
        self.socket: Path | None = None
        self._client: httpx.Client | None = None

    def available(self) -> bool:
        return (self.bin_dir / "pyvswitchd").exists() and (self.bin_dir / "pyvswitch").exists()

    def cli(self, *args: str, check: bool = True) -> str:
        assert self.socket is not None
        res = subprocess.run(
            [str(self.bin_dir / "pyvswitch"), "--socket", str(self.socket), *args],
            capture_output=True,
            text=True,
            timeout=60,
        )
        if check and res.returncode != 0:
            raise RuntimeError(
                f"pyvswitch {' '.join(args)} -> {res.returncode}: {res.stderr.strip() or res.stdout.strip()}"
            )
        return res.stdout

    def poll_counters(self) -> None:
        """One statistics request, as a monitoring client makes it (REST over the unix socket, connection
        kept open between polls)."""
        assert self.socket is not None
        if self._client is None:
            self._client = httpx.Client(transport=httpx.HTTPTransport(uds=str(self.socket)), timeout=5)
        self._client.get("http://pyvswitchd/v1/counters").raise_for_status()

    def start(self, harness: Harness) -> None:
        self._tmp = tempfile.TemporaryDirectory(prefix="pyvswitch-bench-")
        state = Path(self._tmp.name)
        self.socket = state / "sock"
        self._log = state / "pyvswitchd.log"
        cmd = [str(self.bin_dir / "pyvswitchd"), "--state-dir", str(state), "--socket", str(self.socket)]
        # The daemon pins its forwarding thread to the forwarder CPU and keeps its API threads off it.
        cmd += ["--forwarding-cpu", "none" if harness.fwd_cpu is None else str(harness.fwd_cpu)]
        with open(self._log, "ab") as logf:
            self._proc = subprocess.Popen(
                ["ip", "netns", "exec", harness.fw, *cmd], stdout=logf, stderr=subprocess.STDOUT
            )
        try:
            try:
                wait_for(
                    self._healthy, timeout_s=self.start_timeout_s, what=f"pyvswitchd socket {self.socket}"
                )
            except TimeoutError as exc:
                raise RuntimeError(f"{exc}; log: {self.log_tail(800)!r}") from exc
            self.configure(harness)
            harness.reachable()
        except BaseException:
            self.stop()
            raise

    def configure(self, harness: Harness) -> None:
        """The switch the benchmark measures (subclasses measure others): a Private switch between fw's ends."""
        self.cli("switch", "add", "sw", "--type", "private")
        self.cli("port", "add", "p1", "--interface", harness.fw_ifs[0], "--switch", "sw")
        self.cli("port", "add", "p2", "--interface", harness.fw_ifs[1], "--switch", "sw")

    def _healthy(self) -> bool:
        assert self._proc is not None and self.socket is not None
        if self._proc.poll() is not None:
            raise RuntimeError(f"pyvswitchd exited with {self._proc.returncode}: {self.log_tail()}")
        if not self.socket.exists():
            return False
        return answers(self.socket)

    def log_tail(self, n: int = 2000) -> str:
        try:
            return self._log.read_text(errors="replace")[-n:] if self._log else ""
        except OSError:
            return ""

    def stop(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None
        if self._proc is not None and self._proc.poll() is None:
            self._proc.send_signal(signal.SIGINT)  # stop the forwarder too (SIGTERM keeps it for a successor)
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(timeout=10)
        self._proc = None
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None


def tools_missing() -> list[str]:
    """Command-line tools the harness needs that are not on PATH."""
    return [
        t for t in ("ip", "ethtool", "iperf3", "trafgen", "ping", "taskset", "ss") if shutil.which(t) is None
    ]


# ------------------------------------------------------------------------------------------ more topologies

STAR_SUBNET = "10.202.0"


class StarHarness(Harness):
    """``n`` hosts around one forwarder namespace, for the RFC 2889 tests (many ports)::

        h1 ──┐
        h2 ──┤ fw (bridge, or pyvswitchd with ports p1..pn on fw_ifs)
        h3 ──┤
        h4 ──┘

    Everything else is the two-host harness's: unique names, IPv6 off, permanent neighbour entries between all
    hosts, generator/sink CPU and forwarder CPU. ``h1``/``h2`` are the first two hosts, so the forwarders and
    ``reachable`` of the two-host harness work unchanged; ``hosts`` has them all.
    """

    def __init__(self, n: int = 4) -> None:
        super().__init__()
        if n < 2:
            raise ValueError("a star needs at least 2 hosts")
        self.n = n
        self.hosts: list[Endpoint] = []
        self.fw_ifs = tuple("" for _ in range(n))  # type: ignore[assignment]

    def build(self) -> None:
        hosts_ns = [self.pool.netns(f"pvsh{i + 1}") for i in range(self.n)]
        self.fw = self.pool.netns("pvsfw")
        for ns in (*hosts_ns, self.fw):
            for key in ("all", "default"):
                sh("sysctl", "-qw", f"net.ipv6.conf.{key}.disable_ipv6=1", netns=ns)
        fw_ifs = []
        for i, ns in enumerate(hosts_ns):
            host_if, fw_if = self.pool.veth(unique("pvsh"), unique("pvsf"), ns, self.fw)
            fw_ifs.append(fw_if)
            ip = f"{STAR_SUBNET}.{i + 1}"
            sh("ip", "addr", "add", f"{ip}/{PREFIX_LEN}", "dev", host_if, netns=ns)
            self.hosts.append(Endpoint(ns, host_if, ip, _mac(ns, host_if)))
        self.fw_ifs = tuple(fw_ifs)  # type: ignore[assignment]
        for a in self.hosts:
            for b in self.hosts:
                if a is not b:
                    sh("ip", "neigh", "replace", b.ip, "lladdr", b.mac, "dev", a.ifname, "nud", "permanent",
                       netns=a.netns)  # fmt: skip
        self.h1, self.h2 = self.hosts[0], self.hosts[1]
        log.info("star harness: %d hosts around %s", self.n, self.fw)

    def ends(self) -> list[tuple[str, str]]:
        return [(h.netns, h.ifname) for h in self.hosts] + [(self.fw, i) for i in self.fw_ifs]

    def set_offloads(self, on: bool) -> None:
        super().set_offloads(on)
        if self.gen_cpu is not None:
            for end in self.hosts[2:]:
                steer_receive(end.ifname, set() if on else {self.gen_cpu}, end.netns)

    def reachable(self, timeout_s: float = 15.0) -> None:
        """Every host pings h1 through the forwarder (a learning forwarder then knows every host's MAC)."""
        first = self.hosts[0]
        for other in self.hosts[1:]:

            def ok(other: Endpoint = other) -> bool:
                try:
                    return run_ping(other.netns, first.ip, count=1, reply_timeout_s=0.5).received == 1
                except TrafficError:
                    return False

            wait_for(ok, timeout_s=timeout_s, interval_s=0.1, what=f"{other.ip} to reach {first.ip}")


class DirectPairs:
    """The generator's reference: ``n`` veth pairs between two namespaces and nothing in between, offloads off
    and receive processing on the generator CPU as in the forwarding harnesses. What a trial achieves here is
    the generator's ceiling. Use as a context manager."""

    def __init__(self, n: int = 2) -> None:
        self.n = n
        self.pool = NetnsPool()
        self.gen_cpu, _ = cpu_plan()
        self.pairs: list[tuple[Endpoint, Endpoint]] = []

    def __enter__(self) -> DirectPairs:
        try:
            a_ns, b_ns = self.pool.netns("pvga", ipv6=False), self.pool.netns("pvgb", ipv6=False)
            for i in range(self.n):
                a_if, b_if = self.pool.veth(unique("pvga"), unique("pvgb"), a_ns, b_ns)
                a = Endpoint(a_ns, a_if, f"10.203.{i}.1", _mac(a_ns, a_if))
                b = Endpoint(b_ns, b_if, f"10.203.{i}.2", _mac(b_ns, b_if))
                for e in (a, b):
                    sh("ethtool", "-K", e.ifname, *OFFLOADS_OFF, netns=e.netns, check=False)
                    if self.gen_cpu is not None:
                        steer_receive(e.ifname, {self.gen_cpu}, e.netns)
                self.pairs.append((a, b))
        except BaseException:
            self.pool.close()
            raise
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.pool.close()

    @property
    def namespaces(self) -> list[str]:
        return list(self.pool.namespaces)


class StarPyvswitch(PyvswitchForwarder):
    """``pyvswitchd`` as the benchmark runs it, with one interface port ``p1``..``pn`` per host of a star."""

    def configure(self, harness: Harness) -> None:
        self.cli("switch", "add", "sw", "--type", "private")
        for i, ifname in enumerate(harness.fw_ifs):
            self.cli("port", "add", f"p{i + 1}", "--interface", ifname, "--switch", "sw")
