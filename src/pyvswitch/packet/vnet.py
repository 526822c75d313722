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


def shift_vnet(vnet: bytes, delta: int) -> bytes:
    """Move the header's frame offsets by ``delta`` bytes (tag inserted: +4, removed: -4).

    Offsets are only meaningful when NEEDS_CSUM is set (csum_start) or GSO is on (hdr_len);
    an all-zero header is returned unchanged, which keeps the common case cheap.
    """
    if vnet == EMPTY_VNET_HDR:
        return vnet
    flags, gso_type, hdr_len, gso_size, csum_start, csum_offset = VNET_HDR.unpack(vnet)
    if flags & VIRTIO_NET_HDR_F_NEEDS_CSUM:
        csum_start += delta
    if gso_type != VIRTIO_NET_HDR_GSO_NONE and hdr_len:
        hdr_len += delta
    return VNET_HDR.pack(flags, gso_type, hdr_len, gso_size, csum_start, csum_offset)


def vnet_problem(vnet: bytes, frame_len: int) -> str | None:
    """Return a drop reason if the header is inconsistent with a frame of ``frame_len`` bytes, else None."""
    flags, gso_type, _hdr_len, gso_size, csum_start, csum_offset = VNET_HDR.unpack(vnet)
    if flags & VIRTIO_NET_HDR_F_NEEDS_CSUM and csum_start + csum_offset + 2 > frame_len:
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
    if kind != VIRTIO_NET_HDR_GSO_NONE and (gso_size == 0 or not flags & VIRTIO_NET_HDR_F_NEEDS_CSUM):
        return "vnet-bad-gso"
    return None
