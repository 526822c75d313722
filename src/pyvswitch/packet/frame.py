"""The Packet: one frame plus its forwarding context, and the constants of the headers the switch reads.

Conventions every layer relies on:
- ``Packet.data`` is the Ethernet frame *without* its outer 802.1Q tag once the switch has classified it;
  devices deliver it as received (the kernel strips veth tags out of band into ``tci``; a TAP delivers
  tags inline, which the switch's ingress strips).
- ``Packet.tci`` is the received outer tag's TCI (PCP<<13 | DEI<<12 | VID) or ``UNTAGGED`` (-1).
- ``Packet.vnet`` is the raw virtio-net header (10 bytes) when the device carries offload metadata
  (PACKET_VNET_HDR / IFF_VNET_HDR), else None. Its checksum and header offsets are relative to
  ``data`` as it stands: whoever inserts or removes bytes before them must shift them.
- ``data`` may be a memoryview into a device's receive ring; it is valid only until that device's
  ``release()``. Anything that keeps a packet past the batch copies it (``Packet.detach``).
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from typing import Protocol

ETH_P_IPV4 = 0x0800
ETH_P_ARP = 0x0806
ETH_P_8021Q = 0x8100
ETH_P_8021AD = 0x88A8
ETH_P_IPV6 = 0x86DD
ETH_P_LACP = 0x8809

UNTAGGED = -1
ETH_HLEN = 14
VLAN_HLEN = 4

Buffer = bytes | bytearray | memoryview
TAG = struct.Struct(">HH")  # TPID, TCI


def tag_bytes(tci: int) -> bytes:
    """The 4 bytes of an 802.1Q tag carrying ``tci``."""
    return TAG.pack(ETH_P_8021Q, tci & 0xFFFF)


class FlowToken(Protocol):
    """Per-packet work a flow-cacheable extension still has to do on a cache hit (switch/flowcache.py): the
    firewall's connection refreshed, a rule's hit counted. ``hit`` accounts for ``packets`` packets of the flow
    at ``now`` (consecutive ones of a batch come as one call) and returns False, changing nothing, when the
    decision it stands for no longer holds (the connection expired): the packet then takes the whole chain."""

    def hit(self, now: float, packets: int = 1) -> bool: ...


class FlowNote:
    """What the flow cache records while the chain runs a packet it missed: ``ok`` until anything decides
    something about the packet that a replay of the outcome would not reproduce (a drop towards one of several
    destinations, an extension's failure, changed bytes); the extensions' tokens to replay on hits."""

    __slots__ = ("ok", "tokens")

    def __init__(self) -> None:
        self.ok = True
        self.tokens: list[FlowToken] = []


def uncache(pkts: Iterable[Packet]) -> None:
    """What happened to these packets must not be replayed from the flow cache (switch/flowcache.py)."""
    for p in pkts:
        if p.flow is not None:
            p.flow.ok = False


class Packet:
    """One frame and its forwarding context (Hyper-V's out-of-band NBL context)."""

    __slots__ = ("data", "dst", "dsts", "flow", "in_port", "l3", "qos", "src", "tci", "trace", "vlan", "vnet")

    def __init__(
        self,
        data: Buffer,
        tci: int = UNTAGGED,
        vnet: bytes | None = None,
        in_port: int = -1,
    ) -> None:
        self.data = data
        self.tci = tci
        self.vnet = vnet
        self.in_port = in_port
        # Set by the switch's ingress: the VLAN the frame belongs to inside the switch (0 = untagged
        # domain) and the destination/source MACs as 48-bit ints, parsed once per frame.
        self.vlan = 0
        self.dst = 0
        self.src = 0
        # Set by forwarding: destination port indices (None = not yet decided).
        self.dsts: list[int] | None = None
        # The parsed IP header fields, filled in by the first policy that needs them (packet/l3l4.py packet_l3) so
        # that ACLs and the firewall parse a frame once; None until then. Whoever changes ``data`` resets it.
        self.l3: object | None = None
        # The trace record following this packet (observe/trace.py) when its port is traced; captures write it
        # as the packet's comment.
        self.trace: object | None = None
        # The host QoS policy (New-NetQosPolicy) a management-OS frame matched (switch/qos.py), else None.
        self.qos: object | None = None
        # While the switch records what the chain does to this packet for its flow cache (switch/flowcache.py):
        # the record (a FlowNote), which elements may veto and extensions add tokens to; None otherwise.
        self.flow: FlowNote | None = None

    def detach(self) -> Packet:
        """Return a copy whose data no longer refers to a device ring."""
        p = Packet(bytes(self.data), self.tci, self.vnet, self.in_port)
        p.vlan = self.vlan
        p.dst = self.dst
        p.src = self.src
        p.dsts = None if self.dsts is None else list(self.dsts)
        p.qos = self.qos
        return p

    def __repr__(self) -> str:
        return f"Packet(len={len(self.data)}, tci={self.tci}, vlan={self.vlan}, in_port={self.in_port})"
