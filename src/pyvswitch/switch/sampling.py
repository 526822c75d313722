"""Packet sampling for sampling extensions (ext/api.py, API 1.4): sFlow's random 1-in-N sampling per data source.

Each port (a data source) keeps, per sampling extension, a countdown of the frames to skip before the next sample,
drawn uniformly from 1 .. 2N-1 so that the mean interval is N and the picks follow no pattern a traffic source
could lock onto (the sFlow v5 specification, §4.2.1). A batch shorter than the countdown costs one subtraction;
the frames picked are copied (their first ``header_bytes``) before the chain runs, because a filter may replace a
packet's data and the rest of it lives in a receive ring, and described after, when the switch's ``Outs`` say where
each went. That is why sampling sits around ``Switch.process`` rather than in a chain: it sees the flow cache's
replays as well as the chain's work, and it adds no step to either. Samples reach the extension ``HANDOVER`` at a
time or with the next tick, whichever is first.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field

from pyvswitch.ext.api import Sample, SamplingExtension
from pyvswitch.ext.stack import ExtensionSlot, ExtensionStack
from pyvswitch.packet.frame import Packet
from pyvswitch.pipeline.chain import Outs
from pyvswitch.switch.port import SwitchPort

Process = Callable[[SwitchPort, list[Packet]], Outs]
# Samples are handed to their extension this many at a time, or at the next tick (about once a second): each call
# into an extension is contained and timed (ext/stack.py), which costs more than building a sample.
HANDOVER = 32


@dataclass(slots=True)
class Tap:
    """One sampling extension's sampling state: its rate, and per port index the countdown and the pool."""

    slot: ExtensionSlot
    rate: int
    header_bytes: int
    rng: random.Random
    skips: dict[int, int] = field(default_factory=dict)
    pools: dict[int, int] = field(default_factory=dict)
    pending: list[Sample] = field(default_factory=list)  # taken, not yet handed over

    def next_skip(self) -> int:
        rate = self.rate
        return 1 if rate <= 1 else self.rng.randint(1, 2 * rate - 1)


class Sampler:
    """A switch's sampling: every sampling extension of its stack, fed one batch at a time.

    Each port carries its own countdown, ``SwitchPort.sample_left``: frames it may still receive before some tap
    needs to look (the smallest of the taps' countdowns). ``Switch.process`` subtracts a batch from it inline and
    calls ``process`` only for a batch that reaches a sample, so a batch without one costs a subtraction and a
    store on the port's own slots. (Kept here as two lists, until and deferred, that code cost ~220 ns a batch in
    a micro-benchmark on this host; on the port, ~50 ns.) The frames a
    port received since its countdown was set are that value less what is left (``armed``), told to the taps
    at the next sample or when the sampler is replaced."""

    def __init__(
        self, stack: ExtensionStack, ports: list[SwitchPort | None], old: Sampler | None = None
    ) -> None:
        self.stack = stack
        if old is not None:
            old.settle()
            old.tick()  # what the old taps hold goes out at the old settings
        previous = {t.slot.name: t for t in old.taps} if old is not None else {}
        self.taps: list[Tap] = []
        for slot in stack.samplers:
            ext = slot.instance
            assert isinstance(ext, SamplingExtension)
            rate = max(1, int(ext.sampling_rate))
            tap = Tap(slot, rate, max(14, int(ext.header_bytes)), random.Random())
            kept = previous.get(slot.name)
            if kept is not None and kept.rate == rate:  # a reconfiguration is no restart
                tap.skips, tap.pools, tap.rng = kept.skips, kept.pools, kept.rng
            elif kept is not None:
                tap.pools = kept.pools
            self.taps.append(tap)
        # Per port index: the port object and the countdown this sampler last set on it.
        self.armed: dict[int, tuple[SwitchPort, int]] = {}
        for port in ports:
            if port is not None:
                port.sample_left = 0  # its next batch takes ``process``, which sets the real countdown

    def _received_since_armed(self, index: int) -> int:
        armed = self.armed.get(index)
        return 0 if armed is None else armed[1] - armed[0].sample_left

    def settle(self) -> None:
        """Tell the taps about every frame received since the countdowns were set (before the sampler is
        replaced)."""
        for index, (port, _) in list(self.armed.items()):
            n = self._received_since_armed(index)
            if n:
                for tap in self.taps:
                    tap.pools[index] = tap.pools.get(index, 0) + n
                    if index in tap.skips:
                        tap.skips[index] -= n
            self.armed[index] = (port, port.sample_left)

    def process(self, port: SwitchPort, batch: list[Packet], run: Process) -> Outs:
        """``run(port, batch)`` with the batch's samples taken before and handed over after."""
        n = len(batch)
        index = port.index
        deferred = self._received_since_armed(index)
        picked: list[tuple[Tap, list[tuple[Packet, bytes, int, int]]]] = []
        until = 1 << 62
        for tap in self.taps:
            pool = tap.pools.get(index, 0) + deferred
            tap.pools[index] = pool + n
            skip = tap.skips.get(index)
            skip = tap.next_skip() if skip is None else skip - deferred
            if skip > n:
                tap.skips[index] = skip - n
                until = min(until, skip - n)
                continue
            pos = skip - 1
            chosen: list[tuple[Packet, bytes, int, int]] = []
            limit = tap.header_bytes
            while pos < n:
                pkt = batch[pos]
                data = pkt.data
                chosen.append((pkt, bytes(data[:limit]), len(data), pool + pos + 1))
                pos += tap.next_skip()
            tap.skips[index] = pos - n + 1
            until = min(until, pos - n + 1)
            picked.append((tap, chosen))
        port.sample_left = until
        self.armed[index] = (port, until)
        if not picked:
            return run(port, batch)
        outs = run(port, batch)
        for tap, chosen in picked:
            tap.pending += [
                Sample(
                    header,
                    length,
                    index,
                    pkt.vlan,
                    pkt.tci,
                    # Identity tests in C (Packet has no __eq__): cheap for the one or two samples of a batch.
                    tuple(d for d, (pkts, _) in outs.items() if pkt in pkts),
                    pool,
                )
                for pkt, header, length, pool in chosen
            ]
            if len(tap.pending) >= HANDOVER:
                self.hand_over(tap)
        return outs

    def hand_over(self, tap: Tap) -> None:
        samples, tap.pending = tap.pending, []
        self.stack.sampled(tap.slot, samples)

    def tick(self) -> None:
        """Before the extensions' tick: what each tap holds goes to its extension."""
        for tap in self.taps:
            if tap.pending:
                self.hand_over(tap)

    def forget(self, index: int) -> None:
        """A port went: its countdowns and pools go with it (a new port may take the index)."""
        for tap in self.taps:
            tap.skips.pop(index, None)
            tap.pools.pop(index, None)
        self.armed.pop(index, None)
