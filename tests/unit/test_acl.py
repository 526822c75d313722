"""ACL classification (AC-01..06): longest prefix match, MAC entries, meters, weighted 5-tuple, stateful flows."""

from __future__ import annotations

import ipaddress
import struct

from pyvswitch.builtin.extended_acl import TCP_ACK, TCP_SYN, ExtendedAcl
from pyvswitch.ext.rules import Action, Direction, ExtendedRule, port_range, prefix
from pyvswitch.packet.l3l4 import L3L4, NON_IP, parse_l3l4
from pyvswitch.switch.portacl import PortAclTable, ip_entry, mac_entry
from pyvswitch.testing.frames import eth


def ip(a: str) -> int:
    return int(ipaddress.ip_address(a))


def v4(src: str, dst: str, proto: int = 6, sport: int = 1000, dport: int = 80) -> L3L4:
    return L3L4(4, ip(src), ip(dst), proto, sport, dport)


def allows(
    t: PortAclTable, l3: L3L4, local_ip: int = 0, remote_ip: int = 0, lmac: int = 1, rmac: int = 2
) -> bool:
    return t.allows(l3, lmac, rmac, local_ip, remote_ip, 100)


def test_parse_ipv4_with_options_ipv6_and_truncated() -> None:
    """Also: a destination-options header in front of UDP does not hide the ports from ACLs."""
    ihl6 = bytes([0x46, 0, 0, 40, 0, 0, 0, 0, 64, 6, 0, 0]) + bytes([10, 0, 0, 1, 10, 0, 0, 2]) + bytes(4)
    frame = eth("02:00:00:00:00:02", "02:00:00:00:00:01", ihl6 + struct.pack(">HH", 1234, 443) + bytes(16))
    assert parse_l3l4(frame) == L3L4(4, ip("10.0.0.1"), ip("10.0.0.2"), 6, 1234, 443)
    v6 = (
        bytes([0x60, 0, 0, 0, 0, 8, 17, 64])
        + ipaddress.ip_address("f00::1").packed
        + ipaddress.ip_address("f00::2").packed
    )
    frame6 = eth("02:00:00:00:00:02", "02:00:00:00:00:01", v6 + struct.pack(">HH", 53, 5353), 0x86DD)
    assert parse_l3l4(frame6) == L3L4(6, ip("f00::1"), ip("f00::2"), 17, 53, 5353)
    assert parse_l3l4(frame[:20]) is NON_IP
    assert parse_l3l4(frame[:12] + b"\x08\x06" + frame[14:]) is NON_IP


def test_no_acl_allows_everything_and_longest_prefix_decides() -> None:
    assert allows(PortAclTable([]), v4("10.0.0.1", "192.168.1.5"))
    t = PortAclTable(
        ip_entry(Action.DENY, "ANY", local=False) + ip_entry(Action.ALLOW, "192.168.1.0/24", local=False)
    )
    assert allows(t, v4("10.0.0.1", "192.168.1.5"), remote_ip=ip("192.168.1.5"))
    assert not allows(t, v4("10.0.0.1", "192.168.2.5"), remote_ip=ip("192.168.2.5"))
    assert allows(t, NON_IP)  # ARP is not IP: IP entries do not apply


def test_mac_entries_and_deny_wins_ties() -> None:
    t = PortAclTable([mac_entry(Action.DENY, 0xBAD, local=False)])
    assert not allows(t, NON_IP, rmac=0xBAD) and allows(t, NON_IP, rmac=0x600D)
    tie = PortAclTable(
        ip_entry(Action.ALLOW, "10.0.0.0/8", False) + ip_entry(Action.DENY, "10.0.0.0/8", False)
    )
    assert not allows(tie, v4("1.1.1.1", "10.1.1.1"), remote_ip=ip("10.1.1.1"))


def test_meter_counts_without_deciding() -> None:
    t = PortAclTable(ip_entry(Action.METER, "10.0.0.0/8", local=False))
    for _ in range(3):
        assert allows(t, v4("1.1.1.1", "10.1.1.1"), remote_ip=ip("10.1.1.1"))
    (m,) = t.meters.values()
    assert (m.packets, m.bytes) == (3, 300)


def test_many_rules_still_decide_by_longest_prefix() -> None:
    entries = []
    for i in range(10_000):
        entries += ip_entry(Action.DENY, f"10.{i // 256 % 256}.{i % 256}.0/24", local=False)
    entries += ip_entry(Action.ALLOW, "10.0.5.7/32", local=False)
    t = PortAclTable(entries)
    assert allows(t, v4("1.1.1.1", "10.0.5.7"), remote_ip=ip("10.0.5.7"))
    assert not allows(t, v4("1.1.1.1", "10.0.5.8"), remote_ip=ip("10.0.5.8"))
    assert allows(t, v4("1.1.1.1", "11.0.0.1"), remote_ip=ip("11.0.0.1"))


def rule(action: Action, direction: Direction, weight: int, **kw: object) -> ExtendedRule:
    return ExtendedRule(action, direction, weight, **kw)  # type: ignore[arg-type]


def test_extended_weight_order_first_match_and_ranges() -> None:
    acl = ExtendedAcl.compile(
        [
            rule(Action.DENY, Direction.INBOUND, 1),
            rule(Action.ALLOW, Direction.INBOUND, 10, local_ports=port_range("8000-8080"), protocol=6),
        ]
    )
    l3 = v4("1.1.1.1", "10.0.0.1", dport=8080)
    assert acl.allows(Direction.INBOUND, l3, ip("10.0.0.1"), ip("1.1.1.1"), 8080, 1000, 0, now=0)
    assert not acl.allows(Direction.INBOUND, l3, ip("10.0.0.1"), ip("1.1.1.1"), 9000, 1000, 0, now=0)
    assert acl.allows(
        Direction.OUTBOUND, l3, ip("10.0.0.1"), ip("1.1.1.1"), 9000, 1000, 0, now=0
    )  # no outbound rules


def test_stateful_allow_admits_replies_then_expires() -> None:
    acl = ExtendedAcl.compile(
        [
            rule(Action.DENY, Direction.INBOUND, 1),
            rule(Action.ALLOW, Direction.OUTBOUND, 10, remote_ports=(80, 80), protocol=6, stateful=True,
                 idle_timeout_s=60),
        ]
    )  # fmt: skip
    vm, web = ip("10.0.0.5"), ip("93.184.216.34")
    out = L3L4(4, vm, web, 6, 40000, 80, TCP_SYN)
    back = L3L4(4, web, vm, 6, 80, 40000, TCP_SYN | TCP_ACK)
    # a new inbound connection is refused
    assert not acl.allows(Direction.INBOUND, back, vm, web, 40000, 80, 0, now=0)
    assert acl.allows(Direction.OUTBOUND, out, vm, web, 40000, 80, 0, now=1)
    assert acl.allows(Direction.INBOUND, back, vm, web, 40000, 80, 0, now=30)  # the reply is admitted
    assert acl.allows(Direction.INBOUND, back, vm, web, 40000, 80, 0, now=89)  # refreshed at 30 -> until 90
    assert acl.table.expire(now=200) == 1
    assert not acl.allows(Direction.INBOUND, back, vm, web, 40000, 80, 0, now=201)


def test_isolation_id_scopes_a_rule_to_a_vlan() -> None:
    acl = ExtendedAcl.compile([rule(Action.DENY, Direction.OUTBOUND, 5, isolation_id=10)])
    l3 = v4("10.0.0.1", "10.0.0.2")
    assert not acl.allows(Direction.OUTBOUND, l3, 1, 2, 1000, 80, 10, now=0)
    assert acl.allows(Direction.OUTBOUND, l3, 1, 2, 1000, 80, 20, now=0)


def test_prefix_helpers() -> None:
    assert prefix("ANY") is None and prefix("10.1.2.3/8") == (4, ip("10.0.0.0"), 8)
    assert (
        port_range("49152-49182") == (49152, 49182)
        and port_range(80) == (80, 80)
        and port_range(None) is None
    )


def test_rule_index_gives_the_same_answer_as_a_scan_by_weight() -> None:
    """The index is an optimisation only: random rule sets and packets, compared with a plain scan."""
    import random

    from pyvswitch.builtin.extended_acl import RuleIndex, _matches

    rng = random.Random(7)
    nets = ["10.0.0.0/8", "10.1.0.0/16", "10.1.2.0/24", "10.1.2.3/32", "ANY", "192.168.0.0/16"]
    for _ in range(50):
        rules = [
            rule(
                rng.choice([Action.ALLOW, Action.DENY]),
                Direction.INBOUND,
                rng.randrange(1, 20),
                local=prefix(rng.choice(nets)),
                remote=prefix(rng.choice(nets)),
                local_ports=rng.choice([None, (80, 80), (1000, 2000)]),
                remote_ports=rng.choice([None, (443, 443), (0, 1023)]),
                protocol=rng.choice([None, 6, 17]),
            )
            for _ in range(rng.randrange(1, 40))
        ]
        ordered = sorted(rules, key=lambda r: -r.weight)
        index = RuleIndex(ordered)
        for _ in range(50):
            lip = ip(f"10.1.{rng.randrange(3)}.{rng.randrange(5)}")
            rip = ip(rng.choice(["10.1.2.3", "192.168.1.1", "10.9.9.9"]))
            lport, rport = rng.choice([80, 1500, 9999]), rng.choice([443, 80, 5000])
            l3 = L3L4(4, rip, lip, rng.choice([6, 17]), rport, lport)
            scan = next((r for r in ordered if _matches(r, l3, lip, rip, lport, rport, 0)), None)
            assert index.first_match(l3, lip, rip, lport, rport, 0) is scan


def test_ipv6_extension_header_does_not_hide_the_ports() -> None:
    dstopts = bytes([17, 0, 1, 4, 0, 0, 0, 0])  # next header UDP, 8 bytes, PadN
    v6 = (
        bytes([0x60, 0, 0, 0, 0, 16, 60, 64])
        + ipaddress.ip_address("f00::1").packed
        + ipaddress.ip_address("f00::2").packed
    )
    frame = eth("02:00:00:00:00:02", "02:00:00:00:00:01", v6 + dstopts + struct.pack(">HH", 53, 22), 0x86DD)
    assert parse_l3l4(frame) == L3L4(6, ip("f00::1"), ip("f00::2"), 17, 53, 22)
