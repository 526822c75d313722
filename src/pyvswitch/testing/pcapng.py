"""A minimal pcapng reader for tests: interfaces (name, description, snaplen) and packets (with direction).

Reads what :class:`pyvswitch.observe.pcapng.PcapngWriter` writes (little-endian sections of SHB, IDB and EPB
blocks) and checks the framing as it goes, so a test fails on a malformed file; tshark is the independent
check in the system tests.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from pathlib import Path

from pyvswitch.observe.pcapng import BT_EPB, BT_IDB, BT_SHB, BYTE_ORDER_MAGIC

_HEAD = struct.Struct("<II")
_DIRECTIONS = {1: "in", 2: "out"}


@dataclass
class Interface:
    name: str
    description: str
    snaplen: int


@dataclass
class Record:
    interface: int
    timestamp_ns: int
    data: bytes
    orig_len: int
    direction: str | None
    comment: str | None = None


@dataclass
class Capture:
    interfaces: list[Interface] = field(default_factory=list)
    records: list[Record] = field(default_factory=list)

    def on(self, if_name: str, direction: str | None = None) -> list[Record]:
        """The records of the interface named ``if_name`` (every IDB of that name), optionally one direction."""
        ids = {i for i, iface in enumerate(self.interfaces) if iface.name == if_name}
        return [
            r for r in self.records if r.interface in ids and (direction is None or r.direction == direction)
        ]


def _options(body: bytes) -> dict[int, list[bytes]]:
    out: dict[int, list[bytes]] = {}
    off = 0
    while off + 4 <= len(body):
        code, length = struct.unpack_from("<HH", body, off)
        off += 4
        if code == 0:
            break
        out.setdefault(code, []).append(body[off : off + length])
        off += length + (-length % 4)
    return out


def read_pcapng(path: str | Path) -> Capture:
    """Every interface and packet of the file (one or more sections; interface ids are per section).

    A file that is still being written may end inside a block (the writer flushes whole buffers, not whole
    blocks): reading stops before that block, as tshark does, so a test can poll a live capture."""
    raw = Path(path).read_bytes()
    cap = Capture()
    base = 0  # interfaces of earlier sections
    off = 0
    while off < len(raw):
        if off + 8 > len(raw):
            break  # a capture still being written: its last block is not complete yet
        btype, total = _HEAD.unpack_from(raw, off)
        if off + total > len(raw):
            break
        assert total >= 12 and total % 4 == 0, f"bad block length {total} at {off}"
        assert struct.unpack_from("<I", raw, off + total - 4)[0] == total, f"trailing length differs at {off}"
        body = raw[off + 8 : off + total - 4]
        if btype == BT_SHB:
            assert struct.unpack_from("<I", body)[0] == BYTE_ORDER_MAGIC
            base = len(cap.interfaces)
        elif btype == BT_IDB:
            _linktype, _reserved, snaplen = struct.unpack_from("<HHI", body)
            opts = _options(body[8:])
            cap.interfaces.append(
                Interface(
                    opts.get(2, [b""])[0].decode(),
                    opts.get(3, [b""])[0].decode(),
                    snaplen,
                )
            )
        elif btype == BT_EPB:
            iface, ts_hi, ts_lo, caplen, orig = struct.unpack_from("<IIIII", body)
            data = body[20 : 20 + caplen]
            opts = _options(body[20 + caplen + (-caplen % 4) :])
            flags = struct.unpack("<I", opts[2][0])[0] if 2 in opts else 0
            comment = opts[1][0].decode() if 1 in opts else None
            cap.records.append(
                Record(base + iface, (ts_hi << 32) | ts_lo, data, orig, _DIRECTIONS.get(flags & 3), comment)
            )
        off += total
    return cap
