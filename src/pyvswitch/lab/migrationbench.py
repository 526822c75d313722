"""Live-migration blackout under load (issue 6): a VM moves between two lab hosts while pinged every 1 ms.

One lab (``lab.hosts``: two pyvswitchd hosts on one LAN bridge, a LAN host). A VM on hostA has a stateful
firewall policy that admits inbound only what is established (Allow Inbound ICMP for the ping, Allow Outbound
TCP stateful, Deny Inbound the rest), and an iperf3 flow from the LAN host to the VM runs across every move
(the VM's client connects out, the LAN host sends: ``-R``), so the migrated connection is admitted on the
destination only if the firewall's connection table came along. Each run migrates the VM to the other host
while the LAN host pings it every millisecond; the blackout of a run is the longest gap between two ping
replies (receive timestamps of fping, lab/traffic.GapPinger), up to the end of the run. The medians of the runs are reported with the daemon's own
control-plane timings (validation, blackout, total), and whether the TCP flow survived all the moves; then the
same number of moves with only the pings running (the switch-over's cost without CPUs saturated by the flow).

``python -m pyvswitch.lab.migrationbench --runs 5`` (``make bench-migration``); needs root, iperf3 and fping.
"""

from __future__ import annotations

import argparse
import json
import shlex
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from pyvswitch.lab.hosts import Lab, LabHost
from pyvswitch.lab.traffic import GapPinger
from pyvswitch.testing.netns import unique

PING_INTERVAL_MS = 1
SETTLE_S = 0.5  # ping before and after each move, so the gap is measured between steady states


@dataclass(frozen=True, slots=True)
class Run:
    src: str
    dst: str
    gap_s: float  # longest interval between two ping replies
    lost: int  # echo requests without a reply
    validation_s: float
    blackout_s: float  # the daemon's measure: ports off the source -> destination answered
    total_s: float
    phases_s: dict[str, Any]  # the daemon's per-step durations (source's blackout steps, destination's)


def firewall(host: LabHost, vm: str) -> None:
    """Admit inbound only ICMP and what the VM's own connections established."""
    xacl = ["Add-VMNetworkAdapterExtendedAcl", "-VMName", vm]
    host.cli(*xacl, "-Action", "Deny", "-Direction", "Inbound", "-Weight", "1")
    host.cli(*xacl, "-Action", "Allow", "-Direction", "Inbound", "-Weight", "20", "-Protocol", "ICMP")
    host.cli(
        *xacl, "-Action", "Allow", "-Direction", "Outbound", "-Weight", "10", "-Protocol", "TCP",
        "-Stateful", "$true",
    )  # fmt: skip


def migrate_under_ping(
    lab: Lab,
    vm: str,
    vm_ip: str,
    src: str,
    dst: str,
    pinger_netns: str | None = None,
    realtime: bool = False,
) -> Run:
    """One move under 1 ms pings. ``realtime``: the pinger runs SCHED_FIFO (traffic.GapPinger), so a gap is the
    switch's and not the pinger's own wait for a CPU beside two busy forwarders and a TCP flow."""
    with GapPinger(pinger_netns or lab.lan_host_netns, vm_ip, PING_INTERVAL_MS, realtime=realtime) as pinger:
        time.sleep(SETTLE_S)
        out: dict[str, Any] = lab.host(src).json("migrate", vm, "--to", dst)
        time.sleep(SETTLE_S)
        log = pinger.stop()
    gap, lost = log.longest_gap(), log.lost
    t = out["timings"]
    phases = {**out.get("blackout_phases_s", {}), "destination": out["destination"].get("phases_s", {})}
    if "guest" in out:
        phases["guest"] = {**out["guest"], "memory_copy_s": t.get("memory_copy_s")}
    return Run(src, dst, gap, lost, t["validation_s"], t["blackout_s"], t["total_s"], phases)


def bench(runs: int = 5, flow_s: float | None = None, guest: bool = False) -> dict[str, Any]:
    """``guest``: the VM is a QEMU guest (issue 12): QEMU copies it, the flow's client runs inside it."""
    vm = unique("mvm")
    with Lab.running(hosts=2, name=unique("mlab")) as lab:
        a, b = lab.host("hostA"), lab.host("hostB")
        subnet = lab.lan_host_ip.rsplit(".", 1)[0]
        vm_ip = f"{subnet}.10"
        ns = None
        if guest:
            a.cli("vm", "add", vm, "--kind", "qemu", "--switch", "ext", "--ip", f"{vm_ip}/24")
        else:
            ns = a.vm_add(vm, f"{vm_ip}/24")
        firewall(a, vm)
        server = subprocess.Popen(
            ["ip", "netns", "exec", lab.lan_host_netns, "iperf3", "-s", "-1"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(0.3)
        duration = flow_s or runs * (2 * SETTLE_S + (4.0 if guest else 1.5)) + 3
        args = ["iperf3", "-c", lab.lan_host_ip, "-R", "-t", f"{duration:.0f}", "-J"]
        client: subprocess.Popen[str] | None = None
        if guest:  # in the background inside the guest; its report is read where the guest ends up
            a.cli(
                "vm",
                "exec",
                vm,
                "--",
                "sh",
                "-c",
                f"{shlex.join(args)} --logfile /tmp/flow.json >/dev/null 2>&1 &",
            )
        else:
            client = subprocess.Popen(
                ["ip", "netns", "exec", str(ns), *args],
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
        loaded: list[Run] = []
        idle: list[Run] = []
        hosts = [a.name, b.name]
        try:
            time.sleep(1.0)  # the flow is established on hostA before the first move
            for i in range(runs):
                loaded.append(migrate_under_ping(lab, vm, vm_ip, hosts[i % 2], hosts[(i + 1) % 2]))
            if client is not None:
                flow_out, _ = client.communicate(timeout=duration + 60)
                code = client.returncode
            else:
                where = lab.host(hosts[runs % 2])
                deadline = time.monotonic() + duration + 60
                flow_out, code = "", None
                while time.monotonic() < deadline:
                    res = where.cli("vm", "exec", vm, "--", "cat", "/tmp/flow.json", check=False)
                    if '"end"' in res.stdout and server.poll() is not None:
                        flow_out, code = res.stdout, 0
                        break
                    time.sleep(1.0)
        finally:
            for p in (client, server):
                if p is not None and p.poll() is None:
                    p.kill()
                    p.wait()
        flow = _flow_summary(code, flow_out)
        # The same moves with only the pings: what the switch-over costs when the CPUs are not saturated.
        for i in range(runs, 2 * runs):
            idle.append(migrate_under_ping(lab, vm, vm_ip, hosts[i % 2], hosts[(i + 1) % 2]))
        if guest:
            lab.host(hosts[0]).cli("vm", "del", vm, check=False)
    return {**_stats(loaded), "tcp": flow, "idle": _stats(idle), "vm_kind": "qemu" if guest else "namespace"}


CLUSTER_VSID = 5050


def bench_cluster(runs: int = 5) -> dict[str, Any]:
    """Issue 13 item 4: a VM on a virtual subnet moves between hostA and hostB of a 3-host cluster lab while a VM
    of the same subnet on hostC pings it every 1 ms through the tunnels: hostC must redirect to the new provider
    address (the lookup record moves) within the blackout."""
    vm, peer = unique("mvm"), unique("mpg")
    with Lab.running(hosts=3, name=unique("mclab"), cluster=True) as lab:
        a, c = lab.host("hostA"), lab.host("hostC")
        a.vm_add(vm, "10.77.0.10/24")
        ns_peer = c.vm_add(peer, "10.77.0.30/24")
        for host, name in ((a, vm), (c, peer)):
            host.cli("port", "set", f"{name}-eth0", "--virtual-subnet-id", str(CLUSTER_VSID))
        time.sleep(1.0)  # records published and watched everywhere before the first move
        hosts = ["hostA", "hostB"]
        moves = [
            migrate_under_ping(lab, vm, "10.77.0.10", hosts[i % 2], hosts[(i + 1) % 2], pinger_netns=ns_peer)
            for i in range(runs)
        ]
    return {**_stats(moves), "vm_kind": "namespace", "cluster": True, "vsid": CLUSTER_VSID}


def _stats(results: list[Run]) -> dict[str, Any]:
    return {
        "runs": [asdict(r) for r in results],
        "median_gap_ms": round(statistics.median(r.gap_s for r in results) * 1000, 1),
        "max_gap_ms": round(max(r.gap_s for r in results) * 1000, 1),
        "median_control_blackout_ms": round(statistics.median(r.blackout_s for r in results) * 1000, 1),
        "median_validation_ms": round(statistics.median(r.validation_s for r in results) * 1000, 1),
        "median_total_ms": round(statistics.median(r.total_s for r in results) * 1000, 1),
        "lost_pings": sum(r.lost for r in results),
    }


def _flow_summary(code: int | None, text: str) -> dict[str, Any]:
    """Whether the iperf3 flow ran to its end (no reset) and its slowest one-second interval."""
    try:
        data = json.loads(text)
    except ValueError:
        return {"survived": False, "error": text[-500:]}
    if code != 0 or data.get("error"):
        return {"survived": False, "error": data.get("error") or f"iperf3 exited {code}"}
    rates = [iv["sum"]["bits_per_second"] for iv in data.get("intervals", [])]
    end = data.get("end", {}).get("sum_received", {})
    return {
        "survived": True,
        "seconds": round(float(end.get("seconds", 0.0)), 1),
        "mean_gbps": round(float(end.get("bits_per_second", 0.0)) / 1e9, 2),
        "slowest_interval_gbps": round(min(rates) / 1e9, 3) if rates else None,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--runs", type=int, default=5, help="migrations (alternating hostA <-> hostB)")
    p.add_argument("--json", dest="json_path", default=None, help="also write the result to this file")
    p.add_argument("--guest", action="store_true", help="migrate a QEMU guest (issue 12), not a namespace VM")
    p.add_argument(
        "--cluster",
        action="store_true",
        help="across cluster hosts on a virtual subnet, pinged through VXLAN",
    )
    args = p.parse_args(argv)
    if args.cluster:
        out = bench_cluster(args.runs)
        text = json.dumps(out, indent=2)
        print(text)
        if args.json_path:
            Path(args.json_path).write_text(text + "\n")
        print(
            f"\nblackout across cluster hosts (longest gap of 1 ms pings from a third host, through VXLAN), median "
            f"of {args.runs}: {out['median_gap_ms']} ms (max {out['max_gap_ms']}), lost {out['lost_pings']}",
            file=sys.stderr,
        )
        return 0 if out["median_gap_ms"] < 100 else 1
    out = bench(args.runs, guest=args.guest)
    text = json.dumps(out, indent=2)
    print(text)
    if args.json_path:
        with open(args.json_path, "w") as f:
            f.write(text + "\n")
    # The goals: < 100 ms for a namespace VM (issue 6), < 300 ms for a QEMU guest (issue 12).
    ok = out["tcp"]["survived"] and out["idle"]["median_gap_ms"] < (300 if args.guest else 100)
    idle = out["idle"]
    print(
        f"\nblackout (longest gap of 1 ms pings), median of {args.runs} runs: under a TCP flow "
        f"{out['median_gap_ms']} ms (max {out['max_gap_ms']}, control plane {out['median_control_blackout_ms']});"
        f" pings only {idle['median_gap_ms']} ms (max {idle['max_gap_ms']}, control plane "
        f"{idle['median_control_blackout_ms']}); TCP flow "
        f"{'survived' if out['tcp']['survived'] else 'DID NOT survive'} every move",
        file=sys.stderr,
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
