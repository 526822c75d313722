"""TAP port device: the switch holds the user side of a TAP interface (/dev/net/tun) with virtio-net headers.

The kernel side of the TAP is an ordinary interface: give it addresses, move it into a namespace, or hand its
name to something that expects a host interface. (A QEMU guest that opens its own TAP joins the switch with
``port add --interface tapN`` instead: then QEMU holds the user side and the switch binds the kernel side.)

IFF_VNET_HDR and TUNSETOFFLOAD let the kernel pass GSO super-frames and partial checksums through, as
PACKET_VNET_HDR does on AF_PACKET ports. A TAP has no rings: each frame is one read() or writev(), which is
fine for its role (a guest or a host interface, not a line-rate uplink).
"""

from __future__ import annotations

import errno
import fcntl
import os
import struct
from collections.abc import Sequence

from pyvswitch.datapath import link
from pyvswitch.datapath.device import DeviceCounters, DeviceDrop
from pyvswitch.datapath.wire import VLAN_HLEN, out_vnet, wire_parts
from pyvswitch.errors import DeviceError
from pyvswitch.packet.frame import UNTAGGED, Buffer, Packet
from pyvswitch.packet.vnet import VNET_HDR_LEN

TUNSETIFF = 0x400454CA
TUNSETOFFLOAD = 0x400454D0
IFF_TAP = 0x0002
IFF_NO_PI = 0x1000
IFF_VNET_HDR = 0x4000
TUN_F_CSUM = 0x01
TUN_F_TSO4 = 0x02
TUN_F_TSO6 = 0x04
TUN_F_TSO_ECN = 0x08
IFNAMSIZ = 16
READ_SIZE = VNET_HDR_LEN + 65536 + 14 + VLAN_HLEN


class TapDevice:
    """A TAP interface created (or attached to, if it already exists) by the switch."""

    vnet = True

    def __init__(self, ifname: str, up: bool = True) -> None:
        if not ifname or len(ifname.encode()) >= IFNAMSIZ:
            raise DeviceError(f"bad TAP interface name {ifname!r}", interface=ifname)
        self.name = ifname
        self.counters = DeviceCounters()
        try:
            self._fd = os.open("/dev/net/tun", os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError as e:
            raise DeviceError(f"cannot open /dev/net/tun for TAP {ifname!r}: {e}", interface=ifname) from e
        try:
            ifr = struct.pack("16sH22x", ifname.encode(), IFF_TAP | IFF_NO_PI | IFF_VNET_HDR)
            fcntl.ioctl(self._fd, TUNSETIFF, ifr)
            offloads = TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6 | TUN_F_TSO_ECN
            fcntl.ioctl(self._fd, TUNSETOFFLOAD, offloads)
            if up:
                link.set_up(ifname)
        except Exception as e:
            os.close(self._fd)
            self._fd = -1
            raise DeviceError(f"cannot create TAP interface {ifname!r}: {e}", interface=ifname) from e
        self.mtu = link.mtu(ifname)

    def fileno(self) -> int:
        return self._fd

    def recv(self, max_frames: int) -> list[Packet]:
        out: list[Packet] = []
        fd = self._fd
        if fd < 0:
            return out
        rx_bytes = 0
        while len(out) < max_frames:
            try:
                buf = os.read(fd, READ_SIZE)
            except BlockingIOError:
                break
            except OSError:
                self.counters.drops[DeviceDrop.RX_ERROR] += 1
                break
            if len(buf) < VNET_HDR_LEN:
                self.counters.drops[DeviceDrop.RX_TRUNCATED] += 1
                continue
            # Tags arrive inline on a TAP; the switch's ingress takes them off.
            out.append(Packet(memoryview(buf)[VNET_HDR_LEN:], UNTAGGED, buf[:VNET_HDR_LEN]))
            rx_bytes += len(buf) - VNET_HDR_LEN
        self.counters.rx_frames += len(out)
        self.counters.rx_bytes += rx_bytes
        return out

    def release(self) -> None:
        pass

    def resync(self) -> bool:
        return False  # no shared ring to fall out of step with

    def send(self, pkts: Sequence[Packet], tcis: Sequence[int]) -> None:
        fd = self._fd
        counters = self.counters
        for pkt, tci in zip(pkts, tcis, strict=True):
            if fd < 0:
                counters.drops["tx-closed"] += 1
                continue
            parts: list[Buffer] = [out_vnet(pkt, tci), *wire_parts(pkt.data, tci)]
            try:
                n = os.writev(fd, parts) - VNET_HDR_LEN
            except OSError as e:
                # EIO: the TAP interface is down; EAGAIN: its queue is full; EINVAL: the kernel rejected the frame.
                reason = {errno.EIO: "tx-link-down", errno.EAGAIN: "tx-busy"}.get(e.errno or 0, "tx-rejected")
                counters.drops[reason] += 1
                continue
            counters.tx_frames += 1
            counters.tx_bytes += n

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
