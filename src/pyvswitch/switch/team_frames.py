"""What a team reads and writes in frames: the hash that picks a member for a flow (per load-balancing
algorithm), which frames tell the network where a MAC is (switch-independent teams send those on every
member), and the RARP a team sends to move its MACs after a failover."""

from __future__ import annotations

import struct
import zlib

from pyvswitch.config.schema import LoadBalancing
from pyvswitch.packet.frame import ETH_P_ARP, ETH_P_IPV4, ETH_P_IPV6, Packet


def rarp(mac: int) -> bytes:
    """A broadcast RARP request from ``mac`` (EtherType 0x8035): what OVS and VMware send to move a MAC."""
    hw = mac.to_bytes(6, "big")
    body = struct.pack(">HHBBH", 1, 0x0800, 6, 4, 3) + hw + bytes(4) + hw + bytes(4)
    return b"\xff" * 6 + hw + b"\x80\x35" + body + bytes(60 - 14 - len(body))


def flow_hash(pkt: Packet, algorithm: LoadBalancing) -> int:
    """The hash that picks a member; stable for a flow, cheap (crc32 of the fields)."""
    if algorithm is LoadBalancing.HYPERV_PORT:
        return pkt.in_port & 0x7FFFFFFF
    data = pkt.data
    if algorithm is not LoadBalancing.MAC_ADDRESSES and len(data) >= 34:
        etype = (data[12] << 8) | data[13]
        if etype == ETH_P_IPV4:
            ihl = (data[14] & 0xF) * 4
            key = bytes(data[26:34])
            proto = data[23]
            if algorithm is not LoadBalancing.IP_ADDRESSES and proto in (6, 17) and len(data) >= 14 + ihl + 4:
                key += bytes(data[14 + ihl : 18 + ihl]) + bytes([proto])
            return zlib.crc32(key)
        if etype == ETH_P_IPV6 and len(data) >= 58:
            key = bytes(data[22:54])
            if algorithm is not LoadBalancing.IP_ADDRESSES and data[20] in (6, 17):
                key += bytes(data[54:58])
            return zlib.crc32(key)
    return zlib.crc32(bytes(data[0:12]))


def announces_location(data: bytes | bytearray | memoryview) -> bool:
    """Frames that tell the network where a MAC is: broadcast/multicast, ARP, IPv6 neighbour discovery."""
    if data[0] & 1:
        return True
    etype = (data[12] << 8) | data[13]
    if etype == ETH_P_ARP:
        return True
    # ICMPv6 router/neighbour solicitation and advertisement, redirect (133-137), no extension headers.
    return etype == ETH_P_IPV6 and len(data) > 54 and data[20] == 58 and 133 <= data[54] <= 137
