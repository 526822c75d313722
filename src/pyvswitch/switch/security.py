"""Port security (Hyper-V Set-VMNetworkAdapter, hyperv-networking.md §1.6, PS-01..07): per-port guards compiled
from a PortConfig into the elements the switch runs on frames *received from* that port.

``compile_security`` returns None for a port with no policy, so such a port pays nothing; otherwise a
``PortSecurity`` holding exactly the elements its settings ask for:

- before forwarding (after ingress classification and the extensions' ingress, as §1.9 orders the built-in
  ingress policies): ``DhcpGuard``, ``RouterGuard``, then ``MacGuard`` (the standard MAC policy that
  Hyper-V enforces at the forwarding stage);
- after forwarding: ``StormLimit``, which must know which unicast frames were unknown, i.e. flooded.

Which settings take effect where:

- ``mac_spoofing`` off (PS-01) guards VM and host ports only: they are the ports whose MAC the switch knows
  from configuration. Behind an uplink, a bound interface or a TAP live MACs the switch learns, so there is
  nothing to compare with. ``allow_teaming`` (PS-03, VM ports only) adds the MACs of the same VM's other
  adapters that also allow teaming: guest team members send with each other's MAC; the team is the set of
  adapters marked for it, as Hyper-V asks for the setting on each member. With ``mac_spoofing`` on (PS-02)
  any unicast source passes and is learned (ingress learns every admitted source).
- A guarded port also learns only the MACs it may use, so a spoofed frame, dropped here after ingress, never
  moves or adds a MAC table entry (``PortSecurity.learn`` replaces the switch's learning for that port).
- ``dhcp_guard`` (PS-04), ``router_guard`` (PS-05) and ``storm_limit`` (PS-07) apply on every port kind
  where they are set. Hyper-V has them on VM NICs only; here a guest attached through a bound interface or
  a TAP (QEMU) needs them as much, and on an uplink they are an explicit opt-in. All default off.
- ``ieee_priority_tag`` (PS-06): off (the default) means the 802.1p priority a frame arrived with is not
  trusted: the frame leaves with PCP 0 (and no priority tag). On means the priority is
  kept: a frame that leaves tagged carries the received PCP, and one that would leave untagged towards an
  uplink, bound interface or TAP (a wire, where priority matters) leaves priority-tagged (VID 0). VM ports
  and host vNICs still get such frames untagged: guests expect plain frames on untagged ports.

Drop reasons: ``dhcp-guard``, ``router-guard``, ``mac-spoofing`` (source MAC), ``arp-spoofing`` (an ARP
sender MAC not allowed, §1.6's ARP-poisoning protection; NDP link-layer options are not checked),
``storm-limit``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Protocol

from pyvswitch.clock import Clock
from pyvswitch.config.schema import HostConfig, PortConfig, PortKind
from pyvswitch.drops import DropReason
from pyvswitch.observe.trace import explain
from pyvswitch.packet.classify import IPPROTO_ICMP, IPPROTO_UDP, is_dhcp_server_message, is_router_message
from pyvswitch.packet.frame import ETH_P_ARP, UNTAGGED, Buffer, Packet
from pyvswitch.packet.mac import format_mac, parse_mac
from pyvswitch.pipeline.element import Element
from pyvswitch.switch.fdb import MacTable
from pyvswitch.switch.wire import WIRE_KINDS

Learn = Callable[[int, int, int, float], None]
Outs = dict[int, tuple[list[Packet], list[int]]]

# Kinds of port whose MAC the switch knows from configuration: MAC spoofing is checked there.
KNOWN_MAC_KINDS = frozenset({PortKind.VM, PortKind.HOST})
# Kinds of port with a wire behind them: a kept priority goes there as a priority tag when untagged.
# The storm limit's bucket holds this many seconds of its rate (at least one token): a storm limit is a
# rate, not a count, so no sliding second admits more than (1 + BURST_S) times the limit; and 50 ms is far
# more than the forwarding loop takes between two batches under load, so no refill is capped away.
BURST_S = 0.05
PCP_MASK = 0xE000
ARP_SHA = slice(22, 28)  # sender hardware address: 14 (Ethernet) + 8 (htype, ptype, hlen, plen, oper)
_ARP_HI, _ARP_LO = ETH_P_ARP >> 8, ETH_P_ARP & 0xFF


class SecurityDrop(DropReason):
    """Why port security drops a frame received from its port (``show drops``, per port)."""

    DHCP_GUARD = "dhcp-guard", "a DHCP server message from a port not allowed to be a DHCP server (PS-02)"
    ROUTER_GUARD = (
        "router-guard",
        "a router advertisement or redirect from a port not allowed to route (PS-04)",
    )
    MAC_SPOOFING = "mac-spoofing", "a source MAC the port may not use (PS-01)"
    ARP_SPOOFING = "arp-spoofing", "an ARP sender address the port may not use (PS-01)"
    STORM_LIMIT = "storm-limit", "over the port's broadcast/multicast/unknown-unicast rate (PS-05)"


class ForwardingTables(Protocol):
    """What the storm limit reads of its switch to tell unknown unicast (``Switch`` has it)."""

    fdb: MacTable
    fid: dict[int, int]


class PortLike(Protocol):
    kind: PortKind


class DhcpGuard(Element):
    """PS-04: drops DHCP server messages (UDP from port 67, DHCPv6 from 547) sent from the port.

    Drops: dhcp-guard.
    """

    __slots__ = ()

    def __init__(self) -> None:
        super().__init__("dhcp-guard")

    def process(self, batch: list[Packet]) -> list[Packet]:
        self.packets += len(batch)
        out = [
            pkt
            for pkt in batch
            if _ipv4_other_than(pkt.data, IPPROTO_UDP) or not is_dhcp_server_message(pkt.data)
        ]
        if len(out) != len(batch):
            self.drop(SecurityDrop.DHCP_GUARD, len(batch) - len(out))
            for pkt in batch:
                explain(pkt, "DhcpGuard On: a DHCP server message (UDP from port 67 or 547) from a VM port")
        return out


class RouterGuard(Element):
    """PS-05: drops ICMPv4 redirects (5) and router advertisements (9), ICMPv6 RAs (134) and redirects (137).

    Drops: router-guard.
    """

    __slots__ = ()

    def __init__(self) -> None:
        super().__init__("router-guard")

    def process(self, batch: list[Packet]) -> list[Packet]:
        self.packets += len(batch)
        out = [
            pkt
            for pkt in batch
            if _ipv4_other_than(pkt.data, IPPROTO_ICMP) or not is_router_message(pkt.data)
        ]
        if len(out) != len(batch):
            self.drop(SecurityDrop.ROUTER_GUARD, len(batch) - len(out))
            for pkt in batch:
                explain(pkt, "RouterGuard On: a router advertisement or redirect (ICMP 9/5, ICMPv6 134/137)")
        return out


class MacGuard(Element):
    """PS-01/PS-03: only the port's own MAC (and, with guest teaming, its team's) may be a frame's source
    or an ARP sender.

    Config: ``allowed``, the MACs as 48-bit ints. Drops: mac-spoofing, arp-spoofing.
    """

    __slots__ = ("allowed",)

    def __init__(self, allowed: frozenset[int]) -> None:
        super().__init__("mac-guard")
        self.allowed = allowed

    def process(self, batch: list[Packet]) -> list[Packet]:
        self.packets += len(batch)
        allowed = self.allowed
        # The default policy of every VM port, so its common case is one comprehension: an allowed source
        # and not ARP (ingress left frames untagged: the EtherType is at 12, its low byte tells ARP from IP).
        out = [
            pkt
            for pkt in batch
            if pkt.src in allowed and (pkt.data[13] != _ARP_LO or pkt.data[12] != _ARP_HI)
        ]
        if len(out) == len(batch):
            return out
        out = []
        for pkt in batch:
            if pkt.src not in allowed:
                self.drop(SecurityDrop.MAC_SPOOFING)
                if pkt.trace is not None:
                    mine = ", ".join(format_mac(m) for m in sorted(allowed))
                    explain(
                        pkt,
                        f"MacAddressSpoofing Off: source {format_mac(pkt.src)} is not the port's ({mine})",
                    )
                continue
            data = pkt.data
            # An ARP frame with a sender address in it must name an allowed MAC (a shorter one makes no claim).
            if (
                data[12] == _ARP_HI
                and data[13] == _ARP_LO
                and len(data) >= ARP_SHA.stop
                and int.from_bytes(data[ARP_SHA], "big") not in allowed
            ):
                self.drop(SecurityDrop.ARP_SPOOFING)
                if pkt.trace is not None:
                    sender = format_mac(int.from_bytes(data[ARP_SHA], "big"))
                    explain(pkt, f"MacAddressSpoofing Off: ARP sender {sender} is not the port's")
                continue
            out.append(pkt)
        return out


class StormLimit(Element):
    """PS-07: broadcast, multicast and unknown-unicast frames from the port, at most ``rate_pps`` a second.

    A token bucket on the switch's clock (a FakeClock drives it in tests), refilled once per batch, holding
    ``BURST_S`` seconds of tokens. Runs after forwarding: unknown unicast is a unicast frame whose
    destination the switch's MAC table does not know (the forwarder's own test, made on the same table in
    the same batch), and frames the forwarder dropped take no tokens. Known unicast is never limited.

    Drops: storm-limit.
    """

    __slots__ = ("clock", "depth", "last", "rate_pps", "tables", "tokens")

    def __init__(self, rate_pps: int, clock: Clock, tables: ForwardingTables) -> None:
        super().__init__("storm-limit")
        self.rate_pps = float(rate_pps)
        self.depth = max(1.0, self.rate_pps * BURST_S)
        self.clock = clock
        self.tables = tables
        self.tokens = self.depth
        self.last = clock.now()

    def process(self, batch: list[Packet]) -> list[Packet]:
        self.packets += len(batch)
        now = self.clock.now()
        elapsed = now - self.last
        tokens = self.tokens
        if elapsed > 0:
            tokens = min(self.depth, tokens + elapsed * self.rate_pps)
            self.last = now
        lookup = self.tables.fdb.lookup
        fid = self.tables.fid
        out: list[Packet] = []
        append = out.append
        # A batch is mostly one conversation: consecutive frames to the same destination share one lookup.
        last_key: tuple[int, int] | None = None
        last_unknown = False
        for pkt in batch:
            dst = pkt.dst
            if dst >> 40 & 1:
                flooded = True
            else:
                key = (dst, pkt.vlan)
                if key != last_key:
                    last_key = key
                    last_unknown = lookup(fid.get(key[1], key[1]), dst) is None
                flooded = last_unknown
            if flooded:
                if tokens < 1.0:
                    self.drop(SecurityDrop.STORM_LIMIT)
                    continue
                tokens -= 1.0
            append(pkt)
        self.tokens = tokens
        return out


def _ipv4_other_than(data: Buffer, proto: int) -> bool:
    """An untagged IPv4 frame of another protocol than ``proto``: the common case, decided without parsing
    (the protocol byte sits at a fixed offset whatever the options); anything else goes to the classifier."""
    return data[12] == 0x08 and data[13] == 0x00 and len(data) > 23 and data[23] != proto


class PortSecurity:
    """One port's compiled policy: the guard elements around forwarding, its learning, priority trust."""

    __slots__ = ("after", "before", "keep_priority", "learn")

    def __init__(
        self,
        before: tuple[Element, ...],
        after: tuple[Element, ...],
        keep_priority: bool,
        learn: Learn | None,
    ) -> None:
        self.before = before
        self.after = after
        self.keep_priority = keep_priority
        # Replaces the switch's learning for this port when set (a MAC-guarded port learns allowed MACs only).
        self.learn = learn

    @property
    def elements(self) -> tuple[Element, ...]:
        return self.before + self.after

    def before_forward(self, batch: list[Packet]) -> list[Packet]:
        for element in self.before:
            if not batch:
                break
            batch = element.process(batch)
        return batch

    def after_forward(self, batch: list[Packet]) -> list[Packet]:
        for element in self.after:
            if not batch:
                break
            batch = element.process(batch)
        return batch

    def mark_priority(self, outs: Outs, ports: Sequence[PortLike | None]) -> None:
        """PS-06 on: put the PCP each packet arrived with into the TCI it leaves with (see the module doc)."""
        for d, (pkts, tcis) in outs.items():
            dport = ports[d]
            wire = dport is not None and dport.kind in WIRE_KINDS
            for i, pkt in enumerate(pkts):
                tci = pkt.tci
                if tci == UNTAGGED or not tci & PCP_MASK:
                    continue
                out = tcis[i]
                if out != UNTAGGED:
                    tcis[i] = out | (tci & PCP_MASK)
                elif wire:
                    tcis[i] = tci & PCP_MASK

    def drops(self) -> Counter[str]:
        """Drops by reason over the elements (safe to call from another thread than the forwarding one)."""
        total: Counter[str] = Counter()
        for element in self.elements:
            total.update(dict(element.drops))  # dict(): one C-level copy, immune to a reason added meanwhile
        return total

    def counters(self) -> dict[str, object]:
        return {element.name: element.counters() for element in self.elements}


def team_macs(cfg: HostConfig) -> dict[str, frozenset[int]]:
    """Port name -> the other MACs it may send with under guest teaming (PS-03): those of the same VM's other
    adapters that allow teaming too. Adapters not connected to any switch count: the guest still has them."""
    teams: dict[str, list[PortConfig]] = {}
    for p in cfg.ports:
        if p.kind is PortKind.VM and p.allow_teaming and p.vm and p.mac:
            teams.setdefault(p.vm, []).append(p)
    out: dict[str, frozenset[int]] = {}
    for members in teams.values():
        for p in members:
            out[p.name] = frozenset(parse_mac(q.mac) for q in members if q is not p and q.mac)
    return out


def compile_security(
    pc: PortConfig,
    *,
    mac: int | None,
    team: Iterable[int],
    clock: Clock,
    tables: ForwardingTables,
    old: PortSecurity | None = None,
    retired: Counter[str] | None = None,
) -> PortSecurity | None:
    """The policy ``pc`` asks for (None: nothing to do).

    ``old`` is the port's previous policy: elements that stay keep their counters, and an unchanged storm
    limit its bucket, across reconfiguration; the drops of elements that go are added to ``retired`` (the
    port's own drop counter), so turning a guard off does not make its drops disappear from the totals.
    """
    before: list[Element] = []
    after: list[Element] = []
    learn: Learn | None = None
    if pc.dhcp_guard:
        before.append(DhcpGuard())
    if pc.router_guard:
        before.append(RouterGuard())
    if not pc.mac_spoofing and pc.kind in KNOWN_MAC_KINDS and mac is not None:
        allowed = frozenset({mac, *(team if pc.allow_teaming else ())})
        before.append(MacGuard(allowed))
        learn = _learn_only(allowed, tables.fdb.learn)
    if pc.storm_limit:
        after.append(StormLimit(pc.storm_limit, clock, tables))
    if old is not None:
        _carry_over(old.elements, [*before, *after], retired)
    if not before and not after and not pc.ieee_priority_tag:
        return None
    return PortSecurity(tuple(before), tuple(after), pc.ieee_priority_tag, learn)


def _learn_only(allowed: frozenset[int], learn: Learn) -> Learn:
    def guarded_learn(fid: int, mac: int, port: int, now: float) -> None:
        if mac in allowed:
            learn(fid, mac, port, now)

    return guarded_learn


def _carry_over(old: Iterable[Element], new: Sequence[Element], retired: Counter[str] | None) -> None:
    previous: Mapping[str, Element] = {e.name: e for e in old}
    staying = {e.name for e in new}
    if retired is not None:
        for name, element in previous.items():
            if name not in staying:
                retired.update(element.drops)
    for element in new:
        before = previous.get(element.name)
        if before is None:
            continue
        element.packets = before.packets
        element.drops = before.drops
        if (
            isinstance(element, StormLimit)
            and isinstance(before, StormLimit)
            and before.rate_pps == element.rate_pps
        ):
            element.tokens, element.last = before.tokens, before.last
