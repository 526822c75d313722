"""The egress scheduler: a tree of queues drained at a link's rate, by strict priority and weighted fair shares.

A port with a line rate (a NIC's speed) or shaped classes owns one ``Scheduler``. The switch *enqueues* what
it forwards to the port; the engine *pulls* what the link may send now. Pull, not push, is what makes the
shares real: a frame leaves only when the link has room, so under contention the tree decides who goes.

The tree (built by ``switch/qos.py``; this module knows nothing of ports or policies):

    root (link token bucket: rate, small burst)
      ├─ strict children, served first, in order (DCB Strict classes)
      └─ fair children, weighted fair sharing (DCB ETS classes by bandwidth %, ports by weight, ...)
           └─ ... any depth ... └─ leaves: FIFO queues with a byte limit (tail drop)

Fair sharing is start-time fair queuing with post-charging: each fair child has a start tag; the eligible
child with the smallest tag goes; after it sent L bytes its tag grows by L / weight. A child that becomes
backlogged (or eligible again) starts at its parent's virtual time, so idle time is not banked: the scheme is
work-conserving (an idle child's share goes to the others in proportion to their weights) and needs no packet
size in advance, which keeps hierarchy simple. Any node may have a cap (a token bucket, e.g. a throttle
rate): a node without tokens is skipped until it has them again.

Pause (802.1Qbb PFC, 802.3x): ``pause(priority, until)`` holds every queued frame of that priority; a leaf
whose head frame has a paused priority is not eligible, others go on. Frames of one priority normally share
leaves of one class, so this is pausing exactly that priority.

Everything runs on the engine's clock (``now`` arguments), so tests drive it with a fake clock.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence

from pyvswitch.packet.frame import Packet

RATE_WINDOW_S = 0.5  # a node's current rate is measured over windows this long


class TokenBucket:
    """``rate`` bytes/s, at most ``burst`` bytes of credit; may go negative by one frame (a frame is never
    cut), and is ready again when back at zero."""

    __slots__ = ("burst", "last", "rate", "tokens")

    def __init__(self, rate: float, burst: float, now: float) -> None:
        self.rate = rate
        self.burst = burst
        self.tokens = burst
        self.last = now

    def refill(self, now: float) -> float:
        if now > self.last:
            self.tokens = min(self.burst, self.tokens + (now - self.last) * self.rate)
            self.last = now
        return self.tokens

    def ready(self, now: float) -> bool:
        return self.refill(now) >= 0

    def wait(self) -> float:
        """Seconds until ready (0 if it is)."""
        return 0.0 if self.tokens >= 0 else -self.tokens / self.rate


def bucket_for(rate_bps: int, now: float, min_burst: int = 2 * 65_550) -> TokenBucket:
    """A bucket for a rate in bit/s: bursts of at least two GSO super-frames, or 2 ms at the rate."""
    rate = rate_bps / 8
    return TokenBucket(rate, max(float(min_burst), rate * 0.002), now)


class Node:
    """A scheduling node: a leaf (a FIFO of frames) or an inner node (children). See the module docstring."""

    __slots__ = (
        "_window_bytes",
        "_window_start",
        "backlog",
        "cap",
        "drops",
        "fair",
        "frames",
        "is_strict",
        "limit",
        "name",
        "parent",
        "path",
        "queue",
        "rate_bps",
        "sent_bytes",
        "sent_frames",
        "start",
        "strict",
        "vtime",
        "weight",
    )

    def __init__(
        self, name: str, weight: float = 1.0, cap: TokenBucket | None = None, limit: int = 0
    ) -> None:
        self.name = name
        self.weight = weight
        self.cap = cap
        self.parent: Node | None = None
        self.path: list[Node] | None = None  # root's child ... this node (cached by the scheduler)
        self.is_strict = False
        self.strict: list[Node] = []
        self.fair: list[Node] = []
        # A leaf has a queue: (packet, tci, size, priority); ``limit`` bytes, tail drop beyond.
        self.queue: deque[tuple[Packet, int, int, int]] | None = deque() if limit else None
        self.limit = limit
        self.backlog = 0  # bytes queued in this subtree
        self.frames = 0
        self.start = 0.0  # start tag (fair children)
        self.vtime = 0.0  # virtual time among its fair children
        self.sent_bytes = 0
        self.sent_frames = 0
        self.drops = 0
        self.rate_bps = 0.0
        self._window_start = 0.0
        self._window_bytes = 0

    def add(self, child: Node, strict: bool = False) -> Node:
        child.parent = self
        child.is_strict = strict
        (self.strict if strict else self.fair).append(child)
        return child

    def children(self) -> list[Node]:
        return self.strict + self.fair

    def walk(self) -> list[Node]:
        out = [self]
        for c in self.children():
            out += c.walk()
        return out

    def _account(self, size: int, now: float, frames: int = 1) -> None:
        self.sent_bytes += size
        self.sent_frames += frames
        if now - self._window_start >= RATE_WINDOW_S:
            span = now - self._window_start
            self.rate_bps = self._window_bytes * 8 / span if span < 2 * RATE_WINDOW_S else 0.0
            self._window_start = now
            self._window_bytes = 0
        self._window_bytes += size

    def current_rate(self, now: float) -> float:
        """bit/s over the last window (0 once the node has been idle for a window)."""
        return self.rate_bps if now - self._window_start < 2 * RATE_WINDOW_S else 0.0


class Scheduler:
    """One port's egress tree and its link. ``rate_bps`` 0 = no line rate (only caps and pauses hold frames)."""

    def __init__(self, root: Node, rate_bps: int, now: float) -> None:
        self.root = root
        self.link = bucket_for(rate_bps, now) if rate_bps else None
        self.rate_bps = rate_bps
        self.paused: dict[int, float] = {}  # priority -> paused until
        self.leaves = [n for n in root.walk() if n.queue is not None]

    # ---- enqueue (the switch, per forwarded frame) ----

    def enqueue(self, leaf: Node, pkt: Packet, tci: int, priority: int = 0) -> bool:
        """Queue a frame on ``leaf``; False (and counted) if the leaf is full."""
        size = len(pkt.data)
        assert leaf.queue is not None
        if leaf.backlog + size > leaf.limit:
            leaf.drops += 1
            return False
        leaf.queue.append((pkt, tci, size, priority))
        node: Node | None = leaf
        while node is not None:
            if node.backlog == 0 and node.parent is not None:
                node.start = max(node.start, node.parent.vtime)  # no credit for the time it was idle
            node.backlog += size
            node.frames += 1
            node = node.parent
        return True

    def send_now(self, leaf: Node, size: int, priority: int, now: float) -> bool:
        """Cut-through: with nothing queued anywhere, a frame the link, the caps on its path and the pauses
        would let go at once is charged as if pulled and goes without being queued (True) — the order is the
        same as through the queue, and a frame that is never queued is never copied out of its receive ring.
        False: enqueue it."""
        root = self.root
        if root.backlog or (self.paused and priority in self.paused):
            return False
        link = self.link
        if link is not None and not link.ready(now):
            return False
        path = self._path_of(leaf)
        for node in path:
            if node.cap is not None and not node.cap.ready(now):
                return False
        if link is not None:
            link.tokens -= size
        self._charge(path, size, now)
        return True

    def send_batch_now(self, leaf: Node, size: int, frames: int, now: float) -> bool:
        """``send_now`` for several frames of one leaf at once (``size`` bytes in all), when the link has room
        for all of them: the per-batch fast path of an uncongested link."""
        if self.root.backlog:
            return False
        link = self.link
        if link is not None and link.refill(now) < size:
            return False
        path = self._path_of(leaf)
        for node in path:
            if node.cap is not None and node.cap.refill(now) < size:
                return False
        if link is not None:
            link.tokens -= size
        self._charge(path, size, now, frames)
        return True

    def _path_of(self, leaf: Node) -> list[Node]:
        path = leaf.path
        if path is None:
            path = []
            node: Node | None = leaf
            while node is not None and node is not self.root:
                path.append(node)
                node = node.parent
            path.reverse()
            leaf.path = path
        return path

    def _charge(self, path: list[Node], size: int, now: float, frames: int = 1) -> None:
        """Account frames sent from the leaf at the end of ``path`` (fair tags, caps, counters); not backlog."""
        parent = self.root
        for node in path:
            if not node.is_strict:
                if node.start < parent.vtime:
                    node.start = parent.vtime
                parent.vtime = node.start
                node.start += size / node.weight
            if node.cap is not None:
                node.cap.tokens -= size
            node._account(size, now, frames)
            parent = node
        self.root._account(size, now, frames)

    # ---- pull (the engine, whenever it runs) ----

    def pause(self, priority: int, until: float) -> None:
        """Hold ``priority`` until ``until`` (a PFC/PAUSE frame); until <= now resumes it."""
        if until > 0:
            self.paused[priority] = until
        else:
            self.paused.pop(priority, None)

    def _eligible(self, node: Node, now: float) -> bool:
        return node.backlog > 0 and (node.cap is None or node.cap.ready(now))

    def _select(self, node: Node, now: float) -> list[Node] | None:
        """The path below ``node`` (a child of it ... the leaf) to the frame to send next; [] when ``node``
        is that leaf; None if nothing under it may go now."""
        q = node.queue
        if q is not None:
            if not q or (self.paused and q[0][3] in self.paused):
                return None
            return []
        for c in node.strict:
            if self._eligible(c, now):
                sub = self._select(c, now)
                if sub is not None:
                    return [c, *sub]
        candidates = [c for c in node.fair if self._eligible(c, now)]
        if not candidates:
            return None
        vtime = node.vtime
        for c in candidates:
            if c.start < vtime:
                c.start = vtime  # back from a cap or a pause: no credit for the time it could not send
        if len(candidates) > 1:
            candidates.sort(key=lambda c: c.start)
        for c in candidates:
            sub = self._select(c, now)
            if sub is not None:
                return [c, *sub]
        return None

    def _expire_pauses(self, now: float) -> None:
        for prio in [p for p, until in self.paused.items() if until <= now]:
            del self.paused[prio]

    def pull(self, now: float, max_frames: int = 256) -> tuple[list[Packet], list[int]]:
        """The frames the link may send now, in order (at most ``max_frames``)."""
        pkts: list[Packet] = []
        tcis: list[int] = []
        root = self.root
        if root.backlog == 0:
            return pkts, tcis
        if self.paused:
            self._expire_pauses(now)
        link = self.link
        while root.backlog and len(pkts) < max_frames:
            if link is not None and not link.ready(now):
                break
            path = self._select(root, now)
            if not path:
                break
            leaf = path[-1]
            assert leaf.queue is not None
            pkt, tci, size, _prio = leaf.queue.popleft()
            if link is not None:
                link.tokens -= size
            for node in path:
                node.backlog -= size
                node.frames -= 1
            root.backlog -= size
            root.frames -= 1
            self._charge(path, size, now)
            pkts.append(pkt)
            tcis.append(tci)
        return pkts, tcis

    def next_deadline(self, now: float) -> float | None:
        """When a held frame could go (link tokens, caps, pauses), or None if nothing is queued."""
        if self.root.backlog == 0:
            return None
        waits = [0.001]  # a cap deep in the tree: look again within a millisecond
        if self.link is not None:
            self.link.refill(now)
            waits.append(self.link.wait())
        if self.paused:
            waits.append(max(0.0, min(self.paused.values()) - now))
        return now + min(waits)

    def clear(self) -> int:
        """Drop everything queued (the port went away); returns the frames dropped."""
        dropped = 0
        for leaf in self.leaves:
            assert leaf.queue is not None
            dropped += len(leaf.queue)
            leaf.queue.clear()
        for node in self.root.walk():
            node.backlog = 0
            node.frames = 0
        return dropped


def leaves_of(nodes: Sequence[Node]) -> list[Node]:
    return [n for node in nodes for n in node.walk() if n.queue is not None]
