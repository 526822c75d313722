"""The demo's QoS scene (issue 5 item 6): three VMs with minimum-bandwidth weights 1:2:5 saturating a 1 Gbit/s
uplink, then the weight-5 VM stops and the other two absorb its share; a VM capped with MaximumBandwidth.

Topology (names get the demo's per-run suffix, or are unique per call)::

    "LAN" namespace 10.40.0.1 ──veth── extqos (External, uplink --link-speed 1G, no host vNIC)
                                         ├── bronze 10.40.0.11  MinimumBandwidthWeight 1
                                         ├── silver 10.40.0.12  MinimumBandwidthWeight 2
                                         ├── gold   10.40.0.13  MinimumBandwidthWeight 5
                                         └── capped 10.40.0.14  MaximumBandwidth 100M

veth is unbounded; the uplink's line rate (``--link-speed 1G``) is what the egress scheduler enforces, so the
three VMs contend there as they would for a real 1 Gbit/s NIC. The expected share of a backlogged sender is
its weight over the weights of the senders that are sending (hyperv-networking.md §5.3: guarantees are
w / (sum + default flow), and idle ones — the default flow's, a stopped VM's — are redistributed by weight).
Rates are iperf3's, measured at the LAN host (lab/qos.py). A share or a cap off by more than 10 % of its
expected value, or a link used below 90 %, fails the scene and with it the demo.
"""

from __future__ import annotations

import shlex
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from rich.console import Console
from rich.table import Table

from pyvswitch.lab.qos import Flow, FlowResult, LanHost, run_flows, shares, weighted_expectation
from pyvswitch.testing.netns import sh, wait_for

LAN_IP = "10.40.0.1"
SWITCH = "extqos"
LINK = "1G"
LINK_MBPS = 1000.0
WEIGHTS = {"bronze": 1, "silver": 2, "gold": 5}
STOPS = "gold"
CAP = "100M"
CAP_MBPS = 100.0
PHASE_S = 4.0  # all three, then the two that remain
CAP_S = 4.0
TOLERANCE = 0.10  # relative, on shares and on the cap
MIN_UTILISATION = 0.90


@dataclass
class QosCheck:
    what: str
    configured: str
    expected: str
    measured: str
    ok: bool


def share_check(what: str, configured: str, expected: float, measured: float, mbps: float) -> QosCheck:
    ok = abs(measured - expected) <= TOLERANCE * expected
    return QosCheck(what, configured, f"{expected:.1%}", f"{measured:.1%} ({mbps:.0f} Mbit/s)", ok)


class QosScene:
    """Runs against a running daemon: ``cli(*args, show=..., check=...)`` returning a CompletedProcess and
    printing what it runs, ``cli_json(*args)``; ``tag`` is the demo's name suffix."""

    def __init__(self, console: Console, cli: Callable[..., subprocess.CompletedProcess[str]],
                 cli_json: Callable[..., Any], tag: str) -> None:  # fmt: skip
        self.console = console
        self.cli = cli
        self.cli_json = cli_json
        self.lan = LanHost(LAN_IP, prefix="pvdq")
        self.vms = {name: f"{name}-{tag}" for name in (*WEIGHTS, "capped")}
        self.netns: dict[str, str] = {}
        self.created = False

    def comment(self, text: str) -> None:
        self.console.print(f"[bold cyan]# {text}[/bold cyan]", highlight=False)

    def build(self) -> None:
        self.comment(f"the 'LAN': namespace {self.lan.ns}, host {LAN_IP}, behind a {LINK}bit/s uplink")
        self.lan.build()
        self.created = True
        self.cli(
            "switch", "add", SWITCH, "--uplink", self.lan.uplink, "--link-speed", LINK, "--no-management-os"
        )
        for i, name in enumerate(self.vms):
            vm = self.vms[name]
            self.cli("vm", "add", vm, "--switch", SWITCH, "--ip", f"10.40.0.{11 + i}/24", show=False)
            if name in WEIGHTS:
                self.cli("Set-VMNetworkAdapter", "-VMName", vm, "-MinimumBandwidthWeight", str(WEIGHTS[name]))
            else:
                self.cli("Set-VMNetworkAdapter", "-VMName", vm, "-MaximumBandwidth", CAP)
            self.netns[name] = str(self.cli_json("vm", "show", vm).get("netns") or vm)
        for name, ns in self.netns.items():

            def reaches(ns: str = ns) -> bool:
                return "1 received" in sh("ping", "-c", "1", "-W", "1", LAN_IP, netns=ns, check=False)

            wait_for(reaches, timeout_s=15, interval_s=0.2, what=f"{name} to reach {LAN_IP}")

    def run(self) -> list[QosCheck]:
        c = self.console
        c.rule("QoS")
        self.build()
        checks: list[QosCheck] = []

        # Weights: all three for PHASE_S, then the weight-5 VM stops and the others go on for PHASE_S.
        names = list(WEIGHTS)
        self.comment(f"{', '.join(names)} send TCP to {LAN_IP} together for {PHASE_S:g} s; then {STOPS} stops "
                     f"and the other two go on for {PHASE_S:g} s")  # fmt: skip
        flows = [
            Flow(n, self.netns[n], 5401 + i, PHASE_S if n == STOPS else 2 * PHASE_S)
            for i, n in enumerate(names)
        ]
        res = run_flows(self.lan.ns, LAN_IP, flows)
        self.cli("qos", "show", SWITCH)
        errors = [f"{n}: {r.error}" for n, r in res.items() if r.error]
        if errors:
            checks.append(QosCheck("iperf3", "", "", "; ".join(errors)[:80], False))
            return checks
        checks += self._phase("all three", res, names, 1.0, PHASE_S - 0.1)
        rest = [n for n in names if n != STOPS]
        checks += self._phase(f"{STOPS} stopped", res, rest, PHASE_S + 1.0, 2 * PHASE_S - 0.1)

        # The cap: alone on the link, far below it.
        self.comment(f"capped (MaximumBandwidth {CAP}) sends TCP alone for {CAP_S:g} s")
        cap = run_flows(self.lan.ns, LAN_IP, [Flow("capped", self.netns["capped"], 5411, CAP_S)])["capped"]
        mbps = cap.median_mbps(1.0, CAP_S) if not cap.error else 0.0
        checks.append(QosCheck("capped", f"MaximumBandwidth {CAP}", f"{CAP_MBPS:.0f} Mbit/s",
                               f"{mbps:.1f} Mbit/s" if not cap.error else cap.error[:60],
                               abs(mbps - CAP_MBPS) <= TOLERANCE * CAP_MBPS))  # fmt: skip
        return checks

    def _phase(
        self, label: str, res: dict[str, FlowResult], names: list[str], t0: float, t1: float
    ) -> list[QosCheck]:
        rates = {n: res[n].mbps(t0, t1) for n in names}
        got = shares(rates)
        expected = weighted_expectation({n: float(WEIGHTS[n]) for n in names})
        out = [
            share_check(f"{label}: {n}", f"weight {WEIGHTS[n]}", expected[n], got[n], rates[n]) for n in names
        ]
        total = sum(rates.values())
        out.append(QosCheck(f"{label}: link", f"{LINK}bit/s", f">= {MIN_UTILISATION:.0%} used",
                            f"{total / LINK_MBPS:.1%} ({total:.0f} Mbit/s)",
                            total >= MIN_UTILISATION * LINK_MBPS))  # fmt: skip
        return out

    def table(self, checks: list[QosCheck]) -> bool:
        t = Table(title=f"pyvswitch demo — QoS on a {LINK}bit/s uplink (shares within ±{TOLERANCE:.0%})")
        for col, just in (("what", "left"), ("configured", "left"), ("expected", "right"),
                          ("measured (iperf3)", "right"), ("verdict", "left")):  # fmt: skip
            t.add_column(col, justify=just)  # type: ignore[arg-type]
        for chk in checks:
            t.add_row(chk.what, chk.configured, chk.expected, chk.measured,
                      "[green]✓[/green]" if chk.ok else "[red]✗ FAIL[/red]")  # fmt: skip
        self.console.print(t)
        return bool(checks) and all(chk.ok for chk in checks)

    def cleanup(self) -> None:
        """Remove the VMs and the switch (through the daemon, while it runs), then the LAN."""
        if self.created:
            for vm in self.vms.values():
                try:
                    self.cli("vm", "del", vm, show=False, check=False)
                except (OSError, subprocess.SubprocessError):
                    pass
            try:
                self.cli("switch", "del", SWITCH, show=False, check=False)
            except (OSError, subprocess.SubprocessError):
                pass
        for ns in {*self.vms.values(), *self.netns.values()}:
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)
        self.lan.close()

    def kept_lines(self) -> tuple[list[str], list[str]]:
        """How to use what is left running (``--keep``), and how to remove it."""
        gold = self.netns.get("gold", self.vms["gold"])
        lines = [
            f"pyvswitch qos show {SWITCH}; pyvswitch Get-VMSwitch {SWITCH}",
            f"ip netns exec {self.lan.ns} iperf3 -s -D; ip netns exec {shlex.quote(gold)} iperf3 -c {LAN_IP}",
        ]
        removal = [
            "; ".join(f"pyvswitch vm del {vm}" for vm in self.vms.values())
            + f"; pyvswitch switch del {SWITCH}",
            f"ip netns del {self.lan.ns}; ip link del {self.lan.uplink} 2>/dev/null",
        ]
        return lines, removal
