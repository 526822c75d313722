"""DSCP marking (DSCPAction of a host QoS policy): read and rewrite the 6 DSCP bits of IPv4 and IPv6 frames.

The DSCP is the top 6 bits of IPv4's TOS byte and of IPv6's traffic class (RFC 2474); the low 2 bits are ECN
(RFC 3168), which marking never touches. On IPv4 the header checksum is updated incrementally (RFC 1624, eqn. 3:
``HC' = ~(~HC + ~m + m')`` over the 16-bit word holding version/IHL and TOS), so a header that arrived with a
wrong checksum keeps a wrong one rather than being silently repaired. No L4 checksum covers these bits (the
TCP/UDP pseudo-header has no TOS or traffic class), so checksum offload metadata (``Packet.vnet``) stays valid and
IPv6 needs no checksum work.

Frames inside the switch are untagged (802.1Q lives in ``Packet.tci``); an 802.1Q/802.1ad tag left in the data is
skipped as ``packet.classify`` does. A frame that is not IPv4/IPv6, or whose IP header is truncated or has the wrong
version (IPv4: IHL below 5), is not IP: ``set_dscp`` and ``get_dscp`` return None and never raise for such input.
"""

from __future__ import annotations

from pyvswitch.packet.classify import ip_header
from pyvswitch.packet.frame import Buffer

MAX_DSCP = 63


def get_dscp(data: Buffer) -> int | None:
    """The DSCP (0-63) of an IPv4 or IPv6 frame, or None if it is not IP."""
    ip = ip_header(data)
    if ip is None:
        return None
    version, off = ip
    if version == 4:
        return data[off + 1] >> 2
    return ((data[off] & 0x0F) << 2) | (data[off + 1] >> 6)


def set_dscp(data: Buffer, dscp: int) -> bytearray | None:
    """A copy of the frame with its DSCP set to ``dscp`` (ECN kept; IPv4 checksum updated), or None if not IP.

    Raises ``ValueError`` for a DSCP outside 0-63 (a configuration error, checked before the frame is looked at).
    """
    if not 0 <= dscp <= MAX_DSCP:
        raise ValueError(f"DSCP {dscp} is outside 0-63")
    ip = ip_header(data)
    if ip is None:
        return None
    version, off = ip
    out = bytearray(data)
    if version == 4:
        old_word = (out[off] << 8) | out[off + 1]
        new_tos = (dscp << 2) | (out[off + 1] & 0x03)
        new_word = (out[off] << 8) | new_tos
        out[off + 1] = new_tos
        hc = (out[off + 10] << 8) | out[off + 11]
        total = (~hc & 0xFFFF) + (~old_word & 0xFFFF) + new_word
        total = (total & 0xFFFF) + (total >> 16)
        total = (total & 0xFFFF) + (total >> 16)
        hc = ~total & 0xFFFF
        out[off + 10] = hc >> 8
        out[off + 11] = hc & 0xFF
    else:
        tc = ((out[off] & 0x0F) << 4) | (out[off + 1] >> 4)
        tc = (dscp << 2) | (tc & 0x03)
        out[off] = 0x60 | (tc >> 4)
        out[off + 1] = ((tc & 0x0F) << 4) | (out[off + 1] & 0x0F)
    return out
