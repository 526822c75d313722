"""The chain as data: the compiled list of steps a port's received batch goes through, and the runner.

A switch compiles one ``Chain`` per port whenever its configuration changes (switch/plan.py): only the steps
that port needs, each an element's work bound to that port (its ACL, its guards, the extension stack...), so
no packet asks "is this enabled?" and no element reads which port is being served from a side channel. The
chain has two halves, as Click's and VPP's graphs do:

- batch steps, list -> list: every packet a step does not return it has dropped, counted, through its
  element's gate;
- after ``fanout`` has grouped the survivors per destination port (``Outs``: port index -> packets and the
  802.1Q TCI each gets there), egress steps that edit that grouping in place (remove, add copies).

``Chain.run`` is the only runner on the normal path. Tracing is another runner over the same data
(observe/trace.py ``run_traced``): it records at each step's crossing, so no element carries a trace
parameter, and what the trace shows is, by construction, the chain that runs.
"""

from __future__ import annotations

from collections.abc import Callable

from pyvswitch.packet.frame import Packet
from pyvswitch.pipeline.element import Element

# Per destination port index: the packets to send there and the TCI to put on each (UNTAGGED for none).
Outs = dict[int, tuple[list[Packet], list[int]]]


class Step:
    """One batch step: ``run(batch) -> survivors``.

    ``label`` is what a trace calls the crossing; ``detail(first survivor)`` adds what was decided there.
    ``always``: the step runs on an empty batch too (it may add packets: the extensions' injections).
    ``traced``: a trace records the crossing (a step that only adds packets of other origins records
    nothing about the traced one, and does not run for it).
    ``counts``: the elements whose ``packets`` counter the step moves for every packet it is offered (what the
    flow cache moves for the packets it replays, switch/flowcache.py).
    """

    __slots__ = ("always", "counts", "detail", "label", "run", "traced")

    def __init__(
        self,
        run: Callable[[list[Packet]], list[Packet]],
        label: str,
        *,
        detail: Callable[[Packet], str] | None = None,
        always: bool = False,
        traced: bool = True,
        counts: tuple[Element, ...] = (),
    ) -> None:
        self.run = run
        self.counts = counts
        self.label = label
        self.detail = detail
        self.always = always
        self.traced = traced

    def __repr__(self) -> str:
        return f"Step({self.label!r})"


# An egress step: (the batch that reached fan-out, its grouping per destination) -> None; edits ``outs``.
EgressStep = Callable[[list[Packet], Outs], None]


class Chain:
    """A port's compiled chain: batch steps, the fan-out, then egress steps."""

    __slots__ = ("egress", "fanout", "steps")

    def __init__(
        self, steps: tuple[Step, ...], fanout: Callable[[list[Packet]], Outs], egress: tuple[EgressStep, ...]
    ) -> None:
        self.steps = steps
        self.fanout = fanout
        self.egress = egress

    def run(self, batch: list[Packet]) -> Outs:
        for step in self.steps:
            if batch or step.always:
                batch = step.run(batch)
        outs = self.fanout(batch)
        for edit in self.egress:
            edit(batch, outs)
        return outs

    def labels(self) -> list[str]:
        """The steps' labels in order (what a trace can record, for tests)."""
        return [s.label for s in self.steps]
