"""The guided demo: a small Hyper-V-style host built with the real pyvswitchd and CLI, exercised with real traffic.

Topology (names get a per-run suffix so a demo can run beside the test suite)::

    LAN namespace [10.10.0.1, untagged] ──veth── uplink ─┐
                                                          ext (External, trunk uplink)
        web01 10.10.0.11  access VLAN 10 ────────────────┤
        web02 10.10.0.12  access VLAN 10 ────────────────┤
        db01  10.10.0.21  access VLAN 20 ────────────────┤
        db02  10.10.0.22  access VLAN 20 ────────────────┤
        app01 10.10.0.31  untagged ──────────────────────┘
    management OS vNIC 10.20.0.1 ──┐
                                   int (Internal)
        mon01 10.20.0.11 ──────────┘

All four ext VMs share one IP subnet on purpose: only the VLANs keep web and db apart, so a failed ping
across them shows switch isolation, not routing. The LAN host is untagged, and this kernel has no 802.1Q
devices to give it a VLAN interface; the uplink carries VLANs 10 and 20 tagged (a trunk), so a ping from
web01 to the LAN host is expected to fail — and the demo captures the frames in the LAN namespace to show
they arrive tagged with VLAN 10 — while the untagged app01 reaches the LAN host. Every ping shown states whether it should succeed and why.

After the traffic checks come six scenes: security (lab/demo_security.py), NIC teaming (lab/demo_team.py:
a 2-member team to a "physical switch" namespace, a member's cable pulled mid-stream, the gap measured, the
cable plugged back in), QoS (lab/demo_qos.py: weights 1:2:5 sharing a 1 Gbit/s uplink, one VM stopping and
the others absorbing its share, a VM capped with MaximumBandwidth), a QEMU guest on the switch
(lab/demo_guest.py: boot, vm exec, offloads, pings; skipped where QEMU is missing), SR-IOV with live migration
(lab/demo_iov.py: a two-host lab of its own, a VM's iperf3 flow on the software path and then on a VF with the
daemon's CPU side by side, then a live migration to the second host under 1 ms pings with the blackout) and a
cluster (lab/demo_cluster.py: a three-host cluster lab of its own with etcd; virtual subnets whose VMs meet only
through VXLAN tunnels, a full-mesh ping with ARP answered by each host's tunnel, a second subnet with the same
addresses kept apart, a live migration under 1 ms pings from the third host with the record following the VM,
and a host killed whose records expire with its lease; skipped where etcd is missing).

The daemon runs in the root namespace with a temporary state directory and socket. Everything is removed
at the end unless ``keep=True``, which leaves it running and prints how to use and remove it.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shlex
import shutil
import signal
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.table import Table

from pyvswitch.guest.image import DEFAULT_CACHE_DIR
from pyvswitch.lab.demo_cluster import ClusterScene
from pyvswitch.lab.demo_guest import GuestScene
from pyvswitch.lab.demo_iov import IovScene
from pyvswitch.lab.demo_qos import QosScene
from pyvswitch.lab.demo_security import SecurityScene
from pyvswitch.lab.demo_team import TeamScene
from pyvswitch.lab.harness import answers, venv_bin
from pyvswitch.lab.traffic import Capture, IperfResult, PingResult, TrafficError, run_iperf3, run_ping
from pyvswitch.testing.netns import sh, unique, wait_for

log = logging.getLogger(__name__)

LAN_IP = "10.10.0.1"
HOST_VNIC_IP = "10.20.0.1/24"


@dataclass(frozen=True)
class DemoVm:
    short: str  # name shown to the user
    switch: str
    ip: str  # CIDR
    vlan: str | None  # CLI --vlan value

    @property
    def addr(self) -> str:
        return self.ip.split("/")[0]


VMS = (
    DemoVm("web01", "ext", "10.10.0.11/24", "access:10"),
    DemoVm("web02", "ext", "10.10.0.12/24", "access:10"),
    DemoVm("db01", "ext", "10.10.0.21/24", "access:20"),
    DemoVm("db02", "ext", "10.10.0.22/24", "access:20"),
    DemoVm("app01", "ext", "10.10.0.31/24", None),
    DemoVm("mon01", "int", "10.20.0.11/24", None),
)


@dataclass
class Check:
    pair: str
    src: str | None  # VM short name, or None for the management OS
    dst: str  # VM short name or "lan"
    expect_ok: bool
    why: str
    iperf: bool = False
    ping: PingResult | None = None
    tcp: IperfResult | None = None
    error: str = ""

    @property
    def ok(self) -> bool | None:
        return None if self.ping is None else self.ping.received > 0


CHECKS = (
    Check("web01 → web02", "web01", "web02", True, "same VLAN 10", iperf=True),
    Check("db01 → db02", "db01", "db02", True, "same VLAN 20", iperf=True),
    Check("web01 → db01", "web01", "db01", False, "VLAN 10 vs 20: isolated, though one IP subnet"),
    Check("db02 → web02", "db02", "web02", False, "VLAN 20 vs 10: isolated, though one IP subnet"),
    Check("host → mon01", None, "mon01", True, "Internal switch: management-OS vNIC to a VM", iperf=True),
    Check("app01 → LAN host", "app01", "lan", True, "untagged VM out of the uplink, untagged", iperf=True),
    Check(
        "web01 → LAN host",
        "web01",
        "lan",
        False,
        "uplink is a trunk: frames leave tagged VLAN 10; the LAN host is untagged",
    ),
)


class Demo:
    def __init__(self, console: Console) -> None:
        self.console = console
        self.tag = unique("")[-5:]  # short: VM names become namespace names and port names
        self.state = Path(tempfile.mkdtemp(prefix="pyvswitch-demo-"))
        self.socket = self.state / "pyvswitchd.sock"
        self.bin = venv_bin()
        self.daemon: subprocess.Popen[bytes] | None = None
        self.lan_ns = unique("pvdlan")
        self.uplink = unique("pvdup")
        self.lan_if = unique("pvdlanif")
        self.vm_names = {vm.short: f"{vm.short}-{self.tag}" for vm in VMS}
        self.netns: dict[str, str] = {}
        self.host_vnic = ""

    # ------------------------------------------------------------------ plumbing

    def cli(self, *args: str, show: bool = True, check: bool = True) -> subprocess.CompletedProcess[str]:
        if show:
            self.console.print(f"[bold cyan]$ pyvswitch {shlex.join(args)}[/bold cyan]")
        res = subprocess.run(
            [str(self.bin / "pyvswitch"), "--socket", str(self.socket), *args],
            capture_output=True,
            text=True,
            timeout=120,
        )
        if show and res.stdout.strip():
            self.console.print(res.stdout.rstrip(), markup=False, highlight=False)
        if check and res.returncode != 0:
            raise RuntimeError(f"pyvswitch {shlex.join(args)} -> {res.returncode}: {res.stderr.strip()}")
        if show and res.returncode != 0:
            self.console.print(f"[yellow]{res.stderr.strip()}[/yellow]")
        return res

    def cli_json(self, *args: str) -> Any:
        return json.loads(self.cli("--json", *args, show=False).stdout)

    def start_daemon(self) -> None:
        self.console.print(f"[bold]Starting pyvswitchd[/bold] (state {self.state}, socket {self.socket})")
        logf = open(self.state / "pyvswitchd.log", "ab")  # noqa: SIM115 - handed to the daemon, which may outlive us
        self.daemon = subprocess.Popen(
            # The guest image is kept where a later demo (and the tests) find it, not in this run's state dir.
            [
                str(self.bin / "pyvswitchd"),
                "--state-dir",
                str(self.state),
                "--socket",
                str(self.socket),
                "--guest-image-cache",
                str(DEFAULT_CACHE_DIR),
            ],
            stdout=logf,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # with keep=True it outlives this process and the terminal's Ctrl-C
        )
        logf.close()

        def healthy() -> bool:
            assert self.daemon is not None
            if self.daemon.poll() is not None:
                raise RuntimeError(f"pyvswitchd exited with {self.daemon.returncode}: {self.log_tail()}")
            return answers(self.socket)

        wait_for(healthy, timeout_s=30, what=f"pyvswitchd on {self.socket}")

    def log_tail(self) -> str:
        try:
            return (self.state / "pyvswitchd.log").read_text(errors="replace")[-1500:]
        except OSError:
            return ""

    def make_lan(self) -> None:
        """The 'physical LAN': a namespace with one untagged host, wired to the uplink veth."""
        sh("ip", "netns", "add", self.lan_ns)
        sh("ip", "link", "set", "lo", "up", netns=self.lan_ns)
        sh("ip", "link", "add", self.uplink, "type", "veth", "peer", "name", self.lan_if)
        sh("ip", "link", "set", self.lan_if, "netns", self.lan_ns)
        sh("ip", "addr", "add", f"{LAN_IP}/24", "dev", self.lan_if, netns=self.lan_ns)
        sh("ip", "link", "set", self.lan_if, "up", netns=self.lan_ns)
        sh("ip", "link", "set", self.uplink, "up")

    def set_host_vnic_ip(self) -> None:
        """Give the Internal switch's management-OS vNIC its address through the API (PATCH ports/int)."""
        self.console.print(f"[bold cyan]# management OS vNIC on 'int' gets {HOST_VNIC_IP}[/bold cyan]")
        with httpx.Client(transport=httpx.HTTPTransport(uds=str(self.socket)), timeout=30) as c:
            r = c.patch("http://pyvswitchd/v1/ports/int", json={"ip": [HOST_VNIC_IP]})
        if r.status_code >= 400:
            raise RuntimeError(f"PATCH /v1/ports/int -> {r.status_code}: {r.text}")
        port = self.cli_json("port", "show", "int")
        self.host_vnic = str(port.get("peer_interface") or "")

    # ------------------------------------------------------------------ the story

    def build(self) -> None:
        self.make_lan()
        self.start_daemon()
        c = self.console
        c.rule("Switches")
        self.cli("switch", "add", "ext", "--uplink", self.uplink, "--no-management-os")
        self.cli("switch", "add", "int", "--type", "internal")
        c.rule("VMs")
        for vm in VMS:
            args = ["vm", "add", self.vm_names[vm.short], "--switch", vm.switch, "--ip", vm.ip]
            if vm.vlan:
                args += ["--vlan", vm.vlan]
            self.cli(*args)
            data = self.cli_json("vm", "show", self.vm_names[vm.short])
            self.netns[vm.short] = str(data.get("netns") or self.vm_names[vm.short])
        self.set_host_vnic_ip()
        c.rule("Topology")
        self.cli("switch", "list")
        self.cli("vm", "list")
        self.cli("Get-VMNetworkAdapterVlan", check=False)

    def _dst_ip(self, dst: str) -> str:
        return LAN_IP if dst == "lan" else next(v.addr for v in VMS if v.short == dst)

    def _src_ns(self, src: str | None) -> str | None:
        return None if src is None else self.netns[src]

    def run_checks(self) -> list[Check]:
        self.console.rule("Traffic")
        # A fresh VM's first ping may race the switch applying its port; wait for one known-good path.
        with contextlib.suppress(TimeoutError):
            wait_for(
                lambda: run_ping(self.netns["web01"], self._dst_ip("web02"), count=1).received == 1,
                timeout_s=15,
                interval_s=0.2,
                what="web01 to reach web02",
            )
        results: list[Check] = []
        for spec in CHECKS:
            chk = Check(spec.pair, spec.src, spec.dst, spec.expect_ok, spec.why, spec.iperf)
            src_ns, dst_ip = self._src_ns(chk.src), self._dst_ip(chk.dst)
            tagged: int | None = None
            try:
                show_tags = chk.dst == "lan" and not chk.expect_ok
                cap = Capture(self.lan_ns, self.lan_if, "vlan 10") if show_tags else None
                try:
                    chk.ping = run_ping(src_ns, dst_ip, count=10, interval_s=0.1, reply_timeout_s=0.5)
                    if cap is not None:
                        with contextlib.suppress(TimeoutError):
                            cap.wait_lines(1, timeout_s=2)
                finally:
                    if cap is not None:
                        tagged = sum(1 for ln in cap.stop() if "vlan 10" in ln)
                if chk.iperf and chk.ok:
                    server_ns = self.lan_ns if chk.dst == "lan" else self.netns[chk.dst]
                    chk.tcp = run_iperf3(server_ns, src_ns, dst_ip, 2, port=5201)
            except (TrafficError, RuntimeError, TimeoutError) as exc:
                chk.error = str(exc)
            verdict = "[green]as expected[/green]" if chk.ok == chk.expect_ok else "[red]UNEXPECTED[/red]"
            self.console.print(
                f"{chk.pair:<18} ping {'ok  ' if chk.ok else 'fail'} ({chk.why}) — {verdict}"
                + (f"; LAN saw {tagged} frame(s) tagged VLAN 10" if tagged is not None else "")
            )
            results.append(chk)
        return results

    def summary(self, checks: list[Check]) -> bool:
        t = Table(title="pyvswitch demo — traffic between VMs")
        for col, just in (
            ("pair", "left"),
            ("expected", "left"),
            ("ping", "left"),
            ("loss %", "right"),
            ("RTT ms", "right"),
            ("TCP Gbit/s", "right"),
            ("verdict", "left"),
        ):
            t.add_column(col, justify=just)  # type: ignore[arg-type]
        all_good = True
        for chk in checks:
            good = chk.ok == chk.expect_ok and not (chk.iperf and chk.ok and chk.tcp is None)
            all_good &= good
            p = chk.ping
            t.add_row(
                chk.pair,
                "reach" if chk.expect_ok else "blocked",
                "ok" if chk.ok else ("fail" if p else "error"),
                f"{p.loss_pct:.0f}" if p else "—",
                f"{p.rtt_avg_ms:.3f}" if p and p.rtt_avg_ms is not None else "—",
                f"{chk.tcp.gbps:.2f}" if chk.tcp else "—",
                "[green]✓[/green]" if good else f"[red]✗ {(chk.error or 'unexpected')[:40]}[/red]",
            )
        self.console.print(t)
        return all_good

    # ------------------------------------------------------------------ teardown

    def cleanup(self) -> None:
        self.console.print("[dim]cleaning up…[/dim]")
        if self.daemon is not None and self.daemon.poll() is None:
            for name in self.vm_names.values():
                self.cli("vm", "del", name, show=False, check=False)
            for sw in ("ext", "int"):
                self.cli("switch", "del", sw, show=False, check=False)
            self.daemon.send_signal(
                signal.SIGINT
            )  # stop the forwarder too (SIGTERM keeps it for a successor)
            try:
                self.daemon.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.daemon.kill()
                self.daemon.wait(timeout=10)
        # Whatever the daemon did not remove (it failed, or never started).
        for name in {*self.vm_names.values(), *self.netns.values(), self.lan_ns}:
            subprocess.run(["ip", "netns", "del", name], capture_output=True)
        for link in (self.uplink, self.host_vnic):
            if link:
                subprocess.run(["ip", "link", "del", link], capture_output=True)
        shutil.rmtree(self.state, ignore_errors=True)

    def explain_kept(self, extra: tuple[list[str], list[str]] = ([], [])) -> None:
        """How to use and remove what is left running; ``extra`` = a scene's own (use, remove) lines."""
        pid = self.daemon.pid if self.daemon else "?"
        s = shlex.quote(str(self.socket))
        lines = [
            f"export PYVSWITCH_SOCKET={s}",
            "pyvswitch switch list; pyvswitch vm list; pyvswitch fdb show ext; pyvswitch counters",
            f"ip netns exec {self.netns.get('web01', '?')} ping {self._dst_ip('web02')}",
            *extra[0],
            "# remove everything:",
            *extra[1],
            *(f"pyvswitch vm del {n}" for n in self.vm_names.values()),
            "pyvswitch switch del ext; pyvswitch switch del int",
            f"kill {pid}; ip netns del {self.lan_ns}; ip link del {self.uplink} 2>/dev/null; rm -rf {shlex.quote(str(self.state))}",
        ]
        self.console.print("[bold]Left running.[/bold] To use it and to remove it:")
        for ln in lines:
            self.console.print(f"  {ln}", markup=False, highlight=False)


def run_demo(keep: bool, console: Console | None = None) -> int:
    """Build, show, exercise and (unless ``keep``) remove the demo host. 0 when every check behaved as
    stated, 1 when one did not, 2 when the demo cannot run here. ``console``: where the show goes."""
    console = console or Console()
    if os.geteuid() != 0:
        console.print("[red]the demo needs root (namespaces, veths)[/red]")
        return 2
    missing = [t for t in ("ip", "ping", "iperf3", "tcpdump") if shutil.which(t) is None]
    if missing:
        console.print(f"[red]missing tools: {', '.join(missing)} (run `make setup`)[/red]")
        return 2
    demo = Demo(console)
    team: TeamScene | None = None
    qos: QosScene | None = None
    iov: IovScene | None = None
    guest: GuestScene | None = None
    cluster: ClusterScene | None = None
    kept = False
    try:
        demo.build()
        good = demo.summary(demo.run_checks())
        scene = SecurityScene(console, demo.cli, demo.cli_json, demo.netns, demo.vm_names)
        good &= scene.table(scene.run({v.short: v.addr for v in VMS}))
        team = TeamScene(console, demo.cli, demo.cli_json, demo.tag)
        good &= team.table(team.run())
        qos = QosScene(console, demo.cli, demo.cli_json, demo.tag)
        good &= qos.table(qos.run())
        guest = GuestScene(console, demo.cli, demo.cli_json, demo.tag)
        good &= guest.table(guest.run())
        iov = IovScene(console, demo.tag)
        good &= iov.table(iov.run())
        cluster = ClusterScene(console, demo.tag)
        good &= cluster.table(cluster.run())
        console.print(
            "[green]All checks behaved as stated.[/green]"
            if good
            else "[red]Some checks did not behave as stated.[/red]"
        )
        if keep:
            t_use, t_remove = team.kept_lines()
            q_use, q_remove = qos.kept_lines()
            i_use, i_remove = iov.kept_lines()
            g_use, g_remove = guest.kept_lines()
            c_use, c_remove = cluster.kept_lines()
            demo.explain_kept(
                (t_use + q_use + g_use + i_use + c_use, t_remove + q_remove + g_remove + i_remove + c_remove)
            )
            kept = True
        return 0 if good else 1
    except KeyboardInterrupt:
        console.print("[yellow]interrupted[/yellow]")
        return 130
    except (RuntimeError, TimeoutError, OSError) as exc:
        console.print(f"[red]demo failed: {exc}[/red]")
        tail = demo.log_tail()
        if tail:
            console.print(f"[dim]pyvswitchd log (tail):\n{tail}[/dim]", markup=False, highlight=False)
        return 1
    finally:
        if not kept:
            if cluster is not None:
                cluster.cleanup()  # its own lab: daemons, etcd, namespaces and state
            if iov is not None:
                iov.cleanup()  # its own lab: daemons, namespaces and state
            if guest is not None:
                guest.cleanup()  # through the daemon: QEMU stopped, TAP removed
            if qos is not None:
                qos.cleanup()  # through the daemon, before demo.cleanup stops it
            if team is not None:
                team.cleanup()
            demo.cleanup()
