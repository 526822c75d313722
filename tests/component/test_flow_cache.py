"""The flow cache (issue 16 item 2) changes nothing but speed: the same random traffic through two switches, one
with the cache and one without, gives the same frames on every port, in the same order, and the same counters,
MAC table and firewall state, across VLANs, trunks, port ACLs both ways, the stateful firewall, port security,
mirroring, unknown unicast, MAC moves, aging, flow expiry and reconfiguration. Plus what the cache is for: one
entry per flow however its packets' TTL, IP id or checksum vary, hits counted, MAC moves invalidating."""

from __future__ import annotations

import random
import struct
from collections.abc import Sequence
from typing import Any

import pytest

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
from pyvswitch.ext.api import CapturedFrame, CaptureExtension, Context, Direction, FilterExtension, Gate
from pyvswitch.ext.registry import Registry
from pyvswitch.packet.frame import UNTAGGED, Packet
from pyvswitch.testing.frames import eth, icmp, ipv4, ipv6, udp
from pyvswitch.testing.harness import SwitchHarness, flow_cache

MACS = {p: f"02:00:00:00:00:{i:02x}" for i, p in enumerate("abcdmtu", start=1)}
IPS = {"a": "10.0.0.1", "b": "10.0.0.2", "c": "10.0.0.3", "d": "10.0.0.4", "u": "10.0.0.9"}
BROADCAST = "ff:ff:ff:ff:ff:ff"
TCP_FLAGS = (0x02, 0x10, 0x18, 0x11, 0x04, 0x12)  # SYN, ACK, PSH|ACK, FIN|ACK, RST, SYN|ACK


def tcp(sport: int, dport: int, flags: int) -> bytes:
    return struct.pack(">HHIIBBHHH", sport, dport, 1, 0, 5 << 4, flags, 8192, 0, 0)


def ports(c_denies: str = "10.0.0.77/32") -> list[PortConfig]:
    ext = [
        ExtendedAclEntry(action=AclAction.DENY, direction=AclDirection.INBOUND, weight=1),
        ExtendedAclEntry(action=AclAction.ALLOW, direction=AclDirection.OUTBOUND, weight=10, protocol="UDP",
                         stateful=True, idle_session_timeout_s=30),
        ExtendedAclEntry(action=AclAction.ALLOW, direction=AclDirection.OUTBOUND, weight=11, protocol="TCP",
                         stateful=True, idle_session_timeout_s=30),
        ExtendedAclEntry(action=AclAction.ALLOW, direction=AclDirection.OUTBOUND, weight=12, protocol="ICMP",
                         stateful=True, idle_session_timeout_s=30),
        ExtendedAclEntry(action=AclAction.DENY, direction=AclDirection.OUTBOUND, weight=20, remote_port="666",
                         protocol="UDP"),
    ]  # fmt: skip
    access = {"b": 10, "d": 20}
    out = []
    for name, mac in MACS.items():
        kind = PortKind.INTERFACE if name in "tu" else PortKind.VM
        vlan = VlanConfig()
        if name in access:
            vlan = VlanConfig(mode=VlanMode.ACCESS, access_vlan_id=access[name])
        elif name == "t":
            vlan = VlanConfig(mode=VlanMode.TRUNK, allowed_vlan_ids=[10, 20], native_vlan_id=0)
        pc = PortConfig(name=name, kind=kind, vm=name if kind is PortKind.VM else None, switch="s",
                        mac=mac if kind is PortKind.VM else None, vlan=vlan, interface=name)  # fmt: skip
        if name == "a":
            pc = pc.model_copy(update={
                "dhcp_guard": True, "router_guard": True, "extended_acls": ext,
                "acls": [AclEntry(action=AclAction.DENY, direction=AclDirection.OUTBOUND, remote_ip="10.0.0.66/32")],
            })  # fmt: skip
        elif name == "b":
            pc = pc.model_copy(update={"port_mirroring": PortMirroring.SOURCE, "ieee_priority_tag": True})
        elif name == "c":
            acl = AclEntry(action=AclAction.DENY, direction=AclDirection.INBOUND, remote_ip=c_denies)
            pc = pc.model_copy(update={"acls": [acl]})
        elif name == "m":
            pc = pc.model_copy(update={"port_mirroring": PortMirroring.DESTINATION})
        out.append(pc)
    return out


DEBUG = False
SWITCH = SwitchConfig(name="s", mac_aging_s=100, extensions=[ExtensionSetting(name="pyvswitch-firewall")])


def harness(on: bool, registry: Registry | None = None, switch: SwitchConfig = SWITCH) -> SwitchHarness:
    with flow_cache(on):
        return SwitchHarness([switch], ports(), registry or Registry.of(Firewall))


def frame(rng: random.Random, src_port: str, churn: bool = True) -> tuple[bytes, int]:
    """One random frame from ``src_port`` and the TCI it arrives with. Without churn, only conversations
    between known MACs, mostly IPv4 (what a switch sees most of the time)."""
    src = MACS[src_port]
    if churn and src_port == "u" and rng.random() < 0.3:
        src = f"02:00:00:00:01:{rng.randrange(6):02x}"  # hosts behind the uplink, some moving around
    elif churn and src_port == "a" and rng.random() < 0.05:
        src = "02:00:00:00:00:99"  # spoofed: the MAC guard drops it
    dst = rng.choice(
        [*MACS.values(), BROADCAST, "02:00:00:00:00:77", "02:00:00:00:01:01", "02:00:00:00:01:02"]
    )
    sip = IPS.get(src_port, "10.0.0.50")
    dip = rng.choice([*IPS.values(), "10.0.0.66", "10.0.0.77", "192.0.2.1"])
    sport, dport = rng.choice([1000, 1001, 53, 67, 68]), rng.choice([53, 80, 666, 1000, 1001])
    kind = rng.choices(
        ["udp", "tcp", "icmp", "arp", "ipv6", "frag", "options", "dhcp", "redirect", "other", "big", "runt"],
        weights=[30, 30, 10, 4, 4, 2, 2, 3, 2, 2, 1, 1] if churn else [30, 30, 10, 1, 1, 0, 0, 0, 0, 0, 0, 0],
    )[0]
    if kind == "udp":
        payload = ipv4(sip, dip, 17, udp(sport, dport, b"x" * rng.randrange(30)))
    elif kind == "tcp":
        payload = ipv4(sip, dip, 6, tcp(sport, dport, rng.choice(TCP_FLAGS)))
    elif kind == "icmp":
        payload = ipv4(
            sip,
            dip,
            1,
            icmp(rng.choice([8, 0, 3]), 0, struct.pack(">HH", rng.randrange(3), rng.randrange(2))),
        )
    elif kind == "arp":
        arp = struct.pack(">HHBBH", 1, 0x0800, 6, 4, 1) + bytes.fromhex(src.replace(":", "")) + bytes(18)
        return eth(dst, src, arp, ethertype=0x0806), UNTAGGED
    elif kind == "ipv6":
        payload = ipv6("fe80::1", "fe80::2", 17, udp(sport, dport))
        return eth(dst, src, payload, ethertype=0x86DD), UNTAGGED
    elif kind == "frag":
        payload = ipv4(sip, dip, 17, udp(sport, dport), frag_offset=rng.choice([0, 8]), more_fragments=True)
    elif kind == "options":
        payload = ipv4(sip, dip, 17, udp(sport, dport), options=b"\x01\x01\x01\x00")
    elif kind == "dhcp":
        payload = ipv4(sip, "255.255.255.255", 17, udp(67, 68, bytes(20)))
    elif kind == "redirect":
        payload = ipv4(sip, dip, 1, icmp(5, 1, bytes(4)))
    elif kind == "other":
        return eth(dst, src, bytes(30), ethertype=0x88B5), UNTAGGED
    elif kind == "big":
        payload = ipv4(sip, dip, 17, udp(sport, dport, bytes(1600)))
    else:
        return bytes.fromhex(dst.replace(":", ""))[:6] + b"\x00" * 4, UNTAGGED
    data = eth(dst, src, payload)
    tci = UNTAGGED
    if src_port == "t":
        tci = (rng.randrange(8) << 13) | rng.choice([10, 20, 30])
    elif src_port == "b" and rng.random() < 0.3:
        tci = rng.randrange(8) << 13  # a priority tag (VID 0), kept by ieee_priority_tag
    return data, tci


def observe(h: SwitchHarness) -> dict[str, Any]:
    """What a user can see of the switch, less what only the cache changes (its own counters, how often the
    extension stack was called)."""
    c: Any = h.engine.counters()["switches"]["s"]
    for p in c["ports"].values():
        p.pop("flow_cache", None)
    for e in c["extensions"]:
        for k in ("calls", "overruns", "preempted", "benched_until"):
            e.pop(k, None)
    c["fdb"].pop(
        "not_learned"
    )  # refused learning attempts: counted per run of one source, which the cache cuts
    for limits in c["fdb"].get("mac_limits", {}).values():
        limits.pop("not_learned", None)
    fw = h.engine.switches["s"].ext
    assert fw is not None
    firewall = next(s.instance for s in fw.slots if s.name == "pyvswitch-firewall")
    assert isinstance(firewall, Firewall)
    c["firewall_state_a"] = firewall.save_state("a")
    c["fdb_entries"] = sorted((k, e.port) for k, e in h.engine.switches["s"].fdb.learned.items())
    return c


def drive(hs: Sequence[SwitchHarness], seed: int, steps: int, churn: bool = True) -> None:
    """Batches of frames from a pool of conversations (as real traffic repeats itself), mixed with clock jumps
    and reconfigurations; after each, every port sent the same on both switches."""
    rng = random.Random(seed)
    senders = ["a", "a", "a", "b", "c", "d", "t", "u", "u"]
    pool = []
    for _ in range(60):
        p = rng.choice(senders)
        pool.append((p, rng.randrange(1 << 30)))  # a conversation: a few kinds of frames from its seed
    for step in range(steps):
        r = rng.random()
        if r < 0.05:
            seconds = rng.choice([1.0, 31.0, 101.0] if churn else [1.0])
            for h in hs:
                h.advance(seconds)
            continue
        if r < 0.07 and churn:
            deny = rng.choice(["10.0.0.77/32", "10.0.0.1/32", "192.0.2.0/24"])
            for h in hs:
                h.configure([SWITCH], ports(deny))
            continue
        batch = []
        for _ in range(rng.randrange(1, 40)):
            p, conv = rng.choice(pool)
            # The same conversation gives frames of a few kinds and headers (its seed), TTL and IP id aside.
            frame_rng = random.Random(conv + rng.randrange(3))
            data, tci = frame(frame_rng, p, churn)
            data = bytearray(data)
            if len(data) >= 34 and data[12:14] == b"\x08\x00":
                data[22] = 64 - rng.randrange(3)  # TTL
                data[18:20] = rng.randbytes(2)  # IP identification
            batch.append((p, bytes(data), tci))
        for h in hs:
            for p, data, tci in batch:
                h.port_device(p).inject(data, tci=tci)
            while h.engine.run_once():
                pass
        outs = [{p: h.take(p) for p in MACS} for h in hs]
        for p in MACS:
            got, want = outs[0][p], outs[1][p]
            if p == "m":  # mirror copies from runs of hits and misses: the same frames, in order per flow
                got, want = sorted(got), sorted(want)
            if got != want and DEBUG:
                print("STEP", step, "port", p, "batch:")
                for q, d, tci in batch:
                    print("   in", q, tci, d[:14].hex(), d[14:40].hex())
                for name, lst in (("cached", got), ("plain", want)):
                    print(" ", name)
                    for f in lst:
                        print("     ", f[:14].hex(), f[14:40].hex())
            assert got == want, f"step {step}: port {p} sent differently with the flow cache"


@pytest.mark.parametrize("seed", range(6))
def test_the_flow_cache_changes_nothing_a_user_can_see(seed: int) -> None:
    cached, plain = harness(True), harness(False)
    assert cached.engine.switches["s"].ports[0] is not None
    assert all(p is None or p.flows is not None for p in cached.engine.switches["s"].ports)
    assert all(p is None or p.flows is None for p in plain.engine.switches["s"].ports)
    drive([cached, plain], seed, 300)
    assert observe(cached) == observe(plain)
    hits = sum(p["flow_cache"]["hits"] for p in cached.engine.counters()["switches"]["s"]["ports"].values())  # type: ignore[attr-defined]
    drive([cached, plain], seed, 300, churn=False)
    assert observe(cached) == observe(plain)
    flow = {n: p["flow_cache"] for n, p in cached.engine.counters()["switches"]["s"]["ports"].items()}  # type: ignore[attr-defined]
    assert sum(f["hits"] for f in flow.values()) > hits + 1000, flow  # the steady traffic was served by it


def udp_frame(ttl: int, ident: int, sport: int = 1000) -> bytes:
    data = bytearray(eth(MACS["c"], MACS["a"], ipv4(IPS["a"], IPS["c"], 17, udp(sport, 53, b"q"))))
    data[22] = ttl
    data[18:20] = ident.to_bytes(2, "big")
    return bytes(data)


def cache_of(h: SwitchHarness, port: str) -> dict[str, int]:
    return h.engine.counters()["switches"]["s"]["ports"][port]["flow_cache"]  # type: ignore[index,no-any-return]


def test_one_entry_per_flow_whatever_ttl_and_ip_id_and_hits_are_counted_in_the_elements() -> None:
    h = harness(True)
    h.send("a", udp_frame(64, 1))
    assert len(h.take("c")) == 1
    before = h.engine.switches["s"].ingress.packets
    for i in range(10):
        h.send("a", udp_frame(64 - i, 100 + i))
        assert len(h.take("c")) == 1
    fc = cache_of(h, "a")
    assert fc["installs"] == 1 and fc["hits"] == 10, fc
    assert h.engine.switches["s"].ingress.packets == before + 10  # hits count where the chain would have
    h.send("a", udp_frame(64, 1, sport=1001))  # another flow: another entry
    assert cache_of(h, "a")["installs"] == 2


def test_a_mac_move_empties_the_cache_and_frames_follow_the_mac() -> None:
    h = harness(True)
    # c may send from other MACs (a VM that bridges), so the host behind the uplink can move behind c.
    h.configure([SWITCH], [p.model_copy(update={"mac_spoofing": p.name == "c"}) for p in ports()])
    u_host = "02:00:00:00:01:05"
    to_host = eth(u_host, MACS["a"], ipv4(IPS["a"], "10.0.0.9", 17, udp(1000, 53)))
    h.send("u", eth(BROADCAST, u_host, ipv4("10.0.0.9", IPS["a"], 17, udp(53, 1000))))  # learned behind u
    for p in MACS:
        h.take(p)
    for _ in range(3):
        h.send("a", to_host)
        assert h.take("u") and not h.take("c")
    h.send("c", eth(BROADCAST, u_host, ipv4("10.0.0.9", IPS["c"], 17, udp(53, 1000))))  # the host moved to c
    for p in MACS:
        h.take(p)
    h.send("a", to_host)
    assert h.take("c") and not h.take("u")
    assert cache_of(h, "a")["invalidations"] >= 1


def test_an_idled_out_connection_is_not_kept_alive_by_the_cache() -> None:
    """The reply to a's UDP flow is admitted while the flow lives; after its idle timeout (30 s) with no packet
    from a, the firewall refuses it again, though the reply was a cache hit before."""
    h = harness(True)
    out = eth(MACS["c"], MACS["a"], ipv4(IPS["a"], IPS["c"], 17, udp(1000, 53)))
    back = eth(MACS["a"], MACS["c"], ipv4(IPS["c"], IPS["a"], 17, udp(53, 1000)))
    h.send("a", out)
    h.take("c")
    for _ in range(3):
        h.send("c", back)
        assert len(h.take("a")) == 1
    assert cache_of(h, "c")["hits"] >= 2
    h.advance(31)
    h.send("c", back)
    assert h.take("a") == []


class Counting(CaptureExtension):
    name = "counting"
    seen = 0

    def capture(self, ctx: Context, frames: Sequence[CapturedFrame], direction: Direction, port: int) -> None:
        if direction is Direction.INGRESS:
            Counting.seen += len(frames)


class Opaque(FilterExtension):
    """A filter that does not declare itself flow-cacheable."""

    name = "opaque"
    seen = 0

    def ingress(self, ctx: Context, pkts: Sequence[Packet], gate: Gate) -> None:
        Opaque.seen += len(pkts)


@pytest.mark.parametrize("ext", [Counting, Opaque])
def test_an_extension_that_must_see_every_packet_keeps_the_cache_off(
    ext: type[Counting] | type[Opaque],
) -> None:
    sw = SwitchConfig(name="s", extensions=[ExtensionSetting(name=ext.name, enabled=True)])
    h = harness(True, Registry.of(ext), sw)
    ext.seen = 0
    for i in range(5):
        h.send("a", udp_frame(64, i))
    assert ext.seen == 5
    assert cache_of(h, "a") is None
