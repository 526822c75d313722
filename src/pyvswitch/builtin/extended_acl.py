"""The firewall's engine: extended ACLs (weighted 5-tuple rules, stateful) and the connection table.

Compiled from a port's rules into an index that answers per packet, with an exact-match cache in front, so a
flow costs a few dict lookups however many rules there are; a miss scans the rules in weight order once and is
then cached. The cache is dropped whenever the rules change and is bounded. The flows stateful rules open live
in a ``ConnTable`` per switch: bounded per switch and per port, expired a bounded amount of work per call,
never by a scan. Rule types are the public API's (ext/rules.py); the L3/L4 fields come from packet/l3l4.py.
"""

from __future__ import annotations

import ipaddress
import math
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from pyvswitch.drops import DropReason
from pyvswitch.ext.rules import CACHE_MAX, Action, Direction, ExtendedRule
from pyvswitch.packet.l3l4 import L3L4, PROTO_ICMP, PROTO_ICMPV6, PROTO_TCP, PROTO_UDP

PROTOCOL_NAMES = {PROTO_TCP: "TCP", PROTO_UDP: "UDP", PROTO_ICMP: "ICMPv4", PROTO_ICMPV6: "ICMPv6"}


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


class FirewallDrop(DropReason):
    """Why the built-in firewall drops a frame (``show drops``, extension pyvswitch-firewall)."""

    DENY = (
        "extended-acl-deny",
        "the port's matching extended ACL entry (Add-VMNetworkAdapterExtendedAcl) says Deny",
    )
    TABLE_FULL = "conn-table-full", "it would open a connection over the firewall's switch or port limit"


DENY = FirewallDrop.DENY
TABLE_FULL = FirewallDrop.TABLE_FULL

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
    owner: dict[FlowId, FlowState] | None = None  # the port's flows; None once the table forgot it
    cell: list[int] | None = None  # the hit counter of ``rule`` (ExtendedAcl.rule_hits), shared by its flows

    def hit(self, now: float, packets: int = 1) -> bool:
        """Packets of this flow replayed from the switch's flow cache (a FlowToken): what ``verdict`` does for
        an established flow. False, changing nothing, if the flow is gone or idled out."""
        if self.owner is None or self.expires < now:
            return False
        self.expires = now + self.timeout
        self.packets += packets
        if self.cell is not None:
            self.cell[0] += packets
        return True


class Stateless:
    """A FlowToken for a packet that no tracked flow admitted: replayed, it counts the rule hit (if a rule
    matched), unless the flow has been opened since (by a SYN, or the other direction): then the packet must
    take the firewall again, which would refresh that flow."""

    __slots__ = ("acl", "cell", "counts", "flow")

    def __init__(
        self, acl: ExtendedAcl, flow: FlowId | None, counts: bool, cell: list[int] | None = None
    ) -> None:
        self.acl = acl
        self.flow = flow
        self.counts = counts
        self.cell = cell  # the matched rule's hit counter

    def hit(self, now: float, packets: int = 1) -> bool:
        if self.flow is not None and self.flow in self.acl.flows:
            return False
        if self.counts:
            self.acl.hits += packets
            if self.cell is not None:
                self.cell[0] += packets
        return True


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
        state.owner = None
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
                    state.owner = None
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
    # What the last allowing ``verdict`` would do again for the next packets of that flow (the switch's flow
    # cache replays it, ext/api.py API 1.2): the flow it refreshed or opened, or a Stateless.
    replay: FlowState | Stateless | None = None
    # Packets each rule decided (its own match, or a connection it opened), one mutable cell per rule so that
    # flows and flow-cache tokens count into it directly; kept across recompiles for an unchanged rule.
    rule_hits: dict[ExtendedRule, list[int]] = field(default_factory=dict)
    # What decided the last ``verdict`` (for a trace): the rule, and whether through a connection it opened.
    decided: ExtendedRule | None = None
    by_flow: bool = False

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
        old_cells = previous.rule_hits if previous is not None else {}
        acl.rule_hits = {r: old_cells.get(r) or [0] for rs in by_dir.values() for r in rs}
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
                    if state.cell is not None:
                        state.cell[0] += 1
                    self.replay = state
                    self.decided, self.by_flow = state.rule, True
                    return None
                self.table.remove(state)
        self.by_flow = False
        index = self._index.get(direction)
        if index is None:
            self.replay = Stateless(self, flow, False)
            self.decided = None
            return None
        key = (direction, match, vlan)
        if key in self._cache:
            rule = self._cache[key]
        else:
            rule = index.first_match(l3, local_ip, remote_ip, lport, rport, vlan)
            if len(self._cache) >= CACHE_MAX:
                self._cache.clear()
            self._cache[key] = rule
        self.decided = rule
        if rule is None:
            self.replay = Stateless(self, flow, False)
            return None
        self.hits += 1
        cell = self.rule_hits.get(rule)
        if cell is not None:
            cell[0] += 1
        if rule.action is Action.DENY:
            return DENY
        if rule.stateful and opens and flow is not None:
            state = FlowState(now + rule.idle_timeout_s, rule.idle_timeout_s, rule, 1, cell=cell)
            if not self.table.add(self.flows, flow, state, now):
                self.full_drops += 1
                return TABLE_FULL
            self.replay = state
            return None
        self.replay = Stateless(self, flow, True, cell)
        return None

    def cell_of(self, rule: ExtendedRule) -> list[int] | None:
        return self.rule_hits.get(rule)


def describe_rule(rule: ExtendedRule) -> str:
    """An extended ACL entry as Add-VMNetworkAdapterExtendedAcl names it: action, direction, weight, fields."""
    fields = []
    for name, p in (("LocalIPAddress", rule.local), ("RemoteIPAddress", rule.remote)):
        if p is not None:
            v, net, plen = p
            fields.append(
                f"{name} {ipaddress.ip_network((net, plen)) if v == 4 else ipaddress.IPv6Network((net, plen))}"
            )
    for name, r in (("LocalPort", rule.local_ports), ("RemotePort", rule.remote_ports)):
        if r is not None:
            fields.append(f"{name} {r[0]}" + (f"-{r[1]}" if r[1] != r[0] else ""))
    if rule.protocol is not None:
        fields.append(f"Protocol {PROTOCOL_NAMES.get(rule.protocol, rule.protocol)}")
    if rule.isolation_id is not None:
        fields.append(f"IsolationID {rule.isolation_id}")
    if rule.stateful:
        fields.append("Stateful")
    what = ", ".join(fields) if fields else "any traffic"
    return f"{rule.action.value} {rule.direction.value} weight {rule.weight} ({what})"
