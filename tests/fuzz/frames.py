"""Frame fuzzing (issue 11, item 6): a whole switch on memory devices fed random, truncated and mutated frames,
with random virtio-net headers on its TAP port, then checked: nothing escaped as an exception (the forwarding loop
counts those as ``internal-error`` drops and ``loop_errors``), no extension raised, and a known-good frame still
crosses the switch.

The switch has most of what a frame can meet: access, trunk and private-VLAN ports, an uplink trunk, a TAP port
(vnet headers), port security (MAC spoofing guard, DHCP and router guards, a MAC limit, a storm limit), port ACLs,
the firewall with stateful extended ACLs, a mirror, and the flow cache. Seeds are well-formed frames of every kind
the switch parses (IPv4/IPv6 TCP, UDP, ICMP, DHCP, router advertisements, ARP, LACP, tagged and double-tagged); a
mutation truncates, flips bits, overwrites, inserts or splices, and the tag and vnet header are drawn apart from
the bytes. Deterministic for a seed.
"""

from __future__ import annotations

import random
import struct
import time
from dataclasses import dataclass, field

from pyvswitch.builtin.firewall import Firewall
from pyvswitch.config.schema import (
    AclAction,
    AclDirection,
    AclEntry,
    ExtendedAclEntry,
    ExtensionSetting,
    PortConfig,
    PortKind,
    PortMirroring,
    SwitchConfig,
    VlanConfig,
    VlanMode,
)
from pyvswitch.ext.registry import Registry
from pyvswitch.packet.frame import UNTAGGED
from pyvswitch.packet.vnet import (
    VIRTIO_NET_HDR_F_NEEDS_CSUM,
    VIRTIO_NET_HDR_GSO_TCPV4,
    VIRTIO_NET_HDR_GSO_TCPV6,
    VIRTIO_NET_HDR_GSO_UDP_L4,
    VNET_HDR,
)
from pyvswitch.testing.frames import BCAST, eth, icmp, ipv4, ipv6, udp
from pyvswitch.testing.harness import SwitchHarness

A, B, C, T, U, M, P = (f"02:00:00:00:00:{i:02x}" for i in (0x0A, 0x0B, 0x0C, 0x0D, 0x0E, 0x0F, 0x10))
PORTS = ("a", "b", "c", "tap", "up", "mon", "pv")
BATCH = 64


def tcp(sport: int, dport: int, flags: int = 0x02, payload: bytes = b"") -> bytes:
    return struct.pack(">HHIIBBHHH", sport, dport, 1, 0, 0x50, flags, 65535, 0, 0) + payload


def switch_config() -> SwitchConfig:
    return SwitchConfig(
        name="s",
        mac_table_size=64,  # small: eviction and the full table are reached
        extensions=[ExtensionSetting(name="pyvswitch-firewall", enabled=True)],
    )


def ports() -> list[PortConfig]:
    xacl = [
        ExtendedAclEntry(action=AclAction.DENY, direction=AclDirection.INBOUND, weight=1),
        ExtendedAclEntry(
            action=AclAction.ALLOW, direction=AclDirection.OUTBOUND, weight=10, protocol="TCP", stateful=True
        ),
        ExtendedAclEntry(
            action=AclAction.ALLOW, direction=AclDirection.INBOUND, weight=20, protocol="UDP", local_port="53"
        ),
        ExtendedAclEntry(action=AclAction.ALLOW, direction=AclDirection.INBOUND, weight=30, protocol="ICMP"),
    ]
    acls = [
        AclEntry(action=AclAction.DENY, direction=AclDirection.OUTBOUND, remote_ip="192.0.2.0/24"),
        AclEntry(action=AclAction.DENY, direction=AclDirection.INBOUND, remote_mac="02:00:00:00:00:66"),
    ]
    trunk = VlanConfig(mode=VlanMode.TRUNK, native_vlan_id=1, allowed_vlan_ids=[1, 10, 20, 100, 200, 201])
    return [
        PortConfig(
            name="a",
            kind=PortKind.VM,
            vm="a",
            switch="s",
            mac=A,
            dhcp_guard=True,
            router_guard=True,
            extended_acls=xacl,
            acls=acls,
            mac_limit=4,
            storm_limit=100_000,
        ),
        PortConfig(name="b", kind=PortKind.VM, vm="b", switch="s", mac=B),
        PortConfig(
            name="c",
            kind=PortKind.VM,
            vm="c",
            switch="s",
            mac=C,
            mac_spoofing=True,
            allow_teaming=True,
            vlan=VlanConfig(mode=VlanMode.ACCESS, access_vlan_id=10),
            ieee_priority_tag=True,
        ),
        PortConfig(
            name="tap", kind=PortKind.TAP, switch="s", interface="tap", mac=T, mac_spoofing=True, vlan=trunk
        ),
        PortConfig(name="up", kind=PortKind.UPLINK, switch="s", interface="up", vlan=trunk),
        PortConfig(
            name="mon",
            kind=PortKind.VM,
            vm="mon",
            switch="s",
            mac=M,
            port_mirroring=PortMirroring.DESTINATION,
        ),
        PortConfig(
            name="pv",
            kind=PortKind.VM,
            vm="pv",
            switch="s",
            mac=P,
            port_mirroring=PortMirroring.SOURCE,
            vlan=VlanConfig(mode=VlanMode.ISOLATED, primary_vlan_id=200, secondary_vlan_id=201),
        ),
    ]


def harness() -> SwitchHarness:
    return SwitchHarness([switch_config()], ports(), Registry.of(Firewall))


def seeds() -> list[bytes]:
    """Well-formed frames of every kind the switch looks into, from and to the ports' MACs."""
    ip4 = [("10.0.0.1", "10.0.0.2"), ("192.0.2.9", "10.0.0.1"), ("0.0.0.0", "255.255.255.255")]
    out: list[bytes] = []
    for s, d in ip4:
        out += [
            eth(B, A, ipv4(s, d, 6, tcp(40000, 80))),
            eth(A, B, ipv4(d, s, 6, tcp(80, 40000, 0x12))),
            eth(BCAST, A, ipv4(s, d, 17, udp(68, 67, bytes(240)))),  # DHCP discover
            eth(BCAST, B, ipv4(s, d, 17, udp(67, 68, bytes(236) + b"\x63\x82\x53\x63\x35\x01\x02"))),  # offer
            eth(A, C, ipv4(s, d, 1, icmp(8))),
            eth(A, T, ipv4(s, d, 17, udp(5353, 53, b"q" * 30)), vlan=10),
        ]
    out += [
        eth(BCAST, A, ipv6("fe80::1", "ff02::1", 58, bytes([134, 0]) + bytes(14)), ethertype=0x86DD),  # RA
        eth(B, A, ipv6("2001:db8::1", "2001:db8::2", 6, tcp(1, 2)), ethertype=0x86DD),
        eth(
            B,
            A,
            ipv6("2001:db8::1", "2001:db8::2", 0, bytes([6, 0]) + bytes(6) + tcp(1, 2)),
            ethertype=0x86DD,
        ),
        eth(BCAST, A, struct.pack(">HHBBH", 1, 0x0800, 6, 4, 1) + bytes(20), ethertype=0x0806),  # ARP
        eth("01:80:c2:00:00:02", U, bytes([1, 1]) + bytes(108), ethertype=0x8809),  # LACP
        eth(B, U, eth(B, U, ipv4("10.0.0.5", "10.0.0.6", 17, udp(1, 2)), vlan=20)[12:], ethertype=0x8100)[:12]
        + struct.pack(">HH", 0x8100, 100)
        + eth(B, U, ipv4("10.0.0.5", "10.0.0.6", 17, udp(1, 2)), vlan=20)[12:],  # double-tagged
        eth(BCAST, P, ipv4("10.2.0.1", "10.2.0.2", 17, udp(1, 2))),
        eth("01:00:5e:00:00:01", A, ipv4("10.0.0.1", "224.0.0.1", 2, bytes(8))),
        eth(A, T, ipv4("10.0.0.9", "10.0.0.1", 6, tcp(443, 40000, 0x10, b"x" * 1400))),
    ]
    return out


def mutate(rng: random.Random, frame: bytes, pool: list[bytes]) -> bytes:
    """One to three mutations of ``frame``."""
    data = bytearray(frame)
    for _ in range(rng.randint(1, 3)):
        op = rng.random()
        if op < 0.2 and data:
            del data[rng.randrange(len(data) + 1) :]  # truncate (to nothing, sometimes)
        elif op < 0.45 and data:
            i = rng.randrange(len(data))
            data[i] ^= 1 << rng.randrange(8)
        elif op < 0.65 and data:
            i = rng.randrange(len(data))
            data[i] = rng.choice((0, 0xFF, 0x7F, 0x80, rng.randrange(256)))
        elif op < 0.75:
            i = rng.randrange(len(data) + 1)
            data[i:i] = rng.randbytes(rng.choice((1, 2, 4, 8, 40)))
        elif op < 0.85:
            other = rng.choice(pool)
            cut = rng.randrange(len(other) + 1)
            data = data[: rng.randrange(len(data) + 1)] + bytearray(other[cut:])
        elif op < 0.92:
            # an interesting header field: EtherType, IP version/IHL/length, protocol, ports
            for off, val in ((12, b"\x81\x00"), (12, b"\x86\xdd"), (14, bytes([rng.randrange(256)])),
                             (16, rng.randbytes(2)), (23, bytes([rng.choice((1, 6, 17, 58, 0, 255))])),
                             (34, rng.randbytes(4))):  # fmt: skip
                if rng.random() < 0.3 and off + len(val) <= len(data):
                    data[off : off + len(val)] = val
        else:
            data = bytearray(rng.randbytes(rng.choice((0, 1, 13, 14, 17, 18, 60, 64, 1514, 9000))))
    return bytes(data)


def random_vnet(rng: random.Random, n: int) -> bytes | None:
    """A virtio-net header: none, all zero, plausible, with offsets around the tag (below 4), or random."""
    r = rng.random()
    if r < 0.2:
        return None
    if r < 0.35:
        return bytes(10)
    if r < 0.6:
        gso = rng.choice(
            (0, VIRTIO_NET_HDR_GSO_TCPV4, VIRTIO_NET_HDR_GSO_TCPV6, VIRTIO_NET_HDR_GSO_UDP_L4, 2, 0x81)
        )
        return VNET_HDR.pack(
            VIRTIO_NET_HDR_F_NEEDS_CSUM if rng.random() < 0.8 else rng.randrange(256),
            gso,
            rng.choice((0, 1, 2, 3, 4, 54, n, n + 1, 0xFFFF)),
            rng.choice((0, 1, 1448, 0xFFFF)),
            rng.choice((0, 1, 2, 3, 4, 34, n - 2, n, 0xFFFC, 0xFFFF)) & 0xFFFF,
            rng.choice((0, 6, 16, 0xFFFF)),
        )
    return rng.randbytes(10)


def random_tci(rng: random.Random) -> int:
    r = rng.random()
    if r < 0.7:
        return UNTAGGED
    return rng.choice((0, 1, 10, 20, 100, 200, 201, 4095, 0x2001, 0xE00A, rng.randrange(0x10000)))


@dataclass
class FrameFuzzResult:
    frames: int = 0
    batches: int = 0
    seconds: float = 0.0
    internal_errors: int = 0
    loop_errors: int = 0
    extension_errors: int = 0
    forwarded_after: bool = False
    drops: dict[str, int] = field(default_factory=dict)
    # (port, tci, vnet hex, frame hex) of every batch that raised: each is kept as a regression test
    crashes: list[tuple[str, int, str | None, str]] = field(default_factory=list)


def internal_errors(h: SwitchHarness) -> int:
    sw = h.engine.counters()["switches"]["s"]  # type: ignore[index]
    return sum(int(p.get("port_drops", {}).get("internal-error", 0)) for p in sw["ports"].values())


def extension_errors(h: SwitchHarness) -> int:
    sw = h.engine.counters()["switches"]["s"]  # type: ignore[index]
    return sum(int(e["errors"]) for e in sw.get("extensions", []))


def forwards_known_good(h: SwitchHarness) -> bool:
    for port in PORTS:
        h.take(port)
    # a -> b, untagged and allowed (outbound TCP is stateful-allowed by a's extended ACLs)
    frame = eth(B, A, ipv4("10.0.0.1", "10.0.0.2", 6, tcp(40001, 80)))
    h.send("a", frame)
    return frame in h.take("b")


def run(frames: int, seed: int = 0, deadline_s: float | None = None) -> FrameFuzzResult:
    """Feed ``frames`` fuzzed frames (or as many as fit before ``deadline_s``) in batches to random ports."""
    rng = random.Random(seed)
    h = harness()
    pool = seeds()
    devices = {p: h.port_device(p) for p in PORTS}
    res = FrameFuzzResult()
    start = time.monotonic()
    sent = 0
    while sent < frames:
        if deadline_s is not None and time.monotonic() - start > deadline_s:
            break
        port = rng.choice(PORTS)
        dev = devices[port]
        batch: list[tuple[bytes, int, bytes | None]] = []
        for _ in range(min(BATCH, frames - sent)):
            base = rng.choice(pool)
            frame = mutate(rng, base, pool) if rng.random() < 0.85 else base
            vnet = random_vnet(rng, len(frame)) if port == "tap" else None
            tci = random_tci(rng)
            batch.append((frame, tci, vnet))
            dev.inject(frame, tci=tci, vnet=vnet)
        sent += len(batch)
        before = h.engine.loop_errors
        while h.engine.run_once():
            pass
        if h.engine.loop_errors != before:
            # Replay frame by frame to find the ones that raise, for the regression tests.
            res.crashes += _culprits(batch, port)
        res.batches += 1
        if rng.random() < 0.02:
            h.advance(rng.choice((0.5, 5.0, 400.0)))  # aging, storm buckets, connection timeouts
        for p in PORTS:
            devices[p].sent.clear()
            devices[p].sent_vnet.clear()
    res.frames = sent
    res.seconds = time.monotonic() - start
    res.internal_errors = internal_errors(h)
    res.loop_errors = h.engine.loop_errors
    res.extension_errors = extension_errors(h)
    res.forwarded_after = forwards_known_good(h)
    res.drops = dict(h.drops("s"))
    h.engine.stop()
    return res


def _culprits(
    batch: list[tuple[bytes, int, bytes | None]], port: str
) -> list[tuple[str, int, str | None, str]]:
    out = []
    for frame, tci, vnet in batch:
        h = harness()
        h.send(port, frame, tci=tci, vnet=vnet)
        if h.engine.loop_errors:
            out.append((port, tci, None if vnet is None else vnet.hex(), frame.hex()))
        h.engine.stop()
    return out
