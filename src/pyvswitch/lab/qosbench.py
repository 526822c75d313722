"""What the QoS scheduler costs (issue 5): forwarding rate with QoS off vs on, the Linux bridge for the ratio.

One harness (lab/harness.py: h1 — fw — h2, generator/iperf3 CPU and forwarder CPU pinned as in ``make bench``),
three forwarders measured in interleaved repetitions so that drift on a noisy machine hits all alike:

* ``linux-bridge``: the kernel's bridge, the reference;
* ``pyvswitch``: pyvswitchd with an External switch whose uplink is fw2 and an interface port on fw1 (the "VM"
  side) — QoS off: no link speed, no weights, no policies, so no egress scheduler exists;
* ``pyvswitch-qos``: the same, with the uplink's ``--link-speed 100G`` (far above what this machine forwards, so
  the scheduler never binds and what is measured is its cost, not its shaping) and a MinimumBandwidthWeight on
  the VM-side port: every frame to the LAN goes through the egress scheduler's enqueue and pull.

The flow is TCP h1 -> h2 (VM -> LAN through the uplink), one stream, kernel default offloads on (TSO/GSO: the
regime the scheduler sees in practice, ~64 KiB frames), ``--seconds`` each, medians of ``--reps``. The QoS run is
checked to have gone through the scheduler (``qos show``: the uplink's sent bytes grew).

    python -m pyvswitch.lab.qosbench [--reps 3] [--seconds 5] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from pyvswitch.lab.harness import Forwarder, Harness, LinuxBridge, PyvswitchForwarder, tools_missing
from pyvswitch.lab.traffic import TrafficError, run_iperf3

QOS_LINK_SPEED = "100G"
VM_WEIGHT = "5"


class UplinkForwarder(PyvswitchForwarder):
    """pyvswitchd in ``fw``: External switch ``sw`` with uplink fw2 and interface port ``vm`` on fw1; with
    ``qos``, the uplink has a line rate and the VM side a weight."""

    def __init__(self, qos: bool) -> None:
        super().__init__()
        self.qos = qos
        self.name = "pyvswitch-qos" if qos else "pyvswitch"

    def configure(self, harness: Harness) -> None:
        link = ["--link-speed", QOS_LINK_SPEED] if self.qos else []
        self.cli("switch", "add", "sw", "--uplink", harness.fw_ifs[1], "--no-management-os", *link)
        self.cli("port", "add", "vm", "--interface", harness.fw_ifs[0], "--switch", "sw")
        if self.qos:
            self.cli("port", "set", "vm", "--min-weight", VM_WEIGHT)

    def scheduled_bytes(self) -> int:
        """Bytes the uplink's egress scheduler sent (0 without one)."""
        data = json.loads(self.cli("--json", "qos", "show", "sw"))
        if isinstance(data, list):
            data = data[0]
        return int(sum(int(c.get("sent_bytes", 0)) for c in data.get("classes", [])))


def run(reps: int, seconds: float, json_path: str | None) -> int:
    console = Console()
    if os.geteuid() != 0:
        console.print("[red]needs root (namespaces, veths, ethtool)[/red]")
        return 2
    missing = tools_missing()
    if missing:
        console.print(f"[red]missing tools: {', '.join(missing)} (run `make setup`)[/red]")
        return 2
    fwds: list[Forwarder] = [LinuxBridge(), UplinkForwarder(qos=False), UplinkForwarder(qos=True)]
    gbps: dict[str, list[float]] = {f.name: [] for f in fwds}
    errors: list[str] = []
    started = time.time()
    with Harness() as h:
        assert h.h1 is not None and h.h2 is not None
        cpu = h.gen_cpu
        console.print(
            f"harness {h.namespaces} — iperf3 CPU {cpu}, forwarder CPU {h.fwd_cpu}; {reps} x {seconds:g} s"
        )
        for rep in range(reps):
            for fwd in fwds:
                fwd.start(h)
                try:
                    h.set_offloads(True)
                    res = run_iperf3(h.h2.netns, h.h1.netns, h.h2.ip, seconds, server_cpu=cpu, client_cpu=cpu)
                    gbps[fwd.name].append(res.gbps)
                    note = ""
                    if isinstance(fwd, UplinkForwarder):
                        sched = fwd.scheduled_bytes()
                        note = f", {sched / 1e9:.2f} GB through the egress scheduler"
                        if fwd.qos and sched < res.bytes_received // 2:
                            errors.append(
                                f"rep {rep + 1}: QoS run's traffic did not go through the scheduler"
                            )
                        if not fwd.qos and sched:
                            errors.append(f"rep {rep + 1}: a scheduler ran with QoS off")
                    console.print(f"  [dim]{fwd.name} rep {rep + 1}: {res.gbps:.2f} Gbit/s{note}[/dim]")
                except (TrafficError, RuntimeError, TimeoutError) as exc:
                    errors.append(f"{fwd.name} rep {rep + 1}: {exc}")
                    console.print(f"  [red]{fwd.name} rep {rep + 1}: {exc}[/red]")
                finally:
                    fwd.stop()
    med = {k: statistics.median(v) if v else None for k, v in gbps.items()}
    t = Table(
        title=f"QoS scheduler overhead — TCP VM -> LAN through the uplink, offloads on, medians of {reps}"
    )
    for col in ("forwarder", "Gbit/s (median)", "runs", "vs bridge", "vs QoS off"):
        t.add_column(col, justify="left" if col == "forwarder" else "right")
    bridge, off = med.get("linux-bridge"), med.get("pyvswitch")
    for name, m in med.items():
        t.add_row(
            name,
            f"{m:.2f}" if m is not None else "—",
            ", ".join(f"{g:.2f}" for g in gbps[name]),
            f"{m / bridge:.2f}x" if m is not None and bridge else "—",
            f"{m / off:.2f}x" if m is not None and off and name.startswith("pyvswitch") else "—",
        )
    console.print(t)
    for e in errors:
        console.print(f"[red]{e}[/red]")
    console.print(f"[dim]{time.time() - started:.0f} s[/dim]")
    if json_path:
        doc: dict[str, Any] = {"gbps": gbps, "medians": med, "errors": errors, "link_speed": QOS_LINK_SPEED,
                               "seconds": seconds, "reps": reps}  # fmt: skip
        Path(json_path).write_text(json.dumps(doc, indent=2))
        console.print(f"wrote {json_path}")
    return 1 if errors else 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m pyvswitch.lab.qosbench", description=__doc__.split("\n")[0])
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--json", dest="json_path")
    a = ap.parse_args(argv)
    try:
        return run(a.reps, a.seconds, a.json_path)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
