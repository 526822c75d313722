"""Frames that extensions originate or inject (EX-08), entering the chain after the received batch's forwarding.

An injected packet with a real source port gets that port's ingress policies (its outbound ACL, its guards)
and is then forwarded like any other; one from the default port (index -1) is trusted and skips them, as in
Hyper-V. Injections wait in the stack (``ExtensionStack.pending``) until the next batch of any port.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence

from pyvswitch.ext.stack import ExtensionStack
from pyvswitch.packet.frame import ETH_HLEN, UNTAGGED, Packet
from pyvswitch.switch.elements.fanout import EgressDrop
from pyvswitch.switch.elements.ingress import ETH_HDR
from pyvswitch.switch.port import SwitchPort


class Injections:
    """The chain step that adds the extensions' pending injections to the batch, forwarded."""

    __slots__ = ("drops", "ext", "forward", "ports")

    def __init__(
        self,
        ext: ExtensionStack,
        forward: Callable[[list[Packet]], list[Packet]],
        ports: Sequence[SwitchPort | None],
        drops: Counter[str],
    ) -> None:
        self.ext = ext
        self.forward = forward
        self.ports = ports
        self.drops = drops

    def __call__(self, batch: list[Packet]) -> list[Packet]:
        if not self.ext.pending:
            return batch
        return batch + self.forward(self._with_source_policies(self._packets(self.ext.take_pending())))

    def _packets(self, frames: list[tuple[bytes, int | None, int]]) -> list[Packet]:
        out: list[Packet] = []
        unpack = ETH_HDR.unpack_from
        for frame, source, vlan in frames:
            if len(frame) < ETH_HLEN:
                self.drops[EgressDrop.INJECTED_RUNT] += 1
                continue
            dst_hi, dst_lo, src_hi, src_lo, _etype = unpack(frame)
            pkt = Packet(frame, UNTAGGED, None, -1 if source is None else source)
            pkt.vlan = vlan
            pkt.dst = (dst_hi << 32) | dst_lo
            pkt.src = (src_hi << 32) | src_lo
            out.append(pkt)
        return out

    def _with_source_policies(self, injected: list[Packet]) -> list[Packet]:
        out: list[Packet] = []
        for p in injected:
            if p.in_port < 0:
                out.append(p)
                continue
            src = self.ports[p.in_port] if p.in_port < len(self.ports) else None
            if src is None:
                self.drops[EgressDrop.INJECTED_BAD_SOURCE] += 1
                continue
            kept = [p]
            if src.acl_out is not None:
                kept = src.acl_out.process(kept)
            if kept and src.security is not None:
                kept = src.security.before_forward(kept)
            out += kept
        return out
