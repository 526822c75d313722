"""One parse of a frame's L3/L4 fields (addresses, protocol, ports, TCP flags, ICMP query), shared by every
policy that looks past Ethernet (port ACLs, the firewall, QoS policies): the first one to ask parses, the
result stays on the packet (``Packet.l3``) for the others.
"""

from __future__ import annotations

import struct
from typing import NamedTuple

from pyvswitch.packet.classify import l3_start, l4_header
from pyvswitch.packet.frame import ETH_P_IPV4, ETH_P_IPV6, Packet

PROTO_ICMP = 1
PROTO_TCP = 6
PROTO_UDP = 17
PROTO_ICMPV6 = 58
_V4_ADDRS = struct.Struct(">II")  # IPv4 addresses straight to ints: no from_bytes per packet
_PORTS = struct.Struct(">HH")


class L3L4(NamedTuple):
    """What ACLs look at in a frame. Addresses are ints (IPv4 and IPv6 in separate families). A NamedTuple:
    made once per packet per check, and a tuple is the cheapest object Python can build.

    ``tcp_flags`` and the ICMP fields are what the firewall's connection tracking needs (a SYN opens a TCP
    connection; an echo request opens a query its reply may answer); rules never match on them, and ICMP
    keeps ports 0 so that a port range in a rule cannot match an ICMP identifier."""

    version: int  # 4, 6, or 0 for non-IP
    src: int
    dst: int
    proto: int
    sport: int
    dport: int
    tcp_flags: int = 0
    icmp_type: int = -1  # -1: not ICMP/ICMPv6, or no ICMP header (truncated, non-first fragment)
    icmp_id: int = 0  # the identifier of a query message (echo, timestamp...); 0 otherwise


NON_IP = L3L4(0, 0, 0, 0, 0, 0)


def parse_l3l4(data: bytes | bytearray | memoryview) -> L3L4:
    """IPv4/IPv6 addresses, protocol and TCP/UDP ports of a frame; NON_IP if not IP or truncated.

    The protocol and its header come from ``packet.classify.l4_header``, which skips IPv4 options, walks the
    IPv6 extension headers (so a rule cannot be dodged with a destination-options header) and gives nothing
    for non-first fragments: those keep their addresses and IP protocol, with ports 0.
    """
    etype, off = l3_start(data)
    n = len(data)
    if etype == ETH_P_IPV4 and n >= off + 20 and data[off] >> 4 == 4:
        src, dst = _V4_ADDRS.unpack_from(data, off + 12)
        proto = data[off + 9]
    elif etype == ETH_P_IPV6 and n >= off + 40 and data[off] >> 4 == 6:
        src = int.from_bytes(data[off + 8 : off + 24], "big")
        dst = int.from_bytes(data[off + 24 : off + 40], "big")
        proto = data[off + 6]
    else:
        return NON_IP
    version = 4 if etype == ETH_P_IPV4 else 6
    l4 = l4_header(data)
    if l4 is None:
        return L3L4(version, src, dst, proto, 0, 0)
    proto = l4[1]
    at = l4[2]
    if proto in (PROTO_TCP, PROTO_UDP):
        if n >= at + 4:
            sport, dport = _PORTS.unpack_from(data, at)
            # A TCP header too short for its flags byte gets none: it can then open no connection.
            flags = data[at + 13] if proto == PROTO_TCP and n >= at + 14 else 0
            return L3L4(version, src, dst, proto, sport, dport, flags)
    elif proto in (PROTO_ICMP, PROTO_ICMPV6) and n >= at + 8:
        # type, code, checksum, then the identifier of a query message
        return L3L4(version, src, dst, proto, 0, 0, 0, data[at], (data[at + 4] << 8) | data[at + 5])
    return L3L4(version, src, dst, proto, 0, 0)


def packet_l3(pkt: Packet) -> L3L4:
    """The packet's L3/L4 fields, parsed once per packet and kept on it."""
    l3 = pkt.l3
    if l3 is None:
        l3 = pkt.l3 = parse_l3l4(pkt.data)
    assert isinstance(l3, L3L4)
    return l3
