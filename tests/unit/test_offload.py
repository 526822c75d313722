"""Software offloads for the tunnel (packet/offload.py): a TCP super-frame with a partial checksum becomes MSS
segments whose sequence numbers, lengths, flags and checksums are what the kernel's own segmentation makes
(checked by scapy recomputing them); a lone partial checksum is completed."""

from __future__ import annotations

import pytest
from scapy.layers.inet import IP, TCP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import Ether

from pyvswitch.packet.offload import finish_offloads
from pyvswitch.packet.vnet import VIRTIO_NET_HDR_GSO_TCPV4, VIRTIO_NET_HDR_GSO_TCPV6, VNET_HDR


def partial(pkt: Ether, v6: bool) -> tuple[bytes, int]:
    """The frame as a sender with checksum offload hands it over: TCP checksum = pseudo-header sum only."""
    raw = bytearray(bytes(pkt))
    l4 = 14 + (40 if v6 else 20)
    tcp_len = len(raw) - l4
    import struct

    if v6:
        pseudo = bytes(raw[22:54]) + struct.pack("!IxxxB", tcp_len, 6)
    else:
        pseudo = bytes(raw[26:34]) + struct.pack("!xBH", 6, tcp_len)
    total = sum(struct.unpack(f"!{len(pseudo) // 2}H", pseudo))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    struct.pack_into("!H", raw, l4 + 16, total)
    return bytes(raw), l4


@pytest.mark.parametrize("v6", [False, True])
def test_a_super_frame_is_cut_into_valid_segments(v6: bool) -> None:
    payload = bytes(range(256)) * 40  # 10,240 bytes
    l3 = IPv6(src="fd00::1", dst="fd00::2") if v6 else IP(src="10.0.0.1", dst="10.0.0.2", id=100)
    pkt = (
        Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")
        / l3
        / TCP(sport=5000, dport=80, seq=1000, flags="PA")
        / payload
    )
    raw, l4 = partial(pkt, v6)
    gso = VIRTIO_NET_HDR_GSO_TCPV6 if v6 else VIRTIO_NET_HDR_GSO_TCPV4
    vnet = VNET_HDR.pack(1, gso, l4 + 20, 1448, l4, 16)
    segs = finish_offloads(raw, vnet)
    assert len(segs) == 8 and all(len(s) <= 14 + (40 if v6 else 20) + 20 + 1448 for s in segs)
    got = b""
    for i, s in enumerate(segs):
        e = Ether(s)
        tcp = e[TCP]
        want = tcp.chksum
        del tcp.chksum
        if not v6:
            ip_want = e[IP].chksum
            del e[IP].chksum
            assert Ether(bytes(e))[IP].chksum == ip_want and e[IP].id == 100 + i
        assert Ether(bytes(e))[TCP].chksum == want  # scapy computes the same checksum
        assert tcp.seq == 1000 + i * 1448
        assert ("P" in str(tcp.flags)) == (i == len(segs) - 1)
        got += bytes(tcp.payload)
    assert got == payload


def test_a_partial_checksum_alone_is_completed() -> None:
    pkt = Ether() / IP(src="10.0.0.1", dst="10.0.0.2") / TCP(sport=1, dport=2) / b"hello"
    raw, l4 = partial(pkt, False)
    (out,) = finish_offloads(raw, VNET_HDR.pack(1, 0, 0, 0, l4, 16))
    assert out == bytes(pkt)  # scapy's frame has the full checksum
    assert finish_offloads(bytes(pkt), None) == [bytes(pkt)]
