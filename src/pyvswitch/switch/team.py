"""A NIC team (LBFO) as one device: members, LACP, load balancing and failover (hyperv-networking.md §3).

``TeamDevice`` satisfies the Device protocol, so a switch's uplink port can be a team without the switch
knowing. Received frames come from every member that may collect; slow-protocol frames (LACP, markers) are
consumed here. Sent frames are spread over the members that may distribute by the load-balancing algorithm:

- TransportPorts: hash of the 4-tuple (addresses and TCP/UDP ports), falling back to the IP pair, then to the
  MAC pair for non-IP frames (TM-06);
- IPAddresses: the IP pair, else MACs; MacAddresses: the MAC pair;
- HyperVPort: the switch port the frame came from (each VM pinned to one member);
- Dynamic: TransportPorts here; flowlet re-balancing comes later (stated in the issue note).

Modes: SwitchIndependent and Static use every member whose carrier is up; Lacp uses the members the LACP
machines put in collecting+distributing. A standby member is used only while another member is down.
Failover is immediate on a carrier change seen by ``tick`` (called by the forwarding loop), and flows hash
over the survivors.

This module is the data path of a team; management (New-NetLbfoTeam, the daemon's team objects) is next.
"""

from __future__ import annotations

import select
import struct
import time
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from pyvswitch.config.schema import LoadBalancing, TeamingMode
from pyvswitch.datapath import link
from pyvswitch.datapath.device import Device, DeviceCounters
from pyvswitch.packet.frame import ETH_P_IPV4, ETH_P_IPV6, Packet
from pyvswitch.switch.lacp import Lacpdu, MarkerPdu, PduError, decode, encode_marker, marker_response
from pyvswitch.switch.lacp_port import ActorConfig, LacpAggregator, LacpPort


@dataclass
class Member:
    device: Device
    carrier: Callable[[], bool]
    standby: bool = False
    lacp: LacpPort | None = None
    up: bool = True
    failures: int = 0


def carrier_up(ifname: str) -> bool:
    """A member's carrier from sysfs (cheap enough to read every tick; netlink events are the next step).
    An interface that is down (reading fails with EINVAL) or gone has no carrier."""
    return link.sysfs_int(ifname, "carrier", 0) == 1


def carrier_mac(ifname: str) -> int:
    """A member's MAC: the team's LACP system id is its first member's address."""
    try:
        with open(f"/sys/class/net/{ifname}/address") as f:
            return int(f.read().strip().replace(":", ""), 16)
    except (OSError, ValueError):
        return 0x020000000000


def rarp(mac: int) -> bytes:
    """A broadcast RARP request from ``mac`` (EtherType 0x8035): what OVS and VMware send to move a MAC."""
    hw = mac.to_bytes(6, "big")
    body = struct.pack(">HHBBH", 1, 0x0800, 6, 4, 3) + hw + bytes(4) + hw + bytes(4)
    return b"\xff" * 6 + hw + b"\x80\x35" + body + bytes(60 - 14 - len(body))


def flow_hash(pkt: Packet, algorithm: LoadBalancing) -> int:
    """The hash that picks a member; stable for a flow, cheap (crc32 of the fields)."""
    if algorithm is LoadBalancing.HYPERV_PORT:
        return pkt.in_port & 0x7FFFFFFF
    data = pkt.data
    if algorithm is not LoadBalancing.MAC_ADDRESSES and len(data) >= 34:
        etype = (data[12] << 8) | data[13]
        if etype == ETH_P_IPV4:
            ihl = (data[14] & 0xF) * 4
            key = bytes(data[26:34])
            proto = data[23]
            if algorithm is not LoadBalancing.IP_ADDRESSES and proto in (6, 17) and len(data) >= 14 + ihl + 4:
                key += bytes(data[14 + ihl : 18 + ihl]) + bytes([proto])
            return zlib.crc32(key)
        if etype == ETH_P_IPV6 and len(data) >= 58:
            key = bytes(data[22:54])
            if algorithm is not LoadBalancing.IP_ADDRESSES and data[20] in (6, 17):
                key += bytes(data[54:58])
            return zlib.crc32(key)
    return zlib.crc32(bytes(data[0:12]))


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
    ) -> None:
        self.name = name
        self.members = list(members)
        self.mode = mode
        self.algorithm = algorithm
        self.counters = DeviceCounters()
        self._clock = clock
        self.vnet = all(m.device.vnet for m in self.members)
        self.aggregator: LacpAggregator | None = None
        if mode is TeamingMode.LACP:
            ports = []
            for i, m in enumerate(self.members):
                m.lacp = LacpPort(
                    m.device.name, system_mac + i + 1, ActorConfig(system_mac, key, i + 1, fast=lacp_fast)
                )
                ports.append(m.lacp)
            self.aggregator = LacpAggregator(ports)
        self._epoll = select.epoll()
        for m in self.members:
            if m.device.fileno() >= 0:
                self._epoll.register(m.device.fileno(), select.EPOLLIN)
        self._active: list[Member] = []
        self._next_rx = 0
        self.failovers = 0
        self.announcements = 0
        # The MACs behind the team (set by the engine from the switch that uses it): announced after failover.
        self.announce: Callable[[], list[int]] = list
        for m in self.members:
            m.up = False  # the first tick sees each carrier come up (and starts its LACP machines)
        self.tick(clock())

    # ---- which members carry traffic ----

    def active(self) -> list[Member]:
        return list(self._active)

    def _choose_active(self) -> list[Member]:
        if self.mode is TeamingMode.LACP:
            candidates = [m for m in self.members if m.up and m.lacp is not None and m.lacp.distributing]
        else:
            candidates = [m for m in self.members if m.up]
        primary = [m for m in candidates if not m.standby]
        all_primaries_up = all(m.up for m in self.members if not m.standby)
        # The standby member works only while some other member is down (TM-05).
        if not all_primaries_up or not primary:
            return primary + [m for m in candidates if m.standby]
        return primary

    def tick(self, now: float) -> list[tuple[Device, bytes]]:
        """Carrier changes, LACP timers, and the LACPDUs to send (already sent; returned for tests)."""
        for m in self.members:
            up = bool(m.carrier())
            if up != m.up:
                m.up = up
                if not up:
                    m.failures += 1
                if m.lacp is not None:
                    m.lacp.set_enabled(up, now)
        sent: list[tuple[Device, bytes]] = []
        if self.aggregator is not None:
            for port, frame in self.aggregator.tick(now):
                dev = next(m.device for m in self.members if m.lacp is port)
                dev.send([Packet(frame)], [-1])
                sent.append((dev, frame))
        new = self._choose_active()
        if [id(m) for m in new] != [id(m) for m in self._active]:
            lost = any(m not in new for m in self._active)
            if self._active:
                self.failovers += 1
            self._active = new
            if lost and new:
                sent += self._announce(new[0])
        return sent

    def _announce(self, member: Member) -> list[tuple[Device, bytes]]:
        """After a failover, one RARP per MAC behind the team out of the primary survivor, so the physical
        switch relearns where they are now (as OVS does; TM-10)."""
        frames = [rarp(mac) for mac in self.announce()]
        if frames:
            member.device.send([Packet(f) for f in frames], [-1] * len(frames))
            self.announcements += len(frames)
        return [(member.device, f) for f in frames]

    # ---- Device protocol ----

    def fileno(self) -> int:
        return self._epoll.fileno()

    def recv(self, max_frames: int) -> list[Packet]:
        out: list[Packet] = []
        n = len(self.members)
        for k in range(n):
            m = self.members[(self._next_rx + k) % n]
            if len(out) >= max_frames:
                break
            for p in m.device.recv(max_frames - len(out)):
                data = p.data
                if len(data) >= 14 and data[12] == 0x88 and data[13] == 0x09:
                    self._slow(m, p)
                    continue
                if self.mode is TeamingMode.LACP and (m.lacp is None or not m.lacp.distributing):
                    self.counters.drops["rx-member-not-collecting"] += 1
                    continue
                out.append(p)
        self._next_rx = (self._next_rx + 1) % max(n, 1)
        self.counters.rx_frames += len(out)
        return out

    def _slow(self, m: Member, p: Packet) -> None:
        try:
            pdu = decode(bytes(p.data))
        except PduError:
            self.counters.drops["rx-bad-slow-protocol"] += 1
            return
        if isinstance(pdu, Lacpdu):
            if m.lacp is not None:
                m.lacp.receive(pdu, self._clock())
        elif isinstance(pdu, MarkerPdu) and not pdu.response:
            mac = m.lacp.mac if m.lacp is not None else 0
            m.device.send([Packet(encode_marker(marker_response(pdu, mac)))], [-1])

    def release(self) -> None:
        for m in self.members:
            m.device.release()

    def send(self, pkts: Sequence[Packet], tcis: Sequence[int]) -> None:
        active = self._active
        if not active:
            self.counters.drops["tx-no-active-member"] += len(pkts)
            return
        if len(active) == 1:
            active[0].device.send(pkts, tcis)
            self.counters.tx_frames += len(pkts)
            return
        per: dict[int, tuple[list[Packet], list[int]]] = {}
        n = len(active)
        algorithm = self.algorithm
        for p, t in zip(pkts, tcis, strict=True):
            i = flow_hash(p, algorithm) % n
            slot = per.get(i)
            if slot is None:
                slot = per[i] = ([], [])
            slot[0].append(p)
            slot[1].append(t)
        for i, (ps, ts) in per.items():
            active[i].device.send(ps, ts)
        self.counters.tx_frames += len(pkts)

    def close(self) -> None:
        self._epoll.close()
        for m in self.members:
            m.device.close()

    def show(self) -> dict[str, object]:
        """Team status: members with carrier, standby and use, and LACP actor/partner (like lacp/show)."""
        return {
            "name": self.name,
            "mode": self.mode.value,
            "algorithm": self.algorithm.value,
            "failovers": self.failovers,
            "announcements": self.announcements,
            "members": [
                {
                    "name": m.device.name,
                    "up": m.up,
                    "standby": m.standby,
                    "active": m in self._active,
                    "failures": m.failures,
                    "counters": m.device.counters.as_dict(),
                }
                for m in self.members
            ],
            "lacp": self.aggregator.show() if self.aggregator is not None else None,
        }
