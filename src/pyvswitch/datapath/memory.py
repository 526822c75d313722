"""An in-memory device for unit and component tests: frames go in with ``inject`` and come out in ``sent``."""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Sequence

from pyvswitch.datapath.device import DeviceCounters
from pyvswitch.datapath.wire import out_vnet, wire_bytes
from pyvswitch.packet.frame import UNTAGGED, Packet


class MemoryDevice:
    """Behaves like a vnet-capable kernel port: tags can arrive out of band, and ``sent`` holds wire bytes.

    ``sent_vnet[i]`` is the header sent with ``sent[i]`` (None when the packet had none), moved by +4 when a
    tag was inserted, as a real device would. An eventfd makes the device pollable like a socket.
    """

    vnet = True

    def __init__(self, name: str) -> None:
        self.name = name
        self.counters = DeviceCounters()
        self.sent: list[bytes] = []
        self.sent_vnet: list[bytes | None] = []
        self.closed = False
        self._queue: deque[Packet] = deque()
        self._event = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)

    def inject(self, frame: bytes, tci: int = UNTAGGED, vnet: bytes | None = None) -> None:
        self._queue.append(Packet(frame, tci, vnet))
        os.eventfd_write(self._event, 1)

    def fileno(self) -> int:
        return self._event

    def recv(self, max_frames: int) -> list[Packet]:
        q = self._queue
        out = [q.popleft() for _ in range(min(max_frames, len(q)))]
        if not q:
            try:
                os.eventfd_read(self._event)
            except BlockingIOError:
                pass
        self.counters.rx_frames += len(out)
        self.counters.rx_bytes += sum(len(p.data) for p in out)
        return out

    def release(self) -> None:
        pass

    def resync(self) -> bool:
        return False  # no shared ring to fall out of step with

    def send(self, pkts: Sequence[Packet], tcis: Sequence[int]) -> None:
        for pkt, tci in zip(pkts, tcis, strict=True):
            frame = wire_bytes(pkt.data, tci)
            self.sent.append(frame)
            self.sent_vnet.append(None if pkt.vnet is None else out_vnet(pkt, tci))
            self.counters.tx_frames += 1
            self.counters.tx_bytes += len(frame)

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            os.close(self._event)
