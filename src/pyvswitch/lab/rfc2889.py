"""RFC 2889 (LAN switch benchmarking) on a four-host star: address caching capacity (§5.7), address learning
rate (§5.8), congestion control (§5.5), broadcast forwarding (§5.10) and the fully meshed throughput
(§5.1), each for whichever forwarder the star harness has running.

Port roles (``StarHarness`` hosts h1..h4):

* caching / learning: h1 is the learning port, h2 the test port, h3 and h4 monitor ports. Learning frames
  from h1 carry N new source MACs (02:b0:KK:xx:xx:xx, KK new for every trial, so no trial sees another's
  addresses) to h2; then h2 sends one test frame to each of those MACs. A MAC the forwarder did not keep is
  flooded: it shows up at h3 and h4. A trial passes when every learning frame and every test frame arrived
  and nothing reached a monitor port.
* congestion: h1 sends alternately to h3 and h4, h2 only to h3, each at ``congestion_pps``, so h3 is offered
  1.5x what h4 is. h3's port is made the congested one by an egress line rate of a third of that:
  pyvswitch's own ``port set --link-speed`` (its egress scheduler), a tbf qdisc on the bridge's port (its
  transmit queue). Loss on h4's port is head-of-line blocking (RFC 2889: must be 0); loss on h3's is the
  congestion itself (back pressure would show as none: neither forwarder exerts it).
* broadcast: h1 sends to ff:ff:ff:ff:ff:ff; every frame must reach h2, h3 and h4, none come back to h1.
* mesh: every host sends to the three others in turn, all at once.

Rates are searched on what the generator achieved (``rfc2544.rate_search``), starting at the generator's
ceiling (direct veth pairs, same run): a forwarder that passes there is generator-bound, and reported so.
Frames are evenly paced (``smooth``): these tests are about addresses and ports, not burst absorption.
"""

from __future__ import annotations

import functools
import logging
from typing import Any

from pyvswitch.lab.generator import (
    DST_MAC_OFFSET,
    SRC_MAC_OFFSET,
    Pacing,
    Port,
    Sender,
    counting,
    port_of,
    run_senders,
    settle,
    snapshot,
    udp_frame,
)
from pyvswitch.lab.harness import Endpoint, Forwarder, LinuxBridge, PyvswitchForwarder, StarHarness
from pyvswitch.lab.pktgen import Phase
from pyvswitch.lab.rfc2544 import Context, attempt_test, rate_search, size_search
from pyvswitch.lab.traffic import TrafficError
from pyvswitch.testing.netns import sh

log = logging.getLogger(__name__)

BROADCAST = "ff:ff:ff:ff:ff:ff"
MAC_BASE = "02:b0:00:00:00:00"
CONGESTION_DRAIN_S = 5.0  # locally administered; bytes 2..5 carry trial id and counter


# ------------------------------------------------------------------------------------------------ pure


def classify_caching(
    n: int, learn_delivered: int, learn_stray: int, test_delivered: int, flooded: int
) -> str:
    """One address-caching (or learning-rate) trial: ``pass``, or why not. ``learn_delivered``: learning frames
    that reached the test port; ``learn_stray``: frames at the monitor ports while learning; ``test_delivered``:
    test frames that reached the learning port; ``flooded``: frames at the monitor ports during the test."""
    if learn_delivered < n:
        return "learning-frames-lost"
    if flooded > 0:
        return "flooded"
    if test_delivered < n:
        return "test-frames-lost"
    if learn_stray > 0:
        return "learning-frames-flooded"
    return "pass"


def congestion_rate_bps(per_sender_pps: float, frame_len: int = 60) -> int:
    """Egress line rate for the congested port: a third of the 1.5 x ``per_sender_pps`` frames it is offered
    (``frame_len``: bytes a frame counts for in a shaper, FCS not included). Both shapers queue 512 KiB
    (~8,700 such frames) before they drop: at a third, a 1 s trial overflows that queue too."""
    return int(0.5 * per_sender_pps * frame_len * 8)


def congestion_expected(h1_sent: int, h2_sent: int) -> tuple[int, int]:
    """Frames due at (the congested port, the uncongested one): h1 alternates starting with the congested
    destination, h2 sends only there."""
    return (h1_sent + 1) // 2 + h2_sent, h1_sent // 2


def loss_pct(expected: int, got: int) -> float:
    return 100.0 * max(0, expected - got) / expected if expected > 0 else 0.0


def mesh_expected(sent: dict[int, int], n: int) -> dict[int, int]:
    """Frames due at each of ``n`` hosts when host i sends ``sent[i]`` frames round-robin to the others in
    index order (skipping itself)."""
    due = dict.fromkeys(range(n), 0)
    for i, count in sent.items():
        others = [j for j in range(n) if j != i]
        for k, j in enumerate(others):
            due[j] += count // len(others) + (1 if k < count % len(others) else 0)
    return due


# ----------------------------------------------------------------------------------------------- runners


class _Ids:
    """Trial ids for MAC ranges: 1..255, new for every trial on one forwarder."""

    def __init__(self) -> None:
        self.n = 0

    def next(self) -> int:
        self.n = self.n % 255 + 1
        return self.n


def _hosts(ctx: Context) -> list[Endpoint]:
    h = ctx.harness
    assert isinstance(h, StarHarness)
    return h.hosts


def _ports(hosts: list[Endpoint]) -> list[Port]:
    return [port_of(h) for h in hosts]


def _learning_trial(
    ctx: Context, ids: _Ids, n: int, learn_pps: float, test_pps: float
) -> tuple[str, float, dict[str, Any]]:
    """Learning frames from h1 (n new source MACs) at ``learn_pps``, then test frames from h2 to them.
    (classification, learning frames/s achieved, details)."""
    h1, h2, *monitors = _hosts(ctx)
    hosts = _hosts(ctx)
    k = ids.next()
    learn = udp_frame(h2.mac, MAC_BASE).hex()
    test = udp_frame(MAC_BASE, h2.mac).hex()
    learner = Sender(
        h1.netns, h1.ifname, Pacing.SMOOTH, [Phase(learn_pps, n, [learn], SRC_MAC_OFFSET + 2, None, k << 24)]
    )
    tester = Sender(
        h2.netns, h2.ifname, Pacing.SMOOTH, [Phase(test_pps, n, [test], DST_MAC_OFFSET + 2, None, k << 24)]
    )
    with counting(_ports(hosts)) as d1:
        r1 = run_senders([learner], ctx.cpu)
    with counting(_ports(hosts)) as d2:
        run_senders([tester], ctx.cpu)
    learn_delivered = d1[port_of(h2)][1]
    learn_stray = sum(d1[port_of(m)][1] for m in monitors)
    test_delivered = d2[port_of(h1)][1]
    flooded = sum(d2[port_of(m)][1] for m in monitors)
    verdict = classify_caching(n, learn_delivered, learn_stray, test_delivered, flooded)
    sent = d1[port_of(h1)][0]
    achieved = sent / r1[0].send_s if r1[0].send_s > 0 else 0.0
    details = {
        "n": n,
        "learn_pps": round(achieved),
        "learn_sent": sent,
        "learn_delivered": learn_delivered,
        "learn_stray": learn_stray,
        "test_sent": d2[port_of(h2)][0],
        "test_delivered": test_delivered,
        "flooded": flooded,
        "verdict": verdict,
        "max_lag": r1[0].max_lag,
    }
    return verdict, achieved, details


def caching_capacity(ctx: Context, ids: _Ids) -> dict[str, Any]:
    plan = ctx.plan
    tries: list[dict[str, Any]] = []

    def run(n: int) -> bool:
        ctx.harness.reachable()  # every host's own MAC known again (a full table may have dropped them)
        verdict, _, details = _learning_trial(ctx, ids, n, plan.learn_pps, plan.learn_pps)
        tries.append(details)
        ctx.log(f"{ctx.label}: {n:,} addresses: {verdict}")
        return verdict == "pass"

    best, _ = size_search(
        run, plan.caching_start, plan.caching_cap, plan.caching_resolution, plan.caching_max_trials
    )
    return {
        "addresses": best,
        "cap": plan.caching_cap,
        "at_cap": best >= plan.caching_cap,
        "learn_pps": plan.learn_pps,
        "pacing": Pacing.SMOOTH.value,
        "trials": tries,
    }


def learning_rate(ctx: Context, ids: _Ids, capacity: int | None) -> dict[str, Any]:
    plan = ctx.plan
    n = plan.learning_n if not capacity else max(16, min(plan.learning_n, capacity // 2))
    ceiling = ctx.profile.ceiling(Pacing.SMOOTH)
    if not ceiling:
        raise TrafficError("no smooth generator ceiling")
    tries: list[dict[str, Any]] = []

    def run(rate: float) -> tuple[float, bool]:
        ctx.harness.reachable()
        verdict, achieved, details = _learning_trial(ctx, ids, n, rate, plan.learn_pps)
        tries.append(details)
        ctx.log(f"{ctx.label}: learning {n:,} addresses at {achieved:,.0f}/s: {verdict}")
        return achieved, verdict == "pass"

    best, bound, _ = rate_search(run, ceiling, plan.learning_resolution, plan.learning_max_trials)
    return {
        "addresses": n,
        "rate_pps": round(best),
        "generator_bound": bound,
        "generator_ceiling_pps": ceiling,
        "pacing": Pacing.SMOOTH.value,
        "trials": tries,
    }


def limit_egress(fwd: Forwarder, harness: StarHarness, index: int, bps: int) -> None:
    """Give port ``index`` an egress line rate of ``bps`` (0: none), the forwarder's own way."""
    if isinstance(fwd, PyvswitchForwarder):
        fwd.cli("port", "set", f"p{index + 1}", "--link-speed", str(bps))
    elif isinstance(fwd, LinuxBridge):
        ifname = harness.fw_ifs[index]
        if bps:
            sh("tc", "qdisc", "replace", "dev", ifname, "root", "tbf", "rate", f"{bps}bit",
               "burst", "16kb", "limit", "512kb", netns=harness.fw)  # fmt: skip
        else:
            sh("tc", "qdisc", "del", "dev", ifname, "root", netns=harness.fw, check=False)
    else:
        raise TrafficError(f"no way to set an egress rate on {fwd.name}")


def congestion(ctx: Context, fwd: Forwarder) -> dict[str, Any]:
    plan = ctx.plan
    h1, h2, h3, h4 = _hosts(ctx)[:4]
    harness = ctx.harness
    assert isinstance(harness, StarHarness)
    rate = plan.congestion_pps
    count = int(rate * plan.congestion_s)
    bps = congestion_rate_bps(rate)
    s1 = Sender.simple(h1.netns, h1.ifname, Pacing.SMOOTH,
                       [udp_frame(h3.mac, h1.mac), udp_frame(h4.mac, h1.mac)], rate, count)  # fmt: skip
    s2 = Sender.simple(h2.netns, h2.ifname, Pacing.SMOOTH, [udp_frame(h3.mac, h2.mac)], rate, count)
    harness.reachable()
    limit_egress(fwd, harness, 2, bps)
    ports = _ports([h1, h2, h3, h4])
    try:
        # The shaper's queue drains for a while after the senders stop: what it still delivers is not lost.
        before = snapshot(ports)
        reports = run_senders([s1, s2], ctx.cpu)
        at_end = snapshot(ports)
        after = settle(ports, max_s=CONGESTION_DRAIN_S)
    finally:
        limit_egress(fwd, harness, 2, 0)

    def delta(p: Endpoint, i: int, snap: dict[Port, tuple[int, int]] = after) -> int:
        return snap[port_of(p)][i] - before[port_of(p)][i]

    sent1, sent2 = delta(h1, 0), delta(h2, 0)
    due3, due4 = congestion_expected(sent1, sent2)
    got3, got4 = delta(h3, 1), delta(h4, 1)
    secs = max(r.send_s for r in reports)
    res = {
        "per_sender_pps": rate,
        "pacing": Pacing.SMOOTH.value,
        "congested_line_rate_bps": bps,
        "congested_line_rate_pps": round(bps / (60 * 8)),
        "offered_congested": due3,
        "delivered_congested": got3,
        "loss_congested_pct": round(loss_pct(due3, got3), 4),
        # While the senders sent, the congested port can only have passed its line rate (shaper check);
        # the rest came out of the shaper's queue afterwards.
        "delivered_congested_while_sending_pps": round(delta(h3, 1, at_end) / secs) if secs else None,
        "offered_uncongested": due4,
        "delivered_uncongested": got4,
        "loss_uncongested_pct": round(loss_pct(due4, got4), 4),
        "head_of_line_blocking": got4 < due4,
        "max_lag": max((r.max_lag or 0) for r in reports),
    }
    ctx.log(
        f"{ctx.label}: congestion: uncongested port lost {res['loss_uncongested_pct']} %, congested "
        f"{res['loss_congested_pct']} %"
    )
    return res


def broadcast(ctx: Context) -> dict[str, Any]:
    plan = ctx.plan
    h1, *others = _hosts(ctx)
    ceiling = ctx.profile.ceiling(Pacing.SMOOTH)
    if not ceiling:
        raise TrafficError("no smooth generator ceiling")
    frame = udp_frame(BROADCAST, h1.mac)
    tries: list[dict[str, Any]] = []

    def run(rate: float) -> tuple[float, bool]:
        count = max(1, int(rate * plan.broadcast_trial_s))
        s = Sender.simple(h1.netns, h1.ifname, Pacing.SMOOTH, [frame], rate, count)
        with counting(_ports([h1, *others])) as d:
            reports = run_senders([s], ctx.cpu)
        sent = d[port_of(h1)][0]
        got = [d[port_of(o)][1] for o in others]
        echo = d[port_of(h1)][1]
        secs = reports[0].send_s
        lost = sum(max(0, sent - g) for g in got)
        t = {
            "target_pps": round(rate),
            "offered": sent,
            "offered_pps": round(sent / secs) if secs else 0,
            "delivered_per_port": got,
            "forwarding_rate_per_port_pps": round(sum(got) / len(got) / secs) if secs else 0,
            "loss_pct": round(100.0 * lost / (sent * len(got)), 4) if sent else 100.0,
            "echo": echo,
            "max_lag": reports[0].max_lag,
        }
        tries.append(t)
        ctx.log(
            f"{ctx.label}: broadcast {t['offered_pps']:,}/s offered: {t['forwarding_rate_per_port_pps']:,}/s a "
            f"port, loss {t['loss_pct']} %"
        )
        return (sent / secs if secs else 0.0), lost == 0

    best, bound, _ = rate_search(run, ceiling, plan.rate_resolution, plan.broadcast_max_trials)
    first = tries[0] if tries else {}
    return {
        "zero_loss_pps": round(best),
        "generator_bound": bound,
        "generator_ceiling_pps": ceiling,
        "max_load_forwarding_rate_per_port_pps": first.get("forwarding_rate_per_port_pps"),
        "max_load_offered_pps": first.get("offered_pps"),
        "echo_frames": sum(t["echo"] for t in tries),
        "ports": len(others),
        "pacing": Pacing.SMOOTH.value,
        "trials": tries,
    }


def mesh(ctx: Context) -> dict[str, Any]:
    plan = ctx.plan
    hosts = _hosts(ctx)
    n = len(hosts)
    ceiling = ctx.profile.ceiling(Pacing.SMOOTH, senders=n)
    if not ceiling:
        raise TrafficError(f"no smooth generator ceiling for {n} senders")
    frames = {i: [udp_frame(hosts[j].mac, hosts[i].mac) for j in range(n) if j != i] for i in range(n)}
    tries: list[dict[str, Any]] = []

    def run(per_port: float) -> tuple[float, bool]:
        count = max(3, int(per_port * plan.mesh_trial_s))
        senders = [
            Sender.simple(h.netns, h.ifname, Pacing.SMOOTH, frames[i], per_port, count)
            for i, h in enumerate(hosts)
        ]
        with counting(_ports(hosts)) as d:
            reports = run_senders(senders, ctx.cpu)
        sent = {i: d[port_of(h)][0] for i, h in enumerate(hosts)}
        got = {i: d[port_of(h)][1] for i, h in enumerate(hosts)}
        due = mesh_expected(sent, n)
        secs = max(r.send_s for r in reports)
        offered, delivered = sum(sent.values()), sum(got.values())
        lost = sum(max(0, due[i] - got[i]) for i in range(n))
        t = {
            "target_per_port_pps": round(per_port),
            "offered": offered,
            "delivered": delivered,
            "offered_pps": round(offered / secs) if secs else 0,
            "delivered_pps": round(delivered / secs) if secs else 0,
            "loss_pct": round(100.0 * lost / offered, 4) if offered else 100.0,
            "per_port_loss_pct": [round(loss_pct(due[i], got[i]), 4) for i in range(n)],
            "max_lag": max((r.max_lag or 0) for r in reports),
        }
        tries.append(t)
        ctx.log(
            f"{ctx.label}: mesh {t['offered_pps']:,}/s offered, {t['delivered_pps']:,}/s delivered, "
            f"loss {t['loss_pct']} %"
        )
        return (offered / n / secs if secs else 0.0), lost == 0

    best, bound, _ = rate_search(run, ceiling / n, plan.rate_resolution, plan.mesh_max_trials)
    first = tries[0] if tries else {}
    return {
        "ports": n,
        "zero_loss_pps": round(best * n),
        "generator_bound": bound,
        "generator_ceiling_pps": ceiling,
        "max_forwarding_rate_pps": first.get("delivered_pps"),
        "max_load_offered_pps": first.get("offered_pps"),
        "pacing": Pacing.SMOOTH.value,
        "trials": tries,
    }


def run_suite(ctx: Context, fwd: Forwarder) -> dict[str, Any]:
    """Every RFC 2889 test here for ``fwd``, running in the star ``ctx.harness``; a failed test is None plus
    an error."""
    out: dict[str, Any] = {"errors": {}}
    ids = _Ids()
    attempt = functools.partial(attempt_test, ctx.label, out["errors"])

    ctx.harness.set_offloads(False)
    try:
        out["broadcast"] = attempt("broadcast", lambda: broadcast(ctx))
        out["mesh"] = attempt("mesh", lambda: mesh(ctx))
        out["congestion"] = attempt("congestion", lambda: congestion(ctx, fwd))
        out["caching"] = attempt("caching", lambda: caching_capacity(ctx, ids))
        cap = out["caching"]["addresses"] if out["caching"] else None
        out["learning"] = attempt("learning", lambda: learning_rate(ctx, ids, cap))
    finally:
        ctx.harness.set_offloads(True)
    return out
