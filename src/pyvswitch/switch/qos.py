"""QoS for a switch (hyperv-networking.md §5): what each port may send, and how an egress link is shared.

Three mechanisms, as in Hyper-V:

- **MaximumBandwidth** (a port's ceiling on what it *sends*, to any destination): the engine paces how fast it
  reads the port (``Pacer``). Frames wait in the port's receive ring, the kernel's own queue, and nothing is
  copied or re-queued; under overload the ring overflows and the sender's TCP backs off, as it would behind
  a real NIC shaper.
- **Minimum bandwidth** (weights or absolute reservations, the switch's mode) and **link rate**: each port with
  a line rate (an uplink's NIC speed) has an egress ``Scheduler`` (pipeline/scheduler.py), built here as:

      root (link rate)
        └─ [DCB on the adapter: traffic classes — Strict first, ETS by BandwidthPercentage, [Default] the rest]
             ├─ one flow per port with a minimum (weight, or absolute bit/s used as a weight: proportional
             │  sharing gives each backlogged reservation at least its rate when reservations fit capacity)
             ├─ the default flow (DefaultFlowMinimumBandwidthWeight/Absolute), shared equally by the others
             └─ one flow per host QoS policy with a MinBandwidthWeight or ThrottleRate (its cap)

  Shares bite only under contention; a flow alone may take the whole link (work-conserving), capped by
  throttles. VM-to-VM traffic never meets this scheduler: only the link does (§5.3).
- **Host QoS policies** (New-NetQosPolicy) classify what management-OS ports (host vNICs, team interfaces)
  send: DSCP marking, 802.1p priority (a priority tag on the wire), a weight or a throttle (``HostPolicy``).

DCB (ETS, PFC) applies on an adapter where it is enabled (Enable-NetAdapterQos) and DCBX is not willing
(Windows' default is willing: the peer's configuration would win; there is no DCBX peer here). PFC: a lossless
priority's class above ``XOFF_BYTES`` sends PFC pause frames for that priority out of the ports that feed it,
and the engine stops reading them (the software switch honouring its own pause) until ``XON_BYTES``; PFC and
PAUSE frames received on the link hold that priority's queue for the time they say.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pyvswitch.config.schema import (
    DcbConfig,
    HostConfig,
    MinimumBandwidthMode,
    PortConfig,
    PortKind,
    QosPolicyConfig,
    SwitchConfig,
    TeamConfig,
    TrafficClassAlgorithm,
)
from pyvswitch.packet.dscp import set_dscp
from pyvswitch.packet.frame import UNTAGGED, Packet
from pyvswitch.packet.pfc import MAX_QUANTA, PauseFrame, decode_mac_control, quanta_to_seconds
from pyvswitch.pipeline.scheduler import Node, Scheduler, bucket_for
from pyvswitch.switch.qos_policy import PolicyClassifier
from pyvswitch.switch.wire import WIRE_KINDS

LEAF_LIMIT = 512 * 1024  # bytes a flow may queue at a link (~4 ms at 1 Gbit/s); tail drop beyond
LOSSLESS_LIMIT = 16 * 1024 * 1024  # a lossless class's leaves: PFC holds the senders long before this
XOFF_BYTES = 256 * 1024  # a lossless class above this asks its senders to pause (PFC)
XON_BYTES = 64 * 1024  # ... and below this lets them go again
DEFAULT_CLASS = "[Default]"
MANAGEMENT_KINDS = (PortKind.HOST, PortKind.TAP)  # the management OS's own interfaces
PCP_SHIFT = 13


def effective_mode(sc: SwitchConfig) -> MinimumBandwidthMode:
    return sc.bandwidth_mode


def default_flow_absolute(sc: SwitchConfig, capacity: int) -> int:
    a = sc.default_flow_minimum_bandwidth_absolute
    return a if a is not None else capacity // 10


def port_minimum(pc: PortConfig, mode: MinimumBandwidthMode) -> float:
    """The port's own weight in the link's sharing (0 = it is in the default flow)."""
    if mode is MinimumBandwidthMode.WEIGHT:
        return float(pc.minimum_bandwidth_weight)
    if mode is MinimumBandwidthMode.ABSOLUTE:
        return float(pc.minimum_bandwidth_absolute)
    return 0.0


class Pacer:
    """MaximumBandwidth: how much a port may send; the engine reads the port only while ``ready``, and only
    about as many frames as the tokens cover (a batch of 64 KiB GSO frames would otherwise overdraw the
    bucket by megabytes, and the rate, right on average, would come in bursts)."""

    __slots__ = ("avg_frame", "bucket")

    def __init__(self, rate_bps: int, now: float) -> None:
        self.bucket = bucket_for(rate_bps, now)
        self.avg_frame = 1500.0  # bytes a frame, recently (EWMA)

    def ready(self, now: float) -> bool:
        return self.bucket.ready(now)

    def allowance(self, batch: int) -> int:
        """Frames to read now: what the tokens cover at the recent frame size, at least one."""
        return max(1, min(batch, int(self.bucket.tokens / self.avg_frame) + 1))

    def took(self, pkts: Sequence[Packet]) -> None:
        size = sum(len(p.data) for p in pkts)
        self.bucket.tokens -= size
        self.avg_frame += 0.25 * (size / len(pkts) - self.avg_frame)

    def wait(self) -> float:
        return self.bucket.wait()


class HostPolicy:
    """New-NetQosPolicy on what a management-OS port sends: DSCP and the policy, as ``Packet.qos``."""

    def __init__(self, policies: Sequence[QosPolicyConfig]) -> None:
        self.classifier = PolicyClassifier(policies)
        self.matched = 0
        # Only then has the switch's output a priority to mark (mark_priority walks every frame).
        self.marks_priority = any(p.priority_8021 is not None for p in policies)

    def apply(self, pkts: list[Packet]) -> None:
        match = self.classifier.match
        for p in pkts:
            policy = match(p.data)
            p.qos = policy
            if policy is None:
                continue
            self.matched += 1
            if policy.dscp is not None:
                marked = set_dscp(p.data, policy.dscp)
                if marked is not None:
                    p.data = marked
                    p.l3 = None


def mark_priority(outs: dict[int, tuple[list[Packet], list[int]]], ports: Sequence[Any]) -> None:
    """PriorityValue8021Action: the policy's 802.1p priority in the TCI each frame leaves with; an untagged
    frame leaving on the wire gets a priority tag (VLAN 0), as Windows sends it."""
    for d, (pkts, tcis) in outs.items():
        dport = ports[d]
        on_wire = dport is not None and dport.kind in WIRE_KINDS
        for i, p in enumerate(pkts):
            policy = p.qos
            if not isinstance(policy, QosPolicyConfig) or policy.priority_8021 is None:
                continue
            pcp = policy.priority_8021 << PCP_SHIFT
            t = tcis[i]
            if t != UNTAGGED:
                tcis[i] = (t & ~(7 << PCP_SHIFT)) | pcp
            elif on_wire:
                tcis[i] = pcp


@dataclass
class TrafficClass:
    name: str
    priorities: list[int]
    algorithm: str
    bandwidth_percentage: int
    node: Node
    lossless: list[int] = field(default_factory=list)
    xoff: bool = False  # PFC pause asked of the senders
    feeders: set[int] = field(default_factory=set)  # in_ports that queued frames since XOFF
    pfc_sent: int = 0
    pfc_received: int = 0
    next_refresh: float = 0.0


class EgressQos:
    """One port's egress: the scheduler tree, how a frame finds its leaf, PFC both ways, status."""

    def __init__(
        self,
        sc: SwitchConfig,
        port_index: int,
        capacity: int,
        ports: Sequence[tuple[int, PortConfig]],
        policies: Sequence[QosPolicyConfig],
        dcb: DcbConfig | None,
        now: float,
    ) -> None:
        self.switch = sc.name
        self.port_index = port_index
        self.capacity = capacity
        self.per_member = 0  # a team's member speed: the capacity follows the active members (set_capacity)
        self.mode = effective_mode(sc)
        self.dcb = dcb
        root = Node("link")
        self.classes: list[TrafficClass] = []
        self.class_of = [0] * 8  # priority -> index into classes
        if dcb is not None:
            claimed = {p for c in dcb.traffic_classes for p in c.priorities}
            ets = sum(
                c.bandwidth_percentage
                for c in dcb.traffic_classes
                if c.algorithm is TrafficClassAlgorithm.ETS
            )
            specs = [
                (DEFAULT_CLASS, [p for p in range(8) if p not in claimed], "ETS", 100 - ets),
                *(
                    (c.name, c.priorities, c.algorithm.value, c.bandwidth_percentage)
                    for c in dcb.traffic_classes
                ),
            ]
            # Strict classes first, the one holding the highest priority first (802.1Q's strict order).
            for name, prios, algorithm, pct in sorted(
                specs, key=lambda s: (s[2] != "Strict", -max(s[1] or [0]))
            ):
                lossless = [p for p in prios if p in dcb.flow_control_priorities]
                node = root.add(Node(name, float(max(pct, 1))), strict=algorithm == "Strict")
                self.classes.append(TrafficClass(name, prios, algorithm, pct, node, lossless))
            for i, c in enumerate(self.classes):
                for p in c.priorities:
                    self.class_of[p] = i
        else:
            self.classes.append(TrafficClass(DEFAULT_CLASS, list(range(8)), "ETS", 100, root))
        # Flows, the same in every class: (class index, in_port or policy name) -> leaf.
        self.leaf: dict[tuple[int, object], Node] = {}
        self.port_weight: dict[int, float] = {}
        self.port_names = {i: pc.name for i, pc in ports}
        self.port_speed = {i: pc.link_speed for i, pc in ports}  # PFC timing: a pause lasts by its link
        self.default_weight = self._default_weight(sc, capacity)
        for ci, tc in enumerate(self.classes):
            limit = LOSSLESS_LIMIT if tc.lossless else LEAF_LIMIT
            default = None
            for i, pc in ports:
                if i == port_index:
                    continue
                w = port_minimum(pc, self.mode)
                if w > 0:
                    self.port_weight[i] = w
                    self.leaf[(ci, i)] = tc.node.add(Node(pc.name, w, limit=limit))
                else:
                    if default is None:
                        default = tc.node.add(Node("default-flow", self.default_weight))
                    self.leaf[(ci, i)] = default.add(Node(pc.name, 1.0, limit=limit))
            for pol in policies:
                if pol.min_bandwidth_weight is None and pol.throttle_rate is None:
                    continue
                w = float(pol.min_bandwidth_weight or 1)
                if self.mode is MinimumBandwidthMode.ABSOLUTE and capacity:
                    w = w / 100 * capacity  # a policy's weight is a share of the link, in the mode's unit
                cap = bucket_for(pol.throttle_rate, now) if pol.throttle_rate else None
                self.leaf[(ci, pol.name)] = tc.node.add(Node(f"policy:{pol.name}", w, cap, limit=limit))
        self.scheduler = Scheduler(root, capacity, now)
        self.held: set[int] = set()  # in_ports PFC-paused by a lossless class (the engine does not read them)
        self.last_enqueue_drops = 0

    @staticmethod
    def _default_weight(sc: SwitchConfig, capacity: int) -> float:
        mode = effective_mode(sc)
        if mode is MinimumBandwidthMode.ABSOLUTE:
            return float(max(default_flow_absolute(sc, capacity), 1))
        # A weight of 0 gives the default flow no guarantee: it still gets what the others leave.
        return float(sc.default_flow_minimum_bandwidth_weight) or 0.01

    # ---- data path ----

    def enqueue(self, pkts: list[Packet], tcis: list[int], now: float) -> tuple[list[Packet], list[int]]:
        """Queue a batch for the link; returns the frames that may go at once (the scheduler was empty and
        the link had room: cut-through, see Scheduler.send_now), to be sent now in this order."""
        sched = self.scheduler
        leaf = self.leaf
        class_of = self.class_of
        classes = self.classes
        if not sched.paused and not sched.root.backlog and len(classes) == 1 and len(pkts) > 1:
            # An uncongested link, one class: the whole batch from one port goes at once if there is room.
            first = pkts[0]
            node = leaf.get((0, first.in_port)) if first.qos is None else None
            if (
                node is not None
                and all(p.in_port == first.in_port and p.qos is None for p in pkts)
                and sched.send_batch_now(node, sum(len(p.data) for p in pkts), len(pkts), now)
            ):
                return pkts, tcis
        now_pkts: list[Packet] = []
        now_tcis: list[int] = []
        for p, t in zip(pkts, tcis, strict=True):
            prio = 0 if t == UNTAGGED else (t >> PCP_SHIFT) & 7
            ci = class_of[prio]
            policy = p.qos
            node = None
            if isinstance(policy, QosPolicyConfig):
                node = leaf.get((ci, policy.name))
            if node is None:
                node = leaf.get((ci, p.in_port))
                if node is None:
                    continue  # not a port of this switch any more
            tc = classes[ci]
            if tc.lossless:
                tc.feeders.add(p.in_port)
            if sched.send_now(node, len(p.data), prio, now):
                now_pkts.append(p)
                now_tcis.append(t)
                continue
            # Queued frames outlive the batch: take them out of the receive ring, which is handed back.
            if not sched.enqueue(node, p.detach() if isinstance(p.data, memoryview) else p, t, prio):
                self.last_enqueue_drops += 1
        return now_pkts, now_tcis

    def pfc_frames(self, now: float) -> list[tuple[int, dict[int, int]]]:
        """PFC to send now: (in_port, {priority: quanta}) for lossless classes crossing XOFF/XON or due a
        refresh; also updates ``held`` (the ports the engine must not read)."""
        out: list[tuple[int, dict[int, int]]] = []
        for tc in self.classes:
            if not tc.lossless:
                continue
            backlog = tc.node.backlog
            if (not tc.xoff and backlog > XOFF_BYTES) or (
                tc.xoff and backlog > XON_BYTES and now >= tc.next_refresh
            ):
                tc.xoff = True
                out += [(i, dict.fromkeys(tc.lossless, MAX_QUANTA)) for i in sorted(tc.feeders)]
                tc.pfc_sent += len(tc.feeders)
                # Refresh before the pause the senders heard runs out (half of it). A sender times the quanta
                # at the speed of *its* link (a VM's veth: unbounded, timed as 10 Gbit/s, 3.4 ms), not ours.
                pause = min(quanta_to_seconds(MAX_QUANTA, self.port_speed.get(i, 0)) for i in tc.feeders)
                tc.next_refresh = now + pause / 2
            elif tc.xoff and backlog <= XON_BYTES:
                tc.xoff = False
                out += [(i, dict.fromkeys(tc.lossless, 0)) for i in sorted(tc.feeders)]
                tc.pfc_sent += len(tc.feeders)
                tc.feeders.clear()
        self.held = {i for tc in self.classes if tc.xoff for i in tc.feeders}
        return out

    def received_control(self, pkts: list[Packet], now: float) -> list[Packet]:
        """PFC/PAUSE frames from the link pause priorities here; they are consumed, the rest is returned."""
        keep: list[Packet] = []
        for p in pkts:
            d = p.data
            if len(d) < 14 or d[12] != 0x88 or d[13] != 0x08:
                keep.append(p)
                continue
            try:
                frame = decode_mac_control(d)
            except ValueError:
                continue
            if frame is None:
                continue
            quanta = {pr: frame.quanta for pr in range(8)} if isinstance(frame, PauseFrame) else frame.quanta
            for prio, q in quanta.items():
                self.scheduler.pause(prio, now + quanta_to_seconds(q, self.capacity) if q else 0.0)
                self.classes[self.class_of[prio]].pfc_received += 1
        return keep

    def set_capacity(self, capacity: int, now: float) -> None:
        """A team lost or regained a member: the link is as fast as its active members together."""
        if capacity and capacity != self.capacity:
            self.capacity = capacity
            self.scheduler.link = bucket_for(capacity, now)

    def pull(self, now: float) -> tuple[list[Packet], list[int]]:
        return self.scheduler.pull(now)

    def deadline(self, now: float) -> float | None:
        return self.scheduler.next_deadline(now)

    # ---- status ----

    def guaranteed_share(self, index: int) -> float:
        """BandwidthPercentage: the share of the link the port is guaranteed under contention."""
        total = sum(self.port_weight.values()) + self.default_weight
        others = [i for i in self.port_names if i != self.port_index and i not in self.port_weight]
        if index in self.port_weight:
            return 100.0 * self.port_weight[index] / total
        return 100.0 * self.default_weight / total / max(len(others), 1)

    def status(self, now: float) -> dict[str, object]:
        sent: dict[object, int] = {}
        drops: dict[object, int] = {}
        rate: dict[object, float] = {}
        for (_ci, key), node in self.leaf.items():
            sent[key] = sent.get(key, 0) + node.sent_bytes
            drops[key] = drops.get(key, 0) + node.drops
            rate[key] = rate.get(key, 0.0) + node.current_rate(now)
        ports = {
            self.port_names.get(key, str(key)): {
                "sent_bytes": sent[key],
                "drops": drops[key],
                "rate_bps": round(rate[key]),
                "bandwidth_percentage": round(self.guaranteed_share(key), 2),
            }
            for key in sent
            if isinstance(key, int)
        }
        policies = {
            key: {"sent_bytes": sent[key], "drops": drops[key], "rate_bps": round(rate[key])}
            for key in sent
            if isinstance(key, str)
        }
        classes = []
        for tc in self.classes:
            leaves = [n for n in tc.node.walk() if n.queue is not None]
            classes.append(
                {
                    "name": tc.name,
                    "priorities": tc.priorities,
                    "algorithm": tc.algorithm,
                    "bandwidth_percentage": tc.bandwidth_percentage if tc.algorithm == "ETS" else None,
                    "sent_bytes": tc.node.sent_bytes
                    if tc.node is not self.scheduler.root
                    else self.scheduler.root.sent_bytes,
                    "drops": sum(n.drops for n in leaves),
                    "rate_bps": round(tc.node.current_rate(now)),
                    "queued_bytes": tc.node.backlog,
                    "lossless_priorities": tc.lossless,
                    "paused": any(p in self.scheduler.paused for p in tc.priorities),
                    "pfc_sent": tc.pfc_sent,
                    "pfc_received": tc.pfc_received,
                }
            )
        return {
            "capacity": self.capacity,
            "rate_bps": round(self.scheduler.root.current_rate(now)),
            "ports": ports,
            "policies": policies,
            "classes": classes,
            "dcb": self.dcb is not None,
            "default_flow_percentage": round(
                100.0 * self.default_weight / (sum(self.port_weight.values()) + self.default_weight), 2
            ),
        }


def dcb_for(dcb: DcbConfig, interface: str | None) -> DcbConfig | None:
    """The DCB configuration an adapter enforces: enabled on it (Enable-NetAdapterQos), and not willing."""
    if interface is None or interface not in dcb.adapters or dcb.willing:
        return None
    return dcb


def reservation(sc: SwitchConfig, ports: Iterable[PortConfig], capacity: int) -> int:
    """Absolute mode: bit/s reserved by the ports and the default flow (Msvm Reservation)."""
    if effective_mode(sc) is not MinimumBandwidthMode.ABSOLUTE:
        return 0
    return sum(p.minimum_bandwidth_absolute for p in ports) + default_flow_absolute(sc, capacity)


def capacity_of(pc: PortConfig, teams: Mapping[str, TeamConfig]) -> int:
    """A port's line rate: its link_speed, or for a team its members' speeds added up."""
    team = teams.get(pc.interface or "")
    if team is not None and team.member_link_speed:
        return team.member_link_speed * len(team.members)
    return pc.link_speed


def install(
    cfg: HostConfig,
    sc: SwitchConfig,
    ports: Sequence[tuple[int, PortConfig, Any]],
    previous: dict[tuple[str, str], tuple[object, EgressQos]],
    now: float,
) -> dict[tuple[str, str], tuple[object, EgressQos]]:
    """Give a switch's ports their QoS objects (``SwitchPort.egress``, ``pacer``, ``host_policy``). An egress
    scheduler whose inputs did not change is kept, with its queues and counters; returns them by
    (switch, port) for the next call."""
    teams = {t.name: t for t in cfg.teams}
    throttles = any(p.throttle_rate for p in cfg.qos_policies)
    host_policy = HostPolicy(cfg.qos_policies) if cfg.qos_policies else None
    kept: dict[tuple[str, str], tuple[object, EgressQos]] = {}
    pcs = [(i, pc) for i, pc, _ in ports]
    qos_inputs = (
        sc.minimum_bandwidth_mode,
        sc.default_flow_minimum_bandwidth_weight,
        sc.default_flow_minimum_bandwidth_absolute,
        tuple((i, pc.name, pc.minimum_bandwidth_weight, pc.minimum_bandwidth_absolute) for i, pc in pcs),
        tuple(cfg.qos_policies),
        cfg.dcb,
    )
    for i, pc, sp in ports:
        sp.pacer = Pacer(pc.maximum_bandwidth, now) if pc.maximum_bandwidth else None
        sp.host_policy = host_policy if pc.kind in MANAGEMENT_KINDS else None
        sp.egress = None
        if pc.kind not in (PortKind.UPLINK, PortKind.INTERFACE):
            continue
        capacity = capacity_of(pc, teams)
        dcb = dcb_for(cfg.dcb, pc.interface)
        if not (capacity or dcb is not None or throttles):
            continue
        signature = (qos_inputs, i, capacity, dcb)
        old = previous.get((sc.name, pc.name))
        if old is not None and old[0] == signature:
            egress = old[1]
        else:
            egress = EgressQos(sc, i, capacity, pcs, cfg.qos_policies, dcb, now)
            team = teams.get(pc.interface or "")
            egress.per_member = team.member_link_speed if team is not None else 0
        sp.egress = egress
        kept[(sc.name, pc.name)] = (signature, egress)
    return kept
