"""The tunnel port on the kernel's vxlan driver (issue 13 item 3, the fast path; ``pyvswitchd --tunnel-datapath
kernel``): one kernel ``vxlan`` device per virtual subnet (VNI = VSID, bound to the provider address, learning
off), read and written through AF_PACKET rings like any port, with static FDB entries from the lookup records:
MAC -> the provider address that has it, and one all-zeros entry per other host of the subnet (the kernel's
head-end replication of broadcast and multicast). This is what flannel's vxlan backend does.

Why: the Python tunnel (datapath/tunnel.py) encapsulates every datagram itself and must cut a VM's TCP
super-frames to its MSS first (packet/offload.py): TCP across hosts ran at 0.04x of TCP on one host. Here a
super-frame goes to the vxlan device whole, with its virtio-net header, and the kernel segments it as UDP-tunnel
GSO after encapsulation; received frames come up decapsulated (GRO'd when the provider NIC does).

Same semantics as the Python tunnel, because the switch-facing decisions are shared (``TunnelPort.route``):
unicast without a lookup record is dropped before it reaches the kernel (whose FDB would otherwise send unknown
unicast to the all-zeros entries: a flood), ARP for recorded addresses is answered here, frames carry their
subnet's code to and from the switch. One difference, stated: the kernel accepts a datagram of a known VNI from
any source, where the Python tunnel drops one from an address that is no host of the subnet
(``rx-unknown-peer``); the provider network is trusted here as in flannel.

The devices live in the forwarder's network namespace, named ``pvx<VSID>``; a subnet's device is made when the
switch first carries the subnet (``set_codes``, on the forwarding thread: ~30 ms for the rings, once per new
subnet, or first routes to it) and removed when it no longer does or the port closes. The FDB is programmed from ``set_tables`` (the
caller's thread) with netlink (pyroute2), as differences.
"""

from __future__ import annotations

import contextlib
import logging
import select
import socket
import threading
import time
from collections.abc import Iterable, Sequence

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

from pyvswitch.datapath.afpacket import AfPacketDevice, RingSpec
from pyvswitch.datapath.device import DeviceCounters, DeviceDrop
from pyvswitch.datapath.tunnel import TunnelPort, TunnelTables
from pyvswitch.errors import DeviceError
from pyvswitch.packet.frame import UNTAGGED, Packet
from pyvswitch.packet.vxlan import VXLAN_PORT

log = logging.getLogger(__name__)

DEVICE_PREFIX = "pvx"
VM_MTU = 1500  # what the VMs on a subnet send; the datagrams are 50 bytes more
NTF_SELF = 0x02  # linux/neighbour.h: the entry is the device's own (vxlan FDB), not a bridge port's
NUD_PERMANENT = 0x80
ZERO_MAC = "00:00:00:00:00:00"
# A subnet's ring: a tunnel carries what crosses hosts, far less than a VM port's bursts; 8 MiB per subnet.
SUBNET_RING = RingSpec(rx_frames=4096, tx_frames=512)
# A subnet this host only routes to is never read: one block of receive slots, so a routing domain of many
# subnets costs ~1 MiB each, not 8.
SEND_ONLY_RING = RingSpec(rx_frames=32, tx_frames=512, rcvbuf=1 << 20)
# A subnet prepared for a VM arriving by live migration (prepare_subnets) whose port never came is let go after this.
PREPARED_TTL_S = 30.0


def device_name(vsid: int) -> str:
    return f"{DEVICE_PREFIX}{vsid}"


def mac_text(mac: int) -> str:
    return ":".join(f"{b:02x}" for b in mac.to_bytes(6, "big"))


def fdb_of(tables: TunnelTables, vsid: int) -> set[tuple[str, str]]:
    """The FDB entries (MAC, provider address) a subnet's device should hold."""
    entries = {(mac_text(mac), pa) for (v, mac), pa in tables.unicast.items() if v == vsid}
    entries.update((ZERO_MAC, pa) for pa in tables.flood.get(vsid, ()))
    return entries


class KernelVxlanTunnel(TunnelPort):
    """A switch port's device: the kernel vxlan devices of the switch's virtual subnets, one fd to poll."""

    vnet = True  # AF_PACKET with virtio-net headers: GSO super-frames pass through whole
    mtu = VM_MTU
    datapath = "kernel"

    def __init__(self, name: str, provider_address: str, port: int = VXLAN_PORT) -> None:
        super().__init__()
        self.name = name
        self.provider_address = provider_address
        self.port = port
        self.counters = DeviceCounters()
        self._ipr = IPRoute()
        self._subs: dict[int, AfPacketDevice] = {}  # VSID -> its device's rings
        self._read: list[tuple[AfPacketDevice, int]] = []  # (rings, code), what recv walks
        self._used: list[AfPacketDevice] = []  # rings the last recv took frames from (released together)
        self._fdb: dict[int, set[tuple[str, str]]] = {}  # VSID -> entries programmed
        self._lock = (
            threading.Lock()
        )  # set_codes (forwarding thread) and set_tables (a caller's) both program
        self._epoll = select.epoll()
        self._polled: set[int] = set()  # VSIDs whose device is in the epoll set (those with a code)
        self._send_only: set[int] = set()  # VSIDs whose device was made for routing only (SEND_ONLY_RING)
        self._prepared: dict[int, float] = {}  # VSIDs made ahead of their first port (prepare_subnets): until

    # ---- configuration ----

    def set_codes(self, code_of: dict[int, int]) -> None:
        super().set_codes(code_of)
        with self._lock:
            self._reconcile()

    def set_tables(self, tables: TunnelTables) -> None:
        super().set_tables(tables)
        with self._lock:
            self._reconcile()
            for vsid in self._subs:
                self._program(vsid)

    def prepare_subnets(self, vsids: Iterable[int]) -> None:
        """Make the devices of subnets whose first port is about to arrive (a live migration's destination, while
        it validates), with their whole receive ring and FDB: the port then only starts reading them."""
        until = time.monotonic() + PREPARED_TTL_S
        with self._lock:
            for vsid in vsids:
                self._prepared[vsid] = until
            self._reconcile()

    def _reconcile(self) -> None:
        """One device per subnet with a port here, per subnet prepared for a port about to arrive, and per subnet
        their routing domains route to (send-only: the distributed router sends with that subnet's VNI;
        datapath/distributed_router.py)."""
        code_of = self.code_of
        now = time.monotonic()
        self._prepared = {v: t for v, t in self._prepared.items() if t > now and v not in code_of}
        prepared = set(self._prepared)
        want = set(code_of) | prepared | self.tables.router.reachable(code_of)
        # Gone, or a send-only device whose subnet now has a port here (it needs the full receive ring).
        for vsid in [
            v
            for v in self._subs
            if v not in want or ((v in code_of or v in prepared) and v in self._send_only)
        ]:
            self._remove(vsid)
        for vsid in sorted(want):
            if vsid not in self._subs:
                self._add(vsid, send_only=vsid not in code_of and vsid not in prepared)
        self._read = [(dev, code_of[v]) for v, dev in self._subs.items() if v in code_of]
        # Only the read devices wake the loop: a send-only one's ring is never read, and would keep it spinning.
        for vsid, dev in self._subs.items():
            if (vsid in code_of) != (vsid in self._polled):
                if vsid in code_of:
                    self._epoll.register(dev.fileno(), select.EPOLLIN)
                    self._polled.add(vsid)
                else:
                    with contextlib.suppress(OSError, ValueError):
                        self._epoll.unregister(dev.fileno())
                    self._polled.discard(vsid)

    def _add(self, vsid: int, send_only: bool = False) -> None:
        name = device_name(vsid)
        with contextlib.suppress(NetlinkError):  # a crashed forwarder's device: start clean
            self._ipr.link("del", ifname=name)
        try:
            self._ipr.link(
                "add",
                ifname=name,
                kind="vxlan",
                vxlan_id=vsid,
                vxlan_local=self.provider_address,
                vxlan_port=self.port,
                vxlan_learning=0,
                mtu=VM_MTU,
            )
            dev = AfPacketDevice(name, SEND_ONLY_RING if send_only else SUBNET_RING)  # brings the link up
        except (NetlinkError, DeviceError) as exc:
            with contextlib.suppress(NetlinkError):
                self._ipr.link("del", ifname=name)
            raise DeviceError(
                f"cannot make the vxlan device {name} on {self.provider_address}: {exc}", interface=name
            ) from exc
        dev.counters.drops = self.counters.drops  # its ring overruns and refused frames are this port's
        self._subs[vsid] = dev
        if send_only:
            self._send_only.add(vsid)
        self._fdb[vsid] = set()
        self._program(vsid)

    def _remove(self, vsid: int) -> None:
        dev = self._subs.pop(vsid)
        self._fdb.pop(vsid, None)
        self._send_only.discard(vsid)
        if vsid in self._polled:
            self._polled.discard(vsid)
            with contextlib.suppress(OSError, ValueError):
                self._epoll.unregister(dev.fileno())
        dev.close()
        with contextlib.suppress(NetlinkError):
            self._ipr.link("del", ifname=device_name(vsid))

    def _program(self, vsid: int) -> None:
        """Make the subnet's FDB what the tables say: remove what went, add what came."""
        dev = self._subs[vsid]
        want = fdb_of(self.tables, vsid)
        have = self._fdb[vsid]
        for mac, pa in sorted(have - want):
            self._neigh("del", dev.ifindex, mac, pa)
        for mac, pa in sorted(want - have):
            # "append": the all-zeros MAC has one entry per remote host; a MAC has one, replaced as it moves.
            self._neigh("append" if mac == ZERO_MAC else "replace", dev.ifindex, mac, pa)
        self._fdb[vsid] = want

    def _neigh(self, op: str, ifindex: int, mac: str, pa: str) -> None:
        try:
            self._ipr.neigh(
                op,
                family=socket.AF_BRIDGE,
                ifindex=ifindex,
                lladdr=mac,
                dst=pa,
                state=NUD_PERMANENT,
                flags=NTF_SELF,
            )
        except NetlinkError as exc:
            if op != "del":  # deleting what is already gone is fine
                log.warning("vxlan FDB %s %s -> %s: %s", op, mac, pa, exc)

    # ---- the Device protocol ----

    def fileno(self) -> int:
        return self._epoll.fileno()  # readable when any subnet's ring is

    def recv(self, max_frames: int) -> list[Packet]:
        out: list[Packet] = []
        self.local_replies(out, max_frames)
        used = self._used
        for dev, code in self._read:
            if len(out) >= max_frames:
                break
            pkts = dev.recv(max_frames - len(out))
            if not pkts:
                continue
            used.append(dev)
            for pkt in pkts:
                pkt.tci = code
                self.counters.rx_bytes += len(pkt.data)
            self.counters.rx_frames += len(pkts)
            out.extend(pkts)
        return out

    def release(self) -> None:
        for dev in self._used:
            dev.release()
        self._used.clear()

    def resync(self) -> bool:
        return any([dev.resync() for dev, _ in self._read])

    def send(self, pkts: Sequence[Packet], tcis: Sequence[int]) -> None:
        batches: dict[int, list[Packet]] = {}
        for pkt, tci in zip(pkts, tcis, strict=True):
            routed = self.route(pkt, tci)
            if routed is not None:
                batches.setdefault(routed[0], []).append(routed[2])
        for vsid, batch in batches.items():
            dev = self._subs.get(vsid)
            if dev is None:
                self.counters.drops[DeviceDrop.TX_CLOSED] += len(batch)
                continue
            before = dev.counters.tx_frames
            dev.send(batch, [UNTAGGED] * len(batch))  # the kernel picks the remote from its FDB
            self.counters.tx_frames += dev.counters.tx_frames - before
            self.counters.tx_bytes += sum(len(p.data) for p in batch)

    def close(self) -> None:
        with self._lock:
            for vsid in list(self._subs):
                self._remove(vsid)
        self._epoll.close()
        self._ipr.close()
