"""The firewall's connection table in a whole switch (issue 10 item 4; AC-04, AC-05): what opens state, the
connection limits under a flood, bounded expiry, status, and migration of ICMP state. Memory devices and a
fake clock."""

from __future__ import annotations

import random
import struct
from typing import Any

import pytest

from pyvswitch.builtin.extended_acl import EXPIRE_BUDGET, MAX_CONNECTIONS, MAX_CONNECTIONS_PER_PORT
from pyvswitch.builtin.firewall import Firewall
from pyvswitch.config.schema import ExtendedAclEntry, ExtensionSetting, PortConfig, PortKind, SwitchConfig
from pyvswitch.errors import ConfigError
from pyvswitch.ext.api import FilterExtension
from pyvswitch.ext.registry import Registry
from pyvswitch.testing.frames import eth, icmp, ipv4, udp
from pyvswitch.testing.harness import SwitchHarness

A, B, C = "02:00:00:00:00:0a", "02:00:00:00:00:0b", "02:00:00:00:00:0c"
IP = {A: "10.0.0.1", B: "10.0.0.2", C: "10.0.0.3"}
SYN, ACK = 0x02, 0x10
FW = Registry.of(Firewall)


def vm(name: str, mac: str, **kw: object) -> PortConfig:
    return PortConfig(name=name, kind=PortKind.VM, vm=name, switch="s", mac=mac, **kw)  # type: ignore[arg-type]


def rules(protocol: str) -> list[ExtendedAclEntry]:
    """The client policy of Hyper-V's examples: deny inbound, allow outbound ``protocol`` statefully."""
    return [
        ExtendedAclEntry(action="Deny", direction="Inbound", weight=1),
        ExtendedAclEntry(action="Allow", direction="Outbound", weight=10, protocol=protocol, stateful=True,
                         idle_session_timeout_s=60),
    ]  # fmt: skip


def switch(protocol: str) -> SwitchHarness:
    return SwitchHarness(
        [SwitchConfig(name="s")],
        [vm("a", A, extended_acls=rules(protocol)), vm("b", B), vm("c", C, extended_acls=rules(protocol))],
        FW,
    )


def firewall(h: SwitchHarness) -> Firewall:
    stack = h.engine.switches["s"].ext
    assert stack is not None
    fw = next(s.instance for s in stack.slots if s.name == Firewall.name)
    assert isinstance(fw, Firewall)
    return fw


def fw_counters(h: SwitchHarness) -> dict[str, Any]:
    stack: list[dict[str, Any]] = h.engine.counters()["switches"]["s"]["extensions"]  # type: ignore[index]
    return next(e for e in stack if e["name"] == Firewall.name)


def ping(src: str, dst: str, type_: int, ident: int, seq: int = 1) -> bytes:
    return eth(dst, src, ipv4(IP[src], IP[dst], 1, icmp(type_, 0, struct.pack(">HH", ident, seq))))


def tcp(src: str, dst: str, sport: int, dport: int, flags: int) -> bytes:
    seg = struct.pack(">HHIIBBHHH", sport, dport, 1, 1, 0x50, flags, 65535, 0, 0)
    return eth(dst, src, ipv4(IP[src], IP[dst], 6, seg))


def dgram(src: str, dst: str, sport: int, dport: int) -> bytes:
    return eth(dst, src, ipv4(IP[src], IP[dst], 17, udp(sport, dport)))


def test_echo_request_from_the_vm_admits_its_reply_not_the_peers_request() -> None:
    """AC-05 (stateful Allow admits the return traffic): the VM's ping gets its echo reply, but its echo
    request does not let the peer's own echo request (same identifier) in."""
    h = switch("ICMP")
    h.send("b", ping(B, A, 8, 7))  # nothing asked for it: denied
    h.expect_nothing("a")
    h.send("a", ping(A, B, 8, 7))
    h.expect("b", ping(A, B, 8, 7))
    h.send("b", ping(B, A, 0, 7))  # the reply
    h.expect("a", ping(B, A, 0, 7))
    h.send("b", ping(B, A, 8, 7))  # the peer's request, same identifier: still denied
    h.expect_nothing("a")
    h.send("b", ping(B, A, 0, 8))  # a reply to an exchange that never happened
    h.expect_nothing("a")
    assert fw_counters(h)["drops"] == {"extended-acl-deny": 3}


def test_a_tcp_segment_other_than_syn_creates_no_state() -> None:
    """AC-05: an ACK matching the stateful Allow passes (the rule allows it) but opens nothing, so the peer
    cannot answer it; the SYN of the same 5-tuple opens the connection."""
    h = switch("TCP")
    h.send("a", tcp(A, B, 40000, 80, ACK))
    h.expect("b", tcp(A, B, 40000, 80, ACK))
    h.send("b", tcp(B, A, 80, 40000, ACK))
    h.expect_nothing("a")
    assert fw_counters(h)["status"]["connections"] == 0
    h.send("a", tcp(A, B, 40000, 80, SYN))
    h.take("b")
    h.send("b", tcp(B, A, 80, 40000, SYN | ACK))
    h.expect("a", tcp(B, A, 80, 40000, SYN | ACK))


def test_status_shows_the_table_size_and_its_limits() -> None:
    h = switch("UDP")
    h.send("a", dgram(A, B, 5000, 53))
    status = fw_counters(h)["status"]
    hits_a = status["ports"]["a"]["rule_hits"]
    hits_c = status["ports"]["c"]["rule_hits"]
    assert sum(r["hits"] for r in hits_a) == 1 and sum(r["hits"] for r in hits_c) == 0  # per entry, the same
    assert status == {
        "connections": 1,
        "max_connections": MAX_CONNECTIONS,
        "max_connections_per_port": MAX_CONNECTIONS_PER_PORT,
        "table_full_drops": 0,
        "ports": {
            "a": {"rules": 2, "flows": 1, "hits": 1, "table_full_drops": 0, "rule_hits": hits_a},
            "c": {"rules": 2, "flows": 0, "hits": 0, "table_full_drops": 0, "rule_hits": hits_c},
        },
    }
    assert (MAX_CONNECTIONS, MAX_CONNECTIONS_PER_PORT) == (262_144, 65_536)
    with pytest.raises(ValueError, match="max_connections_per_port must be at least 1"):
        firewall(h).set_limits(max_connections_per_port=0)


def test_a_flood_of_random_5_tuples_stays_within_the_port_limit() -> None:
    """100k random 5-tuples from one VM: it keeps at most its per-port share of the table, every other new
    flow is dropped as conn-table-full, and its connection opened before the flood keeps getting replies."""
    h = switch("UDP")
    h.send("a", dgram(A, B, 999, 53))  # established before the flood
    h.take("b")
    rng = random.Random(4)
    template = bytearray(dgram(A, B, 0, 0))
    dev = h.port_device("a")
    for _ in range(100_000):
        frame = template[:]
        frame[30:34] = rng.getrandbits(32).to_bytes(4, "big")  # destination IP
        struct.pack_into(">HH", frame, 34, rng.getrandbits(16), rng.getrandbits(16))
        dev.inject(bytes(frame))
    while h.engine.run_once():
        h.take("b")
    status = fw_counters(h)["status"]
    assert status["connections"] == status["ports"]["a"]["flows"] == MAX_CONNECTIONS_PER_PORT
    full = fw_counters(h)["drops"]["conn-table-full"]
    assert full == status["table_full_drops"] >= 100_000 + 1 - MAX_CONNECTIONS_PER_PORT
    h.send("b", dgram(B, A, 53, 999))
    h.expect("a", dgram(B, A, 53, 999))
    h.send("c", dgram(C, B, 5000, 53))  # another port still opens connections: its share is untouched
    h.expect("b", dgram(C, B, 5000, 53))


def test_the_switch_limit_is_shared_by_its_ports() -> None:
    h = switch("UDP")
    firewall(h).set_limits(max_connections=5, max_connections_per_port=4)
    for sport in range(4):
        h.send("a", dgram(A, B, sport, 53))
    h.send("a", dgram(A, B, 4, 53))  # a's fifth: over its own limit
    h.send("c", dgram(C, B, 1, 53))  # c's first: the switch's fifth
    h.send("c", dgram(C, B, 2, 53))  # the switch's sixth
    assert len(h.take("b")) == 5
    status = fw_counters(h)["status"]
    assert (status["connections"], status["table_full_drops"]) == (5, 2)
    assert fw_counters(h)["drops"] == {"conn-table-full": 2}


def test_the_limits_come_from_the_switch_configuration_and_bad_ones_are_refused_whole() -> None:
    """Typed extension settings (issue 16 item 5, issue 10 item 4): a switch's configuration sets its firewall's
    limits; taking the setting away restores the default; an invalid one is rejected naming the field, and
    changes nothing."""
    ports = [vm("a", A, extended_acls=rules("UDP")), vm("b", B)]

    def fw_setting(**settings: object) -> SwitchConfig:
        return SwitchConfig(name="s", extensions=[ExtensionSetting(name=Firewall.name, settings=settings)])

    h = SwitchHarness([fw_setting(max_connections_per_port=3)], ports, FW)
    for sport in range(5):
        h.send("a", dgram(A, B, sport, 53))
    assert len(h.take("b")) == 3
    assert fw_counters(h)["status"]["max_connections_per_port"] == 3
    for bad, field in (
        ({"max_connections": 0}, "max_connections"),
        ({"max_conections": 5}, "max_conections"),
        ({"max_connections_per_port": "many"}, "max_connections_per_port"),
    ):
        with pytest.raises(ConfigError) as err:
            h.configure([fw_setting(**bad)], ports)
        assert [p for p, _ in err.value.problems] == [f"switches[0].extensions[0].settings.{field}"]
        assert fw_counters(h)["status"]["max_connections_per_port"] == 3  # nothing changed
    h.configure([fw_setting()], ports)
    assert fw_counters(h)["status"]["max_connections_per_port"] == MAX_CONNECTIONS_PER_PORT


def test_an_extension_without_a_settings_model_takes_no_settings() -> None:
    class Plain(FilterExtension):
        name = "plain"

    sw = SwitchConfig(name="s", extensions=[ExtensionSetting(name="plain", settings={"x": 1})])
    with pytest.raises(ConfigError) as err:
        SwitchHarness([sw], [vm("a", A)], Registry.of(Plain))
    assert err.value.problems == [
        ("switches[0].extensions[0].settings", "extension 'plain' takes no settings")
    ]


def test_expiry_work_per_firewall_call_is_bounded() -> None:
    """Thousands of connections idling out at once are reaped EXPIRE_BUDGET at a time per firewall call, so no
    batch pays for all of them; traffic keeps flowing and the table empties over the next batches."""
    h = switch("UDP")
    dev = h.port_device("a")
    total = 5 * EXPIRE_BUDGET
    for sport in range(total):
        dev.inject(dgram(A, B, sport, 53))
    while h.engine.run_once():
        h.take("b")
    assert fw_counters(h)["status"]["connections"] == total
    h.advance(61)  # one batch-free pass of the loop: nothing is reaped without traffic
    # One frame b -> c is two firewall calls (ingress on b, egress to c).
    h.send("b", dgram(B, C, 1, 2))
    h.take("c")
    left = fw_counters(h)["status"]["connections"]
    assert total - 2 * EXPIRE_BUDGET <= left < total
    for _ in range(3):
        h.send("b", dgram(B, C, 1, 2))
    assert fw_counters(h)["status"]["connections"] == 0


def test_migrated_icmp_state_admits_the_reply_and_still_not_the_peers_request() -> None:
    """The connection table moves with the VM (live migration: save_state on the source, restore_state on the
    destination): the echo reply is admitted there, the peer's echo request still is not."""
    src, dst = switch("ICMP"), switch("ICMP")
    dst.clock.advance(5000)  # another host's clock
    src.send("a", ping(A, B, 8, 42))
    blob = firewall(src).save_state("a")
    assert blob is not None
    firewall(dst).restore_state("a", blob)
    dst.send("b", ping(B, A, 0, 42))
    dst.expect("a", ping(B, A, 0, 42))
    dst.send("b", ping(B, A, 8, 42))
    dst.expect_nothing("a")
    dst.advance(61)
    dst.send("b", ping(B, A, 0, 42))  # idled out on the destination's clock
    dst.expect_nothing("a")


def test_restore_respects_the_destinations_limits() -> None:
    src, dst = switch("UDP"), switch("UDP")
    for sport in range(10):
        src.send("a", dgram(A, B, sport, 53))
    blob = firewall(src).save_state("a")
    assert blob is not None
    firewall(dst).set_limits(max_connections_per_port=4)
    firewall(dst).restore_state("a", blob)
    dst.send("b", dgram(B, C, 1, 1))  # a batch: restored flows are put on this host's clock
    assert fw_counters(dst)["status"]["ports"]["a"]["flows"] == 4
    admitted = 0
    for sport in range(10):
        dst.send("b", dgram(B, A, 53, sport))
        admitted += len(dst.take("a"))
    assert admitted == 4
