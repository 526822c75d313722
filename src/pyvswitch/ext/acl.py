"""ACL classification: Hyper-V port ACLs (longest prefix match) and extended ACLs (weighted 5-tuple, stateful).

Shared by the switch (port ACLs are its built-in policy) and the built-in firewall extension (extended ACLs,
which Hyper-V enforces through its WFP extension), so it lives with the extension API that both may import.

Both are compiled from rule lists into tables that answer per packet, with an exact-match cache in front, so a
flow costs a few dict lookups however many rules there are; a miss costs one lookup per distinct prefix length
(port ACLs) or a scan in weight order (extended ACLs) and is then cached. The caches are dropped whenever the
rules change (a new table is compiled) and are bounded.

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
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import NamedTuple

from pyvswitch.packet.classify import l3_start, l4_header
from pyvswitch.packet.frame import ETH_P_IPV4, ETH_P_IPV6, Packet

PROTO_TCP = 6
PROTO_UDP = 17
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
    made once per packet per check, and a tuple is the cheapest object Python can build."""

    version: int  # 4, 6, or 0 for non-IP
    src: int
    dst: int
    proto: int
    sport: int
    dport: int


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
    sport = dport = 0
    l4 = l4_header(data)
    if l4 is not None:
        proto = l4[1]
        if proto in (PROTO_TCP, PROTO_UDP) and n >= l4[2] + 4:
            sport, dport = _PORTS.unpack_from(data, l4[2])
    return L3L4(4 if etype == ETH_P_IPV4 else 6, src, dst, proto, sport, dport)
    return NON_IP


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


@dataclass(slots=True)
class FlowState:
    expires: float
    timeout: float
    rule: ExtendedRule
    packets: int = 0


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
    """A port's extended ACL: rules by direction in weight order, and the flows stateful rules admitted."""

    rules: dict[Direction, list[ExtendedRule]] = field(default_factory=dict)
    flows: dict[FlowId, FlowState] = field(default_factory=dict)
    _cache: dict[tuple[Direction, FlowId, int], ExtendedRule | None] = field(default_factory=dict)
    _index: dict[Direction, RuleIndex] = field(default_factory=dict)
    hits: int = 0

    @classmethod
    def compile(cls, rules: Sequence[ExtendedRule], previous: ExtendedAcl | None = None) -> ExtendedAcl:
        by_dir: dict[Direction, list[ExtendedRule]] = {}
        # Highest weight first; a stable sort keeps configuration order among equal weights.
        for r in sorted(rules, key=lambda r: -r.weight):
            by_dir.setdefault(r.direction, []).append(r)
        acl = cls(by_dir)
        acl._index = {d: RuleIndex(rs) for d, rs in by_dir.items()}
        if previous is not None:
            acl.flows = previous.flows  # established flows survive a rule change until they idle out
        return acl

    def allows(self, direction: Direction, l3: L3L4, local_ip: int, remote_ip: int, lport: int, rport: int,
               vlan: int, now: float) -> bool:  # fmt: skip
        if not self.rules and not self.flows:
            return True
        flow: FlowId = (l3.version, l3.proto, local_ip, remote_ip, lport, rport)
        state = self.flows.get(flow)
        if state is not None:
            if state.expires >= now:
                state.expires = now + state.timeout
                state.packets += 1
                return True
            del self.flows[flow]
        index = self._index.get(direction)
        if index is None:
            return True
        key = (direction, flow, vlan)
        if key in self._cache:
            rule = self._cache[key]
        else:
            rule = index.first_match(l3, local_ip, remote_ip, lport, rport, vlan)
            if len(self._cache) >= CACHE_MAX:
                self._cache.clear()
            self._cache[key] = rule
        if rule is None:
            return True
        self.hits += 1
        if rule.action is Action.DENY:
            return False
        if rule.stateful:
            self.flows[flow] = FlowState(now + rule.idle_timeout_s, rule.idle_timeout_s, rule, 1)
        return True

    def expire(self, now: float) -> int:
        """Forget flows idle past their timeout; returns how many."""
        dead = [f for f, s in self.flows.items() if s.expires < now]
        for f in dead:
            del self.flows[f]
        return len(dead)
