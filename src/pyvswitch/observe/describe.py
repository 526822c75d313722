"""Frames from a one-line description, for what-if traces: ``dst=02:00:00:00:00:0b vlan=10 tcp dport=80``.

Words: ``src=MAC dst=MAC vlan=N pcp=N`` (an 802.1Q tag as it arrives on the port), ``ip=SRC>DST`` or
``sip=A dip=B`` (IPv4 or IPv6 by the address), a protocol ``tcp|udp|icmp|arp``, ``sport=N dport=N``, ``len=N``
(pad to N bytes). Unknown words are an error naming the word. Defaults: the port's own MAC as source,
broadcast destination, untagged, no IP header (EtherType 0x88b5, the IEEE local experimental type).

Every value is checked against its field's range before a byte is built (issue 11: ``dport=99999``, ``sport=-1``
and ``len=abc`` escaped as struct.error or ValueError, a 500 from the API, and ``len`` had no upper bound): a bad
one raises ``DescriptionError`` with ``field`` set to the word's key, which the API names as ``frame.<key>``.
"""

from __future__ import annotations

import ipaddress
import struct

from pyvswitch.packet.checksum import internet_checksum
from pyvswitch.packet.frame import UNTAGGED
from pyvswitch.packet.mac import parse_mac

PROTOS = {"tcp": 6, "udp": 17, "icmp": 1}


# Inclusive ranges of the numeric words. len: a frame as big as the largest GSO super-frame the data path carries.
RANGES = {"vlan": (0, 4094), "pcp": (0, 7), "sport": (0, 65535), "dport": (0, 65535), "len": (0, 65535)}


class DescriptionError(ValueError):
    """A description that cannot be built; ``field`` is the word's key when one word is at fault."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


def _number(f: dict[str, str], key: str, default: int) -> int:
    text = f.get(key)
    if text is None:
        return default
    lo, hi = RANGES[key]
    # ASCII digits only (int() also takes "+5", "1_0" and other scripts' digits), and few of them: int() refuses
    # strings over 4,300 digits with a ValueError of its own.
    if not (text.isascii() and text.isdigit() and len(text) <= 6) or not lo <= int(text) <= hi:
        raise DescriptionError(f"{key}={text}: {key} is a whole number from {lo} to {hi}", key)
    return int(text)


def _mac(f: dict[str, str], key: str, default: str) -> int:
    text = f.get(key) or default
    try:
        return parse_mac(text)
    except ValueError as e:
        raise DescriptionError(f"{key}={text}: {e}", key) from None


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
                raise DescriptionError(f"{word!r}: write ip=SRC>DST", "ip")
            f["sip"], f["dip"] = a, b
        elif key in ("src", "dst", "vlan", "pcp", "sip", "dip", "sport", "dport", "len"):
            f[key] = value
        else:
            raise DescriptionError(f"unknown field {key!r} in {word!r}")
    src = _mac(f, "src", default_src or "02:00:00:00:00:01")
    dst = _mac(f, "dst", "ff:ff:ff:ff:ff:ff")
    vlan = _number(f, "vlan", -1)
    pcp = _number(f, "pcp", 0)
    sport, dport = _number(f, "sport", 49152), _number(f, "dport", 80)
    size = _number(f, "len", 60)
    l2 = dst.to_bytes(6, "big") + src.to_bytes(6, "big")
    if proto == "arp":
        payload = struct.pack(">HHBBH", 1, 0x0800, 6, 4, 1) + src.to_bytes(6, "big") + bytes(14)
        etype = 0x0806
    elif "sip" in f or "dip" in f or proto is not None:
        addrs = []
        for key, default in (("sip", "10.0.0.1"), ("dip", "10.0.0.2")):
            try:
                addrs.append(ipaddress.ip_address(f.get(key, default)))
            except ValueError as e:
                raise DescriptionError(f"{key}: {e}", key) from None
        sip, dip = addrs
        if sip.version != dip.version:
            raise DescriptionError(f"sip={sip} and dip={dip}: one is IPv4, the other IPv6", "dip")
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
    frame += bytes(max(0, size - len(frame)))
    tci = UNTAGGED if vlan < 0 else (pcp << 13) | vlan
    return frame, tci
