"""MAC Control frames: 802.1Qbb Priority-based Flow Control (PFC) and the 802.3x PAUSE it extends.

Layout (802.3 Annex 31B/31D, 802.1Qbb §36.1), after the 14-byte Ethernet header with EtherType 0x8808::

    opcode (2)  0x0001 PAUSE:  pause_time (2)
                0x0101 PFC:    class-enable vector (2: a reserved octet, then e[7]..e[0]), time[0]..time[7] (8 x 2)

padded to the 60-byte minimum (64 with the FCS, which devices add). A quantum is 512 bit times of the link.
Frames inside the switch are untagged (``packet.frame``), and MAC Control frames are never VLAN-tagged, so the
EtherType is read at offset 12 only.

Decoding follows what a receiving MAC does: the reserved octet of the vector is ignored, and so is ``time[n]`` for
a priority whose ``e[n]`` is clear (802.1Qbb: it is only meaningful with the bit set). PAUSE may be sent to the
station's own address as well as to 01-80-C2-00-00-01 (802.3 31B.3.3), so the destination is not checked.
A MAC Control frame that is too short, or whose opcode is neither PAUSE nor PFC (the EPON MPCP opcodes, which the
MAC Control sublayer of a switch port discards), raises :class:`MacControlError` (a ``ValueError``), so a caller
can drop it with a reason instead of treating it as data.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping
from dataclasses import dataclass, field

from pyvswitch.packet.frame import Buffer

ETH_P_MAC_CONTROL = 0x8808
PFC_DST = 0x0180C2000001  # also PAUSE's multicast destination
OPCODE_PAUSE = 0x0001
OPCODE_PFC = 0x0101
PRIORITIES = 8
BITS_PER_QUANTUM = 512
MAX_QUANTA = 0xFFFF
MIN_FRAME_LEN = 60  # without the FCS
# A link with no configured rate (veth, link_speed 0) has no bit time. 10 Gbit/s is the slowest rate DCB and PFC
# are specified and deployed for (802.1Qbb data-centre Ethernet), so a pause there lasts what it would on the
# common real link: at most 65535 quanta = 3.36 ms. Neither zero (the pause would be ignored) nor unbounded.
UNBOUNDED_LINK_BPS = 10_000_000_000

_PFC = struct.Struct(">6s6sHHH8H")  # dst, src, EtherType, opcode, class-enable vector, time[0..7]
_PAUSE_LEN = 14 + 4  # header, opcode, pause_time
_PFC_LEN = _PFC.size  # 34


class MacControlError(ValueError):
    """A MAC Control frame (EtherType 0x8808) that is truncated or carries an opcode other than PAUSE or PFC."""


@dataclass(frozen=True)
class PauseFrame:
    """802.3x PAUSE: stop every priority for ``quanta`` x 512 bit times (0 = resume)."""

    src_mac: int
    quanta: int


@dataclass(frozen=True)
class PfcFrame:
    """802.1Qbb PFC: ``quanta`` maps each enabled priority (0-7) to its pause time (0 = resume that priority)."""

    src_mac: int
    quanta: Mapping[int, int] = field(default_factory=dict, hash=False)  # a dict: hashed by source only

    @property
    def priorities(self) -> frozenset[int]:
        """The priorities whose class-enable bit is set."""
        return frozenset(self.quanta)

    @property
    def class_enable_vector(self) -> int:
        """e[7]..e[0] as an 8-bit integer: bit n for priority n."""
        vector = 0
        for prio in self.quanta:
            vector |= 1 << prio
        return vector


def encode_pfc(src_mac: int, quanta: Mapping[int, int]) -> bytes:
    """A PFC frame from ``src_mac`` to 01-80-C2-00-00-01 pausing each priority in ``quanta`` for its quanta.

    The class-enable bit is set for every priority present (a 0 value resumes it); absent priorities are sent
    with the bit clear and time 0. An empty mapping gives a legal frame that pauses nothing.
    Raises ``ValueError`` for a priority outside 0-7, quanta outside 0-65535 or a MAC beyond 48 bits.
    """
    if not 0 <= src_mac <= 0xFFFF_FFFF_FFFF:
        raise ValueError(f"source MAC {src_mac:#x} does not fit 48 bits")
    times = [0] * PRIORITIES
    vector = 0
    for prio, q in quanta.items():
        if not 0 <= prio < PRIORITIES:
            raise ValueError(f"priority {prio} is outside 0-7")
        if not 0 <= q <= MAX_QUANTA:
            raise ValueError(f"pause quanta {q} for priority {prio} is outside 0-65535")
        vector |= 1 << prio
        times[prio] = q
    frame = _PFC.pack(
        PFC_DST.to_bytes(6, "big"),
        src_mac.to_bytes(6, "big"),
        ETH_P_MAC_CONTROL,
        OPCODE_PFC,
        vector,
        *times,
    )
    return frame + bytes(MIN_FRAME_LEN - len(frame))


def encode_pause(src_mac: int, quanta: int) -> bytes:
    """An 802.3x PAUSE frame from ``src_mac`` to 01-80-C2-00-00-01 (all priorities), padded to 60 bytes."""
    if not 0 <= src_mac <= 0xFFFF_FFFF_FFFF:
        raise ValueError(f"source MAC {src_mac:#x} does not fit 48 bits")
    if not 0 <= quanta <= MAX_QUANTA:
        raise ValueError(f"pause quanta {quanta} is outside 0-65535")
    frame = (
        PFC_DST.to_bytes(6, "big")
        + src_mac.to_bytes(6, "big")
        + struct.pack(">HHH", ETH_P_MAC_CONTROL, OPCODE_PAUSE, quanta)
    )
    return frame + bytes(MIN_FRAME_LEN - len(frame))


def is_mac_control(data: Buffer) -> bool:
    """True if the (untagged) frame's EtherType is 0x8808."""
    return len(data) >= 14 and data[12] == 0x88 and data[13] == 0x08


def decode_mac_control(data: Buffer) -> PfcFrame | PauseFrame | None:
    """The PFC or PAUSE frame ``data`` carries; None if it is not a MAC Control frame.

    Raises :class:`MacControlError` for a MAC Control frame that is truncated or has another opcode.
    Padding is not required (a frame from a memory device may arrive unpadded); bytes past the fields are ignored.
    """
    if not is_mac_control(data):
        return None
    n = len(data)
    if n < 16:
        raise MacControlError(f"MAC Control frame of {n} bytes has no opcode")
    opcode = (data[14] << 8) | data[15]
    src = int.from_bytes(data[6:12], "big")
    if opcode == OPCODE_PFC:
        if n < _PFC_LEN:
            raise MacControlError(f"PFC frame of {n} bytes is shorter than its {_PFC_LEN} bytes of fields")
        fields = _PFC.unpack_from(data)
        vector = fields[4] & 0xFF  # the high octet is reserved: ignored on receipt
        times = fields[5:]
        return PfcFrame(src, {p: times[p] for p in range(PRIORITIES) if vector >> p & 1})
    if opcode == OPCODE_PAUSE:
        if n < _PAUSE_LEN:
            raise MacControlError(f"PAUSE frame of {n} bytes has no pause_time")
        return PauseFrame(src, (data[16] << 8) | data[17])
    raise MacControlError(f"MAC Control opcode {opcode:#06x} is neither PAUSE (0x0001) nor PFC (0x0101)")


def quanta_to_seconds(quanta: int, link_bps: int) -> float:
    """How long ``quanta`` pause quanta last on a link of ``link_bps`` bit/s (one quantum = 512 bit times).

    ``link_bps`` <= 0 means an unbounded link (``link_speed`` 0 in the configuration): it is timed as 10 Gbit/s
    (``UNBOUNDED_LINK_BPS``; see there for why).
    """
    if quanta < 0:
        raise ValueError(f"pause quanta {quanta} is negative")
    bps = link_bps if link_bps > 0 else UNBOUNDED_LINK_BPS
    return quanta * BITS_PER_QUANTUM / bps
