"""sFlow version 5 datagrams (sflow.org, "sFlow Version 5", July 2004): the agent's side, encoded by hand.

No maintained Python library writes sFlow (the PyPI packages decode it, for collectors), and the subset an agent
sends is small: XDR (big-endian 32-bit words, opaque data padded to 4 bytes), one datagram header, flow samples
with a raw packet header record and an extended switch record, and counter samples with the generic interface
counters record. tshark decodes what this writes in the tests (tests/component/test_sflow_wire.py).
"""

from __future__ import annotations

import ipaddress
import struct
from collections.abc import Sequence
from dataclasses import dataclass

SFLOW_PORT = 6343
VERSION = 5
ADDRESS_IPV4, ADDRESS_IPV6 = 1, 2
FLOW_SAMPLE, COUNTER_SAMPLE = 1, 2  # sample formats, enterprise 0
RAW_PACKET_HEADER, EXTENDED_SWITCH = 1, 1001  # flow record formats
GENERIC_INTERFACE = 1  # counter record format
HEADER_ETHERNET = 1  # header_protocol: ETHERNET-ISO88023
# Output port encodings (§5, "interface"): format 1 is a discard with a reason, format 2 a count of ports.
DISCARDED = 0x40000000
DISCARD_UNKNOWN = 256
MULTIPLE = 0x80000000
UNKNOWN_COUNTER = 0xFFFFFFFF  # "a counter the agent does not have": all ones
IF_TYPE_ETHERNET = 6
IF_FULL_DUPLEX = 1
IF_UP = 3  # ifAdminStatus up (bit 0) and ifOperStatus up (bit 1)

_U32 = struct.Struct(">I")
_HEADER = struct.Struct(">II")  # a sample's or record's format and length
_FLOW = struct.Struct(">IIIIIIII")
_COUNTER = struct.Struct(">III")
_SWITCH = struct.Struct(">IIII")
_RAW = struct.Struct(">IIII")
_GENERIC = struct.Struct(">IIQIIQIIIIIIQIIIIII")  # 88 bytes
_M32 = 0xFFFFFFFF


def _opaque(data: bytes) -> bytes:
    return _U32.pack(len(data)) + data + b"\0" * (-len(data) % 4)


def _record(fmt: int, body: bytes) -> bytes:
    return _HEADER.pack(fmt, len(body)) + body


def output_port(outputs: Sequence[int]) -> int:
    """The output interface of a flow sample: one ifIndex, a count of them, or 'discarded, reason unknown'."""
    if not outputs:
        return DISCARDED | DISCARD_UNKNOWN
    if len(outputs) == 1:
        return outputs[0] & 0x3FFFFFFF
    return MULTIPLE | min(len(outputs), 0x7FFFFFFF)


# A flow sample with its two records, up to the header bytes: sample format and length, the 8 words of the sample,
# the raw packet header record's format, length and 4 words. The extended switch record follows the header.
_FLOW_HEAD = struct.Struct(">II IIIIIIII II IIII".replace(" ", ""))
_SWITCH_RECORD = struct.Struct(">IIIIII")
_FLOW_FIXED = _FLOW_HEAD.size - 8 + _SWITCH_RECORD.size  # the sample's length without its header bytes


def flow_sample(
    sequence: int,
    source: int,
    rate: int,
    pool: int,
    input_if: int,
    output_if: int,
    header: bytes,
    frame_length: int,
    vlan: int,
    priority: int,
) -> bytes:
    """One flow sample (format 1) with a raw packet header record (Ethernet, nothing stripped) and an extended
    switch record (the same VLAN and priority in and out: the switch does not retag inside a VLAN). Packed in
    two calls: the agent builds one per sample on the forwarding thread."""
    pad = -len(header) % 4
    raw_len = 16 + len(header) + pad
    head = _FLOW_HEAD.pack(
        FLOW_SAMPLE, _FLOW_FIXED + len(header) + pad,
        sequence & _M32, source & 0xFFFFFF, rate, pool & _M32, 0, input_if, output_if, 2,
        RAW_PACKET_HEADER, raw_len, HEADER_ETHERNET, frame_length, 0, len(header),
    )  # fmt: skip
    return (
        head + header + b"\0" * pad + _SWITCH_RECORD.pack(EXTENDED_SWITCH, 16, vlan, priority, vlan, priority)
    )


@dataclass(frozen=True, slots=True)
class InterfaceCounters:
    """The generic interface counters (RFC 2233's) of one port; what the switch does not count is all ones."""

    if_index: int
    speed_bps: int
    in_octets: int
    in_packets: int
    in_discards: int
    out_octets: int
    out_packets: int
    out_discards: int


@dataclass(frozen=True, slots=True)
class CounterSample:
    sequence: int
    counters: InterfaceCounters

    def encode(self) -> bytes:
        c = self.counters
        generic = _GENERIC.pack(
            c.if_index,
            IF_TYPE_ETHERNET,
            c.speed_bps,
            IF_FULL_DUPLEX,
            IF_UP,
            c.in_octets,
            c.in_packets & _M32,  # every frame: the switch does not tell unicast from multicast here
            UNKNOWN_COUNTER,
            UNKNOWN_COUNTER,
            c.in_discards & _M32,
            0,
            UNKNOWN_COUNTER,
            c.out_octets,
            c.out_packets & _M32,
            UNKNOWN_COUNTER,
            UNKNOWN_COUNTER,
            c.out_discards & _M32,
            0,
            1,  # a switch port sees every destination: promiscuous
        )
        body = _COUNTER.pack(self.sequence & _M32, c.if_index & 0xFFFFFF, 1) + _record(
            GENERIC_INTERFACE, generic
        )
        return _record(COUNTER_SAMPLE, body)


def agent_header(agent: str) -> bytes:
    """The datagram's first words: version and agent address (computed once per configuration)."""
    addr = ipaddress.ip_address(agent)
    kind = ADDRESS_IPV4 if addr.version == 4 else ADDRESS_IPV6
    return struct.pack(">II", VERSION, kind) + addr.packed


def datagram(agent: bytes, sub_agent: int, sequence: int, uptime_ms: int, samples: Sequence[bytes]) -> bytes:
    """One datagram carrying already encoded ``samples``; ``agent`` from ``agent_header``."""
    head = struct.pack(">IIII", sub_agent, sequence & _M32, uptime_ms & _M32, len(samples))
    return agent + head + b"".join(samples)


DATAGRAM_HEADER_V4 = 28  # version, address type and IPv4 address, sub-agent, sequence, uptime, count
