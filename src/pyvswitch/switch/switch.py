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
from collections import Counter, deque
from collections.abc import Mapping
from dataclasses import dataclass, field

from pyvswitch.clock import Clock
from pyvswitch.config.schema import ExtendedAclEntry, PortConfig, PortKind, PortMirroring, SwitchConfig
from pyvswitch.datapath import link
from pyvswitch.datapath.device import Device
from pyvswitch.ext.api import PortCounters, PortEvent, PortInfo
from pyvswitch.ext.registry import Registry
from pyvswitch.ext.rules import Action, ExtendedRule, port_range
from pyvswitch.ext.rules import Direction as AclDir
from pyvswitch.ext.rules import prefix as acl_prefix
from pyvswitch.ext.stack import ExtensionStack
from pyvswitch.observe.trace import TraceRecord, run_traced, summarize
from pyvswitch.packet.frame import ETH_HLEN, UNTAGGED, VLAN_HLEN, Packet
from pyvswitch.packet.mac import parse_mac
from pyvswitch.pipeline.chain import Outs
from pyvswitch.switch.elements.forward import Forward
from pyvswitch.switch.elements.ingress import Ingress
from pyvswitch.switch.fdb import MacTable
from pyvswitch.switch.plan import compile_chain, compile_flow_cache
from pyvswitch.switch.port import SwitchPort
from pyvswitch.switch.portacl import PortAcl, compile_port_acls
from pyvswitch.switch.sampling import Sampler
from pyvswitch.switch.security import compile_security
from pyvswitch.switch.vlan import VlanPolicy, compile_port_vlan, learning_domains, tunnel_codes
from pyvswitch.switch.wire import WIRE_KINDS

__all__ = ["CompiledPorts", "Switch", "SwitchPort", "compile_extended", "port_info"]

TRACE_KEEP = 1000  # trace records kept per switch
FLOW_CACHE = True  # new switches cache their ports' decisions per flow


@dataclass(frozen=True, slots=True)
class CompiledPorts:
    """A switch's ports compiled from configuration (``Switch.compile_ports``), by port name."""

    plan: dict[str, int]  # stable indices
    infos: dict[str, PortInfo]  # what extensions are told (ports kept, added and removed)
    vlans: dict[str, VlanPolicy]
    acls: dict[str, tuple[PortAcl | None, PortAcl | None]]  # (outbound, inbound)
    max_frames: dict[str, int]
    tunnel_codes: dict[int, int] = field(default_factory=dict)  # VSID -> code on the tunnel port (vlan.py)


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
        # What egress counts that is no drop: frames the NIC switch delivered already (nic_switch_delivered).
        self.egress_counts: Counter[str] = Counter()
        # SR-IOV (switch/iov.py): ingress port name -> names of the destinations the emulated NIC switch already
        # served for that port's frames (a broadcast from the wire reached the VFs, a VF's broadcast reached the
        # wire). Set by the engine; a port it does not name has no such step in its chain.
        self.nic_switched: dict[str, frozenset[str]] = {}
        self._flood_cache: dict[int, tuple[int, ...]] = {}
        # The flow caches in front of the ports' chains (switch/flowcache.py); off only to compare (tests, benches).
        self.flow_cache = FLOW_CACHE
        self._unknown_cache: dict[int, tuple[int, ...]] = {}
        # Sampling extensions' sampler (switch/sampling.py), around ``process``; None while none is enabled.
        self.sampler: Sampler | None = None

    # ---- configuration (between batches) ----

    def plan_indices(self, ports: list[PortConfig]) -> dict[str, int]:
        """Stable port indices: kept ports keep theirs, new ones take the lowest free."""
        wanted = {p.name for p in ports}
        taken = {n: i for n, i in self.index_of.items() if n in wanted}
        used = set(taken.values())
        free = (i for i in range(len(self.ports) + len(ports)) if i not in used)
        return {p.name: taken[p.name] if p.name in taken else next(free) for p in ports}

    def compile_ports(
        self, config: SwitchConfig, ports: list[PortConfig], devices: Mapping[str, Device]
    ) -> CompiledPorts:
        """What ``ports`` compile to from configuration alone: indices, what extensions are told, VLAN tables,
        port ACLs, frame limits. Reads the switch and changes nothing, so the engine calls it on the caller's
        thread: the forwarding thread only swaps the result in (10,000 ACL entries take ~1 s to compile)."""
        plan = self.plan_indices(ports)
        infos = {pc.name: port_info(config.name, pc, plan[pc.name]) for pc in ports}
        for name, old in self.port_configs.items():
            if name not in infos:  # what the extensions are told of a port that goes
                infos[name] = port_info(config.name, old, self.index_of.get(name, -1))
        codes = tunnel_codes(ports)
        return CompiledPorts(
            plan=plan,
            infos=infos,
            vlans={pc.name: compile_port_vlan(pc, codes) for pc in ports},
            tunnel_codes=codes,
            acls={pc.name: compile_port_acls(pc.name, pc.acls) if pc.acls else (None, None) for pc in ports},
            max_frames={
                pc.name: ETH_HLEN
                + VLAN_HLEN
                + int(getattr(devices[pc.name], "mtu", 0) or link.mtu(devices[pc.name].name))
                for pc in ports
                if pc.name in devices
            },
        )

    def prepare(
        self, config: SwitchConfig, ports: list[PortConfig], compiled: CompiledPorts | None = None
    ) -> tuple[ExtensionStack, list[PortInfo]]:
        """Build the extension stack ``config`` asks for and tell it what changes in the ports, before anything
        changes: an extension's Veto raises ExtensionVeto here. Returns the stack and the ports it was told
        were created (to tell them deleted if the change is abandoned)."""
        # Before build: it reuses (and updates) the slots of the current stack.
        was_on = {sl.name for sl in self.ext.slots if sl.enabled} if self.ext is not None else set()
        stack = ExtensionStack.build(config.name, self.registry, config.extensions, self.clock.now, self.ext)
        all_infos = compiled.infos if compiled is not None else self.compile_ports(config, ports, {}).infos
        wanted = {pc.name for pc in ports}
        infos = {name: info for name, info in all_infos.items() if name in wanted}
        events: list[tuple[PortEvent, PortInfo]] = []
        created: list[PortInfo] = []
        for name in self.port_configs:
            if name not in infos:
                info = all_infos[name]
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
        compiled: CompiledPorts | None = None,
    ) -> list[str]:
        """Install ``ports`` (all connected to this switch) with their devices and the extension stack from
        ``prepare`` (built here if not given), and what ``compile_ports`` made of them (compiled here if not
        given); returns removed port names."""
        if stack is None:
            stack = ExtensionStack.build(
                config.name, self.registry, config.extensions, self.clock.now, self.ext
            )
        if compiled is None:
            compiled = self.compile_ports(config, ports, devices)
        self.ext = stack
        self.port_configs = {pc.name: pc for pc in ports}
        plan = compiled.plan
        self.config = config
        self.fdb.max_entries = config.mac_table_size
        self.fdb.aging_s = config.mac_aging_s
        wanted = {p.name for p in ports}
        removed = [name for name in self.index_of if name not in wanted]
        for name in removed:
            idx = self.index_of.pop(name)
            self.ports[idx] = None
            self.fdb.flush_port(idx)
            if self.sampler is not None:
                self.sampler.forget(idx)
        static: dict[int, int] = {}
        for pc in ports:
            idx = plan[pc.name]
            while len(self.ports) <= idx:
                self.ports.append(None)
            self.index_of[pc.name] = idx
            policy = compiled.vlans[pc.name]
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
            if pc.kind is PortKind.TUNNEL and hasattr(device, "set_codes"):  # datapath/tunnel.py
                device.set_codes(compiled.tunnel_codes)
            acl_out, acl_in = compiled.acls[pc.name]
            self.ports[idx] = SwitchPort(
                index=idx,
                name=pc.name,
                kind=pc.kind,
                device=device,
                ingress_vlans=policy.ingress,
                egress_vlans=policy.egress,
                max_frame=compiled.max_frames[pc.name],
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
        stack.ctx.ports = {self.index_of[pc.name]: compiled.infos[pc.name] for pc in ports}
        stack.ctx._counters = self.port_counters
        self.refresh_extensions()
        return removed

    def refresh_extensions(self) -> None:
        """After port events or restored state: an extension that is idle now (a firewall without rules) leaves
        the data path, one that has work joins it; the chains follow."""
        if self.ext is not None:
            self.ext.refresh()
        self.ext_active = self.ext if self.ext is not None and self.ext.active else None
        self.sampler = (
            Sampler(self.ext, self.ports, self.sampler)
            if self.ext is not None and self.ext.samplers
            else None
        )
        self._compile()

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
        """Ports that receive unicast to an unknown MAC in ``vlan``. The tunnel port of a virtual subnet is one:
        it sends a unicast by the lookup records or drops it, never floods (datapath/tunnel.py), so a remote MAC
        (or the distributed router's) is reached whether or not the MAC table has learned it."""
        t = self._unknown_cache.get(vlan)
        if t is None:
            flood_all = self.config.flood_unknown_unicast
            t = self._unknown_cache[vlan] = tuple(
                p.index
                for p in self.ports
                if p is not None
                and vlan in p.egress_vlans
                and (flood_all or p.kind in WIRE_KINDS or p.kind is PortKind.TUNNEL)
            )
        return t

    def process(self, port: SwitchPort, batch: list[Packet]) -> Outs:
        """Run one received batch through the port's chain; returns per destination port (packets, TCIs)."""
        if self.sampler is not None:  # switch/sampling.py: inline while the batch holds no sample
            left = port.sample_left - len(batch)
            if left <= 0:
                return self.sampler.process(port, batch, self._process)
            port.sample_left = left
        return self._process(port, batch)

    def _process(self, port: SwitchPort, batch: list[Packet]) -> Outs:
        if self.traced and port.index in self.traced:
            return self._process_traced(port, batch)
        flows = port.flows
        if flows is not None:
            return flows.run(batch)
        chain = port.chain
        assert chain is not None
        return chain.run(batch)

    def set_nic_switched(self, served: dict[str, frozenset[str]]) -> None:
        """Between batches: per ingress port name, the destinations the NIC switch serves (switch/iov.py)."""
        self.nic_switched = dict(served)
        self._compile()

    def _compile(self) -> None:
        """Each port's chain from the configuration installed now (switch/plan.py)."""
        for p in self.ports:
            if p is not None:
                p.chain = compile_chain(self, p)
                old, p.flows = p.flows, compile_flow_cache(self, p, p.chain)
                if old is not None and p.flows is not None:
                    p.flows.carry_over(old)  # counters are the port's, not one configuration's

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

    def dst_names(self, pkt: Packet) -> str:
        names = [self.ports[d].name for d in pkt.dsts or () if self.ports[d] is not None]  # type: ignore[union-attr]
        return "to " + (", ".join(names) or "nobody")

    def _egress_detail(self, d: int, tci: int, src: int = -1) -> tuple[str, str] | None:
        """A traced packet's delivery: the port's name, the tag it leaves with, and the QoS it meets there (the
        traffic class its 802.1p priority maps to, the source port's guaranteed share of that egress)."""
        dport = self.ports[d]
        if dport is None:
            return None
        tag = (
            "untagged"
            if tci == UNTAGGED
            else f"tagged VLAN {tci & 0xFFF}" + (f" PCP {tci >> 13}" if tci >> 13 else "")
        )
        egress = dport.egress
        if egress is not None:
            prio = 0 if tci == UNTAGGED else (tci >> 13) & 7
            tc = egress.classes[egress.class_of[prio]]
            qos = f"QoS: class {tc.name} (priority {prio}, {tc.algorithm}"
            qos += f" {tc.bandwidth_percentage}%)" if tc.algorithm == "ETS" else ")"
            if src >= 0 and src in egress.port_names:
                qos += f", {self.ports[src].name if self.ports[src] else src} guaranteed "  # type: ignore[union-attr]
                qos += f"{egress.guaranteed_share(src):.1f}% of {egress.capacity / 1e6:g} Mbit/s"
            tag += f" — {qos}"
        return dport.name, tag

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
            self._merge(outs, self._run_traced(port, pkt, rec))
            self.trace_records.append(rec)
        left = budget - len(traced)
        if left > 0:
            self.traced[port.index] = left
        else:
            self.traced.pop(port.index, None)
        if rest:
            chain = port.chain
            assert chain is not None
            self._merge(outs, chain.run(rest))
        return outs

    def _run_traced(self, port: SwitchPort, pkt: Packet, rec: TraceRecord) -> Outs:
        chain = port.chain
        assert chain is not None
        src = port.index
        if port.pacer is not None:  # MaximumBandwidth: the source's cap, before anything is forwarded
            rec.add(
                "QoS", "note", f"{port.name}: MaximumBandwidth {port.pacer.bucket.rate * 8 / 1e6:g} Mbit/s"
            )
        return run_traced(
            chain, [pkt], rec, self._drop_snapshot, lambda d, tci: self._egress_detail(d, tci, src)
        )

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
        twin._compile()  # the copied chains' steps would still be bound to this switch's objects
        port = twin.ports[idx]
        assert port is not None
        pkt = Packet(bytes(frame), tci)
        rec = TraceRecord(self.name, port_name, summarize(frame, tci, 0), what_if=True)
        pkt.trace = rec  # the stages that decide say what decided it (observe/trace.py explain)
        twin._run_traced(port, pkt, rec)
        return rec

    def macs_behind(self, port: int) -> list[tuple[int, int]]:
        """(MAC, port index) the switch reaches through ports other than ``port`` (configured and learned):
        what a team on ``port`` announces after a failover, each on the member its port is affinitized to."""
        macs = {mac: idx for mac, idx in self.fdb.static.items() if idx != port}
        for (_fid, mac), e in list(self.fdb.learned.items()):
            if e.port != port:
                macs.setdefault(mac, e.port)
        return sorted(macs.items())

    def age(self, now: float) -> int:
        """The forwarding loop's once-a-second housekeeping: the MAC table's aging, the sampling extensions'
        tick (their exports and counter samples)."""
        if self.sampler is not None and self.ext is not None:
            self.sampler.tick()
            self.ext.tick(now)
        return self.fdb.age(now)

    def port_counters(self, index: int) -> PortCounters | None:
        """Port ``index``'s interface counters (ext/api.py Context.counters): its device's frames and bytes, the
        frames the switch dropped from it, and those its device could not send."""
        p = self.ports[index] if 0 <= index < len(self.ports) else None
        if p is None:
            return None
        c = p.device.counters
        device_drops = dict(c.drops)  # receive side (ring overruns) and send side ("tx-..." reasons)
        tx_drops = sum(n for r, n in device_drops.items() if r.startswith("tx-"))
        dropped = sum(dict(p.drops).values()) + sum(device_drops.values()) - tx_drops
        if p.security is not None:
            dropped += sum(p.security.drops().values())
        return PortCounters(
            rx_frames=c.rx_frames,
            rx_bytes=c.rx_bytes,
            tx_frames=c.tx_frames,
            tx_bytes=c.tx_bytes,
            rx_drops=dropped,
            tx_drops=tx_drops,
        )

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
                entry["flow_cache"] = p.flows.counters() if p.flows is not None else None
                tunnel = getattr(p.device, "tunnel_counters", None)
                if tunnel is not None:  # datapath/tunnel.py: ARP answered here, head-end copies, tables
                    entry["tunnel"] = tunnel()
                ports[p.name] = entry
        drops = (
            Counter(self.ingress.drops) + Counter(self.forward.drops) + Counter(self.egress_drops) + per_port
        )
        return {
            "ports": ports,
            "elements": {
                **{e.name: e.counters() for e in (self.ingress, self.forward)},
                "egress": {"drops": dict(self.egress_drops), **dict(self.egress_counts)},
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
