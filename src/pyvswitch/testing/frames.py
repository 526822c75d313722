"""Small, dependency-free frame builders for tests (scapy is slower and GPL; it stays in system tests)."""

from __future__ import annotations

import struct

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
