"""The demo's teaming scene (issue 4): a 2-member NIC team as an External switch's adapter, one member's cable
pulled while a VM streams UDP to a LAN host, the gap measured, the member plugged back in.

Topology (names get the demo's per-run suffix, or are unique per call)::

    "physical switch" namespace                               pyvswitchd (the demo's)
      br0 10.30.0.1 (the LAN host)                              team1 = member A + member B
      bond0 = eth1 + eth2 ──veth── member A ─┐                  (New-NetLbfoTeam, TransportPorts)
                        └──veth── member B ─┴─ team1 ── extteam (External) ── stream01 10.30.0.11

With Open vSwitch installed (``make setup`` installs it), the physical switch is OVS (userspace datapath) with an
LACP bond (active, fast) and the team is ``-TeamingMode Lacp``; ``pyvswitch team show`` then prints each
member's LACP actor/partner state. Without it, the switch is a Linux bridge and the team SwitchIndependent; the
bridge's two team-facing ports are isolated from each other (``bridge link set ... isolated on``) so that it
never floods a frame from one member back into the other: the scene measures failover, and leaves the
reflection rules of switch-independent teams (TM-06) to the team's own tests.

The cable is pulled at the switch (``ip link set ethN down`` in its namespace), so our member loses carrier,
as failover.py's ``--cut switch`` does. The measurement is failover.py's: UDP at 10,000 packets/s numbered by
the sender, the receiver's longest gap between arrivals and the packets lost. The scene fails if the gap
exceeds 500 ms, if traffic does not resume, or if the team does not re-aggregate.
"""

from __future__ import annotations

import re
import shlex
import subprocess
import time
from collections.abc import Callable
from typing import Any

from rich.console import Console

import pyvswitch.testing.ovs as ovs_peer
from pyvswitch.lab.failover import UdpGap, UdpStream, carrying_member, ovs_member_states, wait_aggregated
from pyvswitch.lab.verdict import SceneCheck, print_checks
from pyvswitch.testing.netns import sh, unique, wait_for

LAN_IP = "10.30.0.1"
VM_IP = "10.30.0.11/24"
TEAM = "team1"
SWITCH = "extteam"
RATE = 10_000  # UDP packets/s, the figure
SECONDS = 3.0  # the stream; the cable is pulled a third of the way in
MAX_GAP_MS = 500.0


def failover_check(gap: UdpGap, max_gap_ms: float = MAX_GAP_MS) -> SceneCheck:
    """The verdict on the stream across the cut: it resumed, and its longest gap is within ``max_gap_ms``."""
    if not gap.recovered:
        observed = f"stream never resumed: {gap.received:,} of {gap.sent:,} arrived"
    else:  # the longest gap anywhere in the stream: the conservative figure
        observed = f"gap {gap.gap_ms:.1f} ms, {gap.lost:,} of {gap.sent:,} lost"
    return SceneCheck(f"cable pulled mid-stream ({RATE:,} UDP packets/s)",
                     f"traffic moves to the survivor within {max_gap_ms:.0f} ms", observed,
                     gap.recovered and gap.gap_ms <= max_gap_ms)  # fmt: skip


class PhysicalSwitch:
    """The 'physical switch' namespace and the two cables (veth pairs) to our team's members."""

    def __init__(self, use_ovs: bool) -> None:
        self.ns = unique("pvdsw")
        self.members = [unique("pvdtm"), unique("pvdtm")]  # our ends; the switch's are eth1, eth2
        self.ovs: ovs_peer.Ovs | None = ovs_peer.Ovs(self.ns) if use_ovs else None

    @property
    def kind(self) -> str:
        return "Open vSwitch, bond0 = eth1+eth2, LACP active/fast" if self.ovs else "Linux bridge br0"

    def port(self, i: int) -> str:
        return f"eth{i + 1}"

    def build(self) -> None:
        ns = self.ns
        sh("ip", "netns", "add", ns)
        sh("ip", "link", "set", "lo", "up", netns=ns)
        for scope in ("all", "default"):  # a quiet LAN host: no router solicitations or DAD in the stream
            sh("sysctl", "-qw", f"net.ipv6.conf.{scope}.disable_ipv6=1", netns=ns)
        for i, m in enumerate(self.members):
            sh("ip", "link", "add", m, "type", "veth", "peer", "name", self.port(i), "netns", ns)
            sh("ip", "link", "set", self.port(i), "up", netns=ns)
            sh("ip", "link", "set", m, "up")
        if self.ovs is not None:
            # OVS reads the veths with AF_PACKET and would forward partially checksummed frames as they are
            # (failover.py's docstring); and the switch's own ports must not answer ARP for br0's address.
            for m in self.members:
                sh("ethtool", "-K", m, "tx", "off", check=False)
            sh("sysctl", "-qw", "net.ipv4.conf.all.arp_ignore=1", netns=ns)
            self.ovs.start()
            self.ovs.lacp_bond([self.port(0), self.port(1)], f"{LAN_IP}/24")
            return
        sh("ip", "link", "add", "br0", "type", "bridge", netns=ns)
        for i in range(2):
            sh("ip", "link", "set", self.port(i), "master", "br0", netns=ns)
            sh("bridge", "link", "set", "dev", self.port(i), "isolated", "on", netns=ns)
        sh("ip", "addr", "add", f"{LAN_IP}/24", "dev", "br0", netns=ns)
        sh("ip", "link", "set", "br0", "up", netns=ns)

    def cable_command(self, i: int, up: bool) -> list[str]:
        return ["ip", "netns", "exec", self.ns, "ip", "link", "set", self.port(i), "up" if up else "down"]

    def set_cable(self, i: int, up: bool) -> None:
        sh(*self.cable_command(i, up))

    def view(self) -> str:
        """The switch's own view of its two ports, one line."""
        if self.ovs is not None:
            states = ovs_member_states(self.ovs)
            return "ovs-appctl lacp/show bond0: " + ", ".join(f"{k} {v}" for k, v in sorted(states.items()))
        out = sh("bridge", "link", "show", netns=self.ns)
        ports = re.findall(r"\d+: (eth\d)@\S+ .*? state (\w+)", out)
        return "bridge link show: " + ", ".join(f"{k} {v}" for k, v in sorted(ports))

    def attached(self) -> bool:
        return self.ovs is None or all(s == "current attached" for s in ovs_member_states(self.ovs).values())

    def close(self) -> None:
        if self.ovs is not None:
            self.ovs.close()
        pids = subprocess.run(["ip", "netns", "pids", self.ns], capture_output=True, text=True).stdout.split()
        for pid in pids:
            subprocess.run(["kill", "-9", pid], capture_output=True)
        subprocess.run(["ip", "netns", "del", self.ns], capture_output=True)
        for m in self.members:
            subprocess.run(["ip", "link", "del", m], capture_output=True)


class TeamScene:
    """Runs against a running daemon: ``cli(*args, show=..., check=...)`` returning a CompletedProcess and
    printing what it runs, ``cli_json(*args)``; ``tag`` is the demo's name suffix."""

    def __init__(self, console: Console, cli: Callable[..., subprocess.CompletedProcess[str]],
                 cli_json: Callable[..., Any], tag: str, use_ovs: bool | None = None) -> None:  # fmt: skip
        self.console = console
        self.cli = cli
        self.cli_json = cli_json
        self.switch = PhysicalSwitch(ovs_peer.available() if use_ovs is None else use_ovs)
        self.lacp = self.switch.ovs is not None
        self.vm = f"stream01-{tag}"
        self.vm_ns = self.vm
        self.created = False

    # ---- helpers ----

    def members(self) -> list[dict[str, Any]]:
        return list(self.cli_json("team", "show", TEAM)["status"]["members"])

    def active(self) -> list[bool]:
        return [bool(m["active"]) for m in self.members()]

    def tx(self) -> list[int]:
        return [int(m["counters"]["tx_frames"]) for m in self.members()]

    def comment(self, text: str) -> None:
        self.console.print(f"[bold cyan]# {text}[/bold cyan]", highlight=False)

    def shell(self, cmd: list[str], why: str) -> None:
        self.console.print(
            f"[bold cyan]$ {shlex.join(cmd)}[/bold cyan]   [dim]# {why}[/dim]", highlight=False
        )

    def reachable(self) -> bool:
        out = sh("ping", "-c", "1", "-W", "1", LAN_IP, netns=self.vm_ns, check=False)
        return " 0% packet loss" in out

    # ---- the story ----

    def run(self) -> list[SceneCheck]:
        c, sw = self.console, self.switch
        c.rule("Teaming")
        self.comment(f"the 'physical switch': namespace {sw.ns}, {sw.kind}, LAN host {LAN_IP} on its bridge")
        sw.build()
        mode = (
            ["-TeamingMode", "Lacp", "-LacpTimer", "Fast"]
            if self.lacp
            else ["-TeamingMode", "SwitchIndependent"]
        )
        self.created = True
        self.cli("New-NetLbfoTeam", "-Name", TEAM, "-TeamMembers", ",".join(sw.members), *mode,
                 "-LoadBalancingAlgorithm", "TransportPorts")  # fmt: skip
        self.cli("New-VMSwitch", "-Name", SWITCH, "-NetAdapterName", TEAM, "-AllowManagementOS:false")
        self.cli("vm", "add", self.vm, "--switch", SWITCH, "--ip", VM_IP)
        self.vm_ns = str(self.cli_json("vm", "show", self.vm).get("netns") or self.vm)

        checks: list[SceneCheck] = []
        expected = (
            "both members collecting+distributing, attached at OVS" if self.lacp else "both members active"
        )
        try:
            took = wait_aggregated(self.active, sw.ovs, timeout_s=20)
            wait_for(self.reachable, timeout_s=15, what=f"the VM to reach {LAN_IP}")
        except (TimeoutError, RuntimeError) as exc:
            checks.append(SceneCheck("team comes up", expected, str(exc)[:60], False))
            self.cli("team", "show", TEAM, check=False)
            return checks
        what = "LACP with the physical switch" if self.lacp else "team comes up"
        checks.append(SceneCheck(what, expected, f"in {took:.1f} s; the VM reaches the LAN host", True))
        self.cli("team", "show", TEAM)
        c.print(f"physical switch — {sw.view()}", highlight=False)

        # The stream, and the cable of the member carrying it pulled a third of the way in.
        self.comment(f"{self.vm} streams UDP to {LAN_IP} at {RATE:,} packets/s for {SECONDS:g} s; "
                     "a third of the way in, the cable of the member carrying it is pulled")  # fmt: skip
        stream = UdpStream(self.vm_ns, sw.ns, LAN_IP, RATE, SECONDS)
        try:
            before = self.tx()
            stream.start()
            time.sleep(SECONDS / 3)
            victim = carrying_member(self.tx, before)
            self.shell(sw.cable_command(victim, False), f"pull {sw.members[victim]}'s cable at the switch")
            cut_at = time.monotonic()
            sw.set_cable(victim, False)
            gap = stream.finish()
        finally:
            stream.kill()
        resumed = gap.recovered
        c.print(
            f"gap at the cut {gap.gap_near(cut_at):.1f} ms; longest gap in the whole stream {gap.gap_ms:.1f} ms "
            f"(it began {(gap.gap_at - cut_at) * 1000:+.0f} ms from the cut); {gap.lost:,} of {gap.sent:,} packets "
            "lost; " + ("[green]the stream resumed on the other member[/green]" if resumed
                        else "[red]it never resumed[/red]"), highlight=False)  # fmt: skip
        checks.append(failover_check(gap))

        self.cli("team", "show", TEAM)
        c.print(f"physical switch — {sw.view()}", highlight=False)
        members = self.members()
        moved = not members[victim]["up"] and not members[victim]["active"] and members[1 - victim]["active"]
        checks.append(SceneCheck("team after the cut", "member down, the other carries",
                                f"{sw.members[victim]} down, {sw.members[1 - victim]} active" if moved
                                else ", ".join(f"{m['name']} up={m['up']} active={m['active']}" for m in members),
                                moved))  # fmt: skip

        # Plugged back in: the member rejoins (LACP re-negotiates) and the team carries on both again.
        self.shell(sw.cable_command(victim, True), "plug it back in")
        sw.set_cable(victim, True)
        try:
            took = wait_aggregated(self.active, sw.ovs, timeout_s=20)
            wait_for(self.reachable, timeout_s=10, what=f"the VM to reach {LAN_IP}")
            back = SceneCheck("cable plugged back in", "re-aggregates, both members carry",
                             f"re-aggregated in {took:.1f} s", True)  # fmt: skip
        except (TimeoutError, RuntimeError) as exc:
            back = SceneCheck(
                "cable plugged back in", "re-aggregates, both members carry", str(exc)[:60], False
            )
        self.cli("team", "show", TEAM, check=False)
        c.print(f"physical switch — {sw.view()}", highlight=False)
        checks.append(back)
        return checks

    def table(self, checks: list[SceneCheck]) -> bool:
        return print_checks(
            self.console,
            f"pyvswitch demo — NIC teaming ({'LACP' if self.lacp else 'SwitchIndependent'})",
            checks,
        )

    # ---- teardown ----

    def cleanup(self) -> None:
        """Remove the VM, switch and team (through the daemon, while it runs), then the physical switch."""
        if self.created:
            for args in (("vm", "del", self.vm), ("switch", "del", SWITCH), ("team", "del", TEAM)):
                try:
                    self.cli(*args, show=False, check=False)
                except (OSError, subprocess.SubprocessError):
                    pass
        subprocess.run(["ip", "netns", "del", self.vm_ns], capture_output=True)
        self.switch.close()

    def kept_lines(self) -> tuple[list[str], list[str]]:
        """How to use what is left running (``--keep``), and how to remove it."""
        sw = self.switch
        lines = [f"pyvswitch team show {TEAM}; ip netns exec {self.vm_ns} ping {LAN_IP}",
                 f"ip netns exec {sw.ns} ip link set eth1 down   # pull a cable; 'up' plugs it back"]  # fmt: skip
        removal = [f"pyvswitch vm del {self.vm}; pyvswitch switch del {SWITCH}; pyvswitch team del {TEAM}"]
        if sw.ovs is not None:
            d = shlex.quote(str(sw.ovs.dir))
            removal.append(f"kill $(cat {d}/vswitchd.pid) $(cat {d}/ovsdb.pid); rm -rf {d}")
        removal.append(f"ip netns del {sw.ns}; ip link del {sw.members[0]} 2>/dev/null; "
                       f"ip link del {sw.members[1]} 2>/dev/null")  # fmt: skip
        return lines, removal
