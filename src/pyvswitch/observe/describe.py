"""Frames from a one-line description, for what-if traces: ``dst=02:00:00:00:00:0b vlan=10 tcp dport=80``.

Words: ``src=MAC dst=MAC vlan=N pcp=N`` (an 802.1Q tag as it arrives on the port), ``ip=SRC>DST`` or
``sip=A dip=B`` (IPv4 or IPv6 by the address), a protocol ``tcp|udp|icmp|arp``, ``sport=N dport=N``, ``len=N``
(pad to N bytes). Unknown words are an error naming the word. Defaults: the port's own MAC as source,
broadcast destination, untagged, no IP header (EtherType 0x88b5, the IEEE local experimental type).
"""

from __future__ import annotations

import ipaddress
import struct

from pyvswitch.packet.checksum import internet_checksum
from pyvswitch.packet.frame import UNTAGGED
from pyvswitch.packet.mac import parse_mac

PROTOS = {"tcp": 6, "udp": 17, "icmp": 1}


class DescriptionError(ValueError):
    pass


def build(description: str, default_src: str | None = None) -> tuple[bytes, int]:
    """(untagged frame, tci) for the description."""
    f: dict[str, str] = {}
    proto: str | None = None
    for word in description.split():
        key, eq, value = word.partition("=")
        key = key.lower()
        if not eq:
            if key in (*PROTOS, "arp"):
                proto = key
                continue
            raise DescriptionError(f"unknown word {word!r}")
        if key == "ip":
            a, sep, b = value.partition(">")
            if not sep:
                raise DescriptionError(f"{word!r}: write ip=SRC>DST")
            f["sip"], f["dip"] = a, b
        elif key in ("src", "dst", "vlan", "pcp", "sip", "dip", "sport", "dport", "len"):
            f[key] = value
        else:
            raise DescriptionError(f"unknown field {key!r} in {word!r}")
    try:
        src = parse_mac(f.get("src") or default_src or "02:00:00:00:00:01")
        dst = parse_mac(f.get("dst", "ff:ff:ff:ff:ff:ff"))
        vlan = int(f["vlan"]) if "vlan" in f else None
        pcp = int(f.get("pcp", "0"))
        sport, dport = int(f.get("sport", "49152")), int(f.get("dport", "80"))
    except ValueError as e:
        raise DescriptionError(str(e)) from None
    l2 = dst.to_bytes(6, "big") + src.to_bytes(6, "big")
    if proto == "arp":
        payload = struct.pack(">HHBBH", 1, 0x0800, 6, 4, 1) + src.to_bytes(6, "big") + bytes(14)
        etype = 0x0806
    elif "sip" in f or "dip" in f or proto is not None:
        try:
            sip = ipaddress.ip_address(f.get("sip", "10.0.0.1"))
            dip = ipaddress.ip_address(f.get("dip", "10.0.0.2"))
        except ValueError as e:
            raise DescriptionError(str(e)) from None
        num = PROTOS.get(proto or "udp", 17)
        if num == 6:
            l4 = struct.pack(">HHIIBBHHH", sport, dport, 1, 0, 0x50, 0x02, 65535, 0, 0)
        elif num == 17:
            l4 = struct.pack(">HHHH", sport, dport, 8, 0)
        else:
            l4 = struct.pack(">BBHHH", 8, 0, 0, 1, 1)
        if sip.version == 4:
            hdr = struct.pack(
                ">BBHHHBBH4s4s", 0x45, 0, 20 + len(l4), 0, 0, 64, num, 0, sip.packed, dip.packed
            )
            hdr = hdr[:10] + struct.pack(">H", internet_checksum(hdr)) + hdr[12:]
            payload, etype = hdr + l4, 0x0800
        else:
            hdr = struct.pack(">IHBB", 6 << 28, len(l4), num, 64) + sip.packed + dip.packed
            payload, etype = hdr + l4, 0x86DD
    else:
        payload, etype = b"what-if", 0x88B5
    frame = l2 + struct.pack(">H", etype) + payload
    size = int(f.get("len", "60"))
    frame += bytes(max(0, size - len(frame)))
    tci = UNTAGGED if vlan is None else (pcp << 13) | vlan
    return frame, tci
