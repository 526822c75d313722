"""One virtual switch: its ports, MAC table and the compiled chain ingress -> forward -> egress.

The chain is built from configuration whenever it changes (nothing per packet asks "is this enabled?").
``Switch.process`` takes one batch received on one port and returns, per destination port, the packets to
send and the 802.1Q TCI to put on each. Forwarding follows Hyper-V (SW-07, SW-08):
- broadcast and multicast go to every port of the frame's VLAN except the one it came from;
- known unicast goes to the port the MAC table names;
- unknown unicast goes only to ports whose MAC addresses the switch cannot know from configuration
  (the uplink, bound interfaces and TAPs), never to VM ports or host vNICs, unless the switch is set to
  flood unknown unicast.
"""

from __future__ import annotations

import copy
import struct
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field

from pyvswitch.clock import Clock
from pyvswitch.config.schema import ExtendedAclEntry, PortConfig, PortKind, PortMirroring, SwitchConfig
from pyvswitch.datapath import link
from pyvswitch.datapath.device import Device
from pyvswitch.ext.acl import Action, ExtendedRule, port_range
from pyvswitch.ext.acl import Direction as AclDir
from pyvswitch.ext.acl import prefix as acl_prefix
from pyvswitch.ext.api import PortEvent, PortInfo
from pyvswitch.ext.registry import Registry
from pyvswitch.ext.stack import ExtensionStack
from pyvswitch.observe.trace import TraceRecord, drop_diff, summarize
from pyvswitch.packet.frame import ETH_HLEN, ETH_P_8021Q, UNTAGGED, VLAN_HLEN, Packet
from pyvswitch.packet.mac import parse_mac
from pyvswitch.packet.vnet import EMPTY_VNET_HDR, shift_vnet, vnet_problem
from pyvswitch.pipeline.element import Element
from pyvswitch.switch.fdb import MacTable
from pyvswitch.switch.portacl import PortAcl, compile_port_acls
from pyvswitch.switch.qos import EgressQos, HostPolicy, Pacer
from pyvswitch.switch.security import Learn, PortSecurity, compile_security
from pyvswitch.switch.vlan import compile_vlan, learning_domains

# Destination MAC (16+32 bits), source MAC (16+32 bits), EtherType — one unpack per frame.
ETH_HDR = struct.Struct(">HIHIH")
TCI = struct.Struct(">H")
# Kinds of port behind which unknown MACs may live; unknown unicast is sent to these only (SW-07).
OPEN_KINDS = frozenset({PortKind.UPLINK, PortKind.INTERFACE, PortKind.TAP})
TRACE_KEEP = 1000  # trace records kept per switch


@dataclass(slots=True)
class SwitchPort:
    """A port as the data path sees it: its device and compiled policy."""

    index: int
    name: str
    kind: PortKind
    device: Device
    ingress_vlans: dict[int, int]
    egress_vlans: dict[int, int]
    max_frame: int
    mac: int | None = None
    drops: Counter[str] = field(default_factory=Counter)
    # Port security (switch/security.py): None when the port has no policy, so such a port pays nothing.
    security: PortSecurity | None = None
    # How ingress learns this port's sources when not simply into the MAC table (a MAC-guarded port).
    learn: Learn | None = None
    # Port ACLs (switch/portacl.py), None per direction without entries.
    acl_out: PortAcl | None = None
    acl_in: PortAcl | None = None
    # QoS (switch/qos.py), set by the engine: the egress scheduler of a port with a line rate, the pacer of a
    # port with a MaximumBandwidth, the host policies of a management-OS port. None = nothing to pay.
    egress: EgressQos | None = None
    pacer: Pacer | None = None
    host_policy: HostPolicy | None = None


class Ingress(Element):
    """Validates a frame, strips an inline 802.1Q tag, assigns its VLAN and learns its source.

    Drops: runt, truncated-vlan-tag, oversize, vnet-csum-out-of-frame, vnet-bad-gso-type, vnet-bad-gso,
    source-multicast, reserved-multicast, vlan-not-admitted.
    """

    __slots__ = ("switch",)

    def __init__(self, switch: Switch) -> None:
        super().__init__("ingress")
        self.switch = switch

    def process(self, batch: list[Packet]) -> list[Packet]:
        self.packets += len(batch)
        sw = self.switch
        port = sw.current_port
        admit = port.ingress_vlans
        max_frame = port.max_frame
        in_port = port.index
        fid = sw.fid
        # A MAC-guarded port learns only the MACs it may use: a spoofed frame, dropped after ingress by its
        # guard, must not move a MAC table entry first (switch/security.py).
        learn = port.learn or sw.fdb.learn
        now = sw.clock.now()
        unpack = ETH_HDR.unpack_from
        out: list[Packet] = []
        append = out.append
        last_src = last_vlan = -1
        for pkt in batch:
            data = pkt.data
            n = len(data)
            if n < ETH_HLEN:
                self.drop("runt")
                continue
            dst_hi, dst_lo, src_hi, src_lo, etype = unpack(data)
            tci = pkt.tci
            vnet = pkt.vnet
            if etype == ETH_P_8021Q and tci == UNTAGGED:
                # Tag delivered inline (TAP, pcap): take it off so every frame inside the switch is untagged.
                if n < ETH_HLEN + VLAN_HLEN:
                    self.drop("truncated-vlan-tag")
                    continue
                tci = TCI.unpack_from(data, 14)[0]
                data = bytes(data[:12]) + bytes(data[16:])
                n -= VLAN_HLEN
                pkt.data = data
                pkt.tci = tci
                if vnet is not None:
                    vnet = pkt.vnet = shift_vnet(vnet, -VLAN_HLEN)
            if vnet is not None and vnet != EMPTY_VNET_HDR:
                problem = vnet_problem(vnet, n)
                if problem is not None:
                    self.drop(problem)
                    continue
                gso = vnet[1] != 0
            else:
                gso = False
            if n > max_frame and not gso:
                self.drop("oversize")
                continue
            if src_hi & 0x0100:
                self.drop("source-multicast")
                continue
            if dst_hi == 0x0180 and dst_lo & 0xFFFFFFF0 == 0xC2000000:
                # 01-80-C2-00-00-00..0F are link-local (802.1Q 8.6.3: STP, MAC Control/PFC, LACP, LLDP,
                # 802.1X): a bridge never forwards them, as the Linux bridge and OVS do not.
                self.drop("reserved-multicast")
                continue
            vid = tci & 0xFFF if tci != UNTAGGED else 0
            vlan = admit.get(vid if vid else UNTAGGED)
            if vlan is None:
                self.drop("vlan-not-admitted")
                continue
            src = (src_hi << 32) | src_lo
            pkt.vlan = vlan
            pkt.dst = (dst_hi << 32) | dst_lo
            pkt.src = src
            pkt.in_port = in_port
            # A batch is mostly one conversation: learning the same source twice in it changes nothing.
            if src != last_src or vlan != last_vlan:
                learn(fid.get(vlan, vlan), src, in_port, now)
                last_src = src
                last_vlan = vlan
            append(pkt)
        return out


class Forward(Element):
    """The built-in forwarder: sets each packet's destination ports from the MAC table (learning switch).

    Drops: hairpin (destination is the source port), unknown-unicast (no port may receive it),
    no-destination (a flood with nobody else in the VLAN).
    """

    __slots__ = ("switch",)

    def __init__(self, switch: Switch) -> None:
        super().__init__("forward")
        self.switch = switch

    def process(self, batch: list[Packet]) -> list[Packet]:
        self.packets += len(batch)
        sw = self.switch
        lookup = sw.fdb.lookup
        fid = sw.fid
        flood = sw.flood_targets
        unknown = sw.unknown_targets
        out: list[Packet] = []
        append = out.append
        # Consecutive frames to the same destination (the common case in a batch) reuse one lookup.
        last_key: tuple[int, int] | None = None
        last_port: int | None = None
        for pkt in batch:
            vlan = pkt.vlan
            in_port = pkt.in_port
            dst = pkt.dst
            if dst >> 40 & 1:
                targets = flood(vlan)
            else:
                key = (dst, vlan)
                if key == last_key:
                    port = last_port
                else:
                    port = last_port = lookup(fid.get(vlan, vlan), dst)
                    last_key = key
                if port is not None:
                    if port == in_port:
                        self.drop("hairpin")
                        continue
                    pkt.dsts = [port]
                    append(pkt)
                    continue
                targets = unknown(vlan)
            dsts = [p for p in targets if p != in_port]
            if not dsts:
                self.drop("unknown-unicast" if not pkt.dst >> 40 & 1 else "no-destination")
                continue
            pkt.dsts = dsts
            append(pkt)
        return out


class Switch:
    """A switch instance: ports by stable index, the MAC table, and the compiled chain."""

    def __init__(self, config: SwitchConfig, clock: Clock, registry: Registry | None = None) -> None:
        self.name = config.name
        self.config = config
        self.clock = clock
        self.registry = registry or Registry({})
        # The extension stack; ``ext_active`` is it when something is enabled, else None, so a switch
        # without extensions pays one attribute test per batch.
        self.ext: ExtensionStack | None = None
        self.ext_active: ExtensionStack | None = None
        self.port_configs: dict[str, PortConfig] = {}
        self.acl_in_ports: set[int] = set()  # ports with an inbound ACL: the only ones egress must check
        # Tracing: port index -> packets still to trace; the records, newest last.
        self.traced: dict[int, int] = {}
        self.trace_records: deque[TraceRecord] = deque(maxlen=TRACE_KEEP)
        self.mirror_from: set[int] = set()  # PortMirroring Source ports
        self.mirror_to: list[int] = []  # Destination ports; empty unless some port is a Source
        self.fdb = MacTable(config.mac_table_size, config.mac_aging_s)
        self.ports: list[SwitchPort | None] = []
        self.index_of: dict[str, int] = {}
        self.fid: dict[int, int] = {}
        self.ingress = Ingress(self)
        self.forward = Forward(self)
        self.egress_drops: Counter[str] = Counter()
        # SR-IOV (switch/iov.py): ingress port name -> names of the destinations the emulated NIC switch already
        # served for that port's frames (a broadcast from the wire reached the VFs, a VF's broadcast reached the
        # wire). Set by the engine; empty on a switch without VFs, which then pays one test per batch.
        self.nic_switched: dict[str, frozenset[str]] = {}
        self._flood_cache: dict[int, tuple[int, ...]] = {}
        self._unknown_cache: dict[int, tuple[int, ...]] = {}
        # The port whose batch is being processed (set by process; one forwarding thread, no locks).
        self.current_port: SwitchPort = None  # type: ignore[assignment]

    # ---- configuration (between batches) ----

    def plan_indices(self, ports: list[PortConfig]) -> dict[str, int]:
        """Stable port indices: kept ports keep theirs, new ones take the lowest free."""
        wanted = {p.name for p in ports}
        taken = {n: i for n, i in self.index_of.items() if n in wanted}
        used = set(taken.values())
        free = (i for i in range(len(self.ports) + len(ports)) if i not in used)
        return {p.name: taken[p.name] if p.name in taken else next(free) for p in ports}

    def prepare(self, config: SwitchConfig, ports: list[PortConfig]) -> tuple[ExtensionStack, list[PortInfo]]:
        """Build the extension stack ``config`` asks for and tell it what changes in the ports, before anything
        changes: an extension's Veto raises ExtensionVeto here. Returns the stack and the ports it was told
        were created (to tell them deleted if the change is abandoned)."""
        # Before build: it reuses (and updates) the slots of the current stack.
        was_on = {sl.name for sl in self.ext.slots if sl.enabled} if self.ext is not None else set()
        stack = ExtensionStack.build(config.name, self.registry, config.extensions, self.clock.now, self.ext)
        plan = self.plan_indices(ports)
        infos = {pc.name: port_info(config.name, pc, plan[pc.name]) for pc in ports}
        events: list[tuple[PortEvent, PortInfo]] = []
        created: list[PortInfo] = []
        for name, old in self.port_configs.items():
            if name not in infos:
                info = port_info(config.name, old, self.index_of.get(name, -1))
                events += [(PortEvent.DISCONNECT, info), (PortEvent.DELETE, info)]
        for pc in ports:
            old_pc = self.port_configs.get(pc.name)
            if old_pc is None:
                events += [(PortEvent.CREATE, infos[pc.name]), (PortEvent.CONNECT, infos[pc.name])]
                created.append(infos[pc.name])
            elif old_pc != pc:
                events.append((PortEvent.UPDATE, infos[pc.name]))
        stack.deliver(events)
        # Extensions enabled by this change learn about the ports that were already there (no veto now).
        for slot in stack.slots:
            if slot.enabled and slot.name not in was_on:
                for pc in ports:
                    if pc.name in self.port_configs:
                        for ev in (PortEvent.CREATE, PortEvent.CONNECT):
                            stack.tell(slot, ev, infos[pc.name])
        return stack, created

    def reconfigure(
        self,
        config: SwitchConfig,
        ports: list[PortConfig],
        devices: dict[str, Device],
        stack: ExtensionStack | None = None,
        team: dict[str, frozenset[int]] | None = None,
    ) -> list[str]:
        """Install ``ports`` (all connected to this switch) with their devices and the extension stack from
        ``prepare`` (built here if not given); returns removed port names."""
        if stack is None:
            stack = ExtensionStack.build(
                config.name, self.registry, config.extensions, self.clock.now, self.ext
            )
        self.ext = stack
        self.port_configs = {pc.name: pc for pc in ports}
        plan = self.plan_indices(ports)
        self.config = config
        self.fdb.max_entries = config.mac_table_size
        self.fdb.aging_s = config.mac_aging_s
        wanted = {p.name for p in ports}
        removed = [name for name in self.index_of if name not in wanted]
        for name in removed:
            idx = self.index_of.pop(name)
            self.ports[idx] = None
            self.fdb.flush_port(idx)
        static: dict[int, int] = {}
        for pc in ports:
            idx = plan[pc.name]
            while len(self.ports) <= idx:
                self.ports.append(None)
            self.index_of[pc.name] = idx
            policy = compile_vlan(pc.vlan, pc.kind)
            old = self.ports[idx]
            device = devices[pc.name]
            if old is not None and old.device is not device:
                self.fdb.flush_port(idx)
            mac = parse_mac(pc.mac) if pc.mac else None
            drops = old.drops if old is not None else Counter()
            # Port security: the port's guards, compiled here so no packet asks which ones are on. ``team``
            # (from the engine, which sees every switch) names the MACs of a VM's teamed adapters.
            security = compile_security(
                pc,
                mac=mac,
                team=(team or {}).get(pc.name, ()),
                clock=self.clock,
                tables=self,
                old=old.security if old is not None and old.name == pc.name else None,
                retired=drops,
            )
            acl_out, acl_in = compile_port_acls(pc.name, pc.acls) if pc.acls else (None, None)
            self.ports[idx] = SwitchPort(
                index=idx,
                name=pc.name,
                kind=pc.kind,
                device=device,
                ingress_vlans=policy.ingress,
                egress_vlans=policy.egress,
                max_frame=ETH_HLEN + VLAN_HLEN + link.mtu(device.name),
                mac=mac,
                drops=drops,
                security=security,
                learn=security.learn if security is not None else None,
                acl_out=acl_out,
                acl_in=acl_in,
            )
            if mac is not None and pc.kind in (PortKind.VM, PortKind.HOST):
                static[mac] = idx
        self.fdb.set_static(static)
        self.fdb.set_port_limits({plan[pc.name]: pc.mac_limit for pc in ports if pc.mac_limit is not None})
        self.fid = learning_domains(ports)
        self._flood_cache.clear()
        self._unknown_cache.clear()
        self.acl_in_ports = {p.index for p in self.ports if p is not None and p.acl_in is not None}
        mirroring = {pc.name: pc.port_mirroring for pc in ports}
        self.mirror_from = {self.index_of[n] for n, m in mirroring.items() if m is PortMirroring.SOURCE}
        dests = {self.index_of[n] for n, m in mirroring.items() if m is PortMirroring.DESTINATION}
        self.mirror_to = sorted(dests) if self.mirror_from else []
        stack.ctx.ports = {
            self.index_of[pc.name]: port_info(config.name, pc, self.index_of[pc.name]) for pc in ports
        }
        # Port events are in: an extension that is idle now (a firewall without rules) leaves the data path.
        stack.refresh()
        self.ext_active = stack if stack.active else None
        return removed

    # ---- forwarding ----

    def flood_targets(self, vlan: int) -> tuple[int, ...]:
        """Ports that receive broadcast/multicast of ``vlan``."""
        t = self._flood_cache.get(vlan)
        if t is None:
            t = self._flood_cache[vlan] = tuple(
                p.index for p in self.ports if p is not None and vlan in p.egress_vlans
            )
        return t

    def unknown_targets(self, vlan: int) -> tuple[int, ...]:
        """Ports that receive unicast to an unknown MAC in ``vlan``."""
        t = self._unknown_cache.get(vlan)
        if t is None:
            flood_all = self.config.flood_unknown_unicast
            t = self._unknown_cache[vlan] = tuple(
                p.index
                for p in self.ports
                if p is not None and vlan in p.egress_vlans and (flood_all or p.kind in OPEN_KINDS)
            )
        return t

    def process(self, port: SwitchPort, batch: list[Packet]) -> dict[int, tuple[list[Packet], list[int]]]:
        """Run one received batch through the chain; returns per destination port (packets, TCIs)."""
        if self.traced and port.index in self.traced:
            return self._process_traced(port, batch)
        return self._run(port, batch, None)

    def _run(
        self, port: SwitchPort, batch: list[Packet], rec: TraceRecord | None
    ) -> dict[int, tuple[list[Packet], list[int]]]:
        """The chain. ``rec`` (tracing one packet) records each stage's verdict; None on the normal path,
        which then pays one test per stage per batch."""
        self.current_port = port
        snap = self._drop_snapshot() if rec is not None else None
        batch = self.ingress.process(batch)
        if rec is not None:
            snap = self._traced(rec, "ingress", batch, snap, lambda p: f"VLAN {p.vlan}")
        # Port security (switch/security.py): the port's guards run just before forwarding (after the
        # extensions' ingress, as Hyper-V orders its built-in ingress policies), the storm limit just after.
        sec = port.security
        ext = self.ext_active
        if port.acl_out is not None and batch:
            # Built-in ingress ACL (the port's Outbound entries) before forwarding (§1.9 step 4).
            batch = port.acl_out.process(batch)
            if rec is not None:
                snap = self._traced(rec, f"port ACL outbound ({port.name})", batch, snap)
        if ext is None:
            if sec is not None and batch:
                batch = sec.before_forward(batch)
                if rec is not None and sec.before:
                    snap = self._traced(rec, "port security", batch, snap)
            batch = self.forward.process(batch) if batch else batch
            if rec is not None and (batch or snap is not None):
                snap = self._traced(rec, "forward (learning switch)", batch, snap, self._dst_names)
            if sec is not None and batch:
                batch = sec.after_forward(batch)
                if rec is not None and sec.after:
                    snap = self._traced(rec, "storm limit", batch, snap)
        else:
            if batch:
                batch = ext.ingress(batch, port.index)
                if rec is not None:
                    names = ", ".join(s.name for s in ext.captures + ext.ingress_filters)
                    snap = self._traced(rec, f"extensions ingress ({names})", batch, snap)
            if sec is not None and batch:
                batch = sec.before_forward(batch)
                if rec is not None and sec.before:
                    snap = self._traced(rec, "port security", batch, snap)
            where = (
                f"forward ({ext.forwarder.name})"
                if ext.forwarder is not None
                else "forward (learning switch)"
            )
            batch = self._forward_with(ext, batch)
            if rec is not None:
                snap = self._traced(rec, where, batch, snap, self._dst_names)
            if sec is not None and batch:
                batch = sec.after_forward(batch)
                if rec is not None and sec.after:
                    snap = self._traced(rec, "storm limit", batch, snap)
            if ext.pending and rec is None:
                batch += self._forward_with(
                    ext, self._with_source_policies(self._injected(ext.take_pending()))
                )
        outs = self._group(batch)
        if self.nic_switched:
            self._drop_nic_switched(port.name, outs)
        if sec is not None and sec.keep_priority:
            sec.mark_priority(outs, self.ports)  # PS-06: the received 802.1p priority is trusted
        if self.acl_in_ports:
            self._inbound_acls(outs)
        if ext is not None:
            for d, (pkts, tcis) in list(outs.items()):
                outs[d] = ext.egress(pkts, tcis, d)
        if self.mirror_to:
            self._mirror(port, batch, outs)
        if rec is not None and snap is not None:
            self._traced_egress(rec, outs, snap)
        return outs

    # ---- tracing (observe/trace.py): only for packets of traced ports and what-if traces ----

    def _drop_snapshot(self) -> Counter[tuple[str, str]]:
        """Every drop counter of the switch, keyed by (where, reason)."""
        snap: Counter[tuple[str, str]] = Counter()
        for where, drops in (
            ("ingress", self.ingress.drops),
            ("forward", self.forward.drops),
            ("egress", self.egress_drops),
        ):
            for r, n in drops.items():
                snap[(where, r)] = n
        for p in self.ports:
            if p is None:
                continue
            for r, n in p.drops.items():
                snap[(f"port {p.name}", r)] = n
            if p.security is not None:
                for r, n in p.security.drops().items():
                    snap[(f"port security {p.name}", r)] = n
            for a in (p.acl_out, p.acl_in):
                if a is not None:
                    for r, n in a.drops.items():
                        snap[(a.name, r)] = n
        if self.ext is not None:
            for slot in self.ext.slots:
                for r, n in slot.drops.items():
                    snap[(f"extension {slot.name}", r)] = n
        return snap

    def _traced(
        self,
        rec: TraceRecord,
        stage: str,
        survivors: list[Packet],
        before: Counter[tuple[str, str]] | None,
        detail: Callable[[Packet], str] | None = None,
    ) -> Counter[tuple[str, str]] | None:
        """Record one stage for the traced packet; returns the snapshot for the next stage (None: it is gone)."""
        if before is None:
            return None
        after = self._drop_snapshot()
        if survivors:
            rec.add(stage, "pass", detail(survivors[0]) if detail is not None else "")
            return after
        why = drop_diff(before, after)
        rec.add(stage, "drop", "; ".join(f"{r} ({w})" for w, r in why) or "no destination")
        return None

    def _dst_names(self, pkt: Packet) -> str:
        names = [self.ports[d].name for d in pkt.dsts or () if self.ports[d] is not None]  # type: ignore[union-attr]
        return "to " + (", ".join(names) or "nobody")

    def _traced_egress(
        self,
        rec: TraceRecord,
        outs: dict[int, tuple[list[Packet], list[int]]],
        before: Counter[tuple[str, str]],
    ) -> None:
        for d, (pkts, tcis) in sorted(outs.items()):
            dport = self.ports[d]
            if dport is None or not pkts:
                continue
            tci = tcis[0]
            tag = (
                "untagged"
                if tci == UNTAGGED
                else f"tagged VLAN {tci & 0xFFF}" + (f" PCP {tci >> 13}" if tci >> 13 else "")
            )
            rec.add(dport.name, "deliver", tag)
        for where, reason in drop_diff(before, self._drop_snapshot()):
            rec.add(where, "drop", reason)

    def _process_traced(
        self, port: SwitchPort, batch: list[Packet]
    ) -> dict[int, tuple[list[Packet], list[int]]]:
        """The port is traced: each packet within its budget goes through alone, recorded; the rest as usual."""
        budget = self.traced.get(port.index, 0)
        traced, rest = batch[:budget], batch[budget:]
        outs: dict[int, tuple[list[Packet], list[int]]] = {}
        for pkt in traced:
            rec = TraceRecord(self.name, port.name, summarize(pkt.data, pkt.tci, pkt.vlan))
            pkt.trace = rec
            self._merge(outs, self._run(port, [pkt], rec))
            self.trace_records.append(rec)
        left = budget - len(traced)
        if left > 0:
            self.traced[port.index] = left
        else:
            self.traced.pop(port.index, None)
        if rest:
            self._merge(outs, self._run(port, rest, None))
        return outs

    @staticmethod
    def _merge(
        into: dict[int, tuple[list[Packet], list[int]]], more: dict[int, tuple[list[Packet], list[int]]]
    ) -> None:
        for d, (pkts, tcis) in more.items():
            slot = into.get(d)
            if slot is None:
                into[d] = (pkts, tcis)
            else:
                slot[0].extend(pkts)
                slot[1].extend(tcis)

    def what_if(self, port_name: str, frame: bytes, tci: int = UNTAGGED) -> TraceRecord:
        """Trace ``frame`` as if it arrived on ``port_name``, on a copy of the switch: nothing learned,
        counted, sent or remembered by extensions (they run on copies too)."""
        idx = self.index_of.get(port_name)
        if idx is None:
            raise KeyError(port_name)
        memo: dict[int, object] = {id(self.clock): self.clock, id(self.registry): self.registry}
        for p in self.ports:
            if p is not None:
                memo[id(p.device)] = p.device  # devices are not copied, and the copy never sends
                for q in (p.egress, p.pacer, p.host_policy):
                    memo[id(q)] = q  # QoS state neither: the what-if stops at the switch's decision
        twin = copy.deepcopy(self, memo)
        twin.traced = {}
        port = twin.ports[idx]
        assert port is not None
        pkt = Packet(bytes(frame), tci)
        rec = TraceRecord(self.name, port_name, summarize(frame, tci, 0), what_if=True)
        twin._run(port, [pkt], rec)
        return rec

    def _mirror(
        self, port: SwitchPort, accepted: list[Packet], outs: dict[int, tuple[list[Packet], list[int]]]
    ) -> None:
        """PM-01/02: copies of what a Source port sends and receives go to every Destination port, with the tag
        they carry on the Source port's wire, added last so that they hold even when a forwarding extension
        decided the destinations. A frame already going to a Destination port is not sent there twice."""
        copies: list[tuple[Packet, int]] = []
        if port.index in self.mirror_from:
            copies += [(p, p.tci) for p in accepted]
        for d in self.mirror_from.intersection(outs):
            pkts, tcis = outs[d]
            copies += zip(pkts, tcis, strict=True)
        if not copies:
            return
        for m in self.mirror_to:
            if m == port.index:
                continue
            slot = outs.get(m)
            if slot is None:
                slot = outs[m] = ([], [])
            already = {id(p) for p in slot[0]}
            for p, tci in copies:
                if id(p) not in already:
                    already.add(id(p))
                    slot[0].append(p)
                    slot[1].append(tci)

    def _inbound_acls(self, outs: dict[int, tuple[list[Packet], list[int]]]) -> None:
        """Built-in egress ACL (each destination's Inbound entries), before the extensions' egress."""
        for d in self.acl_in_ports.intersection(outs):
            dport = self.ports[d]
            assert dport is not None and dport.acl_in is not None
            pkts, tcis = outs[d]
            kept = dport.acl_in.process(pkts)
            if len(kept) != len(pkts):
                ids = {id(p) for p in kept}
                outs[d] = (kept, [t for p, t in zip(pkts, tcis, strict=True) if id(p) in ids])

    def _forward_with(self, ext: ExtensionStack, batch: list[Packet]) -> list[Packet]:
        if not batch:
            return batch
        if ext.forwarder is not None:
            return ext.forward(batch, len(self.ports))
        return self.forward.process(batch)

    def _injected(self, frames: list[tuple[bytes, int | None, int]]) -> list[Packet]:
        """Frames originated or injected by extensions, as packets entering at ``source`` (None: the trusted
        default port, index -1, which no policy applies to, as in Hyper-V)."""
        out: list[Packet] = []
        unpack = ETH_HDR.unpack_from
        for frame, source, vlan in frames:
            if len(frame) < ETH_HLEN:
                self.egress_drops["injected-runt"] += 1
                continue
            dst_hi, dst_lo, src_hi, src_lo, _etype = unpack(frame)
            pkt = Packet(frame, UNTAGGED, None, -1 if source is None else source)
            pkt.vlan = vlan
            pkt.dst = (dst_hi << 32) | dst_lo
            pkt.src = (src_hi << 32) | src_lo
            out.append(pkt)
        return out

    def _with_source_policies(self, injected: list[Packet]) -> list[Packet]:
        """EX-08: an injected packet with a real source port gets that port's ingress policies (ACL, guards);
        one from the default port (-1) is trusted and skips them, as in Hyper-V."""
        out: list[Packet] = []
        for p in injected:
            if p.in_port < 0:
                out.append(p)
                continue
            src = self.ports[p.in_port] if p.in_port < len(self.ports) else None
            if src is None:
                self.egress_drops["injected-bad-source"] += 1
                continue
            kept = [p]
            if src.acl_out is not None:
                kept = src.acl_out.process(kept)
            if kept and src.security is not None:
                kept = src.security.before_forward(kept)
            out += kept
        return out

    def _drop_nic_switched(self, port: str, outs: dict[int, tuple[list[Packet], list[int]]]) -> None:
        """Remove the destinations the NIC switch delivered to already (switch/iov.py), counted."""
        served = self.nic_switched.get(port)
        if not served:
            return
        for name in served:
            idx = self.index_of.get(name)
            if idx is not None and idx in outs:
                self.egress_drops["nic-switch-delivered"] += len(outs.pop(idx)[0])

    def _group(self, batch: list[Packet]) -> dict[int, tuple[list[Packet], list[int]]]:
        """Fan-out: per destination port, the packets and the TCI each gets there."""
        outs: dict[int, tuple[list[Packet], list[int]]] = {}
        ports = self.ports
        last: tuple[int, int] | None = None  # (port, vlan) of the previous single-destination packet
        last_pkts: list[Packet] = []
        last_tcis: list[int] = []
        last_tci = UNTAGGED
        for pkt in batch:
            vlan = pkt.vlan
            dsts = pkt.dsts
            assert dsts is not None
            if len(dsts) == 1 and last == (dsts[0], vlan):
                last_pkts.append(pkt)
                last_tcis.append(last_tci)
                continue
            for d in dsts:
                dport = ports[d]
                if dport is None:
                    continue
                tci = dport.egress_vlans.get(vlan)
                if tci is None:
                    # Known unicast to a port outside the frame's VLAN: the VLAN boundary holds.
                    self.egress_drops["vlan-egress-filtered"] += 1
                    continue
                slot = outs.get(d)
                if slot is None:
                    slot = outs[d] = ([], [])
                slot[0].append(pkt)
                slot[1].append(tci)
                if len(dsts) == 1:
                    last, last_pkts, last_tcis, last_tci = (d, vlan), slot[0], slot[1], tci
        return outs

    def macs_behind(self, port: int) -> list[tuple[int, int]]:
        """(MAC, port index) the switch reaches through ports other than ``port`` (configured and learned):
        what a team on ``port`` announces after a failover, each on the member its port is affinitized to."""
        macs = {mac: idx for mac, idx in self.fdb.static.items() if idx != port}
        for (_fid, mac), e in list(self.fdb.learned.items()):
            if e.port != port:
                macs.setdefault(mac, e.port)
        return sorted(macs.items())

    def age(self, now: float) -> int:
        return self.fdb.age(now)

    # ---- observation (any thread; reads only) ----

    def counters(self) -> dict[str, object]:
        ports: dict[str, object] = {}
        per_port: Counter[str] = Counter()  # per-port drops (port security, internal errors), summed
        for p in list(self.ports):
            if p is not None:
                # Copied in one C-level step first: the forwarding thread may add a reason meanwhile.
                port_drops = Counter(dict(p.drops))
                sec = p.security
                if sec is not None:
                    port_drops += sec.drops()
                acls = {d: a for d, a in (("outbound", p.acl_out), ("inbound", p.acl_in)) if a is not None}
                for a in acls.values():
                    port_drops += Counter(dict(a.drops))
                per_port += port_drops
                entry: dict[str, object] = {**p.device.counters.as_dict(), "port_drops": dict(port_drops)}
                if sec is not None:
                    entry["security"] = sec.counters()
                if acls:
                    entry["acl"] = {d: a.counters() for d, a in acls.items()}
                ports[p.name] = entry
        drops = (
            Counter(self.ingress.drops) + Counter(self.forward.drops) + Counter(self.egress_drops) + per_port
        )
        return {
            "ports": ports,
            "elements": {
                **{e.name: e.counters() for e in (self.ingress, self.forward)},
                "egress": {"drops": dict(self.egress_drops)},
            },
            "drops": dict(drops),
            "extensions": self.ext.counters() if self.ext is not None else [],
            "fdb": self._fdb_counters(),
        }

    def _fdb_counters(self) -> dict[str, object]:
        """The MAC table's size and churn; per port with a MAC limit: the limit, what is learned on it, and
        the learning attempts the limit refused (``not_learned``: those frames were forwarded, not learned)."""
        fdb = self.fdb
        # Copied in one C-level step first: the forwarding thread may change them meanwhile.
        limits, per_port, refused = dict(fdb.port_limits), dict(fdb.per_port), dict(fdb.not_learned)
        names = {p.index: p.name for p in list(self.ports) if p is not None}
        return {
            "learned": len(fdb.learned),
            "static": len(fdb.static),
            "evictions": fdb.evictions,
            "moves": fdb.moves,
            "not_learned": sum(refused.values()),
            "mac_limits": {
                names[i]: {"limit": limit, "learned": per_port.get(i, 0), "not_learned": refused.get(i, 0)}
                for i, limit in sorted(limits.items())
                if i in names
            },
        }


def port_info(switch: str, pc: PortConfig, index: int) -> PortInfo:
    return PortInfo(
        pc.name,
        index,
        pc.kind.value,
        switch,
        pc.mac,
        pc.vm,
        pc.vlan.mode.value,
        compile_extended(pc.extended_acls),
    )


def compile_extended(entries: list[ExtendedAclEntry]) -> tuple[ExtendedRule, ...]:
    return tuple(
        ExtendedRule(
            action=Action(e.action.value),
            direction=AclDir(e.direction.value),
            weight=e.weight,
            local=acl_prefix(e.local_ip),
            remote=acl_prefix(e.remote_ip),
            local_ports=port_range(e.local_port),
            remote_ports=port_range(e.remote_port),
            protocol=int(e.protocol) if e.protocol is not None else None,
            stateful=e.stateful,
            idle_timeout_s=float(e.idle_session_timeout_s),
            isolation_id=e.isolation_id,
        )
        for e in entries
    )
