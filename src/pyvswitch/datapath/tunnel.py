"""A VXLAN tunnel as a switch port's device (issue 13 item 3): frames the switch sends to it leave encapsulated
to the provider address the lookup records name; datagrams that arrive are decapsulated and handed to the switch,
so ACLs, the firewall, mirroring, QoS and traces see the inner frame.

How the switch and the device agree on the virtual subnet without widening the 12-bit VLAN path: each VSID of
the switch has a *code*, a VID private to this port (``TunnelTables.code_of``): the tunnel port's ingress table
maps code -> the VSID's domain inside the switch, its egress table the domain -> code; so a received frame comes
with TCI = code, and a frame to send carries TCI = code, which is never put on a wire.

What the device decides per frame it is given (HNV v1 semantics: the lookup records are the truth, nothing is
learned across hosts):
- unicast: the record of the destination MAC in that VSID names the provider address: one datagram there; no
  record: dropped (``no-lookup-record``), never flooded;
- an ARP request for an address a remote record has: answered here (ARP suppression) with that record's MAC,
  the reply queued for the next ``recv`` as if it came through the tunnel; for an address of this host's own
  VMs: not sent (the VM heard it on the switch); either way nothing crosses the provider network;
- other broadcast and multicast (DHCP, ND, ARP for unknown addresses): one copy to each other host of the
  subnet (head-end replication), none to hosts without a port on it;
- on a subnet with customer routes (datapath/distributed_router.py): ARP for its gateway address is answered
  with the routing domain's router MAC, and unicast to that MAC is routed here to another subnet of the domain:
  to the record's host with that subnet's VNI, or back to the switch on that subnet for a VM of this host.

Tables are replaced whole (``set_tables``, one attribute store: the forwarding thread reads it once per batch).
"""

from __future__ import annotations

import errno
import socket
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field

from pyvswitch.datapath.device import DeviceCounters, DeviceDrop
from pyvswitch.datapath.distributed_router import RouterDrop, RouterTables, route_frame
from pyvswitch.drops import DropReason
from pyvswitch.packet.frame import UNTAGGED, Packet
from pyvswitch.packet.offload import finish_offloads
from pyvswitch.packet.vxlan import (
    VXLAN_HEADER_LEN,
    VXLAN_PORT,
    arp_reply,
    arp_request_target,
    decode_header,
    encode_header,
)

MAX_DATAGRAM = 65535
IP_MTU_DISCOVER, IP_PMTUDISC_DONT = 10, 0  # linux/in.h (not exported by Python's socket module)


class TunnelDrop(DropReason):
    RX_NOT_VXLAN = "rx-not-vxlan", "a datagram on the VXLAN port that is not VXLAN (short, or no VNI flag)"
    RX_UNKNOWN_VNI = "rx-unknown-vni", "VXLAN for a virtual subnet this switch has no port on"
    RX_UNKNOWN_PEER = "rx-unknown-peer", "VXLAN from an address that is no host of the virtual subnet"
    TX_NO_RECORD = "no-lookup-record", "unicast to a MAC no lookup record of the virtual subnet names"
    TX_UNKNOWN_CODE = "tx-unknown-subnet", "sent with a subnet code the tunnel has no table for"
    TX_ERROR = "tx-error", "the provider network refused the datagram"


@dataclass(frozen=True)
class TunnelTables:
    """What the tunnel knows of the cluster, built from the lookup records (daemon/tunnels.py), by VSID."""

    unicast: dict[tuple[int, int], str] = field(default_factory=dict)  # (VSID, MAC) -> provider address
    flood: dict[int, tuple[str, ...]] = field(default_factory=dict)  # VSID -> the other hosts' addresses
    # (VSID, IPv4) -> MAC, remote records only; and this host's VMs' (VSID, IPv4), which answer themselves.
    arp: dict[tuple[int, bytes], int] = field(default_factory=dict)
    local: frozenset[tuple[int, bytes]] = frozenset()
    router: RouterTables = field(default_factory=RouterTables)  # customer routes (distributed_router.py)
    # VSID -> hosts that may send into it besides its own: those of the other subnets of its routing domain
    # (their routers send routed frames with this subnet's VNI).
    routed_peers: dict[int, tuple[str, ...]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        peers = {v: frozenset(pas) for v, pas in self.flood.items()}
        for v, pas in self.routed_peers.items():
            peers[v] = peers.get(v, frozenset()) | frozenset(pas)
        object.__setattr__(self, "peers", peers)


class TunnelPort:
    """What both tunnel devices share: the VSID codes, the tables, and the per-frame decision of where a frame
    the switch sends goes (``route``), which is the kernel vxlan driver's own job too (its FDB: MAC -> remote,
    all-zeros entries for broadcast; its ``proxy`` mode: ARP answered from the neighbour table)."""

    name: str
    provider_address: str
    counters: DeviceCounters
    datapath = "python"  # which implementation, for counters

    def __init__(self) -> None:
        self.tables = TunnelTables()
        # VSID <-> the code its frames carry to and from the switch (switch/vlan.py tunnel_codes), set by the
        # switch when it configures this port.
        self.code_of: dict[int, int] = {}
        self.vsid_of: dict[int, int] = {}
        self.suppressed = 0  # ARP requests answered here
        self.replicated = 0  # copies sent by head-end replication
        self.routed = 0  # frames the distributed router sent on to another subnet (or answered)
        self._local: deque[Packet] = deque()  # replies made here, received before what the network brings

    def set_tables(self, tables: TunnelTables) -> None:
        self.tables = tables

    def set_codes(self, code_of: dict[int, int]) -> None:
        self.code_of = dict(code_of)
        self.vsid_of = {c: v for v, c in code_of.items()}

    def tunnel_counters(self) -> dict[str, object]:
        """``counters``' ``tunnel`` entry of the port: what a capture of the provider network cannot show."""
        t = self.tables
        return {
            "provider_address": self.provider_address,
            "datapath": self.datapath,
            "arp_suppressed": self.suppressed,
            "replicated": self.replicated,
            "routed": self.routed,
            "subnets": len(self.code_of),
            "remote_macs": len(t.unicast),
            "peers": sorted({pa for pas in t.flood.values() for pa in pas}),
        }

    def local_replies(self, out: list[Packet], max_frames: int) -> None:
        local = self._local
        while local and len(out) < max_frames:
            out.append(local.popleft())

    def route(self, pkt: Packet, tci: int) -> tuple[int, Sequence[str], Packet] | None:
        """The VSID of a frame the switch sends, the provider addresses it goes to and the frame to send (``pkt``
        itself unless the router rewrote it); None if it goes nowhere (answered or routed back to the switch
        here, or dropped and counted)."""
        vsid = self.vsid_of.get(tci & 0xFFF) if tci >= 0 else None
        if vsid is None:
            self.counters.drops[TunnelDrop.TX_UNKNOWN_CODE] += 1
            return None
        tables = self.tables
        data = pkt.data
        if data[0] & 1:  # broadcast or multicast
            asked = arp_request_target(data)
            if asked is not None:
                mac = tables.arp.get((vsid, asked[0]))
                if mac is None:
                    mac = tables.router.gateways.get((vsid, asked[0]))  # the subnet's default gateway
                if mac is not None:
                    self._local.append(Packet(arp_reply(mac, asked[0], asked[1], asked[2]), tci & 0xFFF))
                    self.suppressed += 1
                    return None
                if (vsid, asked[0]) in tables.local:
                    self.suppressed += 1  # a VM of this host: it heard the request on the switch
                    return None
            targets: Sequence[str] = tables.flood.get(vsid, ())
            self.replicated += max(0, len(targets) - 1)
            return vsid, targets, pkt
        dst = int.from_bytes(data[0:6], "big")
        if dst == tables.router.router_macs.get(vsid):
            return self._routed(pkt, vsid)
        pa = tables.unicast.get((vsid, dst))
        if pa is None:
            self.counters.drops[TunnelDrop.TX_NO_RECORD] += 1
            return None
        return vsid, (pa,), pkt

    def _routed(self, pkt: Packet, vsid: int) -> tuple[int, Sequence[str], Packet] | None:
        routed = route_frame(self.tables.router, vsid, pkt.data)
        if isinstance(routed, RouterDrop):
            self.counters.drops[routed] += 1
            return None
        to_vsid, data, pa = routed
        self.routed += 1
        out = Packet(bytes(data), UNTAGGED, pkt.vnet)
        if pa is not None:
            return to_vsid, (pa,), out
        code = self.code_of.get(to_vsid)
        if code is None:  # a record naming this host on a subnet without a port here (a static record)
            self.counters.drops[TunnelDrop.TX_UNKNOWN_CODE] += 1
            return None
        out.tci = code
        self._local.append(out)  # a VM of this host: back to the switch, on the destination subnet
        return None


class VxlanTunnel(TunnelPort):
    """A UDP socket on the provider address, port 4789, as a Device: encapsulation in Python."""

    vnet = False
    mtu = 1500  # what the VMs on its subnets send; the datagrams are 50 bytes more (packet/vxlan.py)

    def __init__(self, name: str, provider_address: str, port: int = VXLAN_PORT) -> None:
        super().__init__()
        self.name = name
        self.provider_address = provider_address
        self.port = port
        self.counters = DeviceCounters()
        family = socket.AF_INET6 if ":" in provider_address else socket.AF_INET
        self._sock = socket.socket(family, socket.SOCK_DGRAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        if family == socket.AF_INET:
            # Fragment a datagram the provider network's MTU cannot carry rather than drop it (a VM sends up to
            # its own MTU, 1500; the tunnel adds 50): correct if slower. A provider MTU >= 1550 avoids it.
            self._sock.setsockopt(socket.IPPROTO_IP, IP_MTU_DISCOVER, IP_PMTUDISC_DONT)
        self._sock.bind((provider_address, port))
        self._sock.setblocking(False)
        self._buf = bytearray(MAX_DATAGRAM)

    def fileno(self) -> int:
        return self._sock.fileno()

    # ---- receive ----

    def recv(self, max_frames: int) -> list[Packet]:
        out: list[Packet] = []
        self.local_replies(out, max_frames)
        tables = self.tables
        code_of = self.code_of
        peers: dict[int, frozenset[str]] = tables.peers  # type: ignore[attr-defined]
        drops = self.counters.drops
        buf = self._buf
        while len(out) < max_frames:
            try:
                n, addr = self._sock.recvfrom_into(buf)
            except BlockingIOError:
                break
            except OSError:
                drops[DeviceDrop.RX_ERROR] += 1
                break
            vni = decode_header(memoryview(buf)[:n])
            if vni is None:
                drops[TunnelDrop.RX_NOT_VXLAN] += 1
                continue
            code = code_of.get(vni)
            if code is None:
                drops[TunnelDrop.RX_UNKNOWN_VNI] += 1
                continue
            if addr[0] not in peers.get(vni, ()):
                drops[TunnelDrop.RX_UNKNOWN_PEER] += 1  # only the subnet's hosts may inject into it
                continue
            inner = bytes(buf[VXLAN_HEADER_LEN:n])
            self.counters.rx_frames += 1
            self.counters.rx_bytes += len(inner)
            out.append(Packet(inner, code))
        return out

    def release(self) -> None:
        pass

    def resync(self) -> bool:
        return False

    # ---- send ----

    def send(self, pkts: Sequence[Packet], tcis: Sequence[int]) -> None:
        drops = self.counters.drops
        for pkt, tci in zip(pkts, tcis, strict=True):
            routed = self.route(pkt, tci)
            if routed is None:
                continue
            vsid, targets, out = routed
            header = encode_header(vsid)
            # Wire-ready frames: a VM's TCP super-frame is cut to its MSS, a partial checksum finished.
            for frame in finish_offloads(out.data, out.vnet):
                datagram = header + frame
                for pa in targets:
                    try:
                        self._sock.sendto(datagram, (pa, self.port))
                    except OSError as exc:
                        if exc.errno not in (
                            errno.EAGAIN,
                            errno.ENOBUFS,
                            errno.EHOSTUNREACH,
                            errno.ENETUNREACH,
                        ):
                            raise
                        drops[TunnelDrop.TX_ERROR] += 1
                        continue
                    self.counters.tx_frames += 1
                    self.counters.tx_bytes += len(frame)

    def close(self) -> None:
        self._sock.close()
