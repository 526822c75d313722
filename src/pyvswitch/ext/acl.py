"""ACL classification: Hyper-V port ACLs (longest prefix match) and extended ACLs (weighted 5-tuple, stateful).

Shared by the switch (port ACLs are its built-in policy) and the built-in firewall extension (extended ACLs,
which Hyper-V enforces through its WFP extension), so it lives with the extension API that both may import.

Both are compiled from rule lists into tables that answer per packet, with an exact-match cache in front, so a
flow costs a few dict lookups however many rules there are; a miss costs one lookup per distinct prefix length
(port ACLs) or a scan in weight order (extended ACLs) and is then cached. The caches are dropped whenever the
rules change (a new table is compiled) and are bounded. The flows stateful rules open live in a ``ConnTable``
per switch: bounded per switch and per port, expired a bounded amount of work per call, never by a scan.

Directions are the VM's (Hyper-V): Outbound = frames the port sends into the switch, Inbound = frames the switch
delivers to the port. Local/remote likewise: outbound local = source, inbound local = destination.

Choices where Hyper-V's documentation leaves room (docs/architecture.md §10):
- A MAC entry counts as specific as a host IP entry (/32 or /128); ANY as /0. Among equally specific matching
  entries, Deny wins over Allow.
- Frames that are not IP (ARP, LLDP...) are judged by MAC entries only; IP entries do not apply to them, so
  ``RemoteIPAddress ANY Deny`` does not stop ARP.
- No matching entry: allowed (a port without ACLs allows everything).
"""

from __future__ import annotations

import ipaddress
import math
import struct
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import NamedTuple

from pyvswitch.packet.classify import l3_start, l4_header
from pyvswitch.packet.frame import ETH_P_IPV4, ETH_P_IPV6, Packet

PROTO_ICMP = 1
PROTO_TCP = 6
PROTO_UDP = 17
PROTO_ICMPV6 = 58
CACHE_MAX = 65536
_V4_ADDRS = struct.Struct(">II")  # IPv4 addresses straight to ints: no from_bytes per packet
_PORTS = struct.Struct(">HH")


class Action(StrEnum):
    ALLOW = "Allow"
    DENY = "Deny"
    METER = "Meter"


class Direction(StrEnum):
    INBOUND = "Inbound"
    OUTBOUND = "Outbound"


class L3L4(NamedTuple):
    """What ACLs look at in a frame. Addresses are ints (IPv4 and IPv6 in separate families). A NamedTuple:
    made once per packet per check, and a tuple is the cheapest object Python can build.

    ``tcp_flags`` and the ICMP fields are what the firewall's connection tracking needs (a SYN opens a TCP
    connection; an echo request opens a query its reply may answer); rules never match on them, and ICMP
    keeps ports 0 so that a port range in a rule cannot match an ICMP identifier."""

    version: int  # 4, 6, or 0 for non-IP
    src: int
    dst: int
    proto: int
    sport: int
    dport: int
    tcp_flags: int = 0
    icmp_type: int = -1  # -1: not ICMP/ICMPv6, or no ICMP header (truncated, non-first fragment)
    icmp_id: int = 0  # the identifier of a query message (echo, timestamp...); 0 otherwise


NON_IP = L3L4(0, 0, 0, 0, 0, 0)


def parse_l3l4(data: bytes | bytearray | memoryview) -> L3L4:
    """IPv4/IPv6 addresses, protocol and TCP/UDP ports of a frame; NON_IP if not IP or truncated.

    The protocol and its header come from ``packet.classify.l4_header``, which skips IPv4 options, walks the
    IPv6 extension headers (so a rule cannot be dodged with a destination-options header) and gives nothing
    for non-first fragments: those keep their addresses and IP protocol, with ports 0.
    """
    etype, off = l3_start(data)
    n = len(data)
    if etype == ETH_P_IPV4 and n >= off + 20 and data[off] >> 4 == 4:
        src, dst = _V4_ADDRS.unpack_from(data, off + 12)
        proto = data[off + 9]
    elif etype == ETH_P_IPV6 and n >= off + 40 and data[off] >> 4 == 6:
        src = int.from_bytes(data[off + 8 : off + 24], "big")
        dst = int.from_bytes(data[off + 24 : off + 40], "big")
        proto = data[off + 6]
    else:
        return NON_IP
    version = 4 if etype == ETH_P_IPV4 else 6
    l4 = l4_header(data)
    if l4 is None:
        return L3L4(version, src, dst, proto, 0, 0)
    proto = l4[1]
    at = l4[2]
    if proto in (PROTO_TCP, PROTO_UDP):
        if n >= at + 4:
            sport, dport = _PORTS.unpack_from(data, at)
            # A TCP header too short for its flags byte gets none: it can then open no connection.
            flags = data[at + 13] if proto == PROTO_TCP and n >= at + 14 else 0
            return L3L4(version, src, dst, proto, sport, dport, flags)
    elif proto in (PROTO_ICMP, PROTO_ICMPV6) and n >= at + 8:
        # type, code, checksum, then the identifier of a query message
        return L3L4(version, src, dst, proto, 0, 0, 0, data[at], (data[at + 4] << 8) | data[at + 5])
    return L3L4(version, src, dst, proto, 0, 0)


def packet_l3(pkt: Packet) -> L3L4:
    """The packet's L3/L4 fields, parsed once per packet and kept on it."""
    l3 = pkt.l3
    if l3 is None:
        l3 = pkt.l3 = parse_l3l4(pkt.data)
    assert isinstance(l3, L3L4)
    return l3


# ---------------------------------------------------------------------------------------------- port ACLs


@dataclass(frozen=True, slots=True)
class PortAclEntry:
    """One compiled Add-VMNetworkAdapterAcl entry for one direction.

    ``kind``: "ip" or "mac"; ``local``: applies to the local (True) or remote address; for IP, ``version`` 4/6
    (0 = ANY: both families) and ``prefix``/``plen``; for MAC, ``mac`` (None = ANY).
    """

    action: Action
    kind: str
    local: bool
    version: int = 0
    prefix: int = 0
    plen: int = 0
    mac: int | None = None


def ip_entry(action: Action, address: str, local: bool) -> list[PortAclEntry]:
    """Entries for an IP address/prefix or ANY (= 0.0.0.0/0 and ::/0)."""
    if address.upper() == "ANY":
        return [PortAclEntry(action, "ip", local, 4, 0, 0), PortAclEntry(action, "ip", local, 6, 0, 0)]
    net = ipaddress.ip_network(address, strict=False)
    return [PortAclEntry(action, "ip", local, net.version, int(net.network_address), net.prefixlen)]


def mac_entry(action: Action, mac: int | None, local: bool) -> PortAclEntry:
    return PortAclEntry(action, "mac", local, mac=mac)


@dataclass(slots=True)
class Meter:
    packets: int = 0
    bytes: int = 0


class PortAclTable:
    """The port ACL of one direction of one port: a verdict per packet by longest prefix match."""

    def __init__(self, entries: Iterable[PortAclEntry]) -> None:
        self.entries = list(entries)
        # (version, local, plen) -> {masked prefix: action}; prefix lengths searched longest first.
        self._ip: dict[tuple[int, bool], list[tuple[int, int, dict[int, Action]]]] = {}
        self._mac: dict[tuple[bool, int | None], Action] = {}
        self.meters: dict[PortAclEntry, Meter] = {}
        self._meter_ip: list[PortAclEntry] = []
        by_len: dict[tuple[int, bool, int], dict[int, Action]] = {}
        for e in self.entries:
            if e.action is Action.METER:
                self.meters[e] = Meter()
                self._meter_ip.append(e)
                continue
            if e.kind == "mac":
                key = (e.local, e.mac)
                self._mac[key] = _stronger(self._mac.get(key), e.action)
                continue
            table = by_len.setdefault((e.version, e.local, e.plen), {})
            table[e.prefix] = _stronger(table.get(e.prefix), e.action)
        for (version, local, plen), table in by_len.items():
            bits = 32 if version == 4 else 128
            mask = ((1 << plen) - 1) << (bits - plen) if plen else 0
            self._ip.setdefault((version, local), []).append((plen, mask, table))
        for lists in self._ip.values():
            lists.sort(key=lambda t: -t[0])
        self.decides = bool(self._ip or self._mac)
        self._cache: dict[tuple[int, int, int, int, int], bool] = {}

    def allows(
        self, l3: L3L4, local_mac: int, remote_mac: int, local_ip: int, remote_ip: int, size: int
    ) -> bool:
        if self._meter_ip and l3.version:
            self._meter(l3.version, local_ip, remote_ip, size)
        if not self.decides:
            return True
        key = (l3.version, local_ip, remote_ip, local_mac, remote_mac)
        verdict = self._cache.get(key)
        if verdict is None:
            verdict = self._decide(l3.version, local_ip, remote_ip, local_mac, remote_mac)
            if len(self._cache) >= CACHE_MAX:
                self._cache.clear()
            self._cache[key] = verdict
        return verdict

    def _decide(self, version: int, local_ip: int, remote_ip: int, local_mac: int, remote_mac: int) -> bool:
        best_len = -1
        best: Action | None = None
        # MAC entries: a host MAC is as specific as a host address; ANY as /0.
        host_len = 32 if version == 4 else 128
        for (local, mac), action in self._mac.items():
            if mac is None or mac == (local_mac if local else remote_mac):
                plen = host_len if mac is not None else 0
                if plen > best_len or (plen == best_len and action is Action.DENY):
                    best_len, best = plen, action
        if version:
            for local in (True, False):
                addr = local_ip if local else remote_ip
                for plen, mask, table in self._ip.get((version, local), ()):
                    if plen < best_len:
                        break
                    found = table.get(addr & mask)
                    if found is not None:
                        if plen > best_len or found is Action.DENY:
                            best_len, best = plen, found
                        break
        return best is not Action.DENY

    def _meter(self, version: int, local_ip: int, remote_ip: int, size: int) -> None:
        bits = 32 if version == 4 else 128
        for e in self._meter_ip:
            if e.version != version:
                continue
            mask = ((1 << e.plen) - 1) << (bits - e.plen) if e.plen else 0
            if (local_ip if e.local else remote_ip) & mask == e.prefix:
                m = self.meters[e]
                m.packets += 1
                m.bytes += size


def _stronger(old: Action | None, new: Action) -> Action:
    return Action.DENY if Action.DENY in (old, new) else new


# ------------------------------------------------------------------------------------------ extended ACLs


@dataclass(frozen=True, slots=True)
class ExtendedRule:
    """One compiled Add-VMNetworkAdapterExtendedAcl entry (any field None = any)."""

    action: Action
    direction: Direction
    weight: int
    local: tuple[int, int, int] | None = None  # (version, prefix, plen)
    remote: tuple[int, int, int] | None = None
    local_ports: tuple[int, int] | None = None
    remote_ports: tuple[int, int] | None = None
    protocol: int | None = None
    stateful: bool = False
    idle_timeout_s: float = 3600.0
    isolation_id: int | None = None  # VLAN


def prefix(address: str | None) -> tuple[int, int, int] | None:
    if address is None or address.upper() == "ANY":
        return None
    net = ipaddress.ip_network(address, strict=False)
    return (net.version, int(net.network_address), net.prefixlen)


def port_range(spec: str | int | None) -> tuple[int, int] | None:
    """ "80", 80, "49152-49182" -> (lo, hi); None/"ANY" -> None."""
    if spec is None or (isinstance(spec, str) and spec.upper() == "ANY"):
        return None
    if isinstance(spec, int):
        return (spec, spec)
    lo, _, hi = spec.partition("-")
    return (int(lo), int(hi or lo))


def _in_prefix(p: tuple[int, int, int], version: int, addr: int) -> bool:
    v, net, plen = p
    if v != version:
        return False
    bits = 32 if v == 4 else 128
    return (addr >> (bits - plen)) == (net >> (bits - plen)) if plen else True


def _matches(
    r: ExtendedRule, l3: L3L4, local_ip: int, remote_ip: int, lport: int, rport: int, vlan: int
) -> bool:
    if r.protocol is not None and r.protocol != l3.proto:
        return False
    if r.isolation_id is not None and r.isolation_id != vlan:
        return False
    if r.local is not None and not _in_prefix(r.local, l3.version, local_ip):
        return False
    if r.remote is not None and not _in_prefix(r.remote, l3.version, remote_ip):
        return False
    if r.local_ports is not None and not r.local_ports[0] <= lport <= r.local_ports[1]:
        return False
    return r.remote_ports is None or r.remote_ports[0] <= rport <= r.remote_ports[1]


FlowId = tuple[int, int, int, int, int, int]  # version, proto, local ip, remote ip, local port, remote port

MAX_CONNECTIONS = 262144  # tracked connections per switch
MAX_CONNECTIONS_PER_PORT = 65536
# Queue entries one ``ConnTable.expire`` call looks at: ~0.5 ms of work, so expiry never holds up a batch
# (a stack call over 100 ms benches the extension, ext/stack.py) however many connections idle out at once.
EXPIRE_BUDGET = 512
# When the table is full, a new connection first reaps this many due entries, so connections that have
# expired but not been reaped yet never keep a new one out.
REAP_WHEN_FULL = 64
DENY = "extended-acl-deny"
TABLE_FULL = "conn-table-full"

TCP_FIN, TCP_SYN, TCP_RST, TCP_ACK = 0x01, 0x02, 0x04, 0x10
_OPENING = TCP_FIN | TCP_SYN | TCP_RST | TCP_ACK  # of these, a connection opens with SYN alone
# ICMP query messages (RFC 792, RFC 4443): type -> (the request type of its exchange, is it the request).
# Other ICMP messages (errors, neighbour discovery...) create no state and are judged by the rules alone.
ICMP_QUERIES: dict[int, dict[int, tuple[int, bool]]] = {
    PROTO_ICMP: {8: (8, True), 0: (8, False), 13: (13, True), 14: (13, False), 15: (15, True),
                 16: (15, False), 17: (17, True), 18: (17, False)},
    PROTO_ICMPV6: {128: (128, True), 129: (128, False)},
}  # fmt: skip
# In an ICMP flow id, the slot of the remote port holds the request type, plus this when the VM sent the
# request: the reply to the VM's echo request then finds the flow, the peer's own echo request does not.
ICMP_FROM_VM = 0x100


@dataclass(slots=True, eq=False)  # eq=False: hashed by identity, the key of its expiry queue
class FlowState:
    """One tracked connection of one port.

    ``expires`` moves on with every packet; ``queued`` is when the flow last took its place at the back of
    its expiry queue (created, or moved there by ``ConnTable.expire`` because it was still alive)."""

    expires: float
    timeout: float
    rule: ExtendedRule
    packets: int = 0
    queued: float = 0.0
    fid: FlowId = (0, 0, 0, 0, 0, 0)
    owner: dict[FlowId, FlowState] | None = None  # the port's flows


class ConnTable:
    """Every port's tracked connections on one switch (the firewall's), bounded and expired incrementally.

    Limits: ``max_connections`` for the switch and ``max_per_port`` for each port; a connection that would go
    over either is not created (``add`` returns False) and the caller drops the packet that asked for it, so
    a flood of new 5-tuples costs the flooding port its new connections, never anyone's existing ones.

    Expiry does no scan. Flows sit in one queue per idle timeout, in the order they were queued; a packet
    refreshes only ``FlowState.expires``. ``expire`` looks at the fronts: a front queued less than its
    timeout ago ends that queue's turn (everything behind was queued later); an older one is removed if it
    has idled out, or else (it saw packets since) moved to the back. A live flow is therefore looked at once
    per timeout however many packets it carries, and one call looks at no more than ``budget`` entries; what
    is left is done by the next call. Admission never waits for this: ``ExtendedAcl`` checks ``expires``
    itself, so a flow is refused the moment it has idled out, reaped or not.
    """

    __slots__ = ("_queues", "count", "full_drops", "max_connections", "max_per_port", "next_due")

    def __init__(
        self, max_connections: int = MAX_CONNECTIONS, max_per_port: int = MAX_CONNECTIONS_PER_PORT
    ) -> None:
        self.max_connections = max_connections
        self.max_per_port = max_per_port
        self.count = 0
        self.full_drops = 0  # connections refused because a limit was reached
        self._queues: dict[float, OrderedDict[FlowState, None]] = {}
        # Until then no queue has a front old enough to look at: ``expire`` returns at once.
        self.next_due = math.inf

    def add(self, flows: dict[FlowId, FlowState], fid: FlowId, state: FlowState, now: float) -> bool:
        """Track ``state`` as ``fid`` in a port's ``flows``; False (and nothing changed) at a limit."""
        if self.count >= self.max_connections or len(flows) >= self.max_per_port:
            self.expire(now, REAP_WHEN_FULL)
            if self.count >= self.max_connections or len(flows) >= self.max_per_port:
                self.full_drops += 1
                return False
        old = flows.get(fid)
        if old is not None:
            self.remove(old)
        state.fid = fid
        state.owner = flows
        state.queued = now
        flows[fid] = state
        queue = self._queues.get(state.timeout)
        if queue is None:
            queue = self._queues[state.timeout] = OrderedDict()
        queue[state] = None
        self.count += 1
        due = now + state.timeout
        if due < self.next_due:
            self.next_due = due
        return True

    def remove(self, state: FlowState) -> None:
        """Forget one flow (idled out, replaced); nothing if it is no longer tracked."""
        queue = self._queues.get(state.timeout)
        if queue is None or state not in queue:
            return  # not queued: already removed
        del queue[state]
        self.count -= 1
        owner = state.owner
        if owner is not None and owner.get(state.fid) is state:
            del owner[state.fid]
        if not queue:
            del self._queues[state.timeout]

    def forget(self, flows: dict[FlowId, FlowState]) -> None:
        """Forget a port's flows (its extended ACLs or the port went away)."""
        for state in list(flows.values()):
            self.remove(state)
        flows.clear()

    def expire(self, now: float, budget: int = EXPIRE_BUDGET) -> int:
        """Remove flows idle past their timeout, looking at ``budget`` queue entries at most; returns how many
        were removed. Call it again (e.g. next batch) while ``next_due`` is behind ``now``."""
        if now <= self.next_due:
            return 0
        removed = 0
        next_due = math.inf
        for timeout, queue in list(self._queues.items()):
            while budget > 0 and queue:
                state = next(iter(queue))
                if state.queued + timeout >= now:
                    break  # queued too recently to have idled out, and so is everything behind it
                budget -= 1
                if state.expires < now:
                    del queue[state]
                    self.count -= 1
                    removed += 1
                    owner = state.owner
                    if owner is not None and owner.get(state.fid) is state:
                        del owner[state.fid]
                else:  # it saw packets since it was queued: look again one timeout after its last one
                    state.queued = now
                    queue.move_to_end(state)
            if not queue:
                del self._queues[timeout]
                continue
            due = next(iter(queue)).queued + timeout
            if due < next_due:
                next_due = due
        # Budget spent: more may be due already, so the next call works on whatever its time.
        self.next_due = -math.inf if budget <= 0 else next_due
        return removed

    def rebase(self, states: Iterable[FlowState], now: float) -> None:
        """Put restored flows (``expires`` holding their remaining seconds) on this clock. They were queued
        last and ``now`` is later than anything queued before them, so the queues stay in order."""
        for state in states:
            state.expires += now
            state.queued = now
            if now + state.timeout < self.next_due:
                self.next_due = now + state.timeout

    def status(self) -> dict[str, int]:
        return {
            "connections": self.count,
            "max_connections": self.max_connections,
            "max_connections_per_port": self.max_per_port,
            "table_full_drops": self.full_drops,
        }


class RuleIndex:
    """Extended rules of one direction, indexed so that a lookup touches few rules however many there are.

    Each rule is filed under its most selective field: its remote prefix, else its local prefix (both keyed by
    prefix length and masked address, as in a longest-prefix table), else a single remote or local port, else
    a short list of rules that match broadly. A packet gathers the candidates from one dict lookup per prefix
    length in use plus the port buckets and the broad list, and takes the first match in (weight, position)
    order, which is exactly the answer of a scan over all rules by weight.
    """

    def __init__(self, rules: Sequence[ExtendedRule]) -> None:
        self.rules = list(rules)  # weight order
        self.prefix: dict[tuple[str, int, int], dict[int, list[int]]] = {}  # (field, version, plen) -> addr
        self.ports: dict[tuple[str, int], list[int]] = {}
        self.broad: list[int] = []
        for pos, r in enumerate(self.rules):
            if r.remote is not None and r.remote[2]:
                v, net, plen = r.remote
                self.prefix.setdefault(("remote", v, plen), {}).setdefault(net, []).append(pos)
            elif r.local is not None and r.local[2]:
                v, net, plen = r.local
                self.prefix.setdefault(("local", v, plen), {}).setdefault(net, []).append(pos)
            elif r.remote_ports is not None and r.remote_ports[0] == r.remote_ports[1]:
                self.ports.setdefault(("remote", r.remote_ports[0]), []).append(pos)
            elif r.local_ports is not None and r.local_ports[0] == r.local_ports[1]:
                self.ports.setdefault(("local", r.local_ports[0]), []).append(pos)
            else:
                self.broad.append(pos)

    def first_match(
        self, l3: L3L4, local_ip: int, remote_ip: int, lport: int, rport: int, vlan: int
    ) -> ExtendedRule | None:
        candidates: list[int] = list(self.broad)
        for (fld, version, plen), table in self.prefix.items():
            if version != l3.version:
                continue
            bits = 32 if version == 4 else 128
            addr = remote_ip if fld == "remote" else local_ip
            hit = table.get((addr >> (bits - plen)) << (bits - plen))
            if hit:
                candidates += hit
        for key in (("remote", rport), ("local", lport)):
            hit = self.ports.get(key)
            if hit:
                candidates += hit
        rules = self.rules
        for pos in sorted(candidates):
            r = rules[pos]
            if _matches(r, l3, local_ip, remote_ip, lport, rport, vlan):
                return r
        return None


@dataclass(slots=True)
class ExtendedAcl:
    """A port's extended ACL: rules by direction in weight order, and the flows stateful rules admitted.

    A stateful Allow rule creates state as Hyper-V's does (AC-05), admitting the return direction, with these
    refinements (what every stateful firewall does; Hyper-V does not document it):
    - TCP: only a SYN (no ACK, RST or FIN) opens a connection; any other segment the rule matches is allowed
      but creates nothing, so a stray ACK cannot open a way in.
    - ICMP and ICMPv6 queries (echo, timestamp...): state per identifier and request type, opened by the
      request only, admitting only the reply from the other side; the peer's own echo request with the same
      identifier is judged by the rules. Other ICMP messages create no state.
    - UDP and other protocols: any matching packet opens the 5-tuple (ports 0 where there are none).
    Flows live in the switch's ``ConnTable`` (limits, expiry); ``flows`` is this port's share of it.
    """

    rules: dict[Direction, list[ExtendedRule]] = field(default_factory=dict)
    flows: dict[FlowId, FlowState] = field(default_factory=dict)
    table: ConnTable = field(default_factory=ConnTable)
    _cache: dict[tuple[Direction, FlowId, int], ExtendedRule | None] = field(default_factory=dict)
    _index: dict[Direction, RuleIndex] = field(default_factory=dict)
    hits: int = 0
    full_drops: int = 0  # packets dropped because they would have opened a flow over a limit

    @classmethod
    def compile(
        cls,
        rules: Sequence[ExtendedRule],
        previous: ExtendedAcl | None = None,
        table: ConnTable | None = None,
    ) -> ExtendedAcl:
        by_dir: dict[Direction, list[ExtendedRule]] = {}
        # Highest weight first; a stable sort keeps configuration order among equal weights.
        for r in sorted(rules, key=lambda r: -r.weight):
            by_dir.setdefault(r.direction, []).append(r)
        if table is None:
            table = previous.table if previous is not None else ConnTable()
        acl = cls(by_dir, table=table)
        acl._index = {d: RuleIndex(rs) for d, rs in by_dir.items()}
        if previous is not None:
            # Established flows survive a rule change until they idle out.
            acl.flows = previous.flows
            acl.full_drops = previous.full_drops
        return acl

    def allows(self, direction: Direction, l3: L3L4, local_ip: int, remote_ip: int, lport: int, rport: int,
               vlan: int, now: float) -> bool:  # fmt: skip
        return self.verdict(direction, l3, local_ip, remote_ip, lport, rport, vlan, now) is None

    def verdict(self, direction: Direction, l3: L3L4, local_ip: int, remote_ip: int, lport: int, rport: int,
                vlan: int, now: float) -> str | None:  # fmt: skip
        """None if the packet may pass, else the drop reason: ``DENY`` (a Deny rule) or ``TABLE_FULL`` (it
        would open a flow and a connection limit is reached)."""
        proto = l3.proto
        match: FlowId = (l3.version, proto, local_ip, remote_ip, lport, rport)
        flow: FlowId | None = match
        opens = True  # may this packet open a flow, if a stateful rule admits it
        if proto in (PROTO_ICMP, PROTO_ICMPV6):
            query = ICMP_QUERIES[proto].get(l3.icmp_type)
            if query is None:
                flow = None
            else:
                request_type, opens = query
                # Who sent this exchange's request: this packet's sender if it is one, else the other side.
                from_vm = (direction is Direction.OUTBOUND) == opens
                side = ICMP_FROM_VM if from_vm else 0
                flow = (l3.version, proto, local_ip, remote_ip, l3.icmp_id, request_type | side)
        elif proto == PROTO_TCP:
            opens = l3.tcp_flags & _OPENING == TCP_SYN
        if flow is not None and self.flows:
            state = self.flows.get(flow)
            if state is not None:
                if state.expires >= now:
                    state.expires = now + state.timeout
                    state.packets += 1
                    return None
                self.table.remove(state)
        index = self._index.get(direction)
        if index is None:
            return None
        key = (direction, match, vlan)
        if key in self._cache:
            rule = self._cache[key]
        else:
            rule = index.first_match(l3, local_ip, remote_ip, lport, rport, vlan)
            if len(self._cache) >= CACHE_MAX:
                self._cache.clear()
            self._cache[key] = rule
        if rule is None:
            return None
        self.hits += 1
        if rule.action is Action.DENY:
            return DENY
        if rule.stateful and opens and flow is not None:
            state = FlowState(now + rule.idle_timeout_s, rule.idle_timeout_s, rule, 1)
            if not self.table.add(self.flows, flow, state, now):
                self.full_drops += 1
                return TABLE_FULL
        return None
