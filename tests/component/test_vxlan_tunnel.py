"""The VXLAN tunnel device (datapath/tunnel.py, issue 13 item 3) over real UDP sockets on loopback addresses:
unicast straight to the host a lookup record names, nothing flooded for unknown unicast, head-end replication
to the subnet's hosts only, ARP answered locally from the records, subnets with overlapping addresses kept
apart, and datagrams that are not VXLAN, or not from a host of the subnet, counted and dropped."""

from __future__ import annotations

import random
import socket
import struct
from collections.abc import Iterator

import pytest

from pyvswitch.datapath.tunnel import TunnelDrop, TunnelTables, VxlanTunnel
from pyvswitch.packet.frame import Packet
from pyvswitch.packet.vxlan import arp_reply, decode_header, encode_header
from pyvswitch.testing.netns import wait_for

BLUE, RED = 5001, 6001
MAC_A, MAC_B, MAC_C = 0x02000000000A, 0x02000000000B, 0x02000000000C
BCAST = b"\xff" * 6


def eth(dst: bytes, src: int, etype: int = 0x0800, payload: bytes = b"x" * 46) -> bytes:
    return dst + src.to_bytes(6, "big") + etype.to_bytes(2, "big") + payload


def arp_request(sender_mac: int, sender_ip: str, target_ip: str) -> bytes:
    body = struct.pack("!HHBBH", 1, 0x0800, 6, 4, 1) + sender_mac.to_bytes(6, "big")
    body += socket.inet_aton(sender_ip) + bytes(6) + socket.inet_aton(target_ip)
    return eth(BCAST, sender_mac, 0x0806, body + bytes(18))


@pytest.fixture
def hosts() -> Iterator[dict[str, VxlanTunnel]]:
    net = f"127.{random.randint(1, 250)}.{random.randint(1, 250)}"
    tunnels = {h: VxlanTunnel(f"vx-{h}", f"{net}.{i + 1}") for i, h in enumerate("ABC")}
    try:
        yield tunnels
    finally:
        for t in tunnels.values():
            t.close()


def pa(t: VxlanTunnel) -> str:
    return t.provider_address


def tables(me: VxlanTunnel, subnets: dict[int, dict[str, tuple[int, str, VxlanTunnel]]]) -> TunnelTables:
    """``subnets``: VSID -> {customer IP: (MAC, host name, host's tunnel)}, as the lookup records say."""
    me.set_codes({vsid: 100 + i for i, vsid in enumerate(sorted(subnets))})  # as the switch does
    unicast, arp, flood = {}, {}, {}
    for vsid, recs in subnets.items():
        others = {pa(t) for _, _, t in recs.values() if t is not me}
        flood[vsid] = tuple(sorted(others))
        for ip, (mac, _, t) in recs.items():
            if t is not me:
                unicast[(vsid, mac)] = pa(t)
                arp[(vsid, socket.inet_aton(ip))] = mac
    return TunnelTables(unicast, flood, arp)


def received(t: VxlanTunnel, n: int = 1, timeout_s: float = 2.0) -> list[Packet]:
    got: list[Packet] = []

    def enough() -> bool:
        got.extend(t.recv(64))
        return len(got) >= n

    wait_for(enough, timeout_s=timeout_s, what=f"{n} frame(s) at {t.name}")
    return got


def drain(t: VxlanTunnel) -> list[Packet]:
    import time

    time.sleep(0.05)  # datagrams on loopback arrive within microseconds; nothing more is coming
    return t.recv(64)


@pytest.fixture
def blue(hosts: dict[str, VxlanTunnel]) -> dict[str, VxlanTunnel]:
    """BLUE spans A and B; RED spans A, B and C; both use 10.0.0.2 (overlapping customer addresses)."""
    a, b, c = hosts["A"], hosts["B"], hosts["C"]
    subnets = {
        BLUE: {"10.0.0.1": (MAC_A, "A", a), "10.0.0.2": (MAC_B, "B", b)},
        RED: {"10.0.0.1": (0x02000000010A, "A", a), "10.0.0.2": (MAC_C, "C", c), "10.0.0.3": (0x02000000010B, "B", b)},
    }  # fmt: skip
    for t in (a, b, c):
        mine = {v: recs for v, recs in subnets.items() if any(x is t for _, _, x in recs.values())}
        t.set_tables(tables(t, mine))
    return hosts


def test_unicast_goes_only_to_the_host_of_the_record(blue: dict[str, VxlanTunnel]) -> None:
    a, b, c = blue["A"], blue["B"], blue["C"]
    frame = eth(MAC_B.to_bytes(6, "big"), MAC_A)
    a.send([Packet(frame)], [a.code_of[BLUE]])
    got = received(b)
    assert [bytes(p.data) for p in got] == [frame] and got[0].tci == b.code_of[BLUE]
    assert drain(c) == []
    assert a.counters.tx_frames == 1 and b.counters.rx_frames == 1


def test_unknown_unicast_is_dropped_not_flooded(blue: dict[str, VxlanTunnel]) -> None:
    a, b, c = blue["A"], blue["B"], blue["C"]
    a.send([Packet(eth(b"\x02\x00\x00\x00\x00\x99", MAC_A))], [a.code_of[BLUE]])
    assert a.counters.drops[TunnelDrop.TX_NO_RECORD] == 1 and a.counters.tx_frames == 0
    assert drain(b) == [] and drain(c) == []


def test_broadcast_is_replicated_to_the_subnets_hosts_only(blue: dict[str, VxlanTunnel]) -> None:
    a, b, c = blue["A"], blue["B"], blue["C"]
    dhcp = eth(BCAST, MAC_A)
    a.send([Packet(dhcp)], [a.code_of[BLUE]])  # BLUE: A and B
    assert [bytes(p.data) for p in received(b)] == [dhcp]
    assert drain(c) == []
    a.send([Packet(dhcp)], [a.code_of[RED]])  # RED: A, B and C
    assert [p.tci for p in received(b)] == [b.code_of[RED]]
    assert [p.tci for p in received(c)] == [c.code_of[RED]]
    assert a.replicated == 1


def test_arp_for_a_recorded_address_is_answered_here_per_subnet(blue: dict[str, VxlanTunnel]) -> None:
    a, b, c = blue["A"], blue["B"], blue["C"]
    a.send([Packet(arp_request(MAC_A, "10.0.0.1", "10.0.0.2"))], [a.code_of[BLUE]])
    a.send([Packet(arp_request(0x02000000010A, "10.0.0.1", "10.0.0.2"))], [a.code_of[RED]])
    replies = a.recv(64)
    assert [bytes(p.data) for p in replies] == [
        arp_reply(MAC_B, socket.inet_aton("10.0.0.2"), MAC_A, socket.inet_aton("10.0.0.1")),
        arp_reply(MAC_C, socket.inet_aton("10.0.0.2"), 0x02000000010A, socket.inet_aton("10.0.0.1")),
    ]  # the same address, a different VM in each subnet
    assert [p.tci for p in replies] == [a.code_of[BLUE], a.code_of[RED]]
    assert a.suppressed == 2 and a.counters.tx_frames == 0
    assert drain(b) == [] and drain(c) == []  # no ARP crossed the provider network
    # An address of this host's own VM: it heard the request on the switch; nothing is sent.
    t = a.tables
    a.set_tables(TunnelTables(t.unicast, t.flood, t.arp, frozenset({(BLUE, socket.inet_aton("10.0.0.1"))})))
    a.send([Packet(arp_request(MAC_B, "10.0.0.2", "10.0.0.1"))], [a.code_of[BLUE]])
    assert a.suppressed == 3 and drain(b) == [] and a.recv(64) == []
    # An address no record has: the request goes to the subnet's hosts (their VMs may answer).
    a.send([Packet(arp_request(MAC_A, "10.0.0.1", "10.0.0.77"))], [a.code_of[BLUE]])
    assert len(received(b)) == 1


def test_foreign_and_malformed_datagrams_are_counted_and_dropped(blue: dict[str, VxlanTunnel]) -> None:
    a, b, c = blue["A"], blue["B"], blue["C"]
    frame = eth(MAC_A.to_bytes(6, "big"), MAC_C)
    c._sock.sendto(encode_header(BLUE) + frame, (pa(a), a.port))  # C has no port on BLUE
    c._sock.sendto(encode_header(7777) + frame, (pa(a), a.port))  # a subnet A does not have
    c._sock.sendto(b"\x00" * 8 + frame, (pa(a), a.port))  # no VNI flag
    c._sock.sendto(b"junk", (pa(a), a.port))
    b._sock.sendto(encode_header(BLUE) + frame, (pa(a), a.port))  # the one good datagram
    got = received(a)
    assert [bytes(p.data) for p in got] == [frame]
    drops = a.counters.drops
    assert drops[TunnelDrop.RX_UNKNOWN_PEER] == 1 and drops[TunnelDrop.RX_UNKNOWN_VNI] == 1
    assert drops[TunnelDrop.RX_NOT_VXLAN] == 2


def test_header_round_trip() -> None:
    for vni in (0, 4096, 5001, 2**24 - 1):
        assert decode_header(encode_header(vni) + bytes(14)) == vni
