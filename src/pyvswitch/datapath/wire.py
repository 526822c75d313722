"""What every device does on the way out: put the 802.1Q tag back and keep the virtio-net header in step."""

from __future__ import annotations

from pyvswitch.packet.frame import TAG, UNTAGGED, VLAN_HLEN, Buffer, Packet, tag_bytes
from pyvswitch.packet.vnet import EMPTY_VNET_HDR, shift_vnet

__all__ = ["TAG", "VLAN_HLEN", "out_vnet", "tag_bytes", "wire_bytes", "wire_parts"]


def wire_parts(data: Buffer, tci: int) -> list[Buffer]:
    """The frame as buffers to gather on send (no copy when untagged)."""
    if tci == UNTAGGED:
        return [data]
    return [data[:12], tag_bytes(tci), data[12:]]


def wire_bytes(data: Buffer, tci: int) -> bytes:
    if tci == UNTAGGED:
        return bytes(data)
    return b"".join(wire_parts(data, tci))


def out_vnet(pkt: Packet, tci: int) -> bytes:
    """The header to send with ``pkt`` on a vnet device: all-zero when it has none, offsets moved past a new tag."""
    vnet = pkt.vnet
    if vnet is None or vnet == EMPTY_VNET_HDR:
        return EMPTY_VNET_HDR
    if tci == UNTAGGED:
        return vnet
    # Ingress admits only headers whose offsets survive +4 (packet/vnet.py vnet_problem); a send never raises, so
    # one that does not (a packet made after ingress) goes without offload metadata rather than not at all.
    return shift_vnet(vnet, VLAN_HLEN) or EMPTY_VNET_HDR
