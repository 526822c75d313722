"""Small, dependency-free frame builders for tests (scapy is slower and GPL; it stays in system tests)."""

from __future__ import annotations

import ipaddress
import struct

from pyvswitch.packet.checksum import internet_checksum
from pyvswitch.packet.frame import ETH_P_8021Q, ETH_P_IPV4
from pyvswitch.packet.mac import parse_mac

BCAST = "ff:ff:ff:ff:ff:ff"


def mac_bytes(mac: str | int) -> bytes:
    value = parse_mac(mac) if isinstance(mac, str) else mac
    return value.to_bytes(6, "big")


def eth(
    dst: str | int,
    src: str | int,
    payload: bytes = b"",
    ethertype: int = ETH_P_IPV4,
    vlan: int | None = None,
    pcp: int = 0,
    pad: bool = True,
) -> bytes:
    """An Ethernet frame, 802.1Q-tagged inline when ``vlan`` is given, padded to 60 bytes unless pad=False."""
    hdr = mac_bytes(dst) + mac_bytes(src)
    if vlan is not None:
        hdr += struct.pack(">HH", ETH_P_8021Q, (pcp << 13) | vlan)
    frame = hdr + struct.pack(">H", ethertype) + payload
    if pad and len(frame) < 60:
        frame += bytes(60 - len(frame))
    return frame


def strip_tag(frame: bytes) -> tuple[int | None, bytes]:
    """(VID or None, untagged frame) for a frame that may carry an inline 802.1Q tag."""
    if len(frame) >= 18 and struct.unpack_from(">H", frame, 12)[0] == ETH_P_8021Q:
        return struct.unpack_from(">H", frame, 14)[0] & 0xFFF, frame[:12] + frame[16:]
    return None, frame


def ipv4(
    src: str,
    dst: str,
    proto: int,
    payload: bytes = b"",
    options: bytes = b"",
    frag_offset: int = 0,
    more_fragments: bool = False,
) -> bytes:
    """An IPv4 packet (header checksum filled in); ``options`` padded to 32-bit words; offset in bytes."""
    options += bytes(-len(options) % 4)
    ihl = 5 + len(options) // 4
    flags_frag = (0x2000 if more_fragments else 0) | (frag_offset // 8)
    hdr = struct.pack(
        ">BBHHHBBH4s4s",
        0x40 | ihl,
        0,
        ihl * 4 + len(payload),
        1,
        flags_frag,
        64,
        proto,
        0,
        ipaddress.IPv4Address(src).packed,
        ipaddress.IPv4Address(dst).packed,
    )
    hdr += options
    hdr = hdr[:10] + struct.pack(">H", internet_checksum(hdr)) + hdr[12:]
    return hdr + payload


def ipv6(src: str, dst: str, next_header: int, payload: bytes = b"", hop_limit: int = 255) -> bytes:
    """An IPv6 packet; ``payload`` starts with any extension headers ``next_header`` announces."""
    return (
        struct.pack(">IHBB", 6 << 28, len(payload), next_header, hop_limit)
        + ipaddress.IPv6Address(src).packed
        + ipaddress.IPv6Address(dst).packed
        + payload
    )


def udp(sport: int, dport: int, payload: bytes = b"") -> bytes:
    """A UDP header and payload (checksum 0: not computed)."""
    return struct.pack(">HHHH", sport, dport, 8 + len(payload), 0) + payload


def icmp(type_: int, code: int = 0, body: bytes = bytes(4)) -> bytes:
    """An ICMP or ICMPv6 message (checksum 0: not computed)."""
    return struct.pack(">BBH", type_, code, 0) + body
