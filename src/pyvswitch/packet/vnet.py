"""The virtio-net header (struct virtio_net_hdr, 10 bytes) that carries GSO and checksum-offload metadata."""

from __future__ import annotations

import struct

VNET_HDR_LEN = 10
VNET_HDR = struct.Struct("<BBHHHH")  # flags, gso_type, hdr_len, gso_size, csum_start, csum_offset

VIRTIO_NET_HDR_F_NEEDS_CSUM = 1
VIRTIO_NET_HDR_F_DATA_VALID = 2
VIRTIO_NET_HDR_GSO_NONE = 0
VIRTIO_NET_HDR_GSO_TCPV4 = 1
VIRTIO_NET_HDR_GSO_UDP = 3
VIRTIO_NET_HDR_GSO_TCPV6 = 4
VIRTIO_NET_HDR_GSO_UDP_L4 = 5
VIRTIO_NET_HDR_GSO_ECN = 0x80

EMPTY_VNET_HDR = bytes(VNET_HDR_LEN)


# The largest offset a header may carry in: one an egress 802.1Q tag can still move by +4 within 16 bits.
MAX_OFFSET = 0xFFFF - 4


def shift_vnet(vnet: bytes, delta: int) -> bytes | None:
    """Move the header's frame offsets by ``delta`` bytes (tag inserted: +4, removed: -4); None when an offset
    would leave 0..65535 (issue 11: an inline tag with csum_start or hdr_len below 4 raised struct.error here
    and the whole batch was dropped as internal-error; the caller now drops that one frame with a reason).

    Offsets are only meaningful when NEEDS_CSUM is set (csum_start) or GSO is on (hdr_len);
    an all-zero header is returned unchanged, which keeps the common case cheap.
    """
    if vnet == EMPTY_VNET_HDR:
        return vnet
    flags, gso_type, hdr_len, gso_size, csum_start, csum_offset = VNET_HDR.unpack(vnet)
    if flags & VIRTIO_NET_HDR_F_NEEDS_CSUM:
        csum_start += delta
        if not 0 <= csum_start <= 0xFFFF:
            return None
    if gso_type != VIRTIO_NET_HDR_GSO_NONE and hdr_len:
        hdr_len += delta
        if not 0 <= hdr_len <= 0xFFFF:
            return None
    return VNET_HDR.pack(flags, gso_type, hdr_len, gso_size, csum_start, csum_offset)


def vnet_problem(vnet: bytes, frame_len: int) -> str | None:
    """Return a drop reason if the header is inconsistent with a frame of ``frame_len`` bytes, else None.

    A header that passes can be shifted by an egress tag (+4) without leaving 16 bits (``shift_vnet``)."""
    if len(vnet) != VNET_HDR_LEN:
        return "vnet-bad-length"
    flags, gso_type, hdr_len, gso_size, csum_start, csum_offset = VNET_HDR.unpack(vnet)
    if flags & VIRTIO_NET_HDR_F_NEEDS_CSUM and (
        csum_start + csum_offset + 2 > frame_len or csum_start > MAX_OFFSET
    ):
        return "vnet-csum-out-of-frame"
    kind = gso_type & ~VIRTIO_NET_HDR_GSO_ECN
    if kind not in (
        VIRTIO_NET_HDR_GSO_NONE,
        VIRTIO_NET_HDR_GSO_TCPV4,
        VIRTIO_NET_HDR_GSO_UDP,
        VIRTIO_NET_HDR_GSO_TCPV6,
        VIRTIO_NET_HDR_GSO_UDP_L4,
    ):
        return "vnet-bad-gso-type"
    if kind != VIRTIO_NET_HDR_GSO_NONE and (
        gso_size == 0 or not flags & VIRTIO_NET_HDR_F_NEEDS_CSUM or hdr_len > min(frame_len, MAX_OFFSET)
    ):
        # hdr_len past the frame: the kernel's tun refuses it too (tun_get_user: hdr_len > len is -EINVAL).
        return "vnet-bad-gso"
    return None
