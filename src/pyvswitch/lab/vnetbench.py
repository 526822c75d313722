"""A virtual subnet across three cluster hosts (issue 13 acceptance): full-mesh ping, what crosses the provider
network (ARP requests, floods), the MTU a VM has, and TCP VM -> VM across hosts vs on one host, in one run.

Topology: ``pyvswitch lab up --hosts 3 --cluster``; VSID 5100 with two VMs on hostA and one each on hostB and
hostC. Routing (customer routes): VSIDs 5101 (10.81.0.0/24) and 5102 (10.82.0.0/24) in one routing domain, a VM of
5102 on hostA and one of 5101 on each of hostA and hostB; TCP from the first to the others, through the
distributed router (on one host, and across the tunnel). (5100's VMs hold 10.80.0.1, the address the router
would take as 5100's gateway, so the routed source is on a subnet of its own.) Every VM's neighbour cache is flushed first, so each first ping ARPs; a capture on the provider bridge's
own interface (where a bridge delivers what it floods) counts VXLAN datagrams and, inside them, ARP requests
and broadcasts: none should cross (the tunnels answer ARP from the records and replicate nothing else here). Run: ``python -m
pyvswitch.lab.vnetbench [--reps 3] [--json FILE]`` (``make bench-cluster``).
"""

from __future__ import annotations

import argparse
import itertools
import json
import platform
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from pyvswitch.lab.hosts import PROVIDER_BRIDGE, Lab
from pyvswitch.testing.netns import unique

VSID = 5100
VMS = (("a1", "hostA", "10.80.0.1"), ("a2", "hostA", "10.80.0.2"), ("b1", "hostB", "10.80.0.3"),
       ("c1", "hostC", "10.80.0.4"))  # fmt: skip
ROUTED_VSID, SOURCE_VSID = 5101, 5102
ROUTED_VMS = (("ra", "hostA", "10.81.0.5"), ("rb", "hostB", "10.81.0.6"))
RDID = "{BE4C0000-0000-4000-8000-000000005100}"


def _ns(netns: str, *cmd: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["ip", "netns", "exec", netns, *cmd], capture_output=True, text=True, timeout=timeout
    )


def _iperf(client_ns: str, server_ns: str, server_ip: str, seconds: int) -> float:
    server = subprocess.Popen(["ip", "netns", "exec", server_ns, "iperf3", "-s", "-1"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        time.sleep(0.3)
        res = _ns(client_ns, "iperf3", "-c", server_ip, "-t", str(seconds), "-J", timeout=seconds + 30)
        return float(json.loads(res.stdout)["end"]["sum_received"]["bits_per_second"]) / 1e9
    finally:
        server.kill()
        server.wait()


def bench(reps: int, seconds: int, datapath: str) -> dict[str, Any]:
    out: dict[str, Any] = {"tunnel_datapath": datapath, "vsid": VSID, "vms": len(VMS), "hosts": 3}
    with Lab.running(hosts=3, name=unique("vnlab"), cluster=True, tunnel_datapath=datapath) as lab:
        ns: dict[str, str] = {}
        for name, host, ip in VMS:
            vm = unique(f"v{name}")
            ns[name] = lab.host(host).vm_add(vm, f"{ip}/24")
            lab.host(host).cli("port", "set", f"{vm}-eth0", "--virtual-subnet-id", str(VSID))
        a = lab.host("hostA")
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and len(a.json("vnet", "records", "--vsid", str(VSID))) < len(VMS):
            time.sleep(0.1)
        for n in ns.values():
            _ns(n, "ip", "neigh", "flush", "all")
        pnet = lab.record.pnet_netns
        assert pnet is not None
        cap = subprocess.Popen(
            ["ip", "netns", "exec", pnet, "tcpdump", "-e", "-nn", "-l", "-i", PROVIDER_BRIDGE, "udp port 4789"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        time.sleep(
            1.0
        )  # tcpdump's socket open (it prints "listening" on stderr; this bench does not block on it)
        losses = {}
        for (x, _, _), (y, _, yip) in itertools.permutations(VMS, 2):
            res = _ns(ns[x], "ping", "-c", "20", "-i", "0.01", "-W", "1", yip)
            m = re.search(r"(\d+(?:\.\d+)?)% packet loss", res.stdout)
            losses[f"{x}->{y}"] = float(m[1]) if m else 100.0
        time.sleep(0.5)
        cap.terminate()
        captured, _ = cap.communicate(timeout=10)
        out["full_mesh_pairs"] = len(losses)
        out["full_mesh_loss_percent"] = max(losses.values())
        # The bridge's own interface sees what the bridge floods (broadcast, unknown unicast: what must not cross)
        # and unicast before it learned the ports; not learned unicast between two hosts.
        out["datagrams_seen_at_bridge"] = captured.count("VXLAN")
        # With -e the inner Ethernet header is printed: a broadcast ARP request that crossed would show ff:ff...
        # (none should: the tunnels answer them); unicast ones are Linux re-checking a neighbour it knows.
        out["arp_requests_crossing"] = captured.count("Request who-has")
        out["broadcasts_crossing"] = captured.count("> ff:ff:ff:ff:ff:ff")
        tunnel = _find_port(a.json("counters"), "vxlan0")
        out["hostA_tunnel"] = tunnel.get("tunnel") if tunnel else None
        mtu = _ns(ns["a1"], "ping", "-c", "3", "-M", "do", "-s", "1472", "-W", "1", "10.80.0.3")
        out["vm_mtu"] = int(_ns(ns["a1"], "cat", f"/sys/class/net/{_eth(ns['a1'])}/mtu").stdout.strip() or 0)
        out["ping_1500_df_across"] = " 0% packet loss" in mtu.stdout
        across, local = [], []
        for _ in range(reps):
            across.append(_iperf(ns["a1"], ns["b1"], "10.80.0.3", seconds))
            local.append(_iperf(ns["a1"], ns["a2"], "10.80.0.2", seconds))
        out["tcp_across_hosts_gbps"] = round(statistics.median(across), 2)
        out["tcp_same_host_gbps"] = round(statistics.median(local), 2)
        out["tcp_across_over_same_host"] = round(statistics.median(across) / statistics.median(local), 2)
        out["runs"] = {"across": [round(x, 2) for x in across], "same_host": [round(x, 2) for x in local]}
        out["routed"] = _routed(lab, ns, reps, seconds)
    return out


def _routed(lab: Lab, ns: dict[str, str], reps: int, seconds: int) -> dict[str, Any]:
    """TCP from a VM of VSID 5102 on hostA to VMs of VSID 5101 through the distributed router: on hostA and
    across the tunnel to hostB."""
    a = lab.host("hostA")
    for vsid, prefix in ((SOURCE_VSID, "10.82.0.0/24"), (ROUTED_VSID, "10.81.0.0/24")):
        a.cli("vnet", "route-add", RDID, str(vsid), prefix)
    vms = [("rs", "hostA", "10.82.0.5", SOURCE_VSID), *[(n, h, i, ROUTED_VSID) for n, h, i in ROUTED_VMS]]
    for name, host, ip, vsid in vms:
        vm = unique(f"v{name}")
        ns[name] = lab.host(host).vm_add(vm, f"{ip}/24")
        lab.host(host).cli("port", "set", f"{vm}-eth0", "--virtual-subnet-id", str(vsid))
        _ns(ns[name], "ip", "route", "add", "default", "via", ip.rsplit(".", 1)[0] + ".1")
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and len(a.json("vnet", "records", "--vsid", str(ROUTED_VSID))) < 2:
        time.sleep(0.1)
    out: dict[str, Any] = {}
    for name, _, ip in ROUTED_VMS:
        res = _ns(ns["rs"], "ping", "-c", "20", "-i", "0.01", "-W", "1", ip)
        m = re.search(r"(\d+(?:\.\d+)?)% packet loss", res.stdout)
        out[f"ping_loss_percent_rs->{name}"] = float(m[1]) if m else 100.0
    across, local = [], []
    for _ in range(reps):
        across.append(_iperf(ns["rs"], ns["rb"], "10.81.0.6", seconds))
        local.append(_iperf(ns["rs"], ns["ra"], "10.81.0.5", seconds))
    out["tcp_routed_across_hosts_gbps"] = round(statistics.median(across), 2)
    out["tcp_routed_same_host_gbps"] = round(statistics.median(local), 2)
    out["runs"] = {"across": [round(x, 2) for x in across], "same_host": [round(x, 2) for x in local]}
    tunnel = _find_port(a.json("counters"), "vxlan0")
    out["hostA_tunnel_routed"] = tunnel.get("tunnel", {}).get("routed") if tunnel else None
    return out


def _find_port(data: Any, name: str) -> dict[str, Any] | None:
    """The counters entry of port ``name`` wherever it sits in the counters document."""
    if isinstance(data, dict):
        for key, value in data.items():
            if key == name and isinstance(value, dict) and "rx_frames" in value:
                return value
            found = _find_port(value, name)
            if found is not None:
                return found
    elif isinstance(data, list):
        for item in data:
            found = _find_port(item, name)
            if found is not None:
                return found
    return None


def _eth(netns: str) -> str:
    links = _ns(netns, "ip", "-o", "link").stdout
    m = re.search(r"^\d+: (eth\d+)[@:]", links, re.M)
    return m[1] if m else "eth0"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="vnetbench", description=__doc__.split("\n\n")[0])
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--seconds", type=int, default=5)
    p.add_argument("--json", dest="json_path", default=None)
    p.add_argument(
        "--datapaths", default="kernel,python", help="tunnel datapaths to measure, comma-separated"
    )
    args = p.parse_args(argv)
    # Both tunnel datapaths in one run (pyvswitchd --tunnel-datapath), the kernel's first (the default).
    out: dict[str, Any] = {dp: bench(args.reps, args.seconds, dp) for dp in args.datapaths.split(",")}
    if "kernel" in out and "python" in out:
        out["tcp_across_kernel_over_python"] = round(
            out["kernel"]["tcp_across_hosts_gbps"] / max(out["python"]["tcp_across_hosts_gbps"], 1e-9), 1
        )
    out["date"] = time.strftime("%Y-%m-%d")
    out["uname_r"] = platform.release()
    text = json.dumps(out, indent=2)
    print(text)
    if args.json_path:
        Path(args.json_path).write_text(text + "\n")
    runs = [out[dp] for dp in args.datapaths.split(",")]
    ok = all(
        r["full_mesh_loss_percent"] == 0
        and r["broadcasts_crossing"] == 0
        and not any(v for k, v in r["routed"].items() if k.startswith("ping_loss"))
        for r in runs
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
