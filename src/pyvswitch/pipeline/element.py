"""Element: one batch-at-a-time stage of the data path, with a counted drop gate.

An element takes a batch (a list of packets, all processed to completion before the next batch) and
returns the packets that go on; every packet it does not return it has dropped through ``drop`` with a
reason. Reasons are short kebab-case strings, counted per element, so ``show drops`` can say exactly
where and why frames died (VPP's ``show errors``). Elements never raise per packet.
"""

from __future__ import annotations

from collections import Counter

from pyvswitch.packet.frame import Packet


class Element:
    """Base class. Subclasses implement ``process``; ``name`` identifies the element in counters."""

    __slots__ = ("drops", "name", "packets")

    def __init__(self, name: str) -> None:
        self.name = name
        self.packets = 0  # packets offered to the element
        self.drops: Counter[str] = Counter()

    def process(self, batch: list[Packet]) -> list[Packet]:
        raise NotImplementedError

    def drop(self, reason: str, count: int = 1) -> None:
        self.drops[reason] += count

    def counters(self) -> dict[str, object]:
        return {"packets": self.packets, "drops": dict(self.drops)}
