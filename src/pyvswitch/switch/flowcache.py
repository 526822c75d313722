"""The flow cache: in front of a port's chain, what the chain did to a packet, replayed for the next packets of
its flow without running the chain (issue 16 item 2; OVS's megaflow cache, in Python's terms).

Key. What the chain can read, and no more, so that one entry serves every packet the chain could not tell apart:
the received 802.1Q TCI and the Ethernet header always; the IPv4 fields a policy matches (TOS, protocol,
addresses, TCP/UDP ports, the TCP flags the firewall's tracking reads, the ICMP type, code and identifier) only
when the port's chain holds a policy that looks past Ethernet (a port ACL, an extension, a DHCP or router guard).
So a bare port caches per MAC pair and VLAN, whatever the traffic; a policed port per 5-tuple. The TTL, IP
identification, checksum and lengths are never in the key. Frames whose decision could hang on anything else
take the whole chain every time: ARP (the MAC guard reads its payload), IPv6 (extension headers), IPv4 with
options or fragments, inline 802.1Q tags, oversize frames and virtio-net headers the ingress would refuse.

Entry. Where the packet went (destination ports and the TCI on each: VLAN, trusted priority, mirrors
included), what ingress set on it, which elements counted it, and the tokens flow-cacheable extensions handed
over for the per-packet work a replay must still do (ext/api.py, API 1.2). A hit learns its source as ingress
would (the MAC table's refresh and MAC limits behave the same), counts in the same elements, and runs the
tokens; if a token says its decision expired, the packet takes the chain.

What is never cached: drops (they are counted where they happen, by reason), and any packet about which
something decided what a replay would not reproduce (a drop towards one of several destinations, an
extension's failure, bypass or injection, changed bytes): those flows stay on the chain until they behave.
Ports whose chain holds per-packet state the cache cannot replay (a storm limit's token bucket, an ACL meter,
a capture extension, an extension that is not flow-cacheable) have no cache.

Invalidation. The chain is recompiled, with a new empty cache, on every configuration change; the MAC table's
generation (switch/fdb.py) moves on every entry added, moved or removed, and the cache is emptied at the next
batch when it has. Traced ports and what-if traces never use it (they run the chain, observe/trace.py).
Order is kept: a batch is cut into runs of hits and misses and each run's output is appended in order, so a
flow whose packets both hit and miss (a TCP segment with new flags) is not reordered.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Sequence
from typing import Protocol

from pyvswitch.packet.frame import ETH_HLEN, UNTAGGED, FlowNote, FlowToken, Packet
from pyvswitch.packet.vnet import EMPTY_VNET_HDR, vnet_problem
from pyvswitch.pipeline.chain import Chain, Outs
from pyvswitch.pipeline.element import Element
from pyvswitch.switch.fdb import MacTable
from pyvswitch.switch.security import Learn

MAX_ENTRIES = 16_384  # per port; full, it starts again empty (a flood of new flows costs misses, not memory)

# Ethernet + IPv4 without options, to the L4 ports: MACs, EtherType, version/IHL, TOS, (length, id), flags and
# fragment offset, (TTL), protocol, (checksum), addresses, the first 4 bytes of L4. Parenthesised: skipped.
_V4 = struct.Struct(">12sHBB4xHxB2xIIHH")
_V4_LEN = _V4.size  # 38
_TCP_FLAGS = 47  # ETH_HLEN + 20 + 13
_ICMP_ID = 39  # ETH_HLEN + 20 + 5: the identifier's second byte
_MAC_HDR = struct.Struct(">HIHI")  # destination and source MAC, as ingress reads them
# EtherTypes whose frames always take the chain: 802.1Q/802.1ad inline, ARP, IPv6.
_NEVER = frozenset({0x8100, 0x88A8, 0x0806, 0x86DD})
_IPV4 = 0x0800


class Tables(Protocol):
    fid: dict[int, int]
    fdb: MacTable


class PortView(Protocol):
    index: int
    max_frame: int
    learn: Learn | None
    ingress_vlans: dict[int, int]


class FlowEntry:
    """One flow's replayed outcome."""

    __slots__ = ("counts", "dst", "outs", "sink", "src", "tokens", "vlan")

    def __init__(
        self,
        outs: tuple[tuple[int, int], ...],
        tokens: tuple[FlowToken, ...],
        counts: tuple[Element, ...],
        pkt: Packet,
    ) -> None:
        self.outs = outs  # (destination port index, TCI there)
        self.sink = outs[0] if len(outs) == 1 else None  # interned by the cache: compared by identity
        self.tokens = tokens
        self.counts = counts  # elements whose packet counters the chain moved for it
        self.vlan = pkt.vlan
        self.src = pkt.src
        self.dst = pkt.dst


def key_function(l4: bool, max_frame: int) -> Callable[[Packet], object | None]:
    """The key of a packet received on a port with ``max_frame``, or None if it must take the chain: L2 for a
    chain that reads nothing past Ethernet, else with the IPv4 fields a policy matches (see the module doc).
    Frames the ingress would refuse are never keyed, so the chain counts their drops."""

    unpack = _V4.unpack_from

    def refused(pkt: Packet, n: int) -> bool:
        """What ingress would refuse (oversize, a bad virtio-net header) takes the chain, to be counted there."""
        vnet = pkt.vnet
        if vnet is None or vnet == EMPTY_VNET_HDR:
            return n > max_frame
        return vnet_problem(vnet, n) is not None or (n > max_frame and not vnet[1])  # GSO may be larger

    def l2_key(pkt: Packet) -> object | None:
        data = pkt.data
        n = len(data)
        if n < ETH_HLEN or ((data[12] << 8) | data[13]) in _NEVER:
            return None
        if (n > max_frame or pkt.vnet is not None) and refused(pkt, n):
            return None
        return (pkt.tci, bytes(data[:ETH_HLEN]))

    def l4_key(pkt: Packet) -> object | None:
        data = pkt.data
        n = len(data)
        if (n > max_frame or pkt.vnet is not None) and refused(pkt, n):
            return None
        if n >= _V4_LEN:
            f = unpack(data)
            etype = f[1]
            if etype == _IPV4:
                if f[2] != 0x45 or f[4] & 0x3FFF:
                    return None  # options, or a fragment (only the first carries ports)
                proto = f[5]
                if proto == 6:
                    return (pkt.tci, f, data[_TCP_FLAGS]) if n > _TCP_FLAGS else None
                if proto == 17:
                    return (pkt.tci, f)
                if proto == 1:
                    # type and code (in f's "source port"), identifier; not the checksum (f's "destination port").
                    # The identifier is past _V4: a 38- or 39-byte ICMP frame (a TAP guest need not pad) takes the
                    # chain (issue 11: it raised IndexError and the batch was dropped as internal-error).
                    return (pkt.tci, f[:9], data[38], data[39]) if n > _ICMP_ID else None
                return (pkt.tci, f[:8])
        elif n >= ETH_HLEN:
            etype = (data[12] << 8) | data[13]
            if etype == _IPV4:
                return None  # truncated
        else:
            return None
        if etype in _NEVER:
            return None
        return (pkt.tci, bytes(data[:ETH_HLEN]))  # neither IP nor ARP: policies see it as non-IP

    return l4_key if l4 else l2_key


class FlowCache:
    """One port's cache in front of its chain. ``run`` replaces ``chain.run`` for that port."""

    __slots__ = (
        "chain",
        "counts",
        "entries",
        "generation",
        "hits",
        "installs",
        "interned",
        "invalidations",
        "key",
        "misses",
        "now",
        "pending",
        "port",
        "sends_to",
        "sinks",
        "tables",
    )

    def __init__(
        self,
        chain: Chain,
        port: PortView,
        tables: Tables,
        now: Callable[[], float],
        *,
        l4: bool,
        counts: tuple[Element, ...],
        sends_to: Callable[[int], tuple[Element, ...]],
        pending: Callable[[], bool],
    ) -> None:
        self.chain = chain
        self.port = port
        self.tables = tables
        self.now = now
        self.key = key_function(l4, port.max_frame)
        # Interned, so that the hot loop compares and groups by identity: single destinations, counted elements.
        self.sinks: dict[tuple[int, int], tuple[int, int]] = {}
        self.interned: dict[tuple[Element, ...], tuple[Element, ...]] = {}
        self.counts = counts  # the chain's batch steps' elements: every forwarded packet passed them all
        self.sends_to = (
            sends_to  # destination index -> elements counting what is sent there (its inbound ACL)
        )
        self.pending = pending  # extensions have frames waiting to be injected: the chain must run
        self.entries: dict[object, FlowEntry] = {}
        self.generation = tables.fdb.generation
        self.hits = 0
        self.misses = 0
        self.installs = 0
        self.invalidations = 0

    def carry_over(self, old: FlowCache) -> None:
        """Keep the counters of the cache this one replaces (the entries are not kept: the chain changed)."""
        self.hits, self.misses, self.installs = old.hits, old.misses, old.installs
        self.invalidations = old.invalidations + (1 if old.entries else 0)

    def counters(self) -> dict[str, int]:
        return {
            "entries": len(self.entries),
            "hits": self.hits,
            "misses": self.misses,
            "installs": self.installs,
            "invalidations": self.invalidations,
        }

    def run(self, batch: list[Packet]) -> Outs:
        tables = self.tables
        fdb = tables.fdb
        entries = self.entries
        if fdb.generation != self.generation:
            if entries:
                entries.clear()
                self.invalidations += 1
            self.generation = fdb.generation
        keys = [*map(self.key, batch)]
        found = [*map(entries.get, keys)]  # a None key is never in the cache
        if None in found and (
            self.pending()
            or not all(self._learns_nothing(p) for p, e in zip(batch, found, strict=True) if e is None)
        ):
            # The chain runs the whole batch, as it would without the cache: it learns every source before it
            # forwards any frame, and a miss here would teach the table something a hit before it must know.
            outs: Outs = {}
            self._miss(batch, keys, outs)
            return outs
        return self._replay(batch, keys, found)

    def _learns_nothing(self, pkt: Packet) -> bool:
        """Whether the ingress would leave the MAC table's answers as they are for this packet (its source is
        known on this port already, or it will not be learned): then a hit before it in the batch is decided
        as the chain would decide it. Conservative: False when unsure."""
        data = pkt.data
        if len(data) < ETH_HLEN:
            return True  # a runt: dropped before learning
        if data[12] == 0x81 and data[13] == 0:
            return False  # an inline tag: its VLAN is inside
        src = int.from_bytes(data[6:12], "big")
        fdb = self.tables.fdb
        if src >> 40 & 1 or src in fdb.static:
            return True  # a group address is dropped; a static MAC is never learned
        tci = pkt.tci
        vid = tci & 0xFFF if tci != UNTAGGED else 0
        vlan = self.port.ingress_vlans.get(vid if vid else UNTAGGED)
        if vlan is None:
            return True  # not admitted: dropped before learning
        entry = fdb.learned.get((self.tables.fid.get(vlan, vlan), src))
        return entry is not None and entry.port == self.port.index

    def _replay(self, batch: list[Packet], keys: list[object | None], found: list[FlowEntry | None]) -> Outs:
        """What the chain did, again, in order, for the packets that hit; the others (misses, and hits whose
        token says the decision expired) take the chain in runs, in their place."""
        fdb = self.tables.fdb
        fid = self.tables.fid
        port = self.port
        in_port = port.index
        learn = port.learn or fdb.learn
        now = self.now()
        outs: Outs = {}
        misses: list[Packet] = []
        miss_keys: list[object | None] = []
        # Hits to count, per (interned) tuple of elements they passed: runs of the same tuple, then the last run.
        counted: list[tuple[tuple[Element, ...], int]] = []
        last_counts: tuple[Element, ...] = ()
        run_hits = 0
        last_src = last_vlan = -1
        # Where the previous single-destination hit went, and that destination's lists: consecutive packets of a
        # batch mostly go where the one before went.
        last_sink: tuple[int, int] | None = None
        sink_pkts: list[Packet] = []
        sink_tcis: list[int] = []
        # The entry of the previous packet and how many packets of it followed: the same flow again at the same
        # ``now`` with no chain run in between, so its tokens still hold and are told the count once.
        last_entry: FlowEntry | None = None
        repeats = 0
        for pkt, key, entry in zip(batch, keys, found, strict=True):
            if entry is not None:
                if entry is last_entry:
                    repeats += 1
                else:
                    if repeats:
                        _credit(last_entry, repeats, now)
                        repeats = 0
                    tokens = entry.tokens
                    if tokens:
                        for token in tokens:
                            if not token.hit(now):
                                break
                        else:
                            tokens = ()
                        if tokens:  # one said its decision expired: the chain decides again
                            self.entries.pop(key, None)
                            entry = None
                    last_entry = entry
            if entry is None:
                if repeats:
                    _credit(last_entry, repeats, now)
                    repeats = 0
                last_entry = None
                misses.append(pkt)
                miss_keys.append(key)
                continue
            if misses:
                self._miss(misses, miss_keys, outs)
                misses, miss_keys = [], []
                last_src = -1
            vlan = pkt.vlan = entry.vlan
            src = pkt.src = entry.src
            pkt.dst = entry.dst
            pkt.in_port = in_port
            if src != last_src or vlan != last_vlan:
                # Only a refresh: a hit's source is in the table on this port (or refused by its MAC limit), or
                # the table's generation would have moved and emptied the cache.
                learn(fid.get(vlan, vlan), src, in_port, now)
                last_src = src
                last_vlan = vlan
            sink = entry.sink
            if sink is not None and sink is last_sink:
                sink_pkts.append(pkt)
                sink_tcis.append(sink[1])
            else:
                for d, tci in entry.outs:
                    slot = outs.get(d)
                    if slot is None:
                        slot = outs[d] = ([], [])
                    slot[0].append(pkt)
                    slot[1].append(tci)
                    if sink is not None:
                        last_sink, sink_pkts, sink_tcis = sink, slot[0], slot[1]
            if entry.counts is last_counts:
                run_hits += 1
            else:
                if run_hits:
                    counted.append((last_counts, run_hits))
                last_counts = entry.counts
                run_hits = 1
        if repeats:
            _credit(last_entry, repeats, now)
        if misses:
            self._miss(misses, miss_keys, outs)
        if run_hits:
            counted.append((last_counts, run_hits))
        for counts, n in counted:
            self.hits += n
            for element in counts:
                element.packets += n
        return outs

    def _miss(self, batch: list[Packet], keys: list[object | None], outs: Outs) -> None:
        """Run the chain over ``batch``, record the outcome of the packets it can replay, and append what it
        sends to ``outs`` (after what was there: order per destination holds)."""
        self.misses += len(batch)
        notes: list[tuple[Packet, object, FlowNote]] = []
        if len(self.entries) < MAX_ENTRIES:
            for pkt, key in zip(batch, keys, strict=True):
                if key is not None:
                    note = pkt.flow = FlowNote()
                    notes.append((pkt, key, note))
        fdb = self.tables.fdb
        run = self.chain.run(batch)
        if fdb.generation != self.generation:
            # The chain learned (or moved) a MAC: what was decided before may no longer hold; what it decided
            # now was decided on the table as it stands (a batch learns first, then forwards).
            if self.entries:
                self.entries.clear()
                self.invalidations += 1
            self.generation = fdb.generation
        if notes:
            self._install(notes, run)
        for d, (pkts, tcis) in run.items():
            slot = outs.get(d)
            if slot is None:
                outs[d] = (pkts, tcis)
            else:
                slot[0].extend(pkts)
                slot[1].extend(tcis)

    def _install(self, notes: list[tuple[Packet, object, FlowNote]], run: Outs) -> None:
        went: dict[int, list[tuple[int, int]]] = {}
        for d, (pkts, tcis) in run.items():
            for p, tci in zip(pkts, tcis, strict=True):
                went.setdefault(id(p), []).append((d, tci))
        entries = self.entries
        for pkt, key, note in notes:
            if pkt.flow is note:
                pkt.flow = None
                dests = went.get(id(pkt))
                if note.ok and dests and key not in entries:
                    counts = self.counts + tuple(e for d, _ in dests for e in self.sends_to(d))
                    counts = self.interned.setdefault(counts, counts)
                    if len(dests) == 1:
                        dests = [self.sinks.setdefault(dests[0], dests[0])]
                    entries[key] = FlowEntry(tuple(dests), tuple(note.tokens), counts, pkt)
                    self.installs += 1


def _credit(entry: FlowEntry | None, packets: int, now: float) -> None:
    """Tell an entry's tokens of ``packets`` more packets, already known to hold at ``now``."""
    if entry is not None:
        for token in entry.tokens:
            token.hit(now, packets)


def sends_to_acl_in(ports: Sequence[object | None]) -> Callable[[int], tuple[Element, ...]]:
    """Per destination, the elements counting what is sent there: its inbound port ACL, if any."""

    def elements(d: int) -> tuple[Element, ...]:
        port = ports[d] if 0 <= d < len(ports) else None
        acl = getattr(port, "acl_in", None)
        return (acl,) if isinstance(acl, Element) else ()

    return elements
