"""The firewall's connection tracking (AC-05, issue 10 item 4): what opens state, what state admits, the
connection limits and expiry whose work per call is bounded. Pure: ``ExtendedAcl`` and ``ConnTable`` with
times given by hand."""

from __future__ import annotations

import ipaddress
import random
import struct
import time

from hypothesis import given
from hypothesis import strategies as st

from pyvswitch.builtin.extended_acl import (
    DENY,
    TABLE_FULL,
    TCP_ACK,
    TCP_FIN,
    TCP_RST,
    TCP_SYN,
    ConnTable,
    ExtendedAcl,
    FlowId,
    FlowState,
)
from pyvswitch.ext.rules import Action, Direction, ExtendedRule
from pyvswitch.packet.l3l4 import L3L4, PROTO_ICMP, PROTO_ICMPV6, PROTO_TCP, PROTO_UDP, parse_l3l4
from pyvswitch.testing.frames import eth, icmp, ipv4, ipv6

OUT, IN = Direction.OUTBOUND, Direction.INBOUND
VM, PEER = int(ipaddress.ip_address("10.0.0.5")), int(ipaddress.ip_address("192.0.2.9"))
VM6, PEER6 = int(ipaddress.ip_address("f00::5")), int(ipaddress.ip_address("f00::9"))


def stateful(protocol: int | None = None, timeout_s: float = 60.0, **kw: object) -> list[ExtendedRule]:
    """Deny everything inbound; allow outbound (``protocol``) statefully."""
    return [
        ExtendedRule(Action.DENY, IN, 1),
        ExtendedRule(Action.ALLOW, OUT, 10, protocol=protocol, stateful=True, idle_timeout_s=timeout_s, **kw),  # type: ignore[arg-type]
    ]


def tcp_out(acl: ExtendedAcl, flags: int, sport: int = 40000, now: float = 0.0) -> str | None:
    l3 = L3L4(4, VM, PEER, PROTO_TCP, sport, 80, flags)
    return acl.verdict(OUT, l3, VM, PEER, sport, 80, 0, now)


def tcp_in(acl: ExtendedAcl, flags: int, dport: int = 40000, now: float = 0.0) -> str | None:
    l3 = L3L4(4, PEER, VM, PROTO_TCP, 80, dport, flags)
    return acl.verdict(IN, l3, VM, PEER, dport, 80, 0, now)


def udp_out(acl: ExtendedAcl, sport: int, now: float = 0.0, vm: int = VM) -> str | None:
    l3 = L3L4(4, vm, PEER, PROTO_UDP, sport, 53)
    return acl.verdict(OUT, l3, vm, PEER, sport, 53, 0, now)


def udp_in(acl: ExtendedAcl, dport: int, now: float = 0.0, vm: int = VM) -> str | None:
    l3 = L3L4(4, PEER, vm, PROTO_UDP, 53, dport)
    return acl.verdict(IN, l3, vm, PEER, dport, 53, 0, now)


def icmp_msg(acl: ExtendedAcl, direction: Direction, type_: int, ident: int, v6: bool = False) -> str | None:
    proto = PROTO_ICMPV6 if v6 else PROTO_ICMP
    vm, peer = (VM6, PEER6) if v6 else (VM, PEER)
    src, dst = (vm, peer) if direction is OUT else (peer, vm)
    l3 = L3L4(6 if v6 else 4, src, dst, proto, 0, 0, 0, type_, ident)
    return acl.verdict(direction, l3, vm, peer, 0, 0, 0, 0.0)


# ---------------------------------------------------------------------------------------------- parsing


def test_parse_gives_tcp_flags_and_icmp_type_and_identifier() -> None:
    a, b = "02:00:00:00:00:01", "02:00:00:00:00:02"
    seg = struct.pack(">HHIIBBHHH", 40000, 80, 0, 0, 0x50, TCP_SYN, 65535, 0, 0)
    l3 = parse_l3l4(eth(b, a, ipv4("10.0.0.5", "192.0.2.9", PROTO_TCP, seg)))
    assert (l3.sport, l3.dport, l3.tcp_flags, l3.icmp_type) == (40000, 80, TCP_SYN, -1)
    echo = icmp(8, 0, struct.pack(">HH", 0x1234, 1))
    l3 = parse_l3l4(eth(b, a, ipv4("10.0.0.5", "192.0.2.9", PROTO_ICMP, echo)))
    assert (l3.proto, l3.sport, l3.dport, l3.icmp_type, l3.icmp_id) == (PROTO_ICMP, 0, 0, 8, 0x1234)
    echo6 = icmp(129, 0, struct.pack(">HH", 77, 1))
    l3 = parse_l3l4(eth(b, a, ipv6("f00::9", "f00::5", PROTO_ICMPV6, echo6), ethertype=0x86DD))
    assert (l3.proto, l3.icmp_type, l3.icmp_id) == (PROTO_ICMPV6, 129, 77)
    # Truncated ICMP (no identifier) and a TCP header cut before its flags: nothing to open state with.
    # (Cut after eth(): it pads frames to the 60-byte minimum.)
    short = eth(b, a, ipv4("10.0.0.5", "192.0.2.9", PROTO_ICMP, echo))[: 14 + 20 + 4]
    assert parse_l3l4(short).icmp_type == -1
    cut = parse_l3l4(eth(b, a, ipv4("10.0.0.5", "192.0.2.9", PROTO_TCP, seg))[: 14 + 20 + 8])
    assert (cut.sport, cut.dport, cut.tcp_flags) == (40000, 80, 0)


# ------------------------------------------------------------------------------------ what opens state


def test_only_a_syn_opens_tcp_state() -> None:
    """AC-05: a stateful Allow admits the return traffic of connections it saw open, and a TCP connection
    opens with a SYN. Other segments the rule matches pass (the rule allows them) but open nothing."""
    acl = ExtendedAcl.compile(stateful(PROTO_TCP))
    for flags in (TCP_ACK, TCP_SYN | TCP_ACK, TCP_SYN | TCP_RST, TCP_SYN | TCP_FIN, TCP_ACK | TCP_FIN, 0):
        assert tcp_out(acl, flags, sport=41000 + flags) is None  # allowed by the rule
        assert tcp_in(acl, TCP_ACK, dport=41000 + flags) == DENY  # but no way back in
    assert not acl.flows and acl.table.count == 0
    assert tcp_out(acl, TCP_SYN) is None
    assert tcp_in(acl, TCP_SYN | TCP_ACK) is None and tcp_in(acl, TCP_ACK) is None
    assert len(acl.flows) == 1 and acl.table.count == 1


def test_echo_request_from_the_vm_admits_its_reply_only() -> None:
    """AC-05 for ICMP: the VM's echo request (id 7) opens state for the echo reply with id 7 and nothing else:
    not a reply with another id, not the peer's own echo request with id 7, not another query type."""
    acl = ExtendedAcl.compile(stateful(PROTO_ICMP))
    assert icmp_msg(acl, IN, 0, 7) == DENY  # a reply nobody asked for
    assert icmp_msg(acl, OUT, 8, 7) is None
    assert icmp_msg(acl, IN, 0, 7) is None  # the reply
    assert icmp_msg(acl, IN, 0, 8) == DENY  # another identifier
    assert icmp_msg(acl, IN, 8, 7) == DENY  # the peer's own echo request, same identifier
    assert icmp_msg(acl, IN, 14, 7) == DENY  # a timestamp reply is another exchange
    assert icmp_msg(acl, IN, 3, 0) == DENY  # errors open nothing and match no query state
    assert len(acl.flows) == 1


def test_an_echo_reply_or_an_error_sent_by_the_vm_opens_nothing() -> None:
    """Only the request of a query exchange opens state: the VM answering the peer's echo request (let in by
    an inbound rule) must not let the peer's further requests in once that rule is gone."""
    acl = ExtendedAcl.compile(stateful(PROTO_ICMP))
    assert icmp_msg(acl, OUT, 0, 9) is None and icmp_msg(acl, OUT, 3, 0) is None
    assert not acl.flows
    assert icmp_msg(acl, IN, 8, 9) == DENY


def test_icmpv6_echo_state_is_per_identifier_too() -> None:
    acl = ExtendedAcl.compile(stateful(PROTO_ICMPV6))
    assert icmp_msg(acl, OUT, 128, 5, v6=True) is None
    assert icmp_msg(acl, IN, 129, 5, v6=True) is None
    assert icmp_msg(acl, IN, 128, 5, v6=True) == DENY
    assert icmp_msg(acl, IN, 129, 6, v6=True) == DENY


def test_udp_opens_on_any_packet_and_admits_the_return_5_tuple_only() -> None:
    acl = ExtendedAcl.compile(stateful(PROTO_UDP))
    assert udp_out(acl, 5000) is None
    assert udp_in(acl, 5000) is None
    assert udp_in(acl, 5001) == DENY


# ------------------------------------------------------------------------------------------- limits


def test_per_port_limit_refuses_new_flows_and_keeps_existing_ones() -> None:
    table = ConnTable(max_connections=100, max_per_port=3)
    acl = ExtendedAcl.compile(stateful(PROTO_UDP), table=table)
    assert [udp_out(acl, p) for p in range(3)] == [None, None, None]
    assert udp_out(acl, 3) == TABLE_FULL  # a fourth flow of this port: refused, with its reason
    assert udp_in(acl, 3) == DENY
    assert all(udp_in(acl, p, now=10) is None for p in range(3))  # the three keep working
    assert udp_out(acl, 1, now=10) is None  # and their own packets are not new flows
    assert (table.count, table.full_drops, acl.full_drops) == (3, 1, 1)


def test_switch_limit_is_shared_by_every_port() -> None:
    table = ConnTable(max_connections=4, max_per_port=3)
    a = ExtendedAcl.compile(stateful(PROTO_UDP), table=table)
    vm_b = VM + 1
    b = ExtendedAcl.compile(stateful(PROTO_UDP), table=table)
    assert [udp_out(a, p) for p in range(3)] == [None, None, None]
    assert udp_out(b, 1, vm=vm_b) is None
    assert udp_out(b, 2, vm=vm_b) == TABLE_FULL  # b is under its own limit, the switch is not
    assert udp_in(b, 1, vm=vm_b) is None


def test_a_full_table_reaps_idle_flows_before_refusing() -> None:
    """Flows that idled out but were not reaped yet (nobody called expire) never keep a new one out."""
    table = ConnTable(max_connections=2, max_per_port=2)
    acl = ExtendedAcl.compile(stateful(PROTO_UDP, timeout_s=10), table=table)
    assert udp_out(acl, 1, now=0) is None and udp_out(acl, 2, now=0) is None
    assert udp_out(acl, 3, now=5) == TABLE_FULL
    assert udp_out(acl, 3, now=11) is None  # 1 and 2 idled out at 10: reaped to make room
    assert set(acl.flows) == {(4, PROTO_UDP, VM, PEER, 3, 53)} and table.count == 1


def test_a_flow_is_refused_as_soon_as_it_idles_out_reaped_or_not() -> None:
    acl = ExtendedAcl.compile(stateful(PROTO_UDP, timeout_s=60))
    assert udp_out(acl, 1, now=0) is None
    assert udp_in(acl, 1, now=60) is None  # refreshed: until 120
    assert udp_in(acl, 1, now=120.5) == DENY
    assert acl.table.count == 0  # the lookup that found it dead removed it


# ------------------------------------------------------------------------------------------- expiry


def fill(table: ConnTable, n: int, timeout: float, now: float = 0.0) -> dict[FlowId, FlowState]:
    flows: dict[FlowId, FlowState] = {}
    rule = ExtendedRule(Action.ALLOW, OUT, 1, stateful=True, idle_timeout_s=timeout)
    for i in range(n):
        assert table.add(flows, (4, PROTO_UDP, VM, PEER, i, 53), FlowState(now + timeout, timeout, rule), now)
    return flows


def test_expire_looks_at_a_bounded_number_of_entries_per_call() -> None:
    table = ConnTable(max_connections=20_000, max_per_port=20_000)
    flows = fill(table, 10_000, timeout=30)
    assert table.expire(now=30) == 0  # nothing is due: returns before looking at anything
    assert table.expire(now=31, budget=1000) == 1000
    assert table.count == 9000 == len(flows) and table.next_due <= 31  # more to do: the next call goes on
    done = 1000
    while table.count:
        got = table.expire(now=31, budget=1000)
        assert 0 < got <= 1000
        done += got
    assert done == 10_000 and not flows
    assert table.expire(now=31) == 0 and table.next_due == float("inf")  # empty: nothing is ever due


def test_live_flows_are_looked_at_once_per_timeout_not_once_per_packet() -> None:
    table = ConnTable()
    flows = fill(table, 100, timeout=30)
    for now in range(1, 200):  # every flow sees a packet every second
        for state in flows.values():
            state.expires = now + 30
        table.expire(float(now), budget=10**6)
    assert len(flows) == 100  # none idled out
    # Each was moved to the back once per 30 s: the queue's front is never older than one timeout.
    assert all(state.queued > 199 - 31 for state in flows.values())


def test_short_timeouts_are_not_held_up_behind_long_ones() -> None:
    table = ConnTable()
    long = fill(table, 10, timeout=3600, now=0)
    short = fill(table, 10, timeout=5, now=1)
    assert table.expire(now=7) == 10
    assert not short and len(long) == 10


def test_expiry_cost_per_call_is_bounded_at_scale() -> None:
    """500k flows idling out at once cost a few hundred microseconds a call (budget 512), not a scan of the
    table (507 ms before). Loose bound: shared CI machines are slow."""
    table = ConnTable(max_connections=600_000, max_per_port=600_000)
    fill(table, 500_000, timeout=10)
    worst = 0.0
    calls = 0
    while table.count and calls < 50:
        t0 = time.perf_counter()
        table.expire(now=11)
        worst = max(worst, time.perf_counter() - t0)
        calls += 1
    assert table.count == 500_000 - 50 * 512
    assert worst < 0.05


@given(
    st.lists(
        st.tuples(st.sampled_from(["add", "touch", "tick"]), st.integers(0, 30), st.sampled_from([3.0, 7.0])),
        max_size=300,
    ),
    st.integers(1, 5),
)
def test_expire_agrees_with_a_model(ops: list[tuple[str, int, float]], budget: int) -> None:
    """Whatever the order of adds, refreshes and ticks: a flow is removed only once it has idled out, the
    count matches the flows, and draining the due work removes exactly the idle ones."""
    table = ConnTable(max_connections=10**6, max_per_port=10**6)
    flows: dict[FlowId, FlowState] = {}
    rule = ExtendedRule(Action.ALLOW, OUT, 1, stateful=True)
    now = 0.0
    for op, key, timeout in ops:
        fid: FlowId = (4, PROTO_UDP, VM, PEER, key, 53)
        state = flows.get(fid)
        if op == "add" and state is None:
            table.add(flows, fid, FlowState(now + timeout, timeout, rule), now)
        elif op == "touch" and state is not None and state.expires >= now:
            state.expires = now + state.timeout
        elif op == "tick":
            now += 1.0
            alive = {f for f, s in flows.items() if s.expires >= now}
            table.expire(now, budget)
            assert alive <= set(flows)
        assert table.count == len(flows)
    while table.expire(now + 100, budget):
        pass
    assert not flows and table.count == 0


def test_flood_of_random_5_tuples_stays_within_the_limits() -> None:
    """100k random 5-tuples from one port: the port stops at its limit, the rest are refused, and a connection
    that was open before the flood still gets its replies."""
    rng = random.Random(10)
    table = ConnTable(max_connections=262_144, max_per_port=65_536)
    acl = ExtendedAcl.compile(stateful(PROTO_UDP), table=table)
    assert udp_out(acl, 999, now=0) is None
    refused = 0
    for _ in range(100_000):
        remote, sport, dport = rng.getrandbits(32), rng.getrandbits(16), rng.getrandbits(16)
        l3 = L3L4(4, VM, remote, PROTO_UDP, sport, dport)
        refused += acl.verdict(OUT, l3, VM, remote, sport, dport, 0, 1.0) == TABLE_FULL
    assert len(acl.flows) == table.count == 65_536
    assert refused == table.full_drops >= 100_000 - 65_535
    assert udp_in(acl, 999, now=2) is None
