"""Unified tracing: what happened to a packet at each stage of the switch, and why it was dropped.

A trace record follows one packet from the port it arrived on through every stage (ingress checks, port ACLs,
each extension, port security, forwarding, egress) to the ports it was delivered to. The switch fills it in only
for packets of a traced port (a per-port packet budget, off by default) and for what-if traces, so the normal
path pays nothing. Drop reasons come from the same per-element counters that ``show drops`` reports: a stage's
verdict is the counter that moved while the packet was in it, and the stage says what decided it (``explain``:
the ACL entry with its weight and fields, the guard and what it compared, the VLAN rule), so a drop reads
"extended-acl-deny: Deny Inbound weight 1 (any address, any port)" rather than a counter's name.
"""

from __future__ import annotations

import ipaddress
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from pyvswitch.packet.frame import Packet
from pyvswitch.packet.l3l4 import PROTO_ICMP, PROTO_ICMPV6, PROTO_TCP, PROTO_UDP, parse_l3l4
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
    # What the stage running now said decided the packet (``explain``), joined to that stage's line.
    why: list[str] = field(default_factory=list)

    def add(self, stage: str, verdict: str, detail: str = "") -> None:
        self.steps.append(TraceStep(stage, verdict, detail))

    def explain(self, text: str) -> None:
        """The deciding object of the stage in progress (an ACL entry, a guard's comparison, a VLAN rule)."""
        self.why.append(text)

    def take_why(self) -> str:
        text, self.why = "; ".join(self.why), []
        return text

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


_PROTOS = {PROTO_TCP: "TCP", PROTO_UDP: "UDP", PROTO_ICMP: "ICMP", PROTO_ICMPV6: "ICMPv6"}
_ETHERTYPES = {
    0x0800: "IPv4",
    0x86DD: "IPv6",
    0x0806: "ARP",
    0x8100: "802.1Q",
    0x88CC: "LLDP",
    0x8809: "LACP",
}
_TCP_FLAGS = "FSRPAUEC"  # bit 0 (FIN) first, as tcpdump names them


def tcp_flags(flags: int) -> str:
    return "".join(c for i, c in enumerate(_TCP_FLAGS) if flags >> i & 1) or "none"


def summarize(data: bytes | bytearray | memoryview, tci: int, vlan: int) -> str:
    """One line, L2 to L4: MACs, the 802.1Q tag (VID and priority), then for IP the addresses, protocol, ports,
    TCP flags or ICMP type, else the EtherType by name; and the length."""
    if len(data) < 14:
        return f"runt ({len(data)} bytes)"
    dst, src = format_mac(int.from_bytes(data[0:6], "big")), format_mac(int.from_bytes(data[6:12], "big"))
    etype = (data[12] << 8) | data[13]
    inner = data
    if etype == 0x8100 and len(data) >= 18:  # an inline tag: describe it and what it carries
        tci = (data[14] << 8) | data[15]
        etype = (data[16] << 8) | data[17]
        inner = bytes(data[:12]) + bytes(data[16:])
    tag = f" vlan {tci & 0xFFF} prio {tci >> 13}" if tci >= 0 else ""
    l2 = f"{src} > {dst}{tag}"
    l3 = parse_l3l4(inner) if etype in (0x0800, 0x86DD) else None
    if l3 is None or not l3.version:
        return f"{l2} {_ETHERTYPES.get(etype, f'type 0x{etype:04x}')} len {len(data)}"
    a = ipaddress.ip_address(l3.src) if l3.version == 4 else ipaddress.IPv6Address(l3.src)
    b = ipaddress.ip_address(l3.dst) if l3.version == 4 else ipaddress.IPv6Address(l3.dst)
    proto = _PROTOS.get(l3.proto, f"proto {l3.proto}")
    if l3.proto in (PROTO_TCP, PROTO_UDP):
        flow = f"{a}:{l3.sport} > {b}:{l3.dport} {proto}"
        if l3.proto == PROTO_TCP:
            flow += f" [{tcp_flags(l3.tcp_flags)}]"
    elif l3.proto in (PROTO_ICMP, PROTO_ICMPV6) and l3.icmp_type >= 0:
        flow = f"{a} > {b} {proto} type {l3.icmp_type}" + (f" id {l3.icmp_id}" if l3.icmp_id else "")
    else:
        flow = f"{a} > {b} {proto}"
    return f"{l2} {flow} len {len(data)}"


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
        decided = rec.take_why()
        if batch:
            detail = step.detail(batch[0]) if step.detail is not None else ""
            rec.add(step.label, "pass", " — ".join(x for x in (detail, decided) if x))
            before = after
        else:
            why = "; ".join(f"{r} ({w})" for w, r in drop_diff(before, after)) or "no destination"
            rec.add(step.label, "drop", f"{why}: {decided}" if decided else why)
            before = None
    outs = chain.fanout(batch)
    for edit in chain.egress:
        edit(batch, outs)
    if before is not None:
        decided = rec.take_why()  # what the egress steps (inbound ACLs, extensions) said decided it
        for d, (pkts, tcis) in sorted(outs.items()):
            if pkts:
                delivered = egress_detail(d, tcis[0])
                if delivered is not None:
                    detail = " — ".join(x for x in (delivered[1], decided) if x)
                    rec.add(delivered[0], "deliver", detail)
        for where, reason in drop_diff(before, snapshot()):
            rec.add(where, "drop", f"{reason}: {decided}" if decided else reason)
    return outs


def explain(pkt: Packet, text: str | Callable[[], str]) -> None:
    """Say what decided ``pkt`` at the stage in progress, if it is being traced (a callable is only called
    then, so describing costs nothing on the normal path)."""
    rec = pkt.trace
    if isinstance(rec, TraceRecord):
        rec.explain(text() if callable(text) else text)
