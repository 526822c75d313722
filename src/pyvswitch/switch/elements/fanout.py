"""Fan-out and the egress steps: from one list of forwarded packets to what each destination port sends.

``FanOut`` groups the forwarded packets per destination with the 802.1Q TCI each gets there (the VLAN
boundary holds here); the egress steps then edit that grouping in the order Hyper-V applies egress policy:
destinations the emulated NIC switch served already are removed (switch/iov.py), a trusted 802.1p priority is
written into the TCI (PS-06), each destination's inbound port ACL runs, the extensions' egress runs, and port
mirroring adds copies last (PM-01/02), so mirrors hold whatever an extension decided.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from pyvswitch.drops import DropReason
from pyvswitch.ext.stack import ExtensionStack
from pyvswitch.packet.frame import UNTAGGED, Packet, uncache
from pyvswitch.pipeline.chain import Outs
from pyvswitch.switch.port import SwitchPort


class EgressDrop(DropReason):
    """Why a frame does not leave for a destination after forwarding (``show drops``, element "egress")."""

    VLAN_EGRESS_FILTERED = "vlan-egress-filtered", "known unicast to a port outside the frame's VLAN"
    INJECTED_RUNT = "injected-runt", "an extension injected fewer bytes than an Ethernet header"
    INJECTED_BAD_SOURCE = "injected-bad-source", "an extension injected on behalf of a port that is gone"


class FanOut:
    """Per destination port, the packets and the TCI each gets there."""

    __slots__ = ("drops", "ports")

    def __init__(self, ports: Sequence[SwitchPort | None], drops: Counter[str]) -> None:
        self.ports = ports
        self.drops = drops

    def __call__(self, batch: list[Packet]) -> Outs:
        outs: Outs = {}
        ports = self.ports
        last: tuple[int, int] | None = None  # (port, vlan) of the previous single-destination packet
        last_pkts: list[Packet] = []
        last_tcis: list[int] = []
        last_tci = UNTAGGED
        for pkt in batch:
            vlan = pkt.vlan
            dsts = pkt.dsts
            assert dsts is not None
            if len(dsts) == 1 and last == (dsts[0], vlan):
                last_pkts.append(pkt)
                last_tcis.append(last_tci)
                continue
            for d in dsts:
                dport = ports[d]
                if dport is None:
                    continue
                tci = dport.egress_vlans.get(vlan)
                if tci is None:
                    self.drops[EgressDrop.VLAN_EGRESS_FILTERED] += 1
                    if pkt.flow is not None:
                        pkt.flow.ok = False  # counted per destination: not replayable
                    continue
                slot = outs.get(d)
                if slot is None:
                    slot = outs[d] = ([], [])
                slot[0].append(pkt)
                slot[1].append(tci)
                if len(dsts) == 1:
                    last, last_pkts, last_tcis, last_tci = (d, vlan), slot[0], slot[1], tci
        return outs


NIC_SWITCH_DELIVERED = "nic_switch_delivered"  # the egress element's counter: not a drop (issue 14)


class NicSwitched:
    """Removes the destinations the NIC switch delivered to already (switch/iov.py), counted as delivered by the
    NIC switch: the frame reached them, so it is no drop."""

    __slots__ = ("delivered", "served")

    def __init__(self, served: Sequence[int], delivered: Counter[str]) -> None:
        self.served = served
        self.delivered = delivered

    def __call__(self, batch: list[Packet], outs: Outs) -> None:
        for idx in self.served:
            if idx in outs:
                pkts = outs.pop(idx)[0]
                self.delivered[NIC_SWITCH_DELIVERED] += len(pkts)
                uncache(pkts)


class KeepPriority:
    """PS-06: the 802.1p priority received on this port is trusted and carried into the TCIs."""

    __slots__ = ("ports", "security")

    def __init__(self, port: SwitchPort, ports: Sequence[SwitchPort | None]) -> None:
        assert port.security is not None
        self.security = port.security
        self.ports = ports

    def __call__(self, batch: list[Packet], outs: Outs) -> None:
        self.security.mark_priority(outs, self.ports)


class InboundAcls:
    """Built-in egress ACL: each destination's Inbound entries, before the extensions' egress."""

    __slots__ = ("acl_ports", "ports")

    def __init__(self, acl_ports: set[int], ports: Sequence[SwitchPort | None]) -> None:
        self.acl_ports = acl_ports
        self.ports = ports

    def __call__(self, batch: list[Packet], outs: Outs) -> None:
        for d in self.acl_ports.intersection(outs):
            dport = self.ports[d]
            assert dport is not None and dport.acl_in is not None
            pkts, tcis = outs[d]
            kept = dport.acl_in.process(pkts)
            if len(kept) != len(pkts):
                ids = {id(p) for p in kept}
                outs[d] = (kept, [t for p, t in zip(pkts, tcis, strict=True) if id(p) in ids])


class ExtensionEgress:
    """The extensions' egress filters and captures, per destination (reversed stack order)."""

    __slots__ = ("ext",)

    def __init__(self, ext: ExtensionStack) -> None:
        self.ext = ext

    def __call__(self, batch: list[Packet], outs: Outs) -> None:
        for d, (pkts, tcis) in list(outs.items()):
            outs[d] = self.ext.egress(pkts, tcis, d)


class Mirror:
    """PM-01/02: copies of what a Source port sends and receives go to every Destination port, with the tag
    they carry on the Source port's wire. A frame already going to a Destination port is not sent twice."""

    __slots__ = ("from_ports", "port", "to_ports")

    def __init__(self, port: int, from_ports: set[int], to_ports: list[int]) -> None:
        self.port = port
        self.from_ports = from_ports
        self.to_ports = to_ports

    def __call__(self, accepted: list[Packet], outs: Outs) -> None:
        copies: list[tuple[Packet, int]] = []
        if self.port in self.from_ports:
            copies += [(p, p.tci) for p in accepted]
        for d in self.from_ports.intersection(outs):
            pkts, tcis = outs[d]
            copies += zip(pkts, tcis, strict=True)
        if not copies:
            return
        for m in self.to_ports:
            if m == self.port:
                continue
            slot = outs.get(m)
            if slot is None:
                slot = outs[m] = ([], [])
            already = {id(p) for p in slot[0]}
            for p, tci in copies:
                if id(p) not in already:
                    already.add(id(p))
                    slot[0].append(p)
                    slot[1].append(tci)
