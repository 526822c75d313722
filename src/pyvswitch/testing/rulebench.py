"""How much ACL and firewall rules cost the switch: frames/s with 0, 10, 100 and 10,000 rules, in one run.

The switch runs in-process on memory devices (no kernel I/O, which would hide the cost of classification behind
system calls), with its real elements and the built-in firewall extension. Every frame is a new flow (its UDP
source port changes) across ``flows`` distinct flows, so the flow caches see misses as a busy port would, not
just one conversation. "N rules" means N extended ACL entries (the firewall) plus N port ACL entries (the
switch's built-in policy) on the sending port; a low-weight Allow and a subnet Allow let the traffic through
after every rule has been considered. The switch's flow cache (switch/flowcache.py) is on, as in the daemon;
two rows without it show what it buys. Run: ``python -m pyvswitch.testing.rulebench`` (``make bench-rules``).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

from pyvswitch.builtin.firewall import Firewall
from pyvswitch.config.schema import (
    AclAction,
    AclDirection,
    AclEntry,
    ExtendedAclEntry,
    ExtensionSetting,
    PortConfig,
    PortKind,
    SwitchConfig,
)
from pyvswitch.ext.registry import Registry
from pyvswitch.testing.frames import eth, ipv4, udp
from pyvswitch.testing.harness import SwitchHarness
from pyvswitch.testing.harness import flow_cache as cache_on

A, B = "02:00:00:00:00:0a", "02:00:00:00:00:0b"
BATCH = 256


def rules(n: int) -> tuple[list[AclEntry], list[ExtendedAclEntry]]:
    """n port ACL entries and n extended entries that the benchmark traffic must be checked against."""

    def host(i: int) -> str:
        return f"172.{16 + (i >> 16) % 16}.{(i >> 8) & 255}.{i & 255}"

    acls = [
        AclEntry(action=AclAction.DENY, direction=AclDirection.OUTBOUND, remote_ip=f"{host(i)}/32")
        for i in range(max(n - 1, 0))
    ]
    ext: list[ExtendedAclEntry] = []
    for i in range(max(n - 1, 0)):
        if i % 10 == 9:  # some rules by port, as real rule sets have
            ext.append(ExtendedAclEntry(action=AclAction.DENY, direction=AclDirection.OUTBOUND, weight=i + 2, remote_port=str(1 + i % 1000),
                                        protocol="TCP"))  # fmt: skip
        else:
            ext.append(
                ExtendedAclEntry(
                    action=AclAction.DENY, direction=AclDirection.OUTBOUND, weight=i + 2, remote_ip=host(i)
                )
            )
    if n:
        acls.append(
            AclEntry(action=AclAction.ALLOW, direction=AclDirection.OUTBOUND, remote_ip="10.0.0.0/24")
        )
        ext.append(ExtendedAclEntry(action=AclAction.ALLOW, direction=AclDirection.OUTBOUND, weight=1))
    return acls, ext


def harness(n: int | None, flow_cache: bool = True) -> SwitchHarness:
    """n=None: the bare switch (firewall disabled, no ACLs)."""
    fw = [ExtensionSetting(name="pyvswitch-firewall", enabled=n is not None)]
    acls, ext = rules(n or 0)
    ports = [
        PortConfig(name="a", kind=PortKind.VM, vm="a", switch="s", mac=A, acls=acls, extended_acls=ext),
        PortConfig(name="b", kind=PortKind.VM, vm="b", switch="s", mac=B),
    ]
    with cache_on(flow_cache):
        return SwitchHarness([SwitchConfig(name="s", extensions=fw)], ports, Registry.of(Firewall))


def frames_of(flows: int) -> list[bytes]:
    return [eth(B, A, ipv4("10.0.0.1", "10.0.0.2", 17, udp(1024 + i, 53, b"x" * 18))) for i in range(flows)]


def rate(n: int | None, flows: int, seconds: float, flow_cache: bool = True) -> float:
    h = harness(n, flow_cache)
    dev_a, dev_b = h.port_device("a"), h.port_device("b")
    pool = frames_of(flows)
    sent = 0
    i = 0
    deadline = time.perf_counter() + seconds
    start = time.perf_counter()
    while time.perf_counter() < deadline:
        for _ in range(BATCH):
            dev_a.inject(pool[i])
            i = (i + 1) % flows
        h.engine.run_once()
        sent += BATCH
        dev_b.sent.clear()
        dev_b.sent_vnet.clear()
    elapsed = time.perf_counter() - start
    delivered = dev_b.counters.tx_frames
    assert delivered == sent, f"{n} rules: {delivered} of {sent} frames forwarded"
    return sent / elapsed


def one_frame_us(flow_cache: bool, frames: int = 20_000) -> float:
    """Median time of ``run_once`` for a batch of one frame on the bare switch (the latency the switch adds to
    a lone packet, less the device), in microseconds."""
    h = harness(None, flow_cache)
    dev_a, dev_b = h.port_device("a"), h.port_device("b")
    frame = frames_of(1)[0]
    took: list[int] = []
    for _ in range(frames):
        dev_a.inject(frame)
        start = time.perf_counter_ns()
        h.engine.run_once()
        took.append(time.perf_counter_ns() - start)
        dev_b.sent.clear()
        dev_b.sent_vnet.clear()
    return statistics.median(took) / 1000


def real_traffic(reps: int, seconds: float) -> dict[str, list[float]]:
    """TCP (offloads off, the forwarder-bound case) through a real pyvswitchd on the bench harness, with the
    firewall off and no ACLs, then with 100 and 10,000 rules of each kind on the sending port."""
    import httpx

    from pyvswitch.lab.harness import Harness, PyvswitchForwarder
    from pyvswitch.lab.traffic import run_iperf3

    out: dict[str, list[float]] = {}
    with Harness() as harness:
        fwd = PyvswitchForwarder()
        fwd.start(harness)
        try:
            harness.set_offloads(False)
            assert fwd.socket is not None and harness.h1 is not None and harness.h2 is not None
            h1, h2, cpu = harness.h1, harness.h2, harness.gen_cpu
            with httpx.Client(transport=httpx.HTTPTransport(uds=str(fwd.socket)), timeout=120) as api:
                for _ in range(reps):
                    for name, n in (("bare switch", None), ("100 rules", 100), ("10,000 rules", 10_000)):
                        acls, ext = rules(n or 0)
                        fw = [{"name": "pyvswitch-firewall", "enabled": n is not None}]
                        api.patch(
                            "http://pyvswitchd/v1/switches/sw", json={"extensions": fw}
                        ).raise_for_status()
                        body = {"acls": [a.model_dump(mode="json") for a in acls],
                                "extended_acls": [e.model_dump(mode="json") for e in ext]}  # fmt: skip
                        api.patch("http://pyvswitchd/v1/ports/p1", json=body).raise_for_status()
                        harness.reachable()
                        gbps = run_iperf3(
                            h2.netns, h1.netns, h2.ip, seconds, server_cpu=cpu, client_cpu=cpu
                        ).gbps
                        out.setdefault(name, []).append(gbps)
        finally:
            fwd.stop()
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--flows", type=int, default=4096)
    p.add_argument("--seconds", type=float, default=1.0)
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--json", dest="json_path")
    p.add_argument("--real", action="store_true", help="also TCP through a real pyvswitchd (needs root)")
    args = p.parse_args(argv)
    configs: list[tuple[str, int | None, bool]] = [
        ("bare switch", None, True), ("10 rules", 10, True), ("100 rules (default stack)", 100, True),
        ("10,000 rules", 10_000, True),
        ("bare, no flow cache", None, False), ("100 rules, no flow cache", 100, False),
    ]  # fmt: skip
    results: dict[str, list[float]] = {name: [] for name, _, _ in configs}
    for _ in range(args.reps):  # interleaved, so drift affects every configuration alike
        for name, n, cache in configs:
            results[name].append(rate(n, args.flows, args.seconds, cache))
    med = {name: statistics.median(v) for name, v in results.items()}
    bare = med["bare switch"]
    print(
        f"frames/s through the switch, {args.flows} flows, medians of {args.reps} (in-process, memory devices)"
    )
    for name, _, _ in configs:
        print(f"  {name:<28} {med[name]:>10,.0f}   {med[name] / bare:.2f} x bare")
    print(f"  10,000 rules / 10 rules: {med['10,000 rules'] / med['10 rules']:.2f} (must be >= 0.5)")
    one = {"flow cache": one_frame_us(True), "no flow cache": one_frame_us(False)}
    print(
        f"one-frame batch, bare switch, median of 20,000: {one['flow cache']:.1f} us with the flow cache, "
        f"{one['no flow cache']:.1f} us without"
    )
    report: dict[str, object] = {"flows": args.flows, "reps": args.reps, "runs": results, "medians": med,
                                 "one_frame_us": one}  # fmt: skip
    if args.real:
        real = real_traffic(args.reps, 4.0)
        rmed = {k: statistics.median(v) for k, v in real.items()}
        print(f"TCP Gbit/s, offloads off, through pyvswitchd (bench harness), medians of {args.reps}")
        for name, v in rmed.items():
            print(f"  {name:<28} {v:>10.2f}   {v / rmed['bare switch']:.2f} x bare")
        report["real_tcp_gbps"] = real
    if args.json_path:
        with open(args.json_path, "w") as f:
            json.dump(report, f, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
