"""A NIC team (LBFO) as one device: members, LACP, load balancing and failover (hyperv-networking.md §3).

``TeamDevice`` satisfies the Device protocol, so a switch's uplink port can be a team without the switch
knowing. Received frames come from every member that may collect; slow-protocol frames (LACP, markers) are
consumed here. Sent frames are spread over the members that may distribute by the load-balancing algorithm:

- TransportPorts: hash of the 4-tuple (addresses and TCP/UDP ports), falling back to the IP pair, then to the
  MAC pair for non-IP frames (TM-06); IPAddresses: the IP pair, else MACs; MacAddresses: the MAC pair;
- HyperVPort: each switch port is affinitized to one member (a VM never exceeds one member, and the physical
  switch sees its MAC on one link); affinities move only when their member fails, or to even out on failback;
- Dynamic: the TransportPorts flow, but re-balanced at flowlet boundaries: a flow whose last frame is older
  than ``FLOWLET_GAP_S`` goes to the least-loaded member, so flows move without reordering; inbound is per
  port, as HyperVPort.

Modes (TM-02/03/04): SwitchIndependent and Static use every member whose carrier is up; Lacp uses the members
the LACP machines put in collecting+distributing (or, with ``lacp_fallback``, every member with carrier while
no member has an LACP partner). A standby member is used only while another member is down (TM-05).

SwitchIndependent semantics (the physical switch does not know the team, §3.4): the *primary* member (first
active one) is the only one that receives broadcasts and multicasts, so the flood a physical switch sends to
every member enters the switch once; a broadcast we sent on another member and the physical switch flooded
back is dropped. With an address hash, announcements (broadcast/multicast, ARP, IPv6 ND) go out on the
primary, and frames hashed onto another member carry that member's own MAC as source (MAC replacement), so
the physical switch learns every VM's MAC on the primary only. With Dynamic, the port's affinitized member
plays the primary's role for that port. HyperVPort needs neither. Static and Lacp need none of this.

Link monitoring: carrier from sysfs at every ``tick`` (the engine calls it every few ms), plus netlink link
notifications that make ``recv`` look at once (``datapath.link.LinkEvents``); optional up and down delays
keep a flapping link out. On a change the active set is recomputed at once and the MACs behind the team are
announced (RARP) on the members that now carry them, so the physical switch relearns (TM-10).
"""

from __future__ import annotations

import logging
import select
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cached_property

from pyvswitch.config.schema import LoadBalancing, TeamingMode
from pyvswitch.datapath.device import Device, DeviceCounters
from pyvswitch.datapath.link import LinkEvents
from pyvswitch.drops import DropReason
from pyvswitch.packet.frame import Packet
from pyvswitch.packet.mac import format_mac
from pyvswitch.switch.lacp import Lacpdu, MarkerPdu, PduError, decode, encode_marker, marker_response
from pyvswitch.switch.lacp_port import ActorConfig, LacpAggregator, LacpPort, RxState
from pyvswitch.switch.team_frames import announces_location, flow_hash, rarp

log = logging.getLogger(__name__)

FLOWLET_GAP_S = 0.005  # Dynamic: a flow idle this long may move (longer than any reordering window here)
LOAD_HALF_LIFE_S = 0.1  # Dynamic: members' recent load, the least-loaded one takes a new flowlet
FLOW_IDLE_S = 10.0  # Dynamic: a flow's entry is forgotten after this long without frames
ECHO_MEMORY = 4096  # SwitchIndependent: source MACs of our own broadcasts remembered, to drop their echo


class TeamDrop(DropReason):
    """Why a team drops a frame (``show drops``, on the team's port)."""

    RX_MEMBER_NOT_COLLECTING = (
        "rx-member-not-collecting",
        "received on an LACP member not collecting (802.1AX)",
    )
    RX_MULTICAST_ON_SECONDARY = (
        "rx-multicast-on-secondary",
        "switch-independent: a flooded copy on a member other than the primary",
    )
    RX_OWN_MULTICAST_ECHO = "rx-own-multicast-echo", "a broadcast the team sent, come back on another member"
    RX_BAD_SLOW_PROTOCOL = "rx-bad-slow-protocol", "an LACP or Marker PDU that does not decode"
    TX_NO_ACTIVE_MEMBER = "tx-no-active-member", "no member of the team is up and active"


@dataclass(eq=False)
class Member:
    device: Device
    carrier: Callable[[], bool]
    standby: bool = False
    mac: int = 0  # the NIC's own address: the source of frames it sends for others in SI (MAC replacement)
    lacp: LacpPort | None = None
    up: bool = True
    failures: int = 0
    active: bool = False  # carries traffic now
    pending: float | None = None  # when the carrier first differed from ``up`` (up/down delays)
    load: float = 0.0  # bytes sent recently (decays; Dynamic)
    ports: set[int] = field(default_factory=set)  # switch ports affinitized to it (HyperVPort, Dynamic)

    @cached_property
    def mac_bytes(self) -> bytes:
        """The member's MAC as a frame's source field (MAC replacement writes it per frame)."""
        return self.mac.to_bytes(6, "big")


@dataclass(frozen=True)
class TeamSettings:
    """What Set-NetLbfoTeam may change on a live team."""

    mode: TeamingMode = TeamingMode.SWITCH_INDEPENDENT
    algorithm: LoadBalancing = LoadBalancing.TRANSPORT_PORTS
    lacp_fast: bool = True
    up_delay_s: float = 0.0
    down_delay_s: float = 0.0
    lacp_fallback: bool = False


def _with_source(p: Packet, mac: bytes) -> Packet:
    """A copy of ``p`` with source MAC ``mac`` (the switch may hand the same Packet to other ports)."""
    buf = bytearray(p.data)
    buf[6:12] = mac
    q = Packet(buf, p.tci, p.vnet, p.in_port)
    q.trace = p.trace
    return q


class _Flow:
    """Dynamic: where a flow goes and when its last frame went."""

    __slots__ = ("last", "member")

    def __init__(self, member: Member, last: float) -> None:
        self.member = member
        self.last = last


class TeamDevice:
    """Members as one device (see the module docstring)."""

    vnet = True

    def __init__(
        self,
        name: str,
        members: Sequence[Member],
        mode: TeamingMode = TeamingMode.SWITCH_INDEPENDENT,
        algorithm: LoadBalancing = LoadBalancing.TRANSPORT_PORTS,
        system_mac: int = 0x020000000000,
        lacp_fast: bool = True,
        key: int = 1,
        clock: Callable[[], float] = time.monotonic,
        *,
        up_delay_s: float = 0.0,
        down_delay_s: float = 0.0,
        lacp_fallback: bool = False,
        link_events: Callable[[], LinkEvents] | None = None,
    ) -> None:
        self.name = name
        self.counters = DeviceCounters()
        self._clock = clock
        self._system_mac = system_mac
        self._key = key
        self._epoll = select.epoll()
        self._registered: set[int] = set()
        self.members: list[Member] = []
        self.settings = TeamSettings(mode, algorithm, lacp_fast, up_delay_s, down_delay_s, lacp_fallback)
        self.aggregator: LacpAggregator | None = None
        self._events: LinkEvents | None = None
        self._events_factory = link_events
        self._active: list[Member] = []
        self._primary: Member | None = None
        self._si = False  # SwitchIndependent rules in force (SI mode, or Lacp falling back)
        self._next_rx = 0
        self._flows: dict[int, _Flow] = {}  # Dynamic: by flow hash
        self._affinity: dict[int, Member] = {}  # switch port -> member (HyperVPort, Dynamic)
        self._echo: set[bytes] = set()
        self._last_decay = clock()
        self._next_flow_sweep = self._last_decay + FLOW_IDLE_S
        self.failovers = 0
        self.announcements = 0
        self.flowlet_moves = 0
        # What the log last said of each member (status, reason, LACP partner) and of the team: events on change.
        self._reported: dict[str, tuple[str, str, object]] = {}
        self._reported_active: tuple[str, ...] | None = None
        # The (MAC, switch port) pairs behind the team, set by the engine from the switch that uses it.
        self.announce: Callable[[], list[tuple[int, int]]] = list
        self.reconfigure(members, self.settings)

    @property
    def mode(self) -> TeamingMode:
        return self.settings.mode

    @property
    def algorithm(self) -> LoadBalancing:
        return self.settings.algorithm

    # ---- configuration (forwarding thread, between batches) ----

    def reconfigure(self, members: Sequence[Member], settings: TeamSettings) -> None:
        """Set-NetLbfoTeam / Add- and Remove-NetLbfoTeamMember on a live team. Members kept (same Member
        object) keep their state and LACP machines unless the LACP settings change; new members start down
        so that the next tick brings them up through the same path as a carrier change."""
        old = {id(m) for m in self.members}
        lacp_changed = (settings.mode, settings.lacp_fast) != (self.settings.mode, self.settings.lacp_fast)
        for m in members:
            if id(m) not in old:
                m.up = False
                m.active = False
                m.lacp = None
        self.members = list(members)
        self.settings = settings
        self.vnet = all(m.device.vnet for m in self.members)
        wanted = {m.device.fileno() for m in self.members if m.device.fileno() >= 0}
        for fd in self._registered - wanted:
            self._epoll.unregister(fd)
        for fd in wanted - self._registered:
            self._epoll.register(fd, select.EPOLLIN)
        self._registered = wanted
        if settings.mode is TeamingMode.LACP:
            used = {m.lacp.actor.port for m in self.members if m.lacp is not None and not lacp_changed}
            next_port = 1
            for m in self.members:
                if m.lacp is None or lacp_changed:
                    while next_port in used:
                        next_port += 1
                    used.add(next_port)
                    cfg = ActorConfig(self._system_mac, self._key, next_port, fast=settings.lacp_fast)
                    m.lacp = LacpPort(m.device.name, self._system_mac + next_port, cfg)
                    if m.up:
                        m.lacp.set_enabled(True, self._clock())
            self.aggregator = LacpAggregator([m.lacp for m in self.members if m.lacp is not None])
        else:
            self.aggregator = None
            for m in self.members:
                m.lacp = None
        self._flows.clear()
        self.tick(self._clock())

    # ---- which members carry traffic ----

    def active(self) -> list[Member]:
        return list(self._active)

    def lacp_fallen_back(self) -> bool:
        """Lacp with fallback on, and every member with carrier has given up on hearing a partner (receive
        machine DEFAULTED, 3 s after the link came up or the partner went silent): carrying traffic as
        SwitchIndependent, as OVS's lacp-fallback-ab does. A partner's LACPDU ends the fallback."""
        if self.settings.mode is not TeamingMode.LACP or not self.settings.lacp_fallback:
            return False
        ports = [m.lacp for m in self.members if m.up and m.lacp is not None]
        return bool(ports) and all(p.rx is RxState.DEFAULTED for p in ports)

    def _choose_active(self) -> list[Member]:
        if self.settings.mode is TeamingMode.LACP and not self.lacp_fallen_back():
            candidates = [m for m in self.members if m.up and m.lacp is not None and m.lacp.distributing]
        else:
            candidates = [m for m in self.members if m.up]
        primary = [m for m in candidates if not m.standby]
        all_primaries_up = all(m.up for m in self.members if not m.standby)
        # The standby member works only while some other member is down (TM-05).
        if not all_primaries_up or not primary:
            return primary + [m for m in candidates if m.standby]
        return primary

    def _carrier(self, now: float) -> None:
        """Read every member's carrier; a change counts once it has lasted the up or down delay."""
        s = self.settings
        for m in self.members:
            up = bool(m.carrier())
            if up == m.up:
                m.pending = None
                continue
            if m.pending is None:
                m.pending = now
            if now - m.pending < (s.up_delay_s if up else s.down_delay_s):
                continue
            m.pending = None
            m.up = up
            if not up:
                m.failures += 1
            if m.lacp is not None:
                m.lacp.set_enabled(up, now)

    def tick(self, now: float) -> list[tuple[Device, bytes]]:
        """Carrier changes, LACP timers, and the LACPDUs to send (already sent; returned for tests)."""
        self._carrier(now)
        sent: list[tuple[Device, bytes]] = []
        if self.aggregator is not None:
            for port, frame in self.aggregator.tick(now):
                dev = next(m.device for m in self.members if m.lacp is port)
                dev.send([Packet(frame)], [-1])
                sent.append((dev, frame))
        new = self._choose_active()
        si = self.settings.mode is TeamingMode.SWITCH_INDEPENDENT or self.lacp_fallen_back()
        if new != self._active or si != self._si:
            sent += self._set_active(new, si)
        self._decay(now)
        self._report()
        return sent

    def _report(self) -> None:
        """Log every change an operator cares about (daemon/logs.py events): a member's OperationalStatus and
        FailureReason (Get-NetLbfoTeamMember), its LACP partner, and the team's active members."""
        for m in self.members:
            status, reason = self.member_status(m)
            partner = (m.lacp.partner.system, m.lacp.partner.key) if m.lacp is not None else None
            name = m.device.name
            before = self._reported.get(name)
            self._reported[name] = (status, reason, partner)
            if before is None or before[:2] != (status, reason):
                level = logging.INFO if status in ("Active", "Standby") else logging.WARNING
                log.log(level, "team %s member %s: %s (%s)", self.name, name, status, reason,
                        extra={"event": "team.member", "fields": {"key": f"{self.name}/{name}", "team": self.name,
                               "member": name, "status": status, "reason": reason}})  # fmt: skip
            if partner is not None and (before is None or before[2] != partner) and partner[0]:
                system = format_mac(int(partner[0]))
                log.info("team %s member %s: LACP partner system %s key %s", self.name, name, system,
                         partner[1], extra={"event": "lacp.partner", "fields": {"key": f"{self.name}/{name}",
                         "team": self.name, "member": name, "system": system, "partner_key": partner[1]}})  # fmt: skip
        active = tuple(m.device.name for m in self._active)
        if active != self._reported_active and self.members:
            if self._reported_active is not None or not active:
                down = not active
                log.log(logging.WARNING if down else logging.INFO, "team %s: %s", self.name,
                        "Down: no member active" if down else f"active members {', '.join(active)}",
                        extra={"event": "team.state", "fields": {"key": self.name, "team": self.name,
                               "active": ",".join(active), "failovers": self.failovers}})  # fmt: skip
            self._reported_active = active

    def _set_active(self, new: list[Member], si: bool) -> list[tuple[Device, bytes]]:
        if self._active and new != self._active:
            self.failovers += 1
        old_primary = self._primary
        for m in self.members:
            m.active = m in new
        self._active = new
        self._primary = new[0] if new else None
        self._si = si
        self._echo.clear()
        moved = self._rebalance_affinity()
        if not new or not si:
            # Static and Lacp: the physical switch sees the team as one port, it has nothing to relearn.
            return []
        if self.settings.algorithm in (LoadBalancing.HYPERV_PORT, LoadBalancing.DYNAMIC):
            return self._announce(moved) if moved else []  # the MACs of the ports that changed member
        # Address hash: the physical switch knows every MAC behind the team on the primary alone.
        return self._announce(None) if old_primary is not None and self._primary is not old_primary else []

    def _rebalance_affinity(self) -> set[int]:
        """Ports of members that left go to the least-loaded survivors; after a failback, the fewest ports
        move so that counts differ by at most one. Returns the ports that moved."""
        moved: set[int] = set()
        for m in self.members:
            if not m.active:
                moved |= m.ports
                m.ports = set()
        for port in moved:
            self._affinity.pop(port, None)
        active = self._active
        if not active:
            return moved
        for port in sorted(moved):
            self._assign(port)
        while True:
            most = max(active, key=lambda m: len(m.ports))
            least = min(active, key=lambda m: len(m.ports))
            if len(most.ports) - len(least.ports) <= 1:
                return moved
            port = max(most.ports)
            most.ports.discard(port)
            least.ports.add(port)
            self._affinity[port] = least
            moved.add(port)

    def _assign(self, port: int) -> Member:
        m = min(self._active, key=lambda m: len(m.ports))
        m.ports.add(port)
        self._affinity[port] = m
        return m

    def _port_member(self, port: int) -> Member:
        m = self._affinity.get(port)
        if m is None or not m.active:
            if m is not None:
                m.ports.discard(port)
            m = self._assign(port)
        return m

    def _announce(self, ports: set[int] | None) -> list[tuple[Device, bytes]]:
        """One RARP per MAC behind the team (of the ``ports`` that moved; None = all), on the member that now
        carries it, so the physical switch relearns where it is (as OVS does; TM-10)."""
        per_port = self.settings.algorithm in (LoadBalancing.HYPERV_PORT, LoadBalancing.DYNAMIC)
        out: list[tuple[Device, bytes]] = []
        for mac, port in self.announce():
            if ports is not None and port not in ports:
                continue
            m = self._port_member(port) if per_port else self._primary
            if m is not None:
                out.append((m.device, rarp(mac)))
        for dev, frame in out:
            dev.send([Packet(frame)], [-1])
        self.announcements += len(out)
        return out

    def _decay(self, now: float) -> None:
        dt = now - self._last_decay
        if dt <= 0:
            return
        self._last_decay = now
        if self.settings.algorithm is not LoadBalancing.DYNAMIC:
            return
        factor = 0.5 ** (dt / LOAD_HALF_LIFE_S)
        for m in self.members:
            m.load *= factor
        if now >= self._next_flow_sweep:
            self._next_flow_sweep = now + FLOW_IDLE_S
            stale = [k for k, f in self._flows.items() if now - f.last > FLOW_IDLE_S]
            for k in stale:
                del self._flows[k]

    def _flowlet_member(self, key: int, now: float, size: int) -> Member:
        """Dynamic: a flow stays on its member while its frames come closer than FLOWLET_GAP_S; after a gap
        (or if its member left) it goes to the least-loaded active member."""
        f = self._flows.get(key)
        if f is not None:
            m = f.member
            if m.active and now - f.last < FLOWLET_GAP_S:
                f.last = now
                m.load += size
                return m
            best = min(self._active, key=lambda a: a.load)
            if best is not m:
                self.flowlet_moves += 1
            f.member, f.last = best, now
        else:
            best = min(self._active, key=lambda a: a.load)
            self._flows[key] = _Flow(best, now)
        best.load += size
        return best

    # ---- Device protocol ----

    def fileno(self) -> int:
        if self._events is None and self._events_factory is not None:
            self._open_events()
        return self._epoll.fileno()

    def _open_events(self) -> None:
        assert self._events_factory is not None
        try:
            self._events = self._events_factory()
        except OSError:
            self._events_factory = None  # polling alone still sees every carrier change
            return
        self._epoll.register(self._events.fileno(), select.EPOLLIN)

    def recv(self, max_frames: int) -> list[Packet]:
        if self._events is not None and self._events.changed():
            self.tick(self._clock())
        out: list[Packet] = []
        n = len(self.members)
        lacp = self.settings.mode is TeamingMode.LACP and not self._si
        si = self._si
        primary = self._primary
        for k in range(n):
            m = self.members[(self._next_rx + k) % n]
            if len(out) >= max_frames:
                break
            for p in m.device.recv(max_frames - len(out)):
                data = p.data
                if len(data) < 14:
                    out.append(p)  # the switch counts and drops it (runt)
                    continue
                if data[12] == 0x88 and data[13] == 0x09:
                    self._slow(m, p)
                    continue
                if lacp and (m.lacp is None or not m.lacp.distributing):
                    self.counters.drops[TeamDrop.RX_MEMBER_NOT_COLLECTING] += 1
                    continue
                if si and data[0] & 1:
                    # The physical switch floods to every member: one copy enters, on the primary; and a
                    # broadcast we sent on another member comes back here, which must not move its MAC.
                    if m is not primary:
                        self.counters.drops[TeamDrop.RX_MULTICAST_ON_SECONDARY] += 1
                        continue
                    if self._echo and bytes(data[6:12]) in self._echo:
                        self.counters.drops[TeamDrop.RX_OWN_MULTICAST_ECHO] += 1
                        continue
                out.append(p)
        self._next_rx = (self._next_rx + 1) % max(n, 1)
        self.counters.rx_frames += len(out)
        return out

    def _slow(self, m: Member, p: Packet) -> None:
        try:
            pdu = decode(bytes(p.data))
        except PduError:
            self.counters.drops[TeamDrop.RX_BAD_SLOW_PROTOCOL] += 1
            return
        if isinstance(pdu, Lacpdu):
            if m.lacp is not None:
                m.lacp.receive(pdu, self._clock())
        elif isinstance(pdu, MarkerPdu) and not pdu.response:
            mac = m.lacp.mac if m.lacp is not None else m.mac
            m.device.send([Packet(encode_marker(marker_response(pdu, mac)))], [-1])

    def release(self) -> None:
        for m in self.members:
            m.device.release()

    def resync(self) -> bool:
        return any([m.device.resync() for m in self.members])  # a list: every member is checked

    def send(self, pkts: Sequence[Packet], tcis: Sequence[int]) -> None:
        active = self._active
        if not active:
            self.counters.drops[TeamDrop.TX_NO_ACTIVE_MEMBER] += len(pkts)
            return
        self.counters.tx_frames += len(pkts)
        if len(active) == 1:
            active[0].device.send(pkts, tcis)
            return
        per: dict[int, tuple[Member, list[Packet], list[int]]] = {}
        algorithm = self.settings.algorithm
        si = self._si
        primary = active[0]
        n = len(active)
        now = self._clock() if algorithm is LoadBalancing.DYNAMIC else 0.0
        for p, t in zip(pkts, tcis, strict=True):
            data = p.data
            if algorithm is LoadBalancing.HYPERV_PORT:
                m = self._port_member(p.in_port)
            elif algorithm is LoadBalancing.DYNAMIC:
                if si and announces_location(data):
                    m = self._port_member(p.in_port)
                else:
                    m = self._flowlet_member(flow_hash(p, LoadBalancing.TRANSPORT_PORTS), now, len(data))
                    if si and m is not self._port_member(p.in_port):
                        p = _with_source(p, m.mac_bytes)
            elif si and announces_location(data):
                m = primary
            else:
                m = active[flow_hash(p, algorithm) % n]
                if si and m is not primary:
                    p = _with_source(p, m.mac_bytes)
            if si and data[0] & 1 and m is not primary and len(self._echo) < ECHO_MEMORY:
                self._echo.add(bytes(data[6:12]))
            slot = per.get(id(m))
            if slot is None:
                slot = per[id(m)] = (m, [], [])
            slot[1].append(p)
            slot[2].append(t)
        for m, ps, ts in per.values():
            m.device.send(ps, ts)

    def close(self) -> None:
        self._epoll.close()
        if self._events is not None:
            self._events.close()
        for m in self.members:
            m.device.close()

    # ---- observation ----

    def member_status(self, m: Member) -> tuple[str, str]:
        """(OperationalStatus, FailureReason) as Get-NetLbfoTeamMember reports them."""
        if m.active:
            return "Active", "NoFailure"
        if not m.up:
            return (
                "Failed",
                "WaitingForStableConnectivity" if m.pending is not None else "PhysicalMediaDisconnected",
            )
        if (
            self.settings.mode is TeamingMode.LACP
            and not self._si
            and (m.lacp is None or not m.lacp.distributing)
        ):
            return "Failed", "LacpNegotiationIssue"
        if m.standby:
            return "Standby", "AdministrativeDecision"
        return "Failed", "Unknown"

    def show(self) -> dict[str, object]:
        """Team status: members with carrier, standby and use, and LACP actor/partner (like lacp/show)."""
        members = []
        for m in self.members:
            status, reason = self.member_status(m)
            members.append(
                {
                    "name": m.device.name,
                    "up": m.up,
                    "standby": m.standby,
                    "active": m.active,
                    "primary": m is self._primary,
                    "operational_status": status,
                    "failure_reason": reason,
                    "failures": m.failures,
                    "ports": sorted(m.ports),
                    "counters": m.device.counters.as_dict(),
                }
            )
        return {
            "name": self.name,
            "mode": self.settings.mode.value,
            "algorithm": self.settings.algorithm.value,
            "switch_independent_rules": self._si,
            "lacp_fallback": self.lacp_fallen_back(),
            "failovers": self.failovers,
            "announcements": self.announcements,
            "flowlet_moves": self.flowlet_moves,
            "flows": len(self._flows),
            "drops": dict(self.counters.drops),
            "members": members,
            "lacp": self.aggregator.show() if self.aggregator is not None else None,
        }
