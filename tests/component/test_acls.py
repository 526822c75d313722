"""Port ACLs (built-in policy) and extended ACLs (the built-in firewall extension) in a whole switch.

AC-01..05, on memory devices with a fake clock.
"""

from __future__ import annotations

import struct

from pyvswitch.builtin.firewall import Firewall
from pyvswitch.config.schema import (
    AclEntry,
    ExtendedAclEntry,
    ExtensionSetting,
    PortConfig,
    PortKind,
    SwitchConfig,
)
from pyvswitch.ext.registry import Registry
from pyvswitch.testing.frames import BCAST, eth, ipv4, udp
from pyvswitch.testing.harness import SwitchHarness

A, B, C = "02:00:00:00:00:0a", "02:00:00:00:00:0b", "02:00:00:00:00:0c"
IP = {A: "10.0.0.1", B: "10.0.0.2", C: "10.0.1.3"}


def tcp(sport: int, dport: int) -> bytes:
    return struct.pack(">HHIIBBHHH", sport, dport, 0, 0, 0x50, 0x02, 65535, 0, 0)


def frame(src: str, dst: str, l4: bytes, proto: int = 6) -> bytes:
    return eth(dst, src, ipv4(IP[src], IP[dst], proto, l4))


def vm(name: str, mac: str, **kw: object) -> PortConfig:
    return PortConfig(name=name, kind=PortKind.VM, vm=name, switch="s", mac=mac, **kw)  # type: ignore[arg-type]


def test_port_acl_longest_prefix_both_directions_and_arp_untouched() -> None:
    acls = [
        AclEntry(action="Deny", direction="Both", remote_ip="ANY"),
        AclEntry(action="Allow", direction="Both", remote_ip="10.0.0.0/24"),
    ]
    h = SwitchHarness([SwitchConfig(name="s")], [vm("a", A, acls=acls), vm("b", B), vm("c", C)])
    h.send("a", frame(A, B, udp(1, 2), 17))
    h.expect("b", frame(A, B, udp(1, 2), 17))
    h.send("a", frame(A, C, udp(1, 2), 17))  # outbound to 10.0.1.3: denied
    h.expect_nothing("c")
    h.send("c", frame(C, A, udp(1, 2), 17))  # inbound from 10.0.1.3: denied
    h.expect_nothing("a")
    arp_body = struct.pack(">HHBBH", 1, 0x0800, 6, 4, 1) + bytes.fromhex(A.replace(":", "")) + bytes(14)
    arp = eth(BCAST, A, arp_body, ethertype=0x0806)
    h.send("a", arp)  # not IP: the IP entries do not apply
    h.expect("b", arp)
    h.expect("c", arp)
    port = h.engine.counters()["switches"]["s"]["ports"]["a"]  # type: ignore[index]
    assert port["port_drops"] == {"acl-deny": 2}


def test_meter_counts_and_forwards() -> None:
    h = SwitchHarness(
        [SwitchConfig(name="s")],
        [
            vm("a", A, acls=[AclEntry(action="Meter", direction="Outbound", remote_ip="10.0.0.0/24")]),
            vm("b", B),
        ],
    )
    for _ in range(3):
        h.send("a", frame(A, B, udp(1, 2), 17))
        h.take("b")
    acl = h.engine.counters()["switches"]["s"]["ports"]["a"]["acl"]["outbound"]  # type: ignore[index]
    assert acl["meters"][0]["packets"] == 3 and acl["meters"][0]["address"] == "10.0.0.0/24"


FW = Registry.of(Firewall)
CLIENT_RULES = [
    ExtendedAclEntry(action="Deny", direction="Inbound", weight=1),
    ExtendedAclEntry(action="Allow", direction="Outbound", weight=10, remote_port="80", protocol="TCP",
                     stateful=True, idle_session_timeout_s=60),
]  # fmt: skip


def test_stateful_firewall_admits_replies_not_new_connections_and_expires() -> None:
    h = SwitchHarness([SwitchConfig(name="s")], [vm("a", A, extended_acls=CLIENT_RULES), vm("b", B)], FW)
    h.send("b", frame(B, A, tcp(5555, 22)))  # new inbound connection to the client: refused
    h.expect_nothing("a")
    h.send("a", frame(A, B, tcp(40000, 80)))  # the client connects out to a web server
    h.expect("b", frame(A, B, tcp(40000, 80)))
    h.advance(30)
    h.send("b", frame(B, A, tcp(80, 40000)))  # the reply is admitted by the flow
    h.expect("a", frame(B, A, tcp(80, 40000)))
    h.advance(61)  # idle longer than the timeout
    h.send("b", frame(B, A, tcp(80, 40000)))
    h.expect_nothing("a")
    stack = h.engine.counters()["switches"]["s"]["extensions"]  # type: ignore[index]
    fw = next(e for e in stack if e["name"] == "pyvswitch-firewall")
    assert fw["enabled"] and fw["drops"] == {"extended-acl-deny": 2}


def test_firewall_disabled_enforces_nothing_and_idle_without_rules() -> None:
    off = SwitchConfig(name="s", extensions=[ExtensionSetting(name="pyvswitch-firewall", enabled=False)])
    h = SwitchHarness([off], [vm("a", A, extended_acls=CLIENT_RULES), vm("b", B)], FW)
    h.send("b", frame(B, A, tcp(5555, 22)))
    h.expect("a", frame(B, A, tcp(5555, 22)))
    bare = SwitchHarness([SwitchConfig(name="s")], [vm("a", A), vm("b", B)], FW)
    assert bare.engine.switches["s"].ext_active is None  # no rules anywhere: not in the data path
