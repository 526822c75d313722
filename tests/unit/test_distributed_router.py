"""The distributed router of HNV routing domains (datapath/distributed_router.py, issue 13 item 2,
New-NetVirtualizationCustomerRoute): tables from customer routes and lookup records, longest prefix then metric,
TTL and checksum, the gateway's echo reply, and what it refuses. Frames are checked with scapy."""

from __future__ import annotations

import socket

import pytest
from scapy.layers.inet import ICMP, IP, TCP
from scapy.layers.l2 import Ether

from pyvswitch.cluster.records import CustomerRoute, RecordError, router_mac
from pyvswitch.daemon.tunnels import router_of
from pyvswitch.datapath.distributed_router import RouterDrop, route_frame, ttl_decremented

RD = "{11111111-2222-3333-4444-000000000000}"
OTHER_RD = "{11111111-2222-3333-4444-000000000001}"
BLUE, GREEN, RED = 5001, 5002, 6001
PA_B = "10.91.0.2"
VM_GREEN = 0x020000000B02
GW_VM = 0x020000000B99


def ip4(a: str) -> bytes:
    return socket.inet_aton(a)


def tables():  # type: ignore[no-untyped-def]
    routes = [
        CustomerRoute(RD, BLUE, "10.0.0.0/24"),
        CustomerRoute(RD, GREEN, "10.0.1.0/24"),
        # Everything else of the domain through a gateway VM on GREEN; a worse duplicate by metric.
        CustomerRoute(RD, GREEN, "0.0.0.0/0", "10.0.1.254", metric=10),
        CustomerRoute(RD, BLUE, "10.0.9.0/24", metric=500),
        CustomerRoute(RD, GREEN, "10.0.9.0/24", "10.0.1.254", metric=5),
        CustomerRoute(OTHER_RD, RED, "10.0.1.0/24"),
    ]
    hosts = {
        (BLUE, ip4("10.0.0.5")): (0x020000000A05, None),  # a VM of this host
        (GREEN, ip4("10.0.1.7")): (VM_GREEN, PA_B),
        (GREEN, ip4("10.0.1.254")): (GW_VM, PA_B),
        (RED, ip4("10.0.1.7")): (0x020000000C07, None),  # the same address in another domain
    }
    return router_of(routes, hosts)


def frame(dst_ip: str, ttl: int = 64, src_ip: str = "10.0.0.5", vsid: int = BLUE) -> bytes:
    rd = RD if vsid != RED else OTHER_RD
    pkt = (
        Ether(dst=router_mac(rd).to_bytes(6, "big"), src="02:00:00:00:0a:05")
        / IP(src=src_ip, dst=dst_ip, ttl=ttl)
        / TCP(sport=40000, dport=80, flags="S")
    )
    return bytes(pkt)


def test_a_frame_to_the_router_goes_to_the_destination_record_with_macs_rewritten_and_ttl_less() -> None:
    t = tables()
    routed = route_frame(t, BLUE, frame("10.0.1.7"))
    assert not isinstance(routed, RouterDrop)
    vsid, out, pa = routed
    assert (vsid, pa) == (GREEN, PA_B)
    got = Ether(bytes(out))
    assert got.dst == "02:00:00:00:0b:02" and int(got.src.replace(":", ""), 16) == router_mac(RD)
    assert got[IP].ttl == 63 and got[IP].dst == "10.0.1.7" and got[IP].src == "10.0.0.5"
    recomputed = IP(bytes(got[IP]))
    del recomputed.chksum
    assert got[IP].chksum == IP(bytes(recomputed)).chksum  # the incremental update is the full sum
    assert got[TCP].sport == 40000


def test_longest_prefix_wins_then_the_lower_metric_and_a_next_hop_is_its_records_mac() -> None:
    t = tables()
    # 10.0.7.1: only the default route covers it -> the gateway VM's MAC on GREEN.
    vsid, out, pa = route_frame(t, BLUE, frame("10.0.7.1"))  # type: ignore[misc]
    assert (vsid, out[0:6], pa) == (GREEN, GW_VM.to_bytes(6, "big"), PA_B)
    # 10.0.9.9: two /24 routes; the metric 5 one (through the gateway VM on GREEN) wins over 500.
    vsid, out, pa = route_frame(t, BLUE, frame("10.0.9.9"))  # type: ignore[misc]
    assert (vsid, out[0:6]) == (GREEN, GW_VM.to_bytes(6, "big"))


def test_the_router_answers_ping_to_the_gateway_address_and_its_arp_table_names_it() -> None:
    t = tables()
    assert t.gateways[(BLUE, ip4("10.0.0.1"))] == router_mac(RD)
    assert t.gateways[(GREEN, ip4("10.0.1.1"))] == router_mac(RD)
    assert (RED, ip4("10.0.1.1")) in t.gateways and t.gateways[(RED, ip4("10.0.1.1"))] == router_mac(OTHER_RD)
    request = bytes(
        Ether(dst=router_mac(RD).to_bytes(6, "big"), src="02:00:00:00:0a:05")
        / IP(src="10.0.0.5", dst="10.0.0.1")
        / ICMP(type=8, id=7, seq=3)
        / (b"p" * 56)
    )
    vsid, out, pa = route_frame(t, BLUE, request)  # type: ignore[misc]
    assert (vsid, pa) == (BLUE, None)
    reply = Ether(bytes(out))
    assert reply.dst == "02:00:00:00:0a:05" and reply[IP].src == "10.0.0.1" and reply[IP].dst == "10.0.0.5"
    assert reply[ICMP].type == 0 and reply[ICMP].id == 7 and reply[ICMP].seq == 3
    check = Ether(bytes(out))
    del check[IP].chksum
    del check[ICMP].chksum
    rebuilt = Ether(bytes(check))
    assert (reply[IP].chksum, reply[ICMP].chksum) == (rebuilt[IP].chksum, rebuilt[ICMP].chksum)


def test_what_the_router_refuses_is_named() -> None:
    t = tables()
    assert route_frame(t, BLUE, frame("10.0.1.7", ttl=1)) is RouterDrop.TTL_EXCEEDED
    assert route_frame(t, BLUE, frame("10.0.1.8")) is RouterDrop.NO_RECORD  # covered, but no such VM
    assert route_frame(t, 5003, frame("10.0.1.7")) is RouterDrop.NO_ROUTE  # a subnet without routes
    # RED's domain has no route to 10.0.0.0/24: BLUE is in another routing domain.
    assert route_frame(t, RED, frame("10.0.0.5", vsid=RED, src_ip="10.0.1.7")) is RouterDrop.NO_ROUTE
    arp = bytes(Ether(dst=router_mac(RD).to_bytes(6, "big"), type=0x0806)) + bytes(28)
    assert route_frame(t, BLUE, arp) is RouterDrop.NOT_IPV4
    tcp_to_gw = frame("10.0.0.1")
    assert route_frame(t, BLUE, tcp_to_gw) is RouterDrop.TO_ROUTER


def test_the_ttl_update_matches_a_full_checksum_for_every_ttl() -> None:
    for ttl in (2, 3, 64, 128, 255):
        out = ttl_decremented(frame("10.0.1.7", ttl=ttl))
        assert out is not None
        ip = IP(bytes(out[14:]))
        again = ip.copy()
        del again.chksum
        assert ip.ttl == ttl - 1 and ip.chksum == IP(bytes(again)).chksum


def test_a_gateway_address_a_vm_holds_is_not_answered_by_the_router() -> None:
    routes = [CustomerRoute(RD, BLUE, "10.0.0.0/24")]
    vm_gateway = {(BLUE, ip4("10.0.0.1")): (0x020000000A01, "10.91.0.3")}
    assert router_of(routes, vm_gateway).gateways == {}


def test_routes_are_checked_and_normalised() -> None:
    r = CustomerRoute("11111111-2222-3333-4444-00000000abcd", BLUE, "10.0.0.7/24")
    assert r.rdid == "{11111111-2222-3333-4444-00000000ABCD}" and r.destination_prefix == "10.0.0.0/24"
    assert r.gateway_address == "10.0.0.1" and r.on_link
    assert CustomerRoute(RD, BLUE, "0.0.0.0/0", "10.0.0.254").gateway_address is None
    for bad, field in (
        (("nope", BLUE, "10.0.0.0/24"), "routing_domain_id"),
        ((RD, 12, "10.0.0.0/24"), "virtual_subnet_id"),
        ((RD, BLUE, "10.0.0.0/33"), "destination_prefix"),
        ((RD, BLUE, "fd00::/64"), "destination_prefix"),
        ((RD, BLUE, "10.0.0.0/24", "10.0.0.300"), "next_hop"),
    ):
        with pytest.raises(RecordError, match=field):
            CustomerRoute(*bad)  # type: ignore[arg-type]
    assert router_mac(RD) == router_mac(RD.lower().strip("{}")) and router_mac(RD) >> 40 == 0x02
