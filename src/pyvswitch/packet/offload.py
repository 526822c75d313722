"""Finishing a frame's offloads in software (issue 13: what enters a VXLAN tunnel must be wire-ready frames).

A VM's veth or TAP hands the switch TCP super-frames (GSO, up to 64 KiB) with a partial checksum (the
virtio-net header says where to finish it). A kernel port takes them as they are; a tunnel to another host must
not: VXLAN carries Ethernet frames of the VM's MTU with their checksums done, as a physical NIC's TSO would have
made them. ``finish_offloads`` does that: checksum completion for NEEDS_CSUM frames, TCP segmentation (IPv4 and
IPv6) for GSO ones. Written here because no maintained library does it on raw frames; scapy would be 100x slower.
"""

from __future__ import annotations

import struct

from pyvswitch.packet.vnet import (
    VIRTIO_NET_HDR_F_NEEDS_CSUM,
    VIRTIO_NET_HDR_GSO_ECN,
    VIRTIO_NET_HDR_GSO_NONE,
    VIRTIO_NET_HDR_GSO_TCPV4,
    VIRTIO_NET_HDR_GSO_TCPV6,
    VNET_HDR,
)

ETH_HLEN = 14
TCP_FIN_PSH = 0x09


def _sum16(data: bytes | bytearray | memoryview) -> int:
    """One's-complement sum of 16-bit words (not complemented), odd lengths padded."""
    if len(data) % 2:
        data = bytes(data) + b"\0"
    total: int = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return total


def _complete_checksum(frame: bytearray, start: int, offset: int) -> None:
    """The field at start+offset holds the pseudo-header sum (Linux's CHECKSUM_PARTIAL): sum from ``start`` to
    the end, complement, store."""
    value = ~_sum16(memoryview(frame)[start:]) & 0xFFFF
    if value == 0 and offset == 6:  # UDP: a computed zero is sent as FFFF (zero means "no checksum")
        value = 0xFFFF
    struct.pack_into("!H", frame, start + offset, value)


def _pseudo_sum(frame: bytes | bytearray, l3: int, v6: bool, l4_len: int) -> int:
    if v6:
        return _sum16(bytes(frame[l3 + 8 : l3 + 40]) + struct.pack("!IxxxB", l4_len, 6))
    return _sum16(bytes(frame[l3 + 12 : l3 + 20]) + struct.pack("!xBH", 6, l4_len))


def finish_offloads(data: bytes | bytearray | memoryview, vnet: bytes | None) -> list[bytes]:
    """``data`` as wire-ready frames: itself when nothing is pending, checksummed, or segmented."""
    if vnet is None:
        return [bytes(data)]
    flags, gso_type, hdr_len, gso_size, csum_start, csum_offset = VNET_HDR.unpack(vnet)
    kind = gso_type & ~VIRTIO_NET_HDR_GSO_ECN
    if kind == VIRTIO_NET_HDR_GSO_NONE or not gso_size or len(data) <= hdr_len + gso_size:
        if not flags & VIRTIO_NET_HDR_F_NEEDS_CSUM:
            return [bytes(data)]
        frame = bytearray(data)
        if csum_start + csum_offset + 2 <= len(frame):
            _complete_checksum(frame, csum_start, csum_offset)
        return [bytes(frame)]
    if kind not in (VIRTIO_NET_HDR_GSO_TCPV4, VIRTIO_NET_HDR_GSO_TCPV6):
        return [bytes(data)]  # UDP fragmentation offload: not produced by our ports' stacks; passed as is
    return _segment_tcp(bytes(data), kind == VIRTIO_NET_HDR_GSO_TCPV6, gso_size)


def _segment_tcp(frame: bytes, v6: bool, mss: int) -> list[bytes]:
    l3 = ETH_HLEN
    if frame[12:14] == b"\x81\x00":
        l3 += 4
    l4 = l3 + (40 if v6 else (frame[l3] & 0x0F) * 4)
    tcp_hlen = (frame[l4 + 12] >> 4) * 4
    hdr_end = l4 + tcp_hlen
    headers, payload = frame[:hdr_end], frame[hdr_end:]
    (seq,) = struct.unpack_from("!I", frame, l4 + 4)
    ip_id = 0 if v6 else struct.unpack_from("!H", frame, l3 + 4)[0]
    flags = frame[l4 + 13]
    out = []
    for i, off in enumerate(range(0, len(payload), mss)):
        chunk = payload[off : off + mss]
        last = off + mss >= len(payload)
        seg = bytearray(headers)
        seg += chunk
        if v6:
            struct.pack_into("!H", seg, l3 + 4, tcp_hlen + len(chunk))
        else:
            struct.pack_into("!HH", seg, l3 + 2, (l4 - l3) + tcp_hlen + len(chunk), (ip_id + i) & 0xFFFF)
            struct.pack_into("!H", seg, l3 + 10, 0)
            struct.pack_into("!H", seg, l3 + 10, ~_sum16(memoryview(seg)[l3:l4]) & 0xFFFF)
        struct.pack_into("!I", seg, l4 + 4, (seq + off) & 0xFFFFFFFF)
        if not last:
            seg[l4 + 13] = flags & ~TCP_FIN_PSH
        struct.pack_into("!H", seg, l4 + 16, 0)
        l4_len = tcp_hlen + len(chunk)
        total = _pseudo_sum(seg, l3, v6, l4_len) + _sum16(memoryview(seg)[l4:])
        while total >> 16:
            total = (total & 0xFFFF) + (total >> 16)
        struct.pack_into("!H", seg, l4 + 16, ~total & 0xFFFF)
        out.append(bytes(seg))
    return out
