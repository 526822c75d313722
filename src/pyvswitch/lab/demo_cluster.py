"""The demo's cluster scene (issue 13): virtual subnets across three pyvswitchd hosts that share state through etcd
and meet only through VXLAN tunnels; a full-mesh ping with ARP answered by each host's own tunnel, a second subnet
with the same customer addresses kept apart, routing between two subnets of a routing domain (customer routes),
a live migration under 1 ms pings from the third host, and a host killed whose lookup records expire with its
lease.

Topology: a cluster lab of its own (``pyvswitch lab up --hosts 3 --cluster --lease-ttl 5``, lab/hosts.py): a
provider network namespace ``<lab>-pnet`` (a bridge, a 3-member etcd on 10.91.0.201-203) and three hosts whose
``pa0`` holds the provider address (hostA 10.91.0.1, hostB .2, hostC .3)::

    blue, VSID 5001     blue1 10.50.0.1 (hostA)   blue2 10.50.0.2 (hostB)   blue3 10.50.0.3 (hostC)
    red,  VSID 6001     red1  10.50.0.1 (hostA)                             red3  10.50.0.3 (hostC)
    web,  VSID 5003     web1  10.60.0.10 (hostA)     } one routing domain: customer routes 10.60.0.0/24
    db,   VSID 5004                                  db3 10.61.0.10 (hostC)  } and 10.61.0.0/24

    hostA pa0 10.91.0.1 ──┐
    hostB pa0 10.91.0.2 ──┼── pnet bridge ── etcd m0 m1 m2 (10.91.0.201-203)
    hostC pa0 10.91.0.3 ──┘

The steps: (1) every VM forgets its neighbours, then the blue VMs ping each other (6 pairs) while a capture on the
provider network counts what crosses: the tunnels answer ARP from the lookup records (``arp_suppressed`` in
their counters), so no ARP request crosses; (2) red1 reaches red3 at the address blue3 also has, and not
blue2's address, which red has not; (2b) web1 reaches db3 on another subnet and host through its
default gateway (10.60.0.1, answered by hostA; the routed ping is one hop: TTL 63); (3) blue1 moves hostA -> hostB (``pyvswitch migrate``) while blue3 on hostC
pings it every millisecond through the tunnels (lab/migrationbench.py's measure: the longest gap between
replies), and its record's host and provider address follow; (4) hostC's pyvswitchd and forwarder are killed
-9 while hostA and hostB keep pinging its VMs: nothing revokes its lease, etcd expires it after the TTL (5 s
here), the other hosts' watched views drop hostC's records and hosts, and their tunnels stop sending to hostC
(a capture of datagrams to 10.91.0.3 stamps the last one). The scene fails if a pair does not reach, an ARP
request crosses, red hears blue, web1 does not reach db3 routed, the blackout reaches 500 ms, the record does not move, the records outlive the
lease by more than 2 s, or a datagram goes to hostC after its records are gone. Skipped where etcd, fping or
tcpdump is missing.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console

from pyvswitch.lab.etcd import etcd_unavailable
from pyvswitch.lab.hosts import SWITCH, Lab, LabError, LabHost
from pyvswitch.lab.migrationbench import Run, migrate_under_ping
from pyvswitch.lab.traffic import Capture, PingResult, TrafficError, run_ping
from pyvswitch.lab.verdict import SceneCheck, print_checks
from pyvswitch.testing.netns import unique, wait_for

BLUE, RED = 5001, 6001
LEASE_TTL_S = 5
TUNNEL = "vxlan0"  # the tunnel port a cluster host's daemon adds to the switch of its virtual subnets
MAX_BLACKOUT_MS = 500.0  # the demo's bound (make bench-cluster measures the figure: median 80 ms)
EXPIRY_SLACK_S = 2.0  # past the TTL: etcd checks leases every 500 ms, then the watch and the table push
PUSH_SLACK_S = 0.3  # from a view dropping a host to its tunnel's tables without it (forwarder RPC)
MOVER, PINGER, MOVE_FROM, MOVE_TO = "blue1", "blue3", "hostA", "hostB"
WEB, DB = 5003, 5004  # two subnets of one routing domain (customer routes)
ROUTING_DOMAIN = "{5EC0A000-0000-4000-8000-0000000000D0}"
VICTIM = "hostC"


@dataclass(frozen=True)
class ClusterVm:
    short: str
    host: str
    vsid: int
    ip: str  # without prefix; all in 10.50.0.0/24

    @property
    def subnet(self) -> str:
        return "blue" if self.vsid == BLUE else "red"


VMS = (
    ClusterVm("blue1", "hostA", BLUE, "10.50.0.1"),
    ClusterVm("blue2", "hostB", BLUE, "10.50.0.2"),
    ClusterVm("blue3", "hostC", BLUE, "10.50.0.3"),
    ClusterVm("red1", "hostA", RED, "10.50.0.1"),
    ClusterVm("red3", "hostC", RED, "10.50.0.3"),
)
BY_NAME = {v.short: v for v in VMS}
ROUTED = (ClusterVm("web1", "hostA", WEB, "10.60.0.10"), ClusterVm("db3", "hostC", DB, "10.61.0.10"))


def cluster_unavailable() -> str | None:
    """Why the scene cannot run here (None if it can)."""
    missing = etcd_unavailable()
    if missing is not None:
        return missing
    tools = [t for t in ("fping", "tcpdump") if shutil.which(t) is None]
    return f"missing tools: {', '.join(tools)} (run `make setup`)" if tools else None


class StampedCapture(Capture):
    """A ``Capture`` whose lines start with the monotonic time the reader got them (``-l``: tcpdump writes each
    packet's line at once), so datagrams can be placed on the same clock as the scene's own events."""

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for ln in self.proc.stdout:
            if ln.strip():
                self.lines.append(f"{time.monotonic():.6f} {ln.rstrip()}")


_DATAGRAM = re.compile(
    r"^(?:(\d+\.\d+) )?.* Out .*: (\d+\.\d+\.\d+\.\d+)\.\d+ > (\d+\.\d+\.\d+\.\d+)\.4789: VXLAN"
)


def datagrams(lines: list[str]) -> list[tuple[float, str, str]]:
    """(time, source, destination) of each VXLAN datagram in a capture on ``any`` of the provider namespace (time:
    a ``StampedCapture``'s, else 0): each appears twice there (leaving the sender's bridge port, ``P``; entering
    the receiver's, ``Out``), counted once, at ``Out``."""
    out = []
    for ln in lines:
        m = _DATAGRAM.match(ln)
        if m:
            out.append((float(m[1] or 0.0), m[2], m[3]))
    return out


def _api(host: LabHost, path: str) -> Any:
    """GET /v1``path`` on ``host``'s socket: for polling (a CLI call costs ~1 s of Python start-up)."""
    with httpx.Client(transport=httpx.HTTPTransport(uds=host.socket), timeout=10) as c:
        r = c.get(f"http://pyvswitchd/v1{path}")
    r.raise_for_status()
    return r.json()


def tunnel_port(host: LabHost) -> dict[str, Any]:
    """The counters of ``host``'s tunnel port (``pyvswitch --json counters``: switches.ext.ports.vxlan0)."""
    data = _api(host, "/counters")
    port = (data.get("switches") or {}).get(SWITCH, {}).get("ports", {}).get(TUNNEL)
    return dict(port or {})


def tunnel_info(host: LabHost) -> dict[str, Any]:
    return dict(tunnel_port(host).get("tunnel") or {})


def view_hosts(host: LabHost, vsid: int) -> list[str] | None:
    """The hosts of subnet ``vsid`` in ``host``'s watched view (``vnet status``), None if it does not watch it."""
    sub = (_api(host, "/cluster").get("subnets") or {}).get(str(vsid))
    return None if sub is None else list(sub.get("hosts") or [])


def view_records(host: LabHost, vsid: int) -> int:
    sub = (_api(host, "/cluster").get("subnets") or {}).get(str(vsid)) or {}
    return int(sub.get("records") or 0)


class ClusterScene:
    """Builds its own 3-host cluster lab (unique name), so it runs beside the demo's daemon and the test suite."""

    def __init__(self, console: Console, tag: str) -> None:
        self.console = console
        self.lab_name = unique("dclab")
        self.lab: Lab | None = None
        self.names = {v.short: f"{v.short}-{tag}" for v in (*VMS, *ROUTED)}
        self.netns: dict[str, str] = {}
        self.where = {v.short: v.host for v in (*VMS, *ROUTED)}  # the host each VM is on now
        self.skipped: str | None = None
        self._procs: list[subprocess.Popen[bytes]] = []
        self._captures: list[Capture] = []

    # ---- helpers ----

    def comment(self, text: str) -> None:
        self.console.print(f"[bold cyan]# {text}[/bold cyan]", highlight=False)

    def say(self, text: str) -> None:
        self.console.print(text, highlight=False)

    def host(self, name: str) -> LabHost:
        assert self.lab is not None
        return self.lab.host(name)

    def cli(
        self, host: LabHost, *args: str, show: bool = True, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        """``pyvswitch --host H ARGS`` as the admin types it (run against H's socket), and what it printed."""
        if show:
            self.console.print(
                f"[bold cyan]$ pyvswitch --host {host.name} {shlex.join(args)}[/bold cyan]", highlight=False
            )
        res = host.cli(*args, check=False)
        if show:
            self.echo(res)
        if check and res.returncode != 0:
            raise RuntimeError(
                f"{host.name}: pyvswitch {shlex.join(args)} -> {res.returncode}: {res.stderr.strip()}"
            )
        return res

    def command(self, line: str) -> None:
        """A command the scene runs itself, shown as typed."""
        self.console.print(f"[bold cyan]$ {line}[/bold cyan]", highlight=False, markup=True)

    def echo(self, res: subprocess.CompletedProcess[str]) -> None:
        if res.stdout.strip():
            self.console.print(res.stdout.rstrip(), markup=False, highlight=False)
        if res.returncode != 0:
            self.console.print(f"[yellow]{res.stderr.strip()}[/yellow]", markup=False)

    def ns(self, short: str) -> str:
        return self.netns.get(short, self.names[short])

    def label(self, short: str) -> str:
        return f"{short} ({self.where[short]})"

    def records(self, vsid: int) -> dict[str, dict[str, Any]]:
        """The cluster's records of ``vsid`` by customer address (from etcd, through hostA)."""
        recs = _api(self.host("hostA"), f"/vnet/lookup-records?virtual_subnet_id={vsid}")
        return {str(r["customer_address"]): r for r in recs}

    def ping(self, src: str, dst_ip: str, count: int = 3) -> PingResult | None:
        try:
            return run_ping(self.ns(src), dst_ip, count=count, interval_s=0.1, reply_timeout_s=1)
        except TrafficError:
            return None

    def neighbour_mac(self, short: str, ip: str) -> str:
        out = subprocess.run(
            ["ip", "-n", self.ns(short), "-j", "neigh", "show", ip], capture_output=True, text=True
        ).stdout
        with contextlib.suppress(ValueError, IndexError, KeyError, TypeError):
            return str(json.loads(out or "[]")[0]["lladdr"])
        return "none"

    # ---- the story ----

    def run(self) -> list[SceneCheck]:
        self.skipped = cluster_unavailable()
        if self.skipped is not None:
            self.console.print(f"[yellow]cluster scene skipped: {self.skipped}[/yellow]")
            return []
        try:
            self.build()
        except LabError as exc:  # the demo reports RuntimeErrors as "demo failed", with the cause
            raise RuntimeError(f"cluster scene: the lab did not come up: {exc}") from exc
        try:
            checks = self.mesh()
            checks += self.isolation()
            checks += self.routing()
            checks += self.migration()
            checks += self.host_loss()
        except (httpx.HTTPError, LabError) as exc:  # a daemon that stopped answering: as the demo reports it
            raise RuntimeError(f"cluster scene: {exc}") from exc
        return checks

    def build(self) -> None:
        self.console.rule("Cluster: virtual subnets across three hosts")
        self.comment("three hosts, each a pyvswitchd in a namespace; a provider network with a 3-member etcd")
        self.command(f"pyvswitch lab up --hosts 3 --cluster --lease-ttl {LEASE_TTL_S} --name {self.lab_name}")
        self.lab = Lab(self.lab_name)
        self.lab.up(3, cluster=True, lease_ttl_s=LEASE_TTL_S)
        self.cli(self.host("hostA"), "vnet", "hosts")
        self.comment(
            f"one VM per host on blue (VSID {BLUE}); red (VSID {RED}) reuses blue's addresses on hostA and "
            f"hostC   [dim](or: Set-VMNetworkAdapter -VMName NAME -VirtualSubnetId {BLUE})[/dim]"
        )
        # Each host's VMs are made by a thread of its own (three daemons, ~2 s of CLI per VM); printed in order.
        done: dict[str, list[tuple[list[str], subprocess.CompletedProcess[str]]]] = {}

        def make(host_name: str) -> None:
            h = self.host(host_name)
            steps = done.setdefault(host_name, [])
            for vm in (v for v in VMS if v.host == host_name):
                name = self.names[vm.short]
                add = ["vm", "add", name, "--switch", SWITCH, "--ip", f"{vm.ip}/24"]
                steps.append((add, h.cli(*add, check=False)))
                if steps[-1][1].returncode != 0:
                    return
                m = re.search(r"^netns:\s+(\S+)", steps[-1][1].stdout, re.M)
                self.netns[vm.short] = m[1] if m else name
                join = ["port", "set", f"{name}-eth0", "--virtual-subnet-id", str(vm.vsid)]
                steps.append((join, h.cli(*join, check=False)))
                if steps[-1][1].returncode != 0:
                    return

        threads = [threading.Thread(target=make, args=(h,)) for h in ("hostA", "hostB", "hostC")]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        for host_name in ("hostA", "hostB", "hostC"):
            for args, res in done.get(host_name, []):
                self.console.print(
                    f"[bold cyan]$ pyvswitch --host {host_name} {shlex.join(args)}[/bold cyan]",
                    highlight=False,
                )
                if (
                    args[0] == "vm" or res.returncode != 0
                ):  # `port set` prints the whole port, VSID not among it
                    self.echo(res)
                if res.returncode != 0:
                    raise RuntimeError(
                        f"{host_name}: pyvswitch {shlex.join(args)} -> {res.returncode}: {res.stderr.strip()}"
                    )
        # Every host's view holds its subnets' records before the first ping.
        want = {h: {v.vsid for v in VMS if v.host == h} for h in ("hostA", "hostB", "hostC")}
        counts = {vsid: sum(1 for v in VMS if v.vsid == vsid) for vsid in (BLUE, RED)}
        wait_for(
            lambda: all(
                view_records(self.host(h), vsid) == counts[vsid] for h, vs in want.items() for vsid in vs
            ),
            timeout_s=15,
            interval_s=0.1,
            what="every host's view of its subnets",
        )
        self.comment(
            "the lookup records: customer address -> MAC, provider address, host (etcd, seen from any host)"
        )
        self.cli(self.host("hostA"), "vnet", "records")
        self.comment(
            "hostB watches only the subnets it has ports on (blue); its registration lives under a 5 s lease"
        )
        self.cli(self.host("hostB"), "vnet", "status")

    def mesh(self) -> list[SceneCheck]:
        assert self.lab is not None and self.lab.record.pnet_netns is not None
        blue = [v for v in VMS if v.vsid == BLUE]
        self.comment(
            "every VM forgets its neighbours; the blue VMs ping each other across the hosts while a capture "
            "on the provider network (tcpdump in the pnet namespace) sees every VXLAN datagram"
        )
        for v in VMS:
            subprocess.run(["ip", "-n", self.ns(v.short), "neigh", "flush", "all"], capture_output=True)
        before = {
            h: int(tunnel_info(self.host(h)).get("arp_suppressed", 0)) for h in ("hostA", "hostB", "hostC")
        }
        self.command(f"ip netns exec {self.lab.record.pnet_netns} tcpdump -i any -nn -e -l udp port 4789 &")
        cap = Capture(self.lab.record.pnet_netns, "any", "udp port 4789")
        self._captures.append(cap)
        results: dict[tuple[str, str], PingResult | None] = {}
        try:
            for x, y in itertools.permutations(blue, 2):
                p = self.ping(x.short, y.ip)
                results[(x.short, y.short)] = p
                self.say(
                    f"{self.label(x.short):<15} → {self.label(y.short):<15} {y.ip}: "
                    + (f"{p.received}/{p.transmitted} replies" if p else "ping failed")
                )
            time.sleep(0.3)
        finally:
            lines = cap.stop()
        after = {h: tunnel_info(self.host(h)) for h in ("hostA", "hostB", "hostC")}
        answered = {h: int(after[h].get("arp_suppressed", 0)) - before[h] for h in before}
        crossed = sum(1 for ln in lines if "Request who-has" in ln)
        n_datagrams = len(datagrams(lines))
        self.comment(
            "each host's tunnel port (pyvswitch --host H --json counters: switches.ext.ports.vxlan0.tunnel)"
        )
        for h, t in after.items():
            self.say(
                f"{h} {TUNNEL} ({t.get('datapath', 'python')} datapath): arp_suppressed "
                f"{t.get('arp_suppressed')} (+{answered[h]} in the mesh), "
                f"replicated {t.get('replicated')}, remote MACs {t.get('remote_macs')}, peers {t.get('peers')}"
            )
        self.say(f"provider network: {n_datagrams} VXLAN datagrams, {crossed} ARP requests among them")
        reached = sum(1 for p in results.values() if p is not None and p.received > 0)
        replies = sum(p.received for p in results.values() if p is not None)
        sent = sum(p.transmitted for p in results.values() if p is not None)
        return [
            SceneCheck(
                f"full mesh, blue (VSID {BLUE}), 3 hosts",
                f"{len(results)}/{len(results)} pairs reach",
                f"{reached}/{len(results)} pairs, {replies}/{sent} replies",
                reached == len(results),
            ),
            SceneCheck(
                "ARP answered by the local tunnel",
                f"≥ {len(results)} answered, none crosses",
                f"{sum(answered.values())} answered ("
                + ", ".join(f"{h} {n}" for h, n in answered.items())
                + f"); {crossed} ARP requests in {n_datagrams} datagrams",
                sum(answered.values()) >= len(results) and crossed == 0 and n_datagrams > 0,
            ),
        ]

    def isolation(self) -> list[SceneCheck]:
        recs = {vsid: self.records(vsid) for vsid in (BLUE, RED)}
        self.comment(
            f"red (VSID {RED}) has 10.50.0.1 and 10.50.0.3 too: red1 reaches red3 across the hosts, and "
            "not 10.50.0.2, which only blue has (a ping expected to fail)"
        )
        own = self.ping("red1", BY_NAME["red3"].ip)
        other = self.ping("red1", BY_NAME["blue2"].ip)
        red_mac, blue_mac = self.neighbour_mac("red1", "10.50.0.3"), self.neighbour_mac("blue1", "10.50.0.3")
        red3_mac = str(recs[RED].get("10.50.0.3", {}).get("mac_address"))
        blue3_mac = str(recs[BLUE].get("10.50.0.3", {}).get("mac_address"))
        self.say(
            "red1 (hostA) → 10.50.0.3: "
            + (f"{own.received}/{own.transmitted} replies" if own else "failed")
            + f"; red1 knows 10.50.0.3 as {red_mac} (red3's record: {red3_mac}), blue1 as {blue_mac} "
            f"(blue3's: {blue3_mac})"
        )
        self.say(
            "red1 (hostA) → 10.50.0.2: "
            + (f"{other.received}/{other.transmitted} replies" if other else "failed")
            + " — expected to fail: 10.50.0.2 is blue2's, in another virtual subnet"
        )
        apart = red_mac == red3_mac and blue_mac == blue3_mac and red_mac != blue_mac
        return [
            SceneCheck(
                "red1 → 10.50.0.3 (red3, hostC)",
                "reach red3, not blue3",
                (f"{own.received}/{own.transmitted} replies" if own else "ping failed")
                + f", from {red_mac}"
                + (" (red3)" if red_mac == red3_mac else ""),
                own is not None and own.received > 0 and apart,
            ),
            SceneCheck(
                "red1 → 10.50.0.2 (only in blue)",
                "blocked: other subnet",
                (f"{other.received}/{other.transmitted} replies" if other else "no answer")
                + (" — fails, as expected" if other is None or other.received == 0 else ""),
                other is None or other.received == 0,
            ),
        ]

    def routing(self) -> list[SceneCheck]:
        web, db = ROUTED
        self.comment(
            f"routing: web (VSID {WEB}, 10.60.0.0/24) and db (VSID {DB}, 10.61.0.0/24) in one routing domain; "
            "every host routes between them (HNV's distributed router)"
        )
        for vm in ROUTED:
            h = self.host(vm.host)
            name = self.names[vm.short]
            res = self.cli(h, "vm", "add", name, "--switch", SWITCH, "--ip", f"{vm.ip}/24")
            m = re.search(r"^netns:\s+(\S+)", res.stdout, re.M)
            self.netns[vm.short] = m[1] if m else name
            self.cli(h, "Set-VMNetworkAdapter", "-VMName", name, "-VirtualSubnetId", str(vm.vsid), show=False)
        for vm in (web, db):
            prefix = vm.ip.rsplit(".", 1)[0] + ".0/24"
            self.cli(self.host("hostA"), "New-NetVirtualizationCustomerRoute", "-RoutingDomainID", ROUTING_DOMAIN,
                     "-VirtualSubnetID", str(vm.vsid), "-DestinationPrefix", prefix, "-NextHop", "0.0.0.0",
                     show=vm is web)  # fmt: skip
        self.comment("each VM's default gateway is the first address of its prefix, answered by its own host")
        for vm in ROUTED:
            gw = vm.ip.rsplit(".", 1)[0] + ".1"
            self.command(f"ip -n {self.ns(vm.short)} route add default via {gw}")
            subprocess.run(["ip", "-n", self.ns(vm.short), "route", "add", "default", "via", gw], check=True)
        wait_for(
            lambda: str(DB) in _api(self.host("hostA"), "/cluster")["subnets"],
            timeout_s=10, interval_s=0.1, what="hostA watching db's subnet (its routing domain's)",
        )  # fmt: skip
        self.command(f"ip netns exec {self.ns('web1')} ping -c 3 {db.ip}")
        res = subprocess.run(
            ["ip", "netns", "exec", self.ns("web1"), "ping", "-c", "3", "-i", "0.2", "-W", "1", db.ip],
            capture_output=True, text=True,
        )  # fmt: skip
        self.say(res.stdout.strip())
        ttls = set(re.findall(r"ttl=(\d+)", res.stdout))
        replies = len(re.findall(r"bytes from", res.stdout))
        gw_mac = self.neighbour_mac("web1", "10.60.0.1")
        routed = int(tunnel_info(self.host("hostA")).get("routed", 0))
        self.say(f"web1 knows its gateway 10.60.0.1 as {gw_mac}; hostA's {TUNNEL} routed {routed} frame(s)")
        return [
            SceneCheck(
                f"web1 (hostA) → db3 (hostC), VSID {WEB} → {DB}",
                "routed: replies at TTL 63",
                f"{replies}/3 replies, TTL {', '.join(sorted(ttls)) or '-'}",
                replies > 0 and ttls == {"63"},
            )
        ]

    def migration(self) -> list[SceneCheck]:
        assert self.lab is not None
        vm, ip = self.names[MOVER], BY_NAME[MOVER].ip
        before = self.records(BLUE).get(ip, {})
        self.comment(f"before the move: {ip} is on {before.get('host')} ({before.get('provider_address')})")
        self.cli(self.host("hostC"), "vnet", "records", "--vsid", str(BLUE))
        self.comment(
            f"{PINGER} on hostC pings {MOVER} every 1 ms through the tunnels while {MOVER} moves "
            f"{MOVE_FROM} → {MOVE_TO}"
        )
        self.console.print(
            f"[bold cyan]$ pyvswitch --host {MOVE_FROM} migrate {vm} --to {MOVE_TO}[/bold cyan]   "
            f"[dim]# or: Move-VM -Name {vm} -DestinationHost {MOVE_TO}[/dim]",
            highlight=False,
        )
        checks: list[SceneCheck] = []
        mig: Run | None = None
        try:
            mig = migrate_under_ping(self.lab, vm, ip, MOVE_FROM, MOVE_TO, pinger_netns=self.ns(PINGER))
            self.where[MOVER] = MOVE_TO
        except (LabError, KeyError, ValueError, subprocess.SubprocessError) as exc:
            checks.append(
                SceneCheck(f"live migration {MOVE_FROM} → {MOVE_TO}", "moves", str(exc)[:80], False)
            )
        if mig is not None:
            gap_ms = mig.gap_s * 1000
            self.say(
                f"migrated {MOVER} to {MOVE_TO}: daemon's blackout {mig.blackout_s * 1000:.1f} ms, total "
                f"{mig.total_s * 1000:.1f} ms; longest gap between ping replies at hostC "
                f"[bold]{gap_ms:.1f} ms[/bold], {mig.lost} ping(s) lost"
            )
            checks.append(
                SceneCheck(
                    "live migration under 1 ms pings from hostC",
                    f"gap < {MAX_BLACKOUT_MS:.0f} ms",
                    f"longest gap {gap_ms:.1f} ms, {mig.lost} lost",
                    gap_ms < MAX_BLACKOUT_MS,
                )
            )
        with contextlib.suppress(TimeoutError):
            wait_for(
                lambda: self.records(BLUE).get(ip, {}).get("host") == MOVE_TO,
                timeout_s=10,
                interval_s=0.1,
                what="the record to move",
            )
        after = self.records(BLUE).get(ip, {})
        self.comment(f"after the move: {ip} is on {after.get('host')} ({after.get('provider_address')})")
        self.cli(self.host("hostC"), "vnet", "records", "--vsid", str(BLUE))
        still = self.ping(PINGER, ip)
        moved = before.get("host") == MOVE_FROM and after.get("host") == MOVE_TO
        checks.append(
            SceneCheck(
                f"{MOVER}'s record follows it",
                f"{MOVE_FROM} → {MOVE_TO}, hostC still reaches it",
                f"{before.get('host')} ({before.get('provider_address')}) → {after.get('host')} "
                f"({after.get('provider_address')}); ping "
                + (f"{still.received}/{still.transmitted}" if still else "failed"),
                moved and still is not None and still.received > 0,
            )
        )
        return checks

    def host_loss(self) -> list[SceneCheck]:
        assert self.lab is not None and self.lab.record.pnet_netns is not None
        victim = self.lab.record.hosts[VICTIM]
        pa = str(victim.provider_address)
        survivors = {"hostA": RED, "hostB": BLUE}  # a survivor and the subnet it shares with hostC
        senders = {"hostA": "red1", "hostB": "blue2"}
        pas = {h: str(self.lab.record.hosts[h].provider_address) for h in survivors}
        self.comment(
            f"red1 (hostA) and blue2 (hostB) keep pinging 10.50.0.3 on {VICTIM} ({pa}) every 100 ms; a capture "
            f"stamps every datagram to {pa}"
        )
        for short in senders.values():
            self._procs.append(
                subprocess.Popen(
                    ["ip", "netns", "exec", self.ns(short), "ping", "-i", "0.1", "-W", "1", "10.50.0.3"],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )
        bpf = f"udp port 4789 and dst host {pa}"
        self.command(f"ip netns exec {self.lab.record.pnet_netns} tcpdump -i any -nn -e -l {bpf} &")
        cap = StampedCapture(self.lab.record.pnet_netns, "any", bpf)
        self._captures.append(cap)
        with contextlib.suppress(TimeoutError):
            wait_for(
                lambda: {s for _, s, _ in datagrams(cap.lines)} >= set(pas.values()),
                timeout_s=5,
                interval_s=0.05,
                what="datagrams to the victim from both survivors",
            )
        forwarder = self.forwarder_pid(victim.state_dir)
        if forwarder is None:
            self.say(f"[yellow]{VICTIM}'s forwarder was not found: only its pyvswitchd is killed[/yellow]")
        pids = [p for p in (victim.pid, forwarder) if p is not None]
        self.comment(f"{VICTIM} dies: its pyvswitchd and its forwarder are killed, nothing revokes its lease")
        self.console.print(
            f"[bold cyan]$ kill -9 {' '.join(map(str, pids))}[/bold cyan]   "
            f"[dim]# {VICTIM}'s pyvswitchd and forwarder[/dim]",
            highlight=False,
        )
        killed = time.monotonic()
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        gone: dict[str, float] = {}

        def views_dropped() -> bool:
            for h, vsid in survivors.items():
                if h not in gone:
                    with contextlib.suppress(httpx.HTTPError, OSError, ValueError):
                        if VICTIM not in (view_hosts(self.host(h), vsid) or []):
                            gone[h] = time.monotonic() - killed
            return len(gone) == len(survivors)

        with contextlib.suppress(TimeoutError):
            wait_for(
                views_dropped,
                timeout_s=LEASE_TTL_S + 15,
                interval_s=0.05,
                what=f"{VICTIM}'s records to expire",
            )
        self.lab.wait_dead(VICTIM)
        time.sleep(1.0)  # pinging on: nothing may go to the victim now
        lines = cap.stop()
        for p in self._procs:
            p.kill()
            p.wait()
        self._procs.clear()
        sent = {
            h: [t - killed for t, s, _ in datagrams(lines) if s == pas[h] and t >= killed] for h in survivors
        }
        late = {h: [t for t in sent[h] if h in gone and t > gone[h] + PUSH_SLACK_S] for h in survivors}
        for h in survivors:
            last = f"the last {max(sent[h]):.2f} s after the kill" if sent[h] else "none"
            self.say(
                f"{h}: its view dropped {VICTIM} "
                + (f"{gone[h]:.2f} s after the kill" if h in gone else "[red]never[/red]")
                + f"; it sent {len(sent[h])} datagram(s) to {pa} after the kill, {last}; "
                f"{len(late[h])} after its view dropped {VICTIM}"
            )
        self.comment(f"etcd no longer has {VICTIM}: its records and registration went with its lease")
        self.cli(self.host("hostA"), "vnet", "records")
        self.cli(self.host("hostB"), "vnet", "hosts")
        peers = {h: tunnel_info(self.host(h)).get("peers") or [] for h in survivors}
        no_record = {
            h: int((tunnel_port(self.host(h)).get("drops") or {}).get("no-lookup-record", 0))
            for h in survivors
        }
        for h in survivors:
            self.say(
                f"{h} {TUNNEL}: peers {peers[h]}, {no_record[h]} frame(s) to 10.50.0.3 dropped: no-lookup-record"
            )
        left = [r for vsid in (BLUE, RED) for r in self.records(vsid).values() if r.get("host") == VICTIM]
        expired = (
            len(gone) == len(survivors) and max(gone.values()) <= LEASE_TTL_S + EXPIRY_SLACK_S and not left
        )
        stopped = all(sent[h] and not late[h] and pa not in peers[h] for h in survivors)
        return [
            SceneCheck(
                f"{VICTIM} killed: its records leave the views",
                f"within the {LEASE_TTL_S} s lease TTL (+{EXPIRY_SLACK_S:g} s)",
                ", ".join(f"{h} after {gone[h]:.1f} s" if h in gone else f"{h} never" for h in survivors)
                + f"; {len(left)} left in etcd",
                expired,
            ),
            SceneCheck(
                f"the others stop sending to {VICTIM}",
                "no datagram once its records are gone",
                "; ".join(
                    f"{h}: {len(sent[h])} sent until {max(sent[h], default=0):.1f} s, {len(late[h])} after"
                    for h in survivors
                ),
                stopped,
            ),
        ]

    @staticmethod
    def forwarder_pid(state_dir: str) -> int | None:
        """The pid of the forwarder of the daemon with ``state_dir`` (its lock file; checked against its
        command line, so a stale lock never names another process)."""
        try:
            pid = int((Path(state_dir) / "forwarder.lock").read_text().split()[0])
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes()
        except (OSError, ValueError, IndexError):
            return None
        return pid if b"pyvswitch.daemon.forwarder" in cmd and state_dir.encode() in cmd else None

    def table(self, checks: list[SceneCheck]) -> bool:
        if self.skipped is not None:
            return True  # nothing to judge here; the line above says why
        return print_checks(
            self.console, "pyvswitch demo — cluster: virtual subnets across three hosts", checks
        )

    # ---- teardown ----

    def cleanup(self) -> None:
        """Stop what the scene started and take the lab down (VMs, daemons, etcd, namespaces, state), also after a
        failure half-way."""
        for p in self._procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        self._procs.clear()
        for cap in self._captures:
            if cap.proc.poll() is None:
                cap.stop()
        self._captures.clear()
        if self.skipped is not None:
            return
        lab = self.lab or Lab(self.lab_name)
        lab.down()
        for short in self.names:
            subprocess.run(["ip", "netns", "del", self.ns(short)], capture_output=True)

    def kept_lines(self) -> tuple[list[str], list[str]]:
        """How to use what is left running (``--keep``), and how to remove it."""
        if self.skipped is not None:
            return [], []
        lab = self.lab_name
        use = [
            f"pyvswitch --host {lab}/hostA vnet records; pyvswitch --host {lab}/hostB vnet status",
            f"pyvswitch lab up --hosts 3 --cluster --name {lab}   # hostC back: it registers and republishes",
        ]
        return use, [f"pyvswitch lab down --name {lab}"]
