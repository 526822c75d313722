"""AF_PACKET port device: TPACKET_V2 receive and transmit rings, with virtio-net headers for offloads.

Why this design (platform.md, measured here): per-frame system calls cap a Python switch near 0.05 M frames/s,
while a TPACKET_V2 RX ring read in place plus a TX ring flushed with one send() per batch reaches 0.2-0.4 M.
V2 rather than V3 because V3's block timer adds >= 1 ms of latency at low rates.

Offloads stay on (PACKET_VNET_HDR): the kernel hands us GSO super-frames (up to 64 KiB) with a virtio-net
header and takes them back the same way, so TCP needs no segmentation in Python. Fixed ring slots cannot be
both small (many slots for bursts of small frames) and 64 KiB (super-frames), so the ring has 2 KiB slots and
large frames take the kernel's copy path: with PACKET_COPY_THRESH the kernel marks the frame's slot
TP_STATUS_COPY and queues the whole frame on the socket, and we read it with one recvmsg() at that point of
the ring, which keeps the order of frames. Large and GSO frames go out with one sendmsg() on a second, TX-only socket
after flushing the ring so order is kept on the way out too. Large frames come at ~20k/s at 10 Gbit/s, so a
system call each is cheap.

The kernel strips 802.1Q tags on veth before AF_PACKET sees them; the tag comes back in the slot header
(tp_vlan_tci with TP_STATUS_VLAN_VALID) or in PACKET_AUXDATA on the copy path, and goes out into ``Packet.tci``.

Staying in step with the kernel (issue 10). A V2 reader walks the ring in order and stops at the first slot the
kernel has not handed over. That is right as long as the kernel fills slots in the same order, but the ring can
hold *holes*: a slot the kernel took but has not marked yet (two CPUs filling at once: transient), or one it
will not mark in this lap. Measured after 64 B floods (slot headers dumped at the stall, 12 cases): the head
slot empty, its timestamp in sequence with the frames read just before it, the kernel's next frames right
behind it, and the slot still empty seconds later, until the kernel lapped the ring; the port forwarded nothing
meanwhile, "readable" for poll() (libpcap met the same desync, its issue 898). The reader copes: when the head
slot is empty and the next one holds a frame for longer than HOLE_GRACE_S (a fill in flight takes
microseconds), ``resync()`` moves it to the oldest frame waiting, by kernel timestamp. The engine's supervisor
calls ``resync()`` too, for a port that stays readable without progress in any other shape. Frames the kernel
dropped because the ring was full are read from PACKET_STATISTICS into the ``ring-overrun`` drop reason.
"""

from __future__ import annotations

import errno
import mmap
import socket
import struct
import time
from collections.abc import Sequence
from dataclasses import dataclass

from pyvswitch.datapath import link
from pyvswitch.datapath.device import DeviceCounters, DeviceDrop
from pyvswitch.datapath.wire import TAG, VLAN_HLEN, out_vnet, wire_parts
from pyvswitch.errors import DeviceError
from pyvswitch.packet.frame import ETH_P_8021Q, UNTAGGED, Buffer, Packet
from pyvswitch.packet.vnet import EMPTY_VNET_HDR, VNET_HDR_LEN

SOL_PACKET = 263
PACKET_ADD_MEMBERSHIP = 1
PACKET_RX_RING = 5
PACKET_STATISTICS = 6
PACKET_COPY_THRESH = 7
PACKET_AUXDATA = 8
PACKET_VERSION = 10
PACKET_TX_RING = 13
PACKET_LOSS = 14
PACKET_VNET_HDR = 15
PACKET_QDISC_BYPASS = 20
PACKET_IGNORE_OUTGOING = 23
PACKET_MR_PROMISC = 1
TPACKET_V2 = 1
ETH_P_ALL = 0x0003
SO_SNDBUFFORCE = 32  # not exported by the socket module
SO_RCVBUFFORCE = 33

TP_STATUS_KERNEL = 0
TP_STATUS_USER = 0x1
TP_STATUS_COPY = 0x2
TP_STATUS_LOSING = 0x4
TP_STATUS_VLAN_VALID = 0x10
TP_STATUS_AVAILABLE = 0
TP_STATUS_SEND_REQUEST = 0x1
TP_STATUS_WRONG_FORMAT = 0x4

# struct tpacket2_hdr: status, len, snaplen, mac, net, sec, nsec, vlan_tci, vlan_tpid, padding[4]
TP2_HDR = struct.Struct("<IIIHHIIHH4x")
TP2_TIME = struct.Struct("<II")  # tp_sec, tp_nsec at offset 16 of the slot header
TP2_TIME_OFFSET = 16
TP2_DATA_OFFSET = 32  # TX frames start here (TPACKET2_HDRLEN - sizeof(sockaddr_ll))
U32 = struct.Struct("<I")
TPACKET_REQ = struct.Struct("IIII")  # block_size, block_nr, frame_size, frame_nr
TPACKET_STATS = struct.Struct("II")  # packets, drops (reading resets them)
AUXDATA = struct.Struct("IIIHHHH")  # status, len, snaplen, mac, net, vlan_tci, vlan_tpid

MAX_FRAME = 65536 + 14 + VLAN_HLEN  # largest GSO super-frame the kernel builds, plus headers
STATS_EVERY = 1024  # recv() calls between reads of the kernel's ring-drop counter
# A hole (empty head slot, a frame in the next one) older than this is jumped: a fill in flight takes
# microseconds, the holes measured after floods stayed until the kernel lapped the ring (see the docstring).
HOLE_GRACE_S = 0.002


@dataclass(frozen=True, slots=True)
class RingSpec:
    """Ring geometry. 2 KiB slots hold any standard or tagged frame; larger frames use the copy path.

    The RX ring is what a port can absorb of a burst that arrives faster than the forwarding thread drains it:
    the kernel bridge forwards in the sender's context and loses nothing, a userspace switch keeps what its
    ring holds. Measured (issue 10, trafgen's rate-limited bursts of 64 B frames into one port, offloads off):
    4,096 slots lost 54 % at 20k frames/s offered and 50 % at 50k; 16,384 lost 0 % at 20k and 35 % at 50k;
    32,768 lost 0 % at 20k and 50k and 25 % at 100k. The cost is 64 MiB of kernel memory per port (fixed,
    allocated when the port opens)."""

    frame_size: int = 2048
    rx_frames: int = 32768
    tx_frames: int = 512
    block_size: int = 1 << 16
    rcvbuf: int = 32 << 20  # bounds the copy-path backlog of super-frames
    sndbuf: int = 16 << 20

    def blocks(self, frames: int) -> int:
        per_block = self.block_size // self.frame_size
        return -(-frames // per_block)

    def offsets(self, frames: int, start: int) -> list[int]:
        per_block = self.block_size // self.frame_size
        return [
            start + (i // per_block) * self.block_size + (i % per_block) * self.frame_size
            for i in range(frames)
        ]


class AfPacketDevice:
    """One switch port bound to a kernel interface (veth end, NIC, a TAP that someone else holds)."""

    vnet = True

    def __init__(
        self, ifname: str, ring: RingSpec | None = None, up: bool = True, attach: bool = True
    ) -> None:
        """``attach=False`` sets up the rings only, for an interface that is not here yet (a live migration's
        destination prepares them before the veth arrives: allocating them costs ~20 ms); ``attach()`` later."""
        self.name = ifname
        self.counters = DeviceCounters()
        self.ring = ring = ring or RingSpec()
        self._up = up
        self._rx_sock: socket.socket | None = None
        self._tx_sock: socket.socket | None = None
        self._mm: mmap.mmap | None = None
        try:
            self._rings(ring)
        except Exception as e:
            self.close()
            raise DeviceError(
                f"cannot open AF_PACKET rings on interface {ifname!r}: {e}", interface=ifname
            ) from e
        if attach:
            self.attach()

    def attach(self) -> None:
        """Bind the rings to the interface (now present) and start reception."""
        ifname = self.name
        try:
            self.ifindex = socket.if_nametoindex(ifname)
        except OSError as e:
            self.close()
            raise DeviceError(f"no interface {ifname!r}", interface=ifname) from e
        self.mtu = link.mtu(ifname)
        try:
            self._bind()
            if self._up:
                link.set_up(ifname)
        except Exception as e:
            self.close()
            raise DeviceError(
                f"cannot open AF_PACKET rings on interface {ifname!r}: {e}", interface=ifname
            ) from e

    def _rings(self, ring: RingSpec) -> None:
        # Protocol 0 until the rings exist, so nothing is queued outside them; bind() then starts reception.
        rx = self._rx_sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
        rx.setsockopt(SOL_PACKET, PACKET_VERSION, TPACKET_V2)
        rx.setsockopt(SOL_PACKET, PACKET_VNET_HDR, 1)
        rx.setsockopt(SOL_PACKET, PACKET_AUXDATA, 1)
        rx.setsockopt(SOL_PACKET, PACKET_COPY_THRESH, 1)
        # A frame the kernel rejects (bad vnet header, too big) is skipped instead of stopping the whole batch.
        rx.setsockopt(SOL_PACKET, PACKET_LOSS, 1)
        rx.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, ring.rcvbuf)
        rx.setsockopt(socket.SOL_SOCKET, SO_SNDBUFFORCE, ring.sndbuf)
        rx_blocks, tx_blocks = ring.blocks(ring.rx_frames), ring.blocks(ring.tx_frames)
        per_block = ring.block_size // ring.frame_size
        rx.setsockopt(
            SOL_PACKET,
            PACKET_RX_RING,
            TPACKET_REQ.pack(ring.block_size, rx_blocks, ring.frame_size, rx_blocks * per_block),
        )
        rx.setsockopt(
            SOL_PACKET,
            PACKET_TX_RING,
            TPACKET_REQ.pack(ring.block_size, tx_blocks, ring.frame_size, tx_blocks * per_block),
        )
        rx.setsockopt(SOL_PACKET, PACKET_QDISC_BYPASS, 1)
        rx.setsockopt(SOL_PACKET, PACKET_IGNORE_OUTGOING, 1)
        rx_bytes = rx_blocks * ring.block_size
        self._mm = mmap.mmap(rx.fileno(), rx_bytes + tx_blocks * ring.block_size, mmap.MAP_SHARED)
        self._mv = memoryview(self._mm)
        # Received frames are views of the ring that nobody may write: a filter that wants other bytes builds
        # them (Gate.replace), so one port's received data can never be changed under another's feet.
        self._rx_view = self._mv.toreadonly()
        self._rx_slots = ring.offsets(rx_blocks * per_block, 0)
        self._tx_slots = ring.offsets(tx_blocks * per_block, rx_bytes)
        self._rx_idx = 0
        self._rx_held: list[int] = []
        self._tx_idx = 0
        self._tx_room = ring.frame_size - TP2_DATA_OFFSET - VNET_HDR_LEN
        self._recv_calls = 0
        self._hole_at = -1  # head slot found empty with a frame behind it, and since when
        self._hole_since = 0.0

    def _bind(self) -> None:
        rx = self._rx_sock
        assert rx is not None
        rx.bind((self.name, ETH_P_ALL))
        mreq = struct.pack("iHH8s", self.ifindex, PACKET_MR_PROMISC, 0, b"")
        rx.setsockopt(SOL_PACKET, PACKET_ADD_MEMBERSHIP, mreq)
        rx.setblocking(False)

        tx = self._tx_sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
        tx.setsockopt(SOL_PACKET, PACKET_VNET_HDR, 1)
        # No QDISC_BYPASS here: GSO frames go out on this socket, and when the device cannot segment them
        # (TSO off, as on a NIC enslaved to OVS) the bypass path drops the frames the kernel's software GSO
        # makes (__dev_direct_xmit: "if (skb != orig_skb) goto drop"); dev_queue_xmit segments and sends them.
        tx.setsockopt(socket.SOL_SOCKET, SO_SNDBUFFORCE, self.ring.sndbuf)
        tx.bind((self.name, 0))
        tx.setblocking(False)

    def fileno(self) -> int:
        return self._rx_sock.fileno() if self._rx_sock is not None else -1

    def lost_interface(self) -> bool:
        """Whether the interface went away since the bind: deleted, or moved to another namespace even if it
        came back (a live migration undone by a crash recovery). The kernel unbinds packet sockets then (the
        name reads empty), and only a new bind receives again; a forwarder that outlived its control plane
        finds such devices at the next apply (Engine.apply reopens them)."""
        rx = self._rx_sock
        if rx is None or self._tx_sock is None:  # closed, or rings prepared and not yet bound
            return False
        try:
            return bool(rx.getsockname()[0] != self.name)
        except OSError:
            return True

    # ---- receive ----

    def recv(self, max_frames: int) -> list[Packet]:
        mm = self._mm
        if mm is None:
            return []
        view = self._rx_view
        slots = self._rx_slots
        nslots = len(slots)
        idx = self._rx_idx
        held = self._rx_held
        unpack_hdr = TP2_HDR.unpack_from
        unpack_u32 = U32.unpack_from
        counters = self.counters
        out: list[Packet] = []
        rx_bytes = 0
        while len(out) < max_frames:
            base = slots[idx]
            status, tp_len, snaplen, mac, _net, _s, _ns, vlan_tci, _tpid = unpack_hdr(mm, base)
            if not status & TP_STATUS_USER:
                nxt = slots[idx + 1 if idx + 1 < nslots else 0]
                if not out and unpack_u32(mm, nxt)[0] & TP_STATUS_USER and self._hole_moved_on(idx):
                    idx = self._rx_idx
                    continue
                break
            held.append(base)
            idx += 1
            if idx == nslots:
                idx = 0
            tci = vlan_tci if status & TP_STATUS_VLAN_VALID else UNTAGGED
            if status & TP_STATUS_COPY:
                pkt = self._recv_copied()
                if pkt is None:
                    counters.drops[DeviceDrop.RX_TRUNCATED] += 1
                    continue
            elif snaplen < tp_len:
                counters.drops[DeviceDrop.RX_TRUNCATED] += 1
                continue
            else:
                start = base + mac
                # A header with neither NEEDS_CSUM nor GSO says nothing the next hop needs (offloads off,
                # the common small-frame case): drop it here so the switch and egress skip it.
                if mm[start - VNET_HDR_LEN] & 1 or mm[start - VNET_HDR_LEN + 1]:
                    pkt = Packet(
                        view[start : start + snaplen], tci, bytes(view[start - VNET_HDR_LEN : start])
                    )
                else:
                    pkt = Packet(view[start : start + snaplen], tci)
            rx_bytes += len(pkt.data)
            out.append(pkt)
        self._rx_idx = idx
        if out:
            self._hole_at = -1
        counters.rx_frames += len(out)
        counters.rx_bytes += rx_bytes
        self._recv_calls += 1
        if self._recv_calls % STATS_EVERY == 0:
            self.poll_kernel_drops()
        return out

    def _hole_moved_on(self, idx: int) -> bool:
        """The head slot ``idx`` is empty and the next one holds a frame: a fill in flight, or a hole that stays
        until the kernel laps the ring (module docstring). True once the same hole has lasted HOLE_GRACE_S and
        the reader has moved to the oldest frame waiting."""
        now = time.monotonic()
        if self._hole_at != idx:
            self._hole_at, self._hole_since = idx, now
            return False
        if now - self._hole_since < HOLE_GRACE_S:
            return False
        self._hole_at = -1
        return self.resync()

    def _recv_copied(self) -> Packet | None:
        """The whole frame of a slot marked TP_STATUS_COPY, from the socket queue (vnet header first)."""
        assert self._rx_sock is not None
        try:
            data, anc, _flags, _addr = self._rx_sock.recvmsg(MAX_FRAME + VNET_HDR_LEN, 64)
        except OSError:
            return None
        if len(data) < VNET_HDR_LEN:
            return None
        tci = UNTAGGED
        for level, kind, payload in anc:
            if level == SOL_PACKET and kind == PACKET_AUXDATA and len(payload) >= AUXDATA.size:
                status, *_rest, vlan_tci, _tpid = AUXDATA.unpack_from(payload)
                if status & TP_STATUS_VLAN_VALID:
                    tci = vlan_tci
        mv = memoryview(data)
        return Packet(mv[VNET_HDR_LEN:], tci, data[:VNET_HDR_LEN])

    def release(self) -> None:
        """Give the slots of the last recv() back to the kernel (their packets' data is no longer valid)."""
        mm = self._mm
        if mm is None:
            return
        pack = U32.pack_into
        for base in self._rx_held:
            pack(mm, base, TP_STATUS_KERNEL)
        self._rx_held.clear()

    def poll_kernel_drops(self) -> None:
        """Add the kernel's count of frames lost because the RX ring was full (reading resets it)."""
        if self._rx_sock is None:
            return
        try:
            raw = self._rx_sock.getsockopt(SOL_PACKET, PACKET_STATISTICS, TPACKET_STATS.size)
        except OSError:
            return
        _packets, drops = TPACKET_STATS.unpack(raw)
        if drops:
            self.counters.drops[DeviceDrop.RING_OVERRUN] += drops

    def resync(self) -> bool:
        """Move the reader to the oldest frame waiting in the ring when its head slot is empty (see the module
        docstring); True if it moved. Reads the slot headers as strided views (~2 ms for 32,768 slots)."""
        mm = self._mm
        if mm is None or self._mv is None:
            return False
        slots = self._rx_slots
        if U32.unpack_from(mm, slots[self._rx_idx])[0] & TP_STATUS_USER:
            return False  # frames at the head: nothing to repair, the loop just has not read them yet
        # Slots are contiguous (RingSpec.offsets: the frame size divides the block size), so each header field
        # is a strided view of the ring's 32-bit words.
        stride = self.ring.frame_size // U32.size
        words = self._mv[: len(slots) * self.ring.frame_size].cast("I")
        status = words[0::stride].tolist()
        secs = words[TP2_TIME_OFFSET // U32.size :: stride].tolist()
        nsecs = words[TP2_TIME_OFFSET // U32.size + 1 :: stride].tolist()
        del words
        waiting = [i for i, st in enumerate(status) if st & TP_STATUS_USER]
        if not waiting:
            return False
        self._rx_idx = min(waiting, key=lambda i: (secs[i], nsecs[i]))
        self.counters.resyncs += 1
        return True

    # ---- transmit ----

    def send(self, pkts: Sequence[Packet], tcis: Sequence[int]) -> None:
        mm = self._mm
        if mm is None:
            self.counters.drops[DeviceDrop.TX_CLOSED] += len(pkts)
            return
        mv = self._mv
        slots = self._tx_slots
        nslots = len(slots)
        idx = self._tx_idx
        room = self._tx_room
        limit = self.mtu + 14
        unpack_u32 = U32.unpack_from
        pack_u32 = U32.pack_into
        counters = self.counters
        queued = 0
        tx_bytes = 0
        sent = 0
        for pkt, tci in zip(pkts, tcis, strict=True):
            data = pkt.data
            n = len(data)
            tagged = tci != UNTAGGED
            wire_len = n + VLAN_HLEN if tagged else n
            vnet = EMPTY_VNET_HDR if pkt.vnet is None else out_vnet(pkt, tci)
            if wire_len > limit + (VLAN_HLEN if tagged else 0) and vnet[1] == 0:
                counters.drops[DeviceDrop.TX_OVERSIZE] += 1
                continue
            if wire_len > room or vnet[1]:  # large, or GSO however small: the socket path (see _open)
                if queued:
                    self._flush()
                    queued = 0
                if self._send_large(data, tci, vnet):
                    sent += 1
                    tx_bytes += wire_len
                continue
            base = slots[idx]
            if unpack_u32(mm, base)[0] != TP_STATUS_AVAILABLE:
                # The kernel still owns the slot: push what is queued and look once more.
                self._flush()
                queued = 0
                status = unpack_u32(mm, base)[0]
                if status == TP_STATUS_WRONG_FORMAT:
                    counters.drops[DeviceDrop.TX_REJECTED] += 1
                    pack_u32(mm, base, TP_STATUS_AVAILABLE)
                elif status != TP_STATUS_AVAILABLE:
                    counters.drops[DeviceDrop.TX_RING_FULL] += 1
                    continue
            off = base + TP2_DATA_OFFSET
            mv[off : off + VNET_HDR_LEN] = vnet
            off += VNET_HDR_LEN
            if tagged:
                mv[off : off + 12] = data[:12]
                TAG.pack_into(mm, off + 12, ETH_P_8021Q, tci)
                mv[off + 16 : off + 4 + n] = data[12:]
            else:
                mv[off : off + n] = data
            pack_u32(mm, base + 4, wire_len + VNET_HDR_LEN)
            pack_u32(mm, base, TP_STATUS_SEND_REQUEST)
            queued += 1
            sent += 1
            tx_bytes += wire_len
            idx += 1
            if idx == nslots:
                idx = 0
        self._tx_idx = idx
        if queued:
            self._flush()
        counters.tx_frames += sent
        counters.tx_bytes += tx_bytes

    def _flush(self) -> None:
        """One system call sends every slot marked SEND_REQUEST (QDISC_BYPASS: straight to the driver)."""
        assert self._rx_sock is not None
        try:
            self._rx_sock.send(b"", socket.MSG_DONTWAIT)
        except OSError as e:
            # ENOBUFS/EAGAIN: the driver is busy; the slots stay queued and go with the next flush.
            if e.errno not in (errno.ENOBUFS, errno.EAGAIN):
                self.counters.drops[DeviceDrop.TX_ERROR] += 1

    def _send_large(self, data: Buffer, tci: int, vnet: bytes) -> bool:
        assert self._tx_sock is not None
        parts: list[Buffer] = [vnet, *wire_parts(data, tci)]
        try:
            self._tx_sock.sendmsg(parts)
            return True
        except OSError as e:
            reason = "tx-busy" if e.errno in (errno.ENOBUFS, errno.EAGAIN) else "tx-rejected"
            self.counters.drops[reason] += 1
            return False

    # ---- life cycle ----

    def close(self) -> None:
        if self._rx_sock is not None:
            self.poll_kernel_drops()
        mm, self._mm = self._mm, None
        if mm is not None:
            try:
                self._rx_view.release()
                self._mv.release()
                mm.close()
            except BufferError:
                pass  # a packet still refers to the ring; the mapping goes when it is collected
        for sock in (self._rx_sock, self._tx_sock):
            if sock is not None:
                sock.close()
        self._rx_sock = self._tx_sock = None
