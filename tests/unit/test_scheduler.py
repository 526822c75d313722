"""The egress scheduler (pipeline/scheduler.py) in simulated time: link rate, weighted shares that are
work-conserving, strict priority, caps, pause. QS-02..QS-05 and the DCB ETS/strict rules (§5.3, §5.5)."""

from __future__ import annotations

from collections import Counter

import pytest

from pyvswitch.packet.frame import Packet
from pyvswitch.pipeline.scheduler import Node, Scheduler, bucket_for
from pyvswitch.testing.clock import FakeClock

MTU = 1500
GBIT = 1_000_000_000


def leaf(name: str, weight: float = 1.0, cap_bps: int = 0, now: float = 0.0, limit: int = 1 << 20) -> Node:
    return Node(name, weight, bucket_for(cap_bps, now) if cap_bps else None, limit=limit)


def run(
    sched: Scheduler,
    clock: FakeClock,
    feeders: dict[Node, int],
    seconds: float,
    step: float = 0.0005,
    size: int = MTU,
    prio: dict[Node, int] | None = None,
) -> Counter[str]:
    """Keep each leaf backlogged (or fed at ``feeders[leaf]`` bytes/s when > 0), pull every ``step``; bytes
    sent per leaf name."""
    sent: Counter[str] = Counter()
    names = [n.name for n in feeders]
    credit: Counter[str] = Counter()
    for _ in range(round(seconds / step)):
        clock.advance(step)
        for node, rate in feeders.items():
            if rate < 0:
                continue  # idle
            if rate == 0:
                while node.backlog < 64 * size:  # saturating
                    p = Packet(bytes(size), in_port=names.index(node.name))
                    sched.enqueue(node, p, -1, (prio or {}).get(node, 0))
            else:
                credit[node.name] += rate * step
                while credit[node.name] >= size:
                    credit[node.name] -= size
                    p = Packet(bytes(size), in_port=names.index(node.name))
                    sched.enqueue(node, p, -1, (prio or {}).get(node, 0))
        pkts, _ = sched.pull(clock.now(), 10_000)
        for p in pkts:
            sent[names[p.in_port]] += len(p.data)
    return sent


def tree(*children: Node, strict: tuple[Node, ...] = ()) -> Node:
    root = Node("root")
    for c in strict:
        root.add(c, strict=True)
    for c in children:
        root.add(c)
    return root


def test_link_rate_is_enforced() -> None:
    clock = FakeClock(0.0)
    a = leaf("a")
    sched = Scheduler(tree(a), GBIT, clock.now())
    sent = run(sched, clock, {a: 0}, 2.0)
    assert sent["a"] * 8 / 2.0 == pytest.approx(GBIT, rel=0.01)


def test_weights_1_2_5_share_a_saturated_link_and_an_idle_share_is_redistributed() -> None:
    """QS-03: under contention each gets w / sum(w); when one stops the others grow by their weights."""
    clock = FakeClock(0.0)
    a, b, c = leaf("a", 1), leaf("b", 2), leaf("c", 5)
    sched = Scheduler(tree(a, b, c), GBIT, clock.now())
    sent = run(sched, clock, {a: 0, b: 0, c: 0}, 2.0)
    total = sum(sent.values())
    assert total * 8 / 2.0 == pytest.approx(GBIT, rel=0.01)
    for name, w in (("a", 1), ("b", 2), ("c", 5)):
        assert sent[name] / total == pytest.approx(w / 8, rel=0.02)
    sent = run(sched, clock, {a: 0, b: 0, c: -1}, 2.0)
    total = sum(sent.values())
    assert total * 8 / 2.0 == pytest.approx(GBIT, rel=0.02)  # work-conserving: the link stays full
    assert sent["a"] / total == pytest.approx(1 / 3, rel=0.03) and sent["c"] < 5 * MTU * 64 + 1


def test_a_light_sender_below_its_share_gets_all_it_sends() -> None:
    clock = FakeClock(0.0)
    a, b = leaf("a", 1), leaf("b", 1)
    sched = Scheduler(tree(a, b), GBIT, clock.now())
    sent = run(sched, clock, {a: 0, b: GBIT // 8 // 10}, 2.0)  # b offers 100 Mbit/s, its share is 500
    assert sent["b"] * 8 / 2.0 == pytest.approx(GBIT / 10, rel=0.02)
    assert (sent["a"] + sent["b"]) * 8 / 2.0 == pytest.approx(GBIT, rel=0.02)


def test_a_cap_holds_its_node_under_its_rate_and_the_rest_goes_to_others() -> None:
    """QS-04: a maximum is a ceiling even when the link is free."""
    clock = FakeClock(0.0)
    a, b = leaf("a", 5, cap_bps=100_000_000), leaf("b", 1)
    sched = Scheduler(tree(a, b), GBIT, clock.now())
    sent = run(sched, clock, {a: 0, b: 0}, 2.0)
    assert sent["a"] * 8 / 2.0 == pytest.approx(100e6, rel=0.02)
    assert sent["b"] * 8 / 2.0 == pytest.approx(900e6, rel=0.02)
    alone = run(sched, clock, {a: 0, b: -1}, 2.0)
    assert alone["a"] * 8 / 2.0 == pytest.approx(100e6, rel=0.02)


def test_strict_class_goes_first_and_ets_classes_share_60_40() -> None:
    """DCB: a Strict class is served before ETS classes; ETS 60/40 under contention."""
    clock = FakeClock(0.0)
    hi = leaf("hi")
    x, y = leaf("x", 60), leaf("y", 40)
    sched = Scheduler(tree(x, y, strict=(hi,)), GBIT, clock.now())
    sent = run(sched, clock, {hi: GBIT // 8 // 5, x: 0, y: 0}, 2.0)  # strict offers 200 Mbit/s
    assert sent["hi"] * 8 / 2.0 == pytest.approx(200e6, rel=0.02)
    rest = sent["x"] + sent["y"]
    assert sent["x"] / rest == pytest.approx(0.6, rel=0.03)


def test_hierarchy_shares_within_shares() -> None:
    """A class of 60 % whose two ports weigh 1:3, next to a class of 40 %."""
    clock = FakeClock(0.0)
    root = Node("root")
    c1, c2 = root.add(Node("c1", 60)), root.add(Node("c2", 40))
    p1, p2 = c1.add(leaf("p1", 1)), c1.add(leaf("p2", 3))
    q = c2.add(leaf("q"))
    sched = Scheduler(root, GBIT, clock.now())
    sent = run(sched, clock, {p1: 0, p2: 0, q: 0}, 2.0)
    total = sum(sent.values())
    assert sent["p1"] / total == pytest.approx(0.15, rel=0.04)
    assert sent["p2"] / total == pytest.approx(0.45, rel=0.03)
    assert sent["q"] / total == pytest.approx(0.40, rel=0.03)


def test_pause_holds_one_priority_and_the_other_keeps_flowing() -> None:
    """PFC: a paused priority sends nothing until the pause ends; the other priority takes the link."""
    clock = FakeClock(0.0)
    lossless, other = leaf("lossless"), leaf("other")
    sched = Scheduler(tree(lossless, other), GBIT, clock.now())
    sched.pause(3, clock.now() + 0.5)
    sent = run(sched, clock, {lossless: 0, other: 0}, 0.4, prio={lossless: 3})
    assert sent["lossless"] == 0 and sent["other"] * 8 / 0.4 == pytest.approx(GBIT, rel=0.02)
    sent = run(sched, clock, {lossless: 0, other: 0}, 1.0, prio={lossless: 3})
    assert sent["lossless"] > 0.3 * sum(sent.values())  # resumed at 0.5 s, then its fair half


def test_tail_drop_counts_and_deadline_says_when_to_look_again() -> None:
    clock = FakeClock(0.0)
    a = leaf("a", limit=200 * MTU)
    sched = Scheduler(tree(a), 10_000_000, clock.now())
    ok = [sched.enqueue(a, Packet(bytes(MTU)), -1) for _ in range(202)]
    assert ok.count(False) == 2 and a.drops == 2
    pkts, _ = sched.pull(clock.now())
    assert pkts  # the initial burst
    deadline = sched.next_deadline(clock.now())
    assert deadline is not None and clock.now() < deadline <= clock.now() + 0.002
    while a.backlog:
        clock.advance(0.001)
        sched.pull(clock.now())
    assert sched.next_deadline(clock.now()) is None


def test_cut_through_only_when_nothing_is_queued_and_the_link_has_room() -> None:
    """send_now / send_batch_now: an idle scheduler with link room sends at once (charged as if pulled);
    once anything is queued, every frame queues behind it, so order is kept."""
    clock = FakeClock(0.0)
    a, b = leaf("a"), leaf("b")
    sched = Scheduler(tree(a, b), 10_000_000, clock.now())  # 1.25 MB/s, burst 131 kB
    assert sched.send_batch_now(a, 80 * MTU, 80, clock.now())  # 120 kB: the link's burst has room
    assert a.sent_frames == 80 and sched.root.sent_bytes == 80 * MTU
    assert not sched.send_batch_now(a, 80 * MTU, 80, clock.now())  # 11 kB left: not for a whole batch
    while sched.send_now(a, MTU, 0, clock.now()):  # frame by frame until the bucket is in debt
        pass
    assert sched.link is not None and sched.link.tokens < 0
    sched.enqueue(a, Packet(bytes(MTU)), -1)
    clock.advance(1.0)  # plenty of tokens again, but something is queued: no overtaking
    assert not sched.send_now(b, MTU, 0, clock.now())
    assert len(sched.pull(clock.now())[0]) == 1
    assert sched.send_now(b, MTU, 0, clock.now()) and b.sent_frames == 1
