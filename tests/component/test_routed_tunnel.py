"""Routing between the virtual subnets of a routing domain through real VXLAN tunnel devices on loopback
(datapath/tunnel.py + datapath/distributed_router.py, issue 13 item 2): the tables come from lookup records and
customer routes as a host's agent sees them (daemon/tunnels.py); a VM's ARP for its gateway is answered on its
own host; a routed frame leaves with the destination subnet's VNI for the record's host, which accepts it from
a host of the routing domain that has no port on that subnet; a VM of the same host gets it back through the
switch on its subnet; another routing domain is not reached."""

from __future__ import annotations

import random
from collections.abc import Iterator

import pytest
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import ARP, Ether

from pyvswitch.cluster.agent import SubnetView
from pyvswitch.cluster.records import CustomerRoute, HostInfo, LookupRecord, router_mac
from pyvswitch.daemon.tunnels import tables_of
from pyvswitch.datapath.distributed_router import RouterDrop
from pyvswitch.datapath.tunnel import TunnelDrop, VxlanTunnel
from pyvswitch.packet.frame import Packet
from pyvswitch.testing.netns import wait_for

RD, OTHER_RD = "{0000000A-0000-0000-0000-000000000001}", "{0000000A-0000-0000-0000-000000000002}"
BLUE, GREEN, LOCAL_GREEN, RED = 5101, 5102, 5103, 6101
MAC_A, MAC_B, MAC_A2, MAC_R = 0x02000000A001, 0x02000000B001, 0x02000000A002, 0x02000000C001


@pytest.fixture
def pair() -> Iterator[tuple[VxlanTunnel, VxlanTunnel]]:
    net = f"127.{random.randint(1, 250)}.{random.randint(1, 250)}"
    a, b = VxlanTunnel("vx-a", f"{net}.1"), VxlanTunnel("vx-b", f"{net}.2")
    try:
        views = {
            BLUE: {"10.0.0.5": (MAC_A, a)},  # host A's VM
            GREEN: {"10.0.1.7": (MAC_B, b)},  # host B's VM
            LOCAL_GREEN: {"10.0.2.9": (MAC_A2, a)},  # another of A's VMs, on a third subnet
            RED: {"10.0.1.7": (MAC_R, a)},  # the same address as B's VM, another routing domain
        }
        routes = [
            CustomerRoute(RD, BLUE, "10.0.0.0/24"),
            CustomerRoute(RD, GREEN, "10.0.1.0/24"),
            CustomerRoute(RD, LOCAL_GREEN, "10.0.2.0/24"),
            CustomerRoute(OTHER_RD, RED, "10.0.1.0/24"),
        ]
        for me in (a, b):
            subnet_views = {}
            for vsid, recs in views.items():
                view = SubnetView(1)
                for ip, (mac, t) in recs.items():
                    host = HostInfo(t.name, t.provider_address)
                    view.records[ip] = LookupRecord(vsid, ip, f"{mac:012x}", t.provider_address, host=t.name)
                    view.hosts[t.name] = host
                subnet_views[vsid] = view
            mine = {v for v, recs in views.items() if any(t is me for _, t in recs.values())}
            me.set_codes({v: 10 + i for i, v in enumerate(sorted(mine))})  # the switch: its ports' subnets
            me.set_tables(tables_of(subnet_views, me.provider_address, routes))
        yield a, b
    finally:
        a.close()
        b.close()


def to_router(dst_ip: str, src_mac: int = MAC_A, src_ip: str = "10.0.0.5", rd: str = RD) -> bytes:
    eth = Ether(dst=router_mac(rd).to_bytes(6, "big"), src=src_mac.to_bytes(6, "big"))
    return bytes(eth / IP(src=src_ip, dst=dst_ip, ttl=64) / UDP(sport=5000, dport=6000) / (b"r" * 32))


def received(t: VxlanTunnel) -> list[Packet]:
    got: list[Packet] = []

    def some() -> bool:
        got.extend(t.recv(64))
        return bool(got)

    wait_for(some, timeout_s=2, what=f"a frame at {t.name}")
    return got


def test_arp_for_the_gateway_is_answered_on_the_vms_own_host(pair: tuple[VxlanTunnel, VxlanTunnel]) -> None:
    a, _ = pair
    ask = bytes(Ether(dst="ff:ff:ff:ff:ff:ff", src=MAC_A.to_bytes(6, "big")) / ARP(
        hwsrc=MAC_A.to_bytes(6, "big"), psrc="10.0.0.5", pdst="10.0.0.1"))  # fmt: skip
    a.send([Packet(ask)], [a.code_of[BLUE]])
    [reply] = a.recv(8)
    arp = Ether(bytes(reply.data))[ARP]
    assert arp.op == 2 and arp.psrc == "10.0.0.1" and int(arp.hwsrc.replace(":", ""), 16) == router_mac(RD)
    assert reply.tci == a.code_of[BLUE] and a.counters.tx_frames == 0  # nothing crossed


def test_a_routed_frame_crosses_with_the_destination_subnets_vni_and_is_accepted_there(
    pair: tuple[VxlanTunnel, VxlanTunnel],
) -> None:
    a, b = pair
    a.send([Packet(to_router("10.0.1.7"))], [a.code_of[BLUE]])
    [got] = received(b)
    assert got.tci == b.code_of[GREEN]  # arrived with GREEN's VNI, though A has no port on GREEN
    eth = Ether(bytes(got.data))
    assert int(eth.dst.replace(":", ""), 16) == MAC_B and int(eth.src.replace(":", ""), 16) == router_mac(RD)
    assert eth[IP].ttl == 63 and eth[IP].dst == "10.0.1.7"
    assert b.counters.drops[TunnelDrop.RX_UNKNOWN_PEER] == 0 and a.routed == 1
    # The reply: B's VM answers to its gateway, B routes it back into BLUE towards A.
    b.send([Packet(to_router("10.0.0.5", MAC_B, "10.0.1.7"))], [b.code_of[GREEN]])
    [back] = received(a)
    assert back.tci == a.code_of[BLUE] and Ether(bytes(back.data))[IP].dst == "10.0.0.5"


def test_a_vm_of_the_same_host_gets_the_routed_frame_back_on_its_subnet(
    pair: tuple[VxlanTunnel, VxlanTunnel],
) -> None:
    a, b = pair
    a.send([Packet(to_router("10.0.2.9"))], [a.code_of[BLUE]])
    [got] = a.recv(8)
    assert got.tci == a.code_of[LOCAL_GREEN]
    assert int(Ether(bytes(got.data)).dst.replace(":", ""), 16) == MAC_A2
    assert a.counters.tx_frames == 0 and b.recv(8) == []


def test_another_routing_domain_is_not_reached_and_unknown_addresses_are_counted(
    pair: tuple[VxlanTunnel, VxlanTunnel],
) -> None:
    a, b = pair
    # RED's VM (10.0.1.7 in OTHER_RD) to BLUE's 10.0.0.5: RED's domain has no route there.
    a.send([Packet(to_router("10.0.0.5", MAC_R, "10.0.1.7", OTHER_RD))], [a.code_of[RED]])
    # BLUE's VM to 10.0.1.8: on GREEN's prefix, but no record.
    a.send([Packet(to_router("10.0.1.8"))], [a.code_of[BLUE]])
    assert a.counters.drops[RouterDrop.NO_ROUTE] == 1 and a.counters.drops[RouterDrop.NO_RECORD] == 1
    assert a.recv(8) == [] and b.recv(8) == [] and a.counters.tx_frames == 0


def test_a_router_mac_of_another_domain_is_not_routed(pair: tuple[VxlanTunnel, VxlanTunnel]) -> None:
    a, _ = pair
    # BLUE's VM sends to OTHER_RD's router MAC: not its gateway; an unknown unicast, dropped as such.
    a.send([Packet(to_router("10.0.1.7", rd=OTHER_RD))], [a.code_of[BLUE]])
    assert a.counters.drops[TunnelDrop.TX_NO_RECORD] == 1 and a.routed == 0
