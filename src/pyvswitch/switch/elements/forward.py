"""Forwarding: which ports a frame goes to. The built-in learning forwarder, or the extension stack's
forwarding extension when one is enabled (EX-05), which may then replace the MAC table's decision.
"""

from __future__ import annotations

from typing import Protocol

from pyvswitch.drops import DropReason
from pyvswitch.ext.stack import ExtensionStack
from pyvswitch.packet.frame import Packet
from pyvswitch.pipeline.element import Element
from pyvswitch.switch.fdb import MacTable


class ForwardDrop(DropReason):
    """Why the learning forwarder drops a frame (``show drops``, element "forward")."""

    HAIRPIN = "hairpin", "the destination MAC is behind the port the frame came from"
    UNKNOWN_UNICAST = "unknown-unicast", "unknown destination and no port may receive unknown unicast (SW-07)"
    NO_DESTINATION = "no-destination", "a flood with nobody else in the VLAN"


class ForwardingTables(Protocol):
    fid: dict[int, int]
    fdb: MacTable

    def flood_targets(self, vlan: int) -> tuple[int, ...]: ...

    def unknown_targets(self, vlan: int) -> tuple[int, ...]: ...


class Forward(Element):
    """The built-in forwarder: sets each packet's destination ports from the MAC table (learning switch).

    Drops: ``ForwardDrop``.
    """

    __slots__ = ("switch",)

    def __init__(self, switch: ForwardingTables) -> None:
        super().__init__("forward")
        self.switch = switch

    def process(self, batch: list[Packet]) -> list[Packet]:
        self.packets += len(batch)
        sw = self.switch
        lookup = sw.fdb.lookup
        fid = sw.fid
        flood = sw.flood_targets
        unknown = sw.unknown_targets
        out: list[Packet] = []
        append = out.append
        # Consecutive frames to the same destination (the common case in a batch) reuse one lookup.
        last_key: tuple[int, int] | None = None
        last_port: int | None = None
        for pkt in batch:
            vlan = pkt.vlan
            in_port = pkt.in_port
            dst = pkt.dst
            if dst >> 40 & 1:
                targets = flood(vlan)
            else:
                key = (dst, vlan)
                if key == last_key:
                    port = last_port
                else:
                    port = last_port = lookup(fid.get(vlan, vlan), dst)
                    last_key = key
                if port is not None:
                    if port == in_port:
                        self.drop(ForwardDrop.HAIRPIN)
                        continue
                    pkt.dsts = [port]
                    append(pkt)
                    continue
                targets = unknown(vlan)
            dsts = [p for p in targets if p != in_port]
            if not dsts:
                self.drop(
                    ForwardDrop.UNKNOWN_UNICAST if not pkt.dst >> 40 & 1 else ForwardDrop.NO_DESTINATION
                )
                continue
            pkt.dsts = dsts
            append(pkt)
        return out


def forward_with(ext: ExtensionStack, forward: Forward, port_count: int, batch: list[Packet]) -> list[Packet]:
    """The forwarding step of a switch with extensions: the forwarding extension if one is enabled (its drops
    are the stack's), else the learning forwarder."""
    if not batch:
        return batch
    if ext.forwarder is not None:
        return ext.forward(batch, port_count)
    return forward.process(batch)
