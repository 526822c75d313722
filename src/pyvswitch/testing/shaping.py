"""Rate-limited links for system tests (no netem here; tbf and htb exist: platform.md).

pyvswitch sends on its ports with PACKET_QDISC_BYPASS, so a qdisc on the interface it owns never sees its
frames. A shaped link is therefore a "cable" namespace between the two ends: a bridge joins two veth pairs and
a tbf qdisc on each of the cable's two egress interfaces limits one direction.
"""

from __future__ import annotations

from pyvswitch.testing.netns import NetnsPool, sh


def tbf(
    dev: str, rate_mbit: float, netns: str | None = None, burst_kb: int = 128, latency_ms: int = 20
) -> None:
    """Limit ``dev``'s egress to ``rate_mbit`` Mbit/s with a token bucket (replaces its root qdisc). The burst
    holds a whole GSO super-frame (64 KiB), so tbf does not have to split each one."""
    sh("tc", "qdisc", "replace", "dev", dev, "root", "tbf", "rate", f"{rate_mbit}mbit", "burst", f"{burst_kb}kb",
       "latency", f"{latency_ms}ms", netns=netns)  # fmt: skip


def shaped_cable(
    pool: NetnsPool,
    near: str,
    far: str,
    rate_mbit: float,
    near_ns: str | None = None,
    far_ns: str | None = None,
) -> str:
    """Interfaces ``near`` (in ``near_ns``) and ``far`` (in ``far_ns``), both up, joined through a cable namespace
    that carries at most ``rate_mbit`` Mbit/s each way. Returns the cable's namespace (removed with ``pool``)."""
    cable = pool.netns("pvc", ipv6=False)
    # (not "a"/"b": ``ip link set a up`` reads "a" as "address")
    pool.veth(near, "cnear", a_ns=near_ns, b_ns=cable)
    pool.veth("cfar", far, a_ns=cable, b_ns=far_ns)
    sh("ip", "link", "add", "br0", "type", "bridge", netns=cable)
    for end in ("cnear", "cfar"):
        sh("ip", "link", "set", end, "master", "br0", netns=cable)
        tbf(end, rate_mbit, netns=cable)
    sh("ip", "link", "set", "br0", "up", netns=cable)
    return cable
