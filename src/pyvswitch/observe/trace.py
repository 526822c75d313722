"""Unified tracing: what happened to a packet at each stage of the switch, and why it was dropped.

A trace record follows one packet from the port it arrived on through every stage (ingress checks, port ACLs,
each extension, port security, forwarding, egress) to the ports it was delivered to. The switch fills it in only
for packets of a traced port (a per-port packet budget, off by default) and for what-if traces, so the normal
path pays nothing. Drop reasons come from the same per-element counters that ``show drops`` reports: a stage's
verdict is the counter that moved while the packet was in it.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from pyvswitch.packet.frame import Packet
from pyvswitch.packet.mac import format_mac
from pyvswitch.pipeline.chain import Chain, Outs


@dataclass(slots=True)
class TraceStep:
    stage: str
    verdict: str  # "pass", "drop", "deliver", "note"
    detail: str = ""


@dataclass(slots=True)
class TraceRecord:
    switch: str
    port: str
    summary: str
    what_if: bool = False
    time: float = field(default_factory=time.time)
    steps: list[TraceStep] = field(default_factory=list)

    def add(self, stage: str, verdict: str, detail: str = "") -> None:
        self.steps.append(TraceStep(stage, verdict, detail))

    @property
    def verdict(self) -> str:
        delivered = [s for s in self.steps if s.verdict == "deliver"]
        if delivered:
            return "delivered to " + ", ".join(s.stage for s in delivered)
        drop = next((s for s in self.steps if s.verdict == "drop"), None)
        return f"dropped at {drop.stage}: {drop.detail}" if drop else "dropped"

    def as_dict(self) -> dict[str, object]:
        return {
            "switch": self.switch,
            "port": self.port,
            "summary": self.summary,
            "what_if": self.what_if,
            "time": self.time,
            "verdict": self.verdict,
            "steps": [{"stage": s.stage, "verdict": s.verdict, "detail": s.detail} for s in self.steps],
            "tree": self.tree(),
        }

    def tree(self) -> str:
        """The record as a tree of stages (the CLI prints it; captures carry it as the packet's comment)."""
        head = f"{'what-if ' if self.what_if else ''}{self.switch}/{self.port}: {self.summary}"
        lines = [head]
        for i, s in enumerate(self.steps):
            branch = "└─" if i == len(self.steps) - 1 else "├─"
            mark = {"pass": "✓", "drop": "✗", "deliver": "→", "note": "·"}.get(s.verdict, "?")
            lines.append(f"{branch} {mark} {s.stage}" + (f"  {s.detail}" if s.detail else ""))
        lines.append(f"   = {self.verdict}")
        return "\n".join(lines)


def summarize(data: bytes | bytearray | memoryview, tci: int, vlan: int) -> str:
    """One line: MACs, EtherType, VLAN, length."""
    if len(data) < 14:
        return f"runt ({len(data)} bytes)"
    dst, src = format_mac(int.from_bytes(data[0:6], "big")), format_mac(int.from_bytes(data[6:12], "big"))
    etype = (data[12] << 8) | data[13]
    tag = f" tag {tci & 0xFFF}" if tci >= 0 else ""
    return f"{src} > {dst} type 0x{etype:04x}{tag} len {len(data)}"


def drop_diff(before: Counter[tuple[str, str]], after: Counter[tuple[str, str]]) -> list[tuple[str, str]]:
    """(where, reason) of every counter that moved."""
    return [k for k, n in after.items() if n > before.get(k, 0)]


DropSnapshot = Callable[[], Counter[tuple[str, str]]]


def run_traced(
    chain: Chain,
    batch: list[Packet],
    rec: TraceRecord,
    snapshot: DropSnapshot,
    egress_detail: Callable[[int, int], tuple[str, str] | None],
) -> Outs:
    """Run ``chain`` on ``batch`` (one traced packet) and record each step's crossing in ``rec``: "pass" with
    the step's detail while the packet survives, then "drop" with the counters that moved in that step; after
    fan-out and egress, a "deliver" per destination (``egress_detail(port, tci)``: its name and what it carries
    there, None to leave it out) and any drop the egress steps counted. The same steps as ``Chain.run``, except the ones
    that are not about this packet (``Step.traced`` false)."""
    before: Counter[tuple[str, str]] | None = snapshot()
    for step in chain.steps:
        if not step.traced or not (batch or step.always):
            continue
        batch = step.run(batch)
        if before is None:
            continue
        after = snapshot()
        if batch:
            rec.add(step.label, "pass", step.detail(batch[0]) if step.detail is not None else "")
            before = after
        else:
            why = drop_diff(before, after)
            rec.add(step.label, "drop", "; ".join(f"{r} ({w})" for w, r in why) or "no destination")
            before = None
    outs = chain.fanout(batch)
    for edit in chain.egress:
        edit(batch, outs)
    if before is not None:
        for d, (pkts, tcis) in sorted(outs.items()):
            if pkts:
                delivered = egress_detail(d, tcis[0])
                if delivered is not None:
                    rec.add(delivered[0], "deliver", delivered[1])
        for where, reason in drop_diff(before, snapshot()):
            rec.add(where, "drop", reason)
    return outs
