"""LACPDUs and Marker PDUs (IEEE 802.1AX-2008 §5.4.2, §6.5.3): encode, decode, answer markers.

Hand-written with struct: the formats are fixed 110-byte slow-protocol payloads and no maintained Python library
encodes them (scapy's contrib module is GPL and test-only here). Decoding checks every TLV type and length, so a
malformed PDU is rejected with a reason instead of being half-read.

The state machines that use these (receive, periodic, selection, mux) come with the team (issue 4).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

SLOW_PROTOCOLS_MAC = 0x0180C2000002
ETH_P_SLOW = 0x8809
SUBTYPE_LACP = 1
SUBTYPE_MARKER = 2
LACP_VERSION = 1
MARKER_VERSION = 1
PDU_LEN = 110  # payload after the Ethernet header, both PDU kinds
FRAME_LEN = 14 + PDU_LEN

# Actor/partner state bits (§5.4.2.2, item m).
ACTIVITY = 0x01  # active LACP
TIMEOUT = 0x02  # short (fast) timeout
AGGREGATION = 0x04
SYNCHRONIZATION = 0x08
COLLECTING = 0x10
DISTRIBUTING = 0x20
DEFAULTED = 0x40
EXPIRED = 0x80

_HDR = struct.Struct(">6s6sHBB")  # dst, src, ethertype, subtype, version
_INFO = struct.Struct(
    ">BBH6sHHHB3x"
)  # tlv type, length, system priority, system, key, port prio, port, state
_COLLECTOR = struct.Struct(">BBH12x")
_TERMINATOR = struct.Struct(">BB")
_MARKER = struct.Struct(">BBH6sI2x")  # tlv type, length, requester port, system, transaction id
TLV_ACTOR, TLV_PARTNER, TLV_COLLECTOR = 1, 2, 3
TLV_MARKER_INFO, TLV_MARKER_RESPONSE = 1, 2
INFO_LEN, COLLECTOR_LEN, MARKER_TLV_LEN = 20, 16, 16


class PduError(ValueError):
    """A slow-protocol frame that is not a well-formed LACPDU or Marker PDU; the message says why."""


@dataclass(frozen=True, slots=True)
class PortInfo:
    """One side's parameters in an LACPDU (actor or partner)."""

    system_priority: int = 0
    system: int = 0  # MAC as a 48-bit int
    key: int = 0
    port_priority: int = 0
    port: int = 0
    state: int = 0

    def flags(self) -> str:
        names = ("activity", "timeout", "aggregation", "synchronization", "collecting", "distributing",
                 "defaulted", "expired")  # fmt: skip
        return ",".join(n for i, n in enumerate(names) if self.state & (1 << i)) or "-"


@dataclass(frozen=True, slots=True)
class Lacpdu:
    src: int  # the sending port's MAC
    actor: PortInfo
    partner: PortInfo
    collector_max_delay: int = 0


@dataclass(frozen=True, slots=True)
class MarkerPdu:
    src: int
    response: bool
    requester_port: int
    requester_system: int
    transaction_id: int


def _mac(v: int) -> bytes:
    return v.to_bytes(6, "big")


def _info(tlv: int, p: PortInfo) -> bytes:
    return _INFO.pack(
        tlv, INFO_LEN, p.system_priority, _mac(p.system), p.key, p.port_priority, p.port, p.state
    )


def encode_lacpdu(pdu: Lacpdu) -> bytes:
    body = (
        _HDR.pack(_mac(SLOW_PROTOCOLS_MAC), _mac(pdu.src), ETH_P_SLOW, SUBTYPE_LACP, LACP_VERSION)
        + _info(TLV_ACTOR, pdu.actor)
        + _info(TLV_PARTNER, pdu.partner)
        + _COLLECTOR.pack(TLV_COLLECTOR, COLLECTOR_LEN, pdu.collector_max_delay)
        + _TERMINATOR.pack(0, 0)
    )
    return body + bytes(FRAME_LEN - len(body))


def encode_marker(pdu: MarkerPdu) -> bytes:
    tlv = TLV_MARKER_RESPONSE if pdu.response else TLV_MARKER_INFO
    body = (
        _HDR.pack(_mac(SLOW_PROTOCOLS_MAC), _mac(pdu.src), ETH_P_SLOW, SUBTYPE_MARKER, MARKER_VERSION)
        + _MARKER.pack(
            tlv, MARKER_TLV_LEN, pdu.requester_port, _mac(pdu.requester_system), pdu.transaction_id
        )
        + _TERMINATOR.pack(0, 0)
    )
    return body + bytes(FRAME_LEN - len(body))


def decode(frame: bytes | bytearray | memoryview) -> Lacpdu | MarkerPdu:
    """A slow-protocol frame (untagged, as the switch holds it) as a PDU; PduError names what is wrong."""
    if len(frame) < FRAME_LEN:
        raise PduError(f"too short: {len(frame)} bytes, a slow-protocol PDU needs {FRAME_LEN}")
    _dst, src, etype, subtype, version = _HDR.unpack_from(frame)
    if etype != ETH_P_SLOW:
        raise PduError(f"EtherType 0x{etype:04x} is not slow protocols (0x8809)")
    src_mac = int.from_bytes(src, "big")
    if subtype == SUBTYPE_LACP:
        if version < 1:
            raise PduError(f"LACP version {version}")
        infos = []
        for off, want in ((16, TLV_ACTOR), (36, TLV_PARTNER)):
            tlv, length, sprio, system, key, pprio, port, state = _INFO.unpack_from(frame, off)
            if tlv != want or length != INFO_LEN:
                raise PduError(
                    f"TLV at offset {off}: type {tlv} length {length}, expected type {want} length 20"
                )
            infos.append(PortInfo(sprio, int.from_bytes(system, "big"), key, pprio, port, state))
        tlv, length, delay = _COLLECTOR.unpack_from(frame, 56)
        if tlv != TLV_COLLECTOR or length != COLLECTOR_LEN:
            raise PduError(f"collector TLV: type {tlv} length {length}")
        if _TERMINATOR.unpack_from(frame, 72) != (0, 0):
            raise PduError("missing terminator TLV")
        return Lacpdu(src_mac, infos[0], infos[1], delay)
    if subtype == SUBTYPE_MARKER:
        tlv, length, port, system, txid = _MARKER.unpack_from(frame, 16)
        if tlv not in (TLV_MARKER_INFO, TLV_MARKER_RESPONSE) or length != MARKER_TLV_LEN:
            raise PduError(f"marker TLV: type {tlv} length {length}")
        if _TERMINATOR.unpack_from(frame, 32) != (0, 0):
            raise PduError("missing terminator TLV")
        return MarkerPdu(src_mac, tlv == TLV_MARKER_RESPONSE, port, int.from_bytes(system, "big"), txid)
    raise PduError(f"slow-protocol subtype {subtype} is neither LACP (1) nor Marker (2)")


def marker_response(request: MarkerPdu, my_mac: int) -> MarkerPdu:
    """The Marker Responder (§6.5.4.2): echo the requester's fields in a Marker Response from our port."""
    if request.response:
        raise PduError("a marker response is not answered")
    return MarkerPdu(my_mac, True, request.requester_port, request.requester_system, request.transaction_id)
