"""Cluster scale by simulation (issue 13 acceptance): 1,000 hosts x 50 VMs against a real 3-member etcd, with
in-process host agents (cluster/agent.py) for a sample of the hosts.

The layout, stated so the figures can be checked on paper: tenants' virtual subnets of ``subnet_vms`` VMs spread
over ``hosts_per_subnet`` hosts, so each host has ``vms / (subnet_vms / hosts_per_subnet)`` subnets. A host's
view holds the records and memberships of its subnets only; it receives the events of those subnets only.

Steps: (1) the records of every VM and the memberships of every host are written (what 1,000 hosts publish at
start-up; write rate), the host registrations under leases; (2) ``sample`` real agents start for sampled hosts,
each reading and watching its subnets (start-up time, range reads, view size and memory per host); (3) churn:
``churn`` VMs move to another host of their subnet (a delete and a put each, as a migration does), and the
sampled agents' events and the delay from the write to the last agent seeing it are measured.

Run: ``python -m pyvswitch.lab.clusterbench [--hosts 1000 --vms 50] [--json FILE]`` (``make bench-cluster``).
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import time
import tracemalloc
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from pyvswitch.cluster.agent import ClusterAgent, SubnetView
from pyvswitch.cluster.client import ClusterClient
from pyvswitch.cluster.records import HostInfo, LookupRecord, member_key
from pyvswitch.lab.etcd import EtcdCluster

VSID_BASE = 100_000


def layout(hosts: int, vms: int, subnet_vms: int, hosts_per_subnet: int) -> dict[int, list[tuple[int, int]]]:
    """VSID -> [(host index, VM index on that host)]: subnet k spans ``hosts_per_subnet`` consecutive hosts."""
    per_host_per_subnet = subnet_vms // hosts_per_subnet
    subnets_per_host = vms // per_host_per_subnet
    out: dict[int, list[tuple[int, int]]] = {}
    groups = hosts // hosts_per_subnet
    for g in range(groups):
        for s in range(subnets_per_host):
            vsid = VSID_BASE + g * subnets_per_host + s
            out[vsid] = [
                (g * hosts_per_subnet + h, s * per_host_per_subnet + v)
                for h in range(hosts_per_subnet)
                for v in range(per_host_per_subnet)
            ]
    return out


def _pa(host: int) -> str:
    return f"10.{100 + host // 65536}.{host // 256 % 256}.{host % 256}"


def _ca(host: int, vm: int) -> str:
    return f"10.{host // 256 % 256}.{host % 256}.{vm + 1}"


def _mac(host: int, vm: int) -> str:
    return f"02:{host >> 8 & 0xFF:02x}:{host & 0xFF:02x}:00:00:{vm:02x}"


def bench(
    hosts: int, vms: int, subnet_vms: int, hosts_per_subnet: int, sample: int, churn: int
) -> dict[str, Any]:
    plan = layout(hosts, vms, subnet_vms, hosts_per_subnet)
    keys: list[tuple[str, bytes]] = []
    host_subnets: dict[int, set[int]] = {}
    for vsid, members in plan.items():
        for h, v in members:
            rec = LookupRecord(
                vsid, _ca(h, v), _mac(h, v), _pa(h), host=f"h{h}", vm=f"h{h}v{v}", port=f"h{h}v{v}"
            )
            keys.append((rec.key, rec.encode()))
            host_subnets.setdefault(h, set()).add(vsid)
    for h, subnets in host_subnets.items():
        info = HostInfo(f"h{h}", _pa(h)).encode()
        keys += [(member_key(v, f"h{h}"), info) for v in subnets]
    out: dict[str, Any] = {
        "hosts": hosts, "vms_per_host": vms, "subnet_vms": subnet_vms, "hosts_per_subnet": hosts_per_subnet,
        "subnets": len(plan), "subnets_per_host": len(host_subnets[0]),
        "keys": len(keys), "keys_per_host_view": len(host_subnets[0]) * (subnet_vms + hosts_per_subnet),
    }  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="pyvswitch-clusterbench-") as tmp, EtcdCluster.running(3) as etcd:
        client = ClusterClient(etcd.endpoints, timeout_s=10)
        t0 = time.perf_counter()
        batches = [keys[i : i + 100] for i in range(0, len(keys), 100)]  # as each host publishes: in batches
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(client.put_many, batches))
        write_s = time.perf_counter() - t0
        out["publish_all_s"] = round(write_s, 2)
        out["writes_per_s"] = round(len(keys) / write_s)
        # (2) sampled hosts start: one agent each, reading and watching its subnets.
        sampled = random.Random(1).sample(sorted(host_subnets), sample)
        agents: list[ClusterAgent] = []
        tracemalloc.start()
        before = tracemalloc.take_snapshot()
        t0 = time.perf_counter()
        for h in sampled:
            agent = ClusterAgent(ClusterClient(etcd.endpoints, timeout_s=10), HostInfo(f"h{h}", _pa(h)),
                                 Path(tmp), ttl_s=30)  # fmt: skip
            agent.cache_path = None  # the views are what is measured, not the cache file
            agent._subnets = set(host_subnets[h])  # watch only: its records are already published above
            agents.append(agent.start())
        for agent in agents:
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline and len(agent.subnets()) < len(agent._subnets):
                time.sleep(0.05)
        start_s = time.perf_counter() - t0
        after = tracemalloc.take_snapshot()
        tracemalloc.stop()
        views_bytes = sum(s.size_diff for s in after.compare_to(before, "filename"))
        records_seen = [sum(len(v.records) for v in a.subnets().values()) for a in agents]
        out["sample"] = sample
        out["sample_start_s"] = round(start_s, 2)
        out["records_per_host_view"] = statistics.median(records_seen)
        out["memory_per_host_kib"] = round(views_bytes / sample / 1024, 1)
        out["range_reads_per_host"] = statistics.median(a.stats.range_reads for a in agents)
        # (3) churn: VMs move to another host of their subnet; measure events per sampled host and delay.
        rng = random.Random(2)
        seen_events = [a.stats.events for a in agents]
        moves = []
        vsids = sorted(plan)
        sampled_subnets = sorted({v for h in sampled for v in host_subnets[h]})
        for i in range(churn):
            vsid = sampled_subnets[i % len(sampled_subnets)] if i % 2 == 0 else rng.choice(vsids)
            h, v = rng.choice(plan[vsid])
            hosts_of = sorted({x for x, _ in plan[vsid]} - {h})
            new_h = rng.choice(hosts_of)
            moves.append((vsid, h, v, new_h))
        t0 = time.perf_counter()
        for vsid, h, v, new_h in moves:
            rec = LookupRecord(vsid, _ca(h, v), _mac(h, v), _pa(new_h), host=f"h{new_h}", vm=f"h{h}v{v}")
            client.put(rec.key, rec.encode())
        churn_write_s = time.perf_counter() - t0
        expected = {
            id(a): sum(1 for m in moves if m[0] in a._subnets) for a in agents
        }  # one put per move in a watched subnet

        def caught_up() -> bool:
            return all(
                a.stats.events - s >= expected[id(a)] for a, s in zip(agents, seen_events, strict=True)
            )

        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not caught_up():
            time.sleep(0.01)
        delay_s = time.perf_counter() - t0
        events = [a.stats.events - s for a, s in zip(agents, seen_events, strict=True)]
        out["churn_moves"] = churn
        out["churn_write_s"] = round(churn_write_s, 2)
        out["churn_all_seen_s"] = round(delay_s, 2)
        out["events_per_sampled_host"] = statistics.median(events)
        out["events_per_host_per_move"] = round(statistics.mean(events) / churn, 4)
        out["events_per_s_per_host"] = round(statistics.median(events) / max(delay_s, 1e-6), 1)
        out["caught_up"] = caught_up()
        final = {(vsid, _ca(h, v)): f"h{new_h}" for vsid, h, v, new_h in moves}  # the last move wins
        out["wrong_views"] = sum(
            1
            for a in agents
            for (vsid, ca), host in final.items()
            if vsid in a._subnets
            and ((r := _view_record(a.subnets().get(vsid), ca)) is None or r.host != host)
        )
        for a in agents:
            a.stop()
        out["date"] = time.strftime("%Y-%m-%d")
        out["kernel"] = _kernel()
        out["etcd_failovers"] = client.failovers
    return out


def _view_record(view: SubnetView | None, ca: str) -> LookupRecord | None:
    return view.records.get(ca) if view is not None else None


def _kernel() -> str:
    import platform

    return platform.release()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="clusterbench", description=__doc__.split("\n\n")[0])
    p.add_argument("--hosts", type=int, default=1000)
    p.add_argument("--vms", type=int, default=50, help="VMs per host")
    p.add_argument("--subnet-vms", type=int, default=50, help="VMs per virtual subnet")
    p.add_argument("--hosts-per-subnet", type=int, default=10)
    p.add_argument("--sample", type=int, default=20, help="hosts simulated by real agents")
    p.add_argument("--churn", type=int, default=500, help="VM moves")
    p.add_argument("--json", dest="json_path", default=None)
    args = p.parse_args(argv)
    out = bench(args.hosts, args.vms, args.subnet_vms, args.hosts_per_subnet, args.sample, args.churn)
    text = json.dumps(out, indent=2)
    print(text)
    if args.json_path:
        Path(args.json_path).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
