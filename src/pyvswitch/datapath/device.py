"""The Device protocol every port's I/O endpoint implements, and its counters."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from pyvswitch.drops import DropReason
from pyvswitch.packet.frame import Packet


class DeviceDrop(DropReason):
    """Why a device drops a frame it received or was given to send (``show drops``, per port's device)."""

    RING_OVERRUN = (
        "ring-overrun",
        "the kernel found the port's receive ring full (PACKET_STATISTICS tp_drops)",
    )
    RX_TRUNCATED = "rx-truncated", "received shorter than the kernel said it was (snap length, short read)"
    RX_ERROR = "rx-error", "reading the device failed"
    TX_CLOSED = "tx-closed", "sent to a device that was being closed"
    TX_OVERSIZE = "tx-oversize", "longer than the outgoing port's MTU allows (and not a GSO super-frame)"
    TX_REJECTED = "tx-rejected", "the kernel refused the frame (TP_STATUS_WRONG_FORMAT)"
    TX_RING_FULL = "tx-ring-full", "the port's transmit ring was full"
    TX_ERROR = "tx-error", "the kernel's send failed with an error other than 'busy'"
    TX_NO_RECORD_FILE = "tx-no-record-file", "a pcap port with no file to record to"


@dataclass(slots=True)
class DeviceCounters:
    """What a device saw at the OS boundary. ``drops`` is keyed by reason (e.g. 'ring-overrun', 'tx-ring-full');
    ``resyncs`` counts the times the receive side found itself out of step with the kernel and recovered."""

    rx_frames: int = 0
    rx_bytes: int = 0
    tx_frames: int = 0
    tx_bytes: int = 0
    drops: Counter[str] = field(default_factory=Counter)
    resyncs: int = 0

    def as_dict(self) -> dict[str, object]:
        return {
            "rx_frames": self.rx_frames,
            "rx_bytes": self.rx_bytes,
            "tx_frames": self.tx_frames,
            "tx_bytes": self.tx_bytes,
            "drops": dict(self.drops),
            "resyncs": self.resyncs,
        }


class Device(Protocol):
    """A frame endpoint driven by one forwarding thread (no locking needed).

    recv() never blocks: it returns up to ``max_frames`` packets already waiting ([] if none). Their data
    may point into a receive ring and stays valid until release(). send() takes packets and, per packet,
    the 802.1Q TCI to insert on the wire (UNTAGGED = none); it inserts the tag while copying, shifts the
    virtio-net header offsets to match, transmits the whole batch with as few system calls as it can,
    and counts (never raises on) frames it could not send. ``vnet`` says whether packets carry a
    virtio-net header: the switch only connects ports whose devices agree, or strips/adds headers.
    """

    name: str
    vnet: bool
    counters: DeviceCounters

    def fileno(self) -> int: ...

    def recv(self, max_frames: int) -> list[Packet]: ...

    def release(self) -> None: ...

    def resync(self) -> bool:
        """Repair a receive side that is out of step with the kernel (frames waiting, none at the reader's
        head); True if it did. The engine calls it for a port readable without progress (see afpacket)."""
        ...

    def send(self, pkts: Sequence[Packet], tcis: Sequence[int]) -> None: ...

    def close(self) -> None: ...
