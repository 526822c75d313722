"""VXLAN (RFC 7348) encapsulation and the ARP frames a tunnel answers locally (issue 13: HNV's ARP suppression).

VXLAN header, 8 bytes after the outer UDP header (port 4789): flags (0x08: the VNI is valid), 3 reserved bytes,
the 24-bit VNI, 1 reserved byte. The VNI is the virtual subnet id (VSID): HNV's 24-bit space is VXLAN's.
"""

from __future__ import annotations

import struct

VXLAN_PORT = 4789
VXLAN_HEADER_LEN = 8
VXLAN_FLAG_VNI = 0x08
# What the tunnel adds on the provider network: outer Ethernet 14 + IPv4 20 + UDP 8 + VXLAN 8. A VM on a
# virtual subnet sees an MTU this much below the provider network's (1450 on a 1500-byte network).
OVERHEAD_IPV4 = 50

ETH_P_ARP = 0x0806
ARP_REQUEST, ARP_REPLY = 1, 2


def encode_header(vni: int) -> bytes:
    return struct.pack("!B3xI", VXLAN_FLAG_VNI, vni << 8)


def decode_header(data: bytes | bytearray | memoryview) -> int | None:
    """The VNI of a VXLAN datagram's payload, or None if it is not one (short, or the VNI flag unset)."""
    if len(data) < VXLAN_HEADER_LEN + 14 or not data[0] & VXLAN_FLAG_VNI:
        return None
    return int.from_bytes(data[4:7], "big")


def arp_request_target(frame: bytes | bytearray | memoryview) -> tuple[bytes, int, bytes] | None:
    """(target IPv4, sender MAC, sender IPv4) of an untagged Ethernet/IPv4 ARP request; None for anything else."""
    if len(frame) < 42 or frame[12] != 0x08 or frame[13] != 0x06:
        return None
    htype, ptype, hlen, plen, op = struct.unpack_from("!HHBBH", frame, 14)
    if htype != 1 or ptype != 0x0800 or hlen != 6 or plen != 4 or op != ARP_REQUEST:
        return None
    sender_mac = int.from_bytes(frame[22:28], "big")
    sender_ip = bytes(frame[28:32])
    target_ip = bytes(frame[38:42])
    return target_ip, sender_mac, sender_ip


def arp_reply(target_mac: int, target_ip: bytes, asker_mac: int, asker_ip: bytes) -> bytes:
    """The reply ``target_ip is-at target_mac`` to ``asker``, as the target itself would send it."""
    src = target_mac.to_bytes(6, "big")
    dst = asker_mac.to_bytes(6, "big")
    body = struct.pack("!HHBBH", 1, 0x0800, 6, 4, ARP_REPLY) + src + target_ip + dst + asker_ip
    frame = dst + src + b"\x08\x06" + body
    return frame + bytes(60 - len(frame))
