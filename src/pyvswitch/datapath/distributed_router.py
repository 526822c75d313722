"""The distributed router of HNV's routing domains (issue 13 item 2, ``New-NetVirtualizationCustomerRoute``):
every host routes its own VMs' traffic between the virtual subnets of one routing domain, with no router VM and
no hair-pin through a central gateway, as Hyper-V Network Virtualization does.

What a VM sees: its default gateway is the first host address of its subnet's on-link prefix (10.0.0.1 on
10.0.0.0/24), which answers ARP with the routing domain's router MAC (``cluster.records.router_mac``: the same
on every host, so a migrated VM's ARP entry stays right) and answers ping. A frame the VM sends to that MAC is
routed here, on the host it was sent from, by the domain's customer routes (longest prefix, then the lowest
metric): the destination is the lookup record of the destination address (on-link) or of the route's next hop
(a gateway VM) on the route's subnet; the frame leaves with the router MAC as source, the record's MAC as
destination, the TTL one less, and goes to that subnet: to a VM of this host (handed back to the switch on the
destination subnet) or through the tunnel to the record's provider address, with the destination subnet's VNI.
Subnets of different routing domains never reach each other (their routes are not looked at), so overlapping
customer addresses in two domains stay apart.

Only IPv4 is routed (HNV v1's customer routes; IPv6 would need ND answered for the gateway). A frame whose TTL
runs out is dropped and counted (no ICMP time-exceeded is sent).

The tables are built from the cluster's routes and lookup records (daemon/tunnels.py ``router_of``) and replaced whole;
``route_frame`` is the per-frame decision, called by the tunnel port (datapath/tunnel.py) for frames the switch
sends it on a routed subnet.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import NamedTuple

from pyvswitch.drops import DropReason

_IPV4 = b"\x08\x00"
_ICMP, _ECHO_REQUEST, _ECHO_REPLY = 1, 8, 0
_REPLY_TTL = 64


class RouterDrop(DropReason):
    NOT_IPV4 = "not-routable", "sent to the distributed router's MAC but not IPv4 (only IPv4 is routed)"
    NO_ROUTE = "no-customer-route", "no customer route of the subnet's routing domain covers the destination"
    NO_RECORD = "no-record-for-route", "the route's destination (or next hop) has no lookup record"
    TTL_EXCEEDED = "ttl-exceeded", "routed with a TTL of 1 or less"
    TO_ROUTER = "to-router", "addressed to the router itself, and not an echo request it answers"


class Route(NamedTuple):
    network: int
    mask: int
    prefixlen: int
    vsid: int
    next_hop: bytes | None  # None: on-link
    metric: int


@dataclass(frozen=True)
class RouterTables:
    """What the router knows: which routing domain each subnet is in, each domain's routes in match order, the
    gateway addresses it answers for, and every IPv4 lookup record it can route to."""

    rdid_of: dict[int, str] = field(default_factory=dict)  # VSID -> routing domain
    router_macs: dict[int, int] = field(default_factory=dict)  # VSID -> its domain's router MAC
    routes: dict[str, tuple[Route, ...]] = field(default_factory=dict)  # RDID -> longest prefix first
    gateways: dict[tuple[int, bytes], int] = field(default_factory=dict)  # (VSID, IPv4) -> router MAC
    # (VSID, IPv4) -> (MAC, provider address; None when the VM is on this host)
    hosts: dict[tuple[int, bytes], tuple[int, str | None]] = field(default_factory=dict)

    def reachable(self, vsids: Iterable[int]) -> set[int]:
        """The subnets the routing domains of ``vsids`` route to."""
        domains = {self.rdid_of[v] for v in vsids if v in self.rdid_of}
        return {r.vsid for d in domains for r in self.routes.get(d, ())}


def ttl_decremented(data: bytes | bytearray | memoryview) -> bytearray | None:
    """The IPv4 frame with its TTL one less and the header checksum updated (RFC 1624, eqn. 3); None if the TTL
    is 1 or less."""
    out = bytearray(data)
    ttl, proto = out[22], out[23]
    if ttl <= 1:
        return None
    old_word, new_word = (ttl << 8) | proto, ((ttl - 1) << 8) | proto
    hc = (out[24] << 8) | out[25]
    s = (~hc & 0xFFFF) + (~old_word & 0xFFFF) + new_word
    s = (s & 0xFFFF) + (s >> 16)
    s = (s & 0xFFFF) + (s >> 16)
    out[22] = ttl - 1
    struct.pack_into("!H", out, 24, ~s & 0xFFFF)
    return out


def ipv4_checksum(header: bytes | bytearray) -> int:
    s: int = sum(struct.unpack(f"!{len(header) // 2}H", header))
    s = (s & 0xFFFF) + (s >> 16)
    s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def echo_reply(data: bytes | bytearray | memoryview, router: int) -> bytearray | None:
    """The router's reply to an ICMP echo request addressed to a gateway address; None for anything else."""
    ihl = (data[14] & 0x0F) * 4
    icmp = 14 + ihl
    if data[23] != _ICMP or len(data) < icmp + 8 or data[icmp] != _ECHO_REQUEST or data[20] & 0x3F | data[21]:
        return None  # not ICMP, too short, not an echo request, or a fragment
    total = (data[16] << 8) | data[17]
    out = bytearray(data[: 14 + total]) if 14 + total <= len(data) else bytearray(data)
    out[0:6], out[6:12] = out[6:12], router.to_bytes(6, "big")
    out[26:30], out[30:34] = out[30:34], out[26:30]
    out[22] = _REPLY_TTL
    out[24:26] = b"\x00\x00"
    struct.pack_into("!H", out, 24, ipv4_checksum(bytes(out[14 : 14 + ihl])))
    # Type 8 -> 0: the ICMP checksum moves by the type's weight (the high byte of its first word).
    out[icmp] = _ECHO_REPLY
    c = ((out[icmp + 2] << 8) | out[icmp + 3]) + (_ECHO_REQUEST << 8)
    c = (c & 0xFFFF) + (c >> 16)
    struct.pack_into("!H", out, icmp + 2, c & 0xFFFF)
    return out


def route_frame(
    tables: RouterTables, vsid: int, data: bytes | bytearray | memoryview
) -> tuple[int, bytearray, str | None] | RouterDrop:
    """Route a frame a VM of subnet ``vsid`` sent to the router MAC: (the subnet it goes to, the frame as it
    goes, the provider address to send it to or None for a VM of this host), or why it is dropped."""
    if len(data) < 34 or data[12:14] != _IPV4 or data[14] >> 4 != 4:
        return RouterDrop.NOT_IPV4
    rdid = tables.rdid_of.get(vsid)
    if rdid is None:
        return RouterDrop.NO_ROUTE
    dst_ip = bytes(data[30:34])
    router = tables.router_macs[vsid]
    if (vsid, dst_ip) in tables.gateways:
        reply = echo_reply(data, router)
        return (vsid, reply, None) if reply is not None else RouterDrop.TO_ROUTER
    dst = int.from_bytes(dst_ip, "big")
    for r in tables.routes.get(rdid, ()):
        if dst & r.mask == r.network:
            break
    else:
        return RouterDrop.NO_ROUTE
    target = tables.hosts.get((r.vsid, r.next_hop if r.next_hop is not None else dst_ip))
    if target is None:
        return RouterDrop.NO_RECORD
    out = ttl_decremented(data)
    if out is None:
        return RouterDrop.TTL_EXCEEDED
    mac, pa = target
    out[0:6] = mac.to_bytes(6, "big")
    out[6:12] = router.to_bytes(6, "big")
    return r.vsid, out, pa
