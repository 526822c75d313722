"""IPFIX messages (RFC 7011) for flow records, and the flow key read from a sampled frame's first bytes.

Encoded by hand for the same reason as sFlow (packet/sflow.py): the PyPI IPFIX packages are collectors' parsers
or unmaintained, and an exporter needs three fixed templates. Information elements are IANA's (RFC 7012 and the
IANA registry); tcpControlBits is sent in one byte (reduced-size encoding, RFC 7011 §6.2), as nfdump expects.
Over UDP the templates ride in every message (RFC 7011 §8.4 asks for periodic resending; every message is the
simplest period, and a collector started late decodes the very next message).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

IPFIX_PORT = 4739
VERSION = 10
TEMPLATE_SET = 2
TEMPLATE_V4, TEMPLATE_V6, TEMPLATE_L2 = 256, 257, 258

# (information element, length)
_COMMON = (
    (10, 4),  # ingressInterface
    (14, 4),  # egressInterface
    (58, 2),  # vlanId
    (56, 6),  # sourceMacAddress
    (80, 6),  # destinationMacAddress
    (256, 2),  # ethernetType
    (1, 8),  # octetDeltaCount
    (2, 8),  # packetDeltaCount
    (152, 8),  # flowStartMilliseconds
    (153, 8),  # flowEndMilliseconds
)
_L3 = (
    (4, 1),  # protocolIdentifier
    (5, 1),  # ipClassOfService
    (7, 2),  # sourceTransportPort
    (11, 2),  # destinationTransportPort
    (6, 1),  # tcpControlBits
)
FIELDS = {
    TEMPLATE_V4: ((8, 4), (12, 4), *_L3, *_COMMON),  # sourceIPv4Address, destinationIPv4Address
    TEMPLATE_V6: ((27, 16), (28, 16), *_L3, *_COMMON),  # sourceIPv6Address, destinationIPv6Address
    TEMPLATE_L2: _COMMON,
}
_RECORD = {
    TEMPLATE_V4: struct.Struct(">4s4sBBHHB" + "IIH6s6sHQQQQ"),
    TEMPLATE_V6: struct.Struct(">16s16sBBHHB" + "IIH6s6sHQQQQ"),
    TEMPLATE_L2: struct.Struct(">IIH6s6sHQQQQ"),
}
RECORD_SIZE = {t: s.size for t, s in _RECORD.items()}
_MESSAGE = struct.Struct(">HHIII")
_SET = struct.Struct(">HH")
MESSAGE_HEADER = _MESSAGE.size


def _template_set() -> bytes:
    body = b""
    for tid, fields in FIELDS.items():
        body += struct.pack(">HH", tid, len(fields))
        body += b"".join(struct.pack(">HH", ie, length) for ie, length in fields)
    return _SET.pack(TEMPLATE_SET, _SET.size + len(body)) + body


TEMPLATES = _template_set()


@dataclass(frozen=True, slots=True)
class FlowKey:
    """What a flow record is keyed by: the ports, the VLAN, Ethernet, and the IP 5-tuple (ports 0 when there are
    none; ICMP's type and code in the destination port, as NetFlow does)."""

    in_if: int
    out_if: int
    vlan: int
    src_mac: bytes
    dst_mac: bytes
    ethertype: int
    template: int = TEMPLATE_L2
    src_ip: bytes = b""
    dst_ip: bytes = b""
    protocol: int = 0
    tos: int = 0
    src_port: int = 0
    dst_port: int = 0


def flow_key(header: bytes, in_if: int, out_if: int, vlan: int) -> tuple[FlowKey, int, int] | None:
    """The flow key of a frame from its first bytes, its TCP flags (0 for other protocols) and the length of its
    link-layer header (an IP flow counts IP octets, RFC 7012 octetDeltaCount; 0 for other flows, which count
    whole frames); None when the header is shorter than an Ethernet header."""
    if len(header) < 14:
        return None
    dst_mac, src_mac = header[0:6], header[6:12]
    (ethertype,) = struct.unpack_from(">H", header, 12)
    off = 14
    if ethertype in (0x8100, 0x88A8) and len(header) >= 18:  # a tag still in the data (TAP ports)
        vlan = vlan or struct.unpack_from(">H", header, 14)[0] & 0xFFF
        (ethertype,) = struct.unpack_from(">H", header, 16)
        off = 18
    base = (in_if, out_if, vlan, src_mac, dst_mac, ethertype)
    if ethertype == 0x0800 and len(header) >= off + 20 and header[off] >> 4 == 4:
        ihl = (header[off] & 0xF) * 4
        tos, proto = header[off + 1], header[off + 9]
        frag = struct.unpack_from(">H", header, off + 6)[0] & 0x1FFF
        src, dst = header[off + 12 : off + 16], header[off + 16 : off + 20]
        sport, dport, flags = _l4(header, off + ihl, proto) if frag == 0 else (0, 0, 0)
        return FlowKey(*base, TEMPLATE_V4, src, dst, proto, tos, sport, dport), flags, off
    if ethertype == 0x86DD and len(header) >= off + 40 and header[off] >> 4 == 6:
        tos = (struct.unpack_from(">H", header, off)[0] >> 4) & 0xFF
        proto = header[off + 6]
        src, dst = header[off + 8 : off + 24], header[off + 24 : off + 40]
        sport, dport, flags = _l4(header, off + 40, proto if proto != 58 else 1)
        return FlowKey(*base, TEMPLATE_V6, src, dst, proto, tos, sport, dport), flags, off
    return FlowKey(*base), 0, 0


def _l4(header: bytes, off: int, proto: int) -> tuple[int, int, int]:
    if proto in (6, 17, 132) and len(header) >= off + 4:
        sport, dport = struct.unpack_from(">HH", header, off)
        flags = header[off + 13] if proto == 6 and len(header) > off + 13 else 0
        return sport, dport, flags
    if proto == 1 and len(header) >= off + 2:  # ICMP (and ICMPv6): type * 256 + code in the destination port
        return 0, header[off] * 256 + header[off + 1], 0
    return 0, 0, 0


@dataclass(slots=True)
class FlowRecord:
    key: FlowKey
    octets: int
    packets: int
    first_ms: int
    last_ms: int
    tcp_flags: int = 0

    def encode(self) -> bytes:
        k = self.key
        common = (k.in_if, k.out_if, k.vlan, k.src_mac, k.dst_mac, k.ethertype, self.octets, self.packets,
                  self.first_ms, self.last_ms)  # fmt: skip
        if k.template == TEMPLATE_L2:
            return _RECORD[TEMPLATE_L2].pack(*common)
        l3 = (k.src_ip, k.dst_ip, k.protocol, k.tos, k.src_port, k.dst_port, self.tcp_flags & 0xFF)
        return _RECORD[k.template].pack(*l3, *common)


def message(records: list[FlowRecord], sequence: int, export_s: int, domain: int) -> bytes:
    """One message: the templates, then a data set per template used, in the records' order of templates."""
    sets = [TEMPLATES]
    for tid in FIELDS:
        body = b"".join(r.encode() for r in records if r.key.template == tid)
        if body:
            sets.append(_SET.pack(tid, _SET.size + len(body)) + body)
    payload = b"".join(sets)
    return (
        _MESSAGE.pack(VERSION, MESSAGE_HEADER + len(payload), export_s, sequence & 0xFFFFFFFF, domain)
        + payload
    )
