"""Ingress: the first element of every port's chain (validate, untag, classify into a VLAN, learn).

Everything after it may assume a well-formed, untagged Ethernet frame with ``vlan``, ``dst``, ``src`` and
``in_port`` set.
"""

from __future__ import annotations

import struct
from functools import partial
from typing import Protocol

from pyvswitch.clock import Clock
from pyvswitch.drops import DropReason
from pyvswitch.observe.trace import explain
from pyvswitch.packet.frame import ETH_HLEN, ETH_P_8021Q, UNTAGGED, VLAN_HLEN, Packet
from pyvswitch.packet.vnet import EMPTY_VNET_HDR, VNET_HDR_LEN, shift_vnet, vnet_problem
from pyvswitch.pipeline.chain import Step
from pyvswitch.pipeline.element import Element
from pyvswitch.switch.fdb import MacTable
from pyvswitch.switch.security import Learn

# Destination MAC (16+32 bits), source MAC (16+32 bits), EtherType — one unpack per frame.
ETH_HDR = struct.Struct(">HIHIH")
TCI = struct.Struct(">H")


class IngressDrop(DropReason):
    """Why ingress drops a frame (``show drops``, element "ingress")."""

    RUNT = "runt", "shorter than an Ethernet header"
    TRUNCATED_VLAN_TAG = "truncated-vlan-tag", "EtherType 802.1Q but no room for the tag"
    OVERSIZE = "oversize", "longer than the port's MTU allows (and not a GSO super-frame)"
    VNET_CSUM_OUT_OF_FRAME = "vnet-csum-out-of-frame", "virtio-net header: checksum offsets past the frame"
    VNET_BAD_GSO_TYPE = "vnet-bad-gso-type", "virtio-net header: a GSO type the kernel does not know"
    VNET_BAD_GSO = "vnet-bad-gso", "virtio-net header: GSO size or header length impossible for the frame"
    VNET_OFFSET_IN_TAG = (
        "vnet-offset-in-tag",
        "virtio-net header: checksum start or header length inside the inline 802.1Q tag taken off",
    )
    VNET_BAD_LENGTH = "vnet-bad-length", "virtio-net header not 10 bytes long"
    SOURCE_MULTICAST = "source-multicast", "a group address as source: never valid"
    RESERVED_MULTICAST = "reserved-multicast", "01-80-C2-00-00-0x: link-local, a bridge never forwards it"
    VLAN_NOT_ADMITTED = "vlan-not-admitted", "the port's VLAN policy does not admit the frame's VLAN"


def admitted(admit: dict[int, int], vid: int) -> str:
    """What a port's VLAN policy admits, against the frame's VLAN (for a trace)."""
    tagged = sorted(v for v in admit if v != UNTAGGED)
    ranges: list[str] = []
    for v in tagged:
        if ranges and ranges[-1].split("-")[-1] == str(v - 1):
            ranges[-1] = f"{ranges[-1].split('-')[0]}-{v}"
        else:
            ranges.append(str(v))
    what = ("untagged" if UNTAGGED in admit else "") + (" and " if UNTAGGED in admit and tagged else "")
    what += f"VLAN {','.join(ranges)}" if tagged else ""
    return f"the port admits {what or 'nothing'}; the frame is {f'tagged VLAN {vid}' if vid else 'untagged'}"


class Tables(Protocol):
    """What ingress reads of its switch: learning domains, the MAC table, the clock."""

    fid: dict[int, int]
    fdb: MacTable
    clock: Clock


class PortView(Protocol):
    """What ingress reads of the port it is bound to."""

    index: int
    ingress_vlans: dict[int, int]
    max_frame: int
    learn: Learn | None


class Ingress(Element):
    """Validates a frame, strips an inline 802.1Q tag, assigns its VLAN and learns its source.

    One element per switch (its counters are the switch's "ingress"); each port's chain binds it to that
    port with ``step`` (switch/plan.py). Drops: ``IngressDrop``.
    """

    __slots__ = ("switch",)

    def __init__(self, switch: Tables) -> None:
        super().__init__("ingress")
        self.switch = switch

    def step(self, port: PortView) -> Step:
        return Step(
            partial(self.process_from, port), "ingress", detail=lambda p: f"VLAN {p.vlan}", counts=(self,)
        )

    def process(self, batch: list[Packet]) -> list[Packet]:
        raise TypeError("Ingress runs bound to a port: process_from(port, batch)")

    def process_from(self, port: PortView, batch: list[Packet]) -> list[Packet]:
        self.packets += len(batch)
        sw = self.switch
        admit = port.ingress_vlans
        max_frame = port.max_frame
        in_port = port.index
        fid = sw.fid
        # A MAC-guarded port learns only the MACs it may use: a spoofed frame, dropped after ingress by its
        # guard, must not move a MAC table entry first (switch/security.py).
        learn = port.learn or sw.fdb.learn
        now = sw.clock.now()
        unpack = ETH_HDR.unpack_from
        out: list[Packet] = []
        append = out.append
        last_src = last_vlan = -1
        for pkt in batch:
            data = pkt.data
            n = len(data)
            if n < ETH_HLEN:
                self.drop(IngressDrop.RUNT)
                continue
            dst_hi, dst_lo, src_hi, src_lo, etype = unpack(data)
            tci = pkt.tci
            vnet = pkt.vnet
            if etype == ETH_P_8021Q and tci == UNTAGGED:
                # Tag delivered inline (TAP, pcap): take it off so every frame inside the switch is untagged.
                if n < ETH_HLEN + VLAN_HLEN:
                    self.drop(IngressDrop.TRUNCATED_VLAN_TAG)
                    continue
                tci = TCI.unpack_from(data, 14)[0]
                data = bytes(data[:12]) + bytes(data[16:])
                n -= VLAN_HLEN
                pkt.data = data
                pkt.tci = tci
                if vnet is not None:
                    shifted = shift_vnet(vnet, -VLAN_HLEN) if len(vnet) == VNET_HDR_LEN else vnet
                    if shifted is None:  # a guest's header that points before the untagged frame
                        self.drop(IngressDrop.VNET_OFFSET_IN_TAG)
                        continue
                    vnet = pkt.vnet = shifted
            if vnet is not None and vnet != EMPTY_VNET_HDR:
                problem = vnet_problem(vnet, n)
                if problem is not None:
                    self.drop(IngressDrop(problem))
                    continue
                gso = vnet[1] != 0
            else:
                gso = False
            if n > max_frame and not gso:
                self.drop(IngressDrop.OVERSIZE)
                continue
            if src_hi & 0x0100:
                self.drop(IngressDrop.SOURCE_MULTICAST)
                continue
            if dst_hi == 0x0180 and dst_lo & 0xFFFFFFF0 == 0xC2000000:
                # 01-80-C2-00-00-00..0F are link-local (802.1Q 8.6.3: STP, MAC Control/PFC, LACP, LLDP,
                # 802.1X): a bridge never forwards them, as the Linux bridge and OVS do not.
                self.drop(IngressDrop.RESERVED_MULTICAST)
                continue
            vid = tci & 0xFFF if tci != UNTAGGED else 0
            vlan = admit.get(vid if vid else UNTAGGED)
            if vlan is None:
                self.drop(IngressDrop.VLAN_NOT_ADMITTED)
                if pkt.trace is not None:
                    explain(pkt, admitted(admit, vid))
                continue
            src = (src_hi << 32) | src_lo
            pkt.vlan = vlan
            pkt.dst = (dst_hi << 32) | dst_lo
            pkt.src = src
            pkt.in_port = in_port
            # A batch is mostly one conversation: learning the same source twice in it changes nothing.
            if src != last_src or vlan != last_vlan:
                learn(fid.get(vlan, vlan), src, in_port, now)
                last_src = src
                last_vlan = vlan
            append(pkt)
        return out
