"""A pcap-file device: replays a capture as received frames and records what the switch sends.

Classic libpcap format (the pcapng writer with per-packet comments belongs to observe/ for tracing). Written
with struct because the format is 40 lines and no maintained library reads and writes it without pulling in
a whole dissector. Frames are recorded as on the wire (tag inline); offload headers are not recorded, so a
GSO super-frame appears as one large frame, as tcpdump shows it on a veth.
"""

from __future__ import annotations

import os
import struct
import time
from collections.abc import Callable, Iterator, Sequence
from typing import BinaryIO

from pyvswitch.datapath.device import DeviceCounters, DeviceDrop
from pyvswitch.datapath.wire import wire_bytes
from pyvswitch.errors import DeviceError
from pyvswitch.packet.frame import UNTAGGED, Packet

PCAP_MAGIC = 0xA1B2C3D4
PCAP_MAGIC_NS = 0xA1B23C4D
LINKTYPE_ETHERNET = 1
SNAPLEN = 262144
FILE_HDR = struct.Struct("<IHHiIII")
REC_HDR = struct.Struct("<IIII")


def read_pcap(path: str) -> Iterator[tuple[float, bytes]]:
    """(timestamp, frame) for each record of an Ethernet pcap file, either byte order, us or ns resolution."""
    with open(path, "rb") as f:
        head = f.read(FILE_HDR.size)
        if len(head) < FILE_HDR.size:
            raise DeviceError(f"{path}: not a pcap file (too short)")
        magic = struct.unpack_from("<I", head)[0]
        if magic in (PCAP_MAGIC, PCAP_MAGIC_NS):
            order = "<"
        elif struct.unpack_from(">I", head)[0] in (PCAP_MAGIC, PCAP_MAGIC_NS):
            order = ">"
            magic = struct.unpack_from(">I", head)[0]
        else:
            raise DeviceError(f"{path}: not a pcap file (magic {magic:#x}; pcapng is not read here)")
        linktype = struct.unpack_from(order + "I", head, 20)[0]
        if linktype != LINKTYPE_ETHERNET:
            raise DeviceError(f"{path}: link type {linktype} is not Ethernet")
        div = 1e9 if magic == PCAP_MAGIC_NS else 1e6
        rec = struct.Struct(order + "IIII")
        while True:
            h = f.read(rec.size)
            if len(h) < rec.size:
                return
            sec, frac, caplen, _origlen = rec.unpack(h)
            data = f.read(caplen)
            if len(data) < caplen:
                return  # a capture cut off mid-record: keep what was whole
            yield sec + frac / div, data


class PcapWriter:
    """Appends frames to a classic pcap file (microsecond timestamps)."""

    def __init__(self, path: str, clock: Callable[[], float] = time.time) -> None:
        self._f: BinaryIO = open(path, "wb")  # noqa: SIM115 - owned by the writer, closed in close()
        self._f.write(FILE_HDR.pack(PCAP_MAGIC, 2, 4, 0, 0, SNAPLEN, LINKTYPE_ETHERNET))
        self._clock = clock

    def write(self, frame: bytes) -> None:
        t = self._clock()
        sec = int(t)
        usec = int((t - sec) * 1e6)
        cap = frame[:SNAPLEN]
        self._f.write(REC_HDR.pack(sec, usec, len(cap), len(frame)))
        self._f.write(cap)

    def flush(self) -> None:
        self._f.flush()

    def close(self) -> None:
        if not self._f.closed:
            self._f.close()


class PcapDevice:
    """Replay ``replay`` (if given) as received frames, all at once in batches; record sent frames to ``record``.

    Tags in the replayed file stay inline (the switch's ingress classifies them, as for a TAP).
    """

    vnet = False

    def __init__(self, name: str, replay: str | None = None, record: str | None = None) -> None:
        self.name = name
        self.counters = DeviceCounters()
        self._frames: Iterator[tuple[float, bytes]] | None = read_pcap(replay) if replay else None
        self._writer = PcapWriter(record) if record else None
        # Readable while frames remain, so an idle engine's poll() wakes for a replay.
        self._event = os.eventfd(1 if replay else 0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)

    def fileno(self) -> int:
        return self._event

    def recv(self, max_frames: int) -> list[Packet]:
        out: list[Packet] = []
        if self._frames is None:
            return out
        for _, frame in self._frames:
            out.append(Packet(frame, UNTAGGED, None))
            self.counters.rx_bytes += len(frame)
            if len(out) >= max_frames:
                break
        else:
            self._frames = None
            try:
                os.eventfd_read(self._event)
            except BlockingIOError:
                pass
        self.counters.rx_frames += len(out)
        return out

    def release(self) -> None:
        pass

    def resync(self) -> bool:
        return False  # no shared ring to fall out of step with

    def send(self, pkts: Sequence[Packet], tcis: Sequence[int]) -> None:
        if self._writer is None:
            self.counters.drops[DeviceDrop.TX_NO_RECORD_FILE] += len(pkts)
            return
        for pkt, tci in zip(pkts, tcis, strict=True):
            frame = wire_bytes(pkt.data, tci)
            self._writer.write(frame)
            self.counters.tx_frames += 1
            self.counters.tx_bytes += len(frame)
        self._writer.flush()

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
        if self._event >= 0:
            os.close(self._event)
            self._event = -1
