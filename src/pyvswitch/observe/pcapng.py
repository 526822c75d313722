"""Writes pcapng capture files: per-interface descriptions, nanosecond timestamps, trace text as packet comments.

Used by capture sessions and the capture extension (docs/architecture.md §7). One section per file, in little-endian
byte order whatever the host: a Section Header Block (``shb_userappl`` "pyvswitch <version>", ``shb_os``), one
Interface Description Block per :meth:`PcapngWriter.add_interface` (``if_name``, ``if_description``,
``if_tsresol`` = 9, so timestamps are nanoseconds since the Unix epoch), then one Enhanced Packet Block per
:meth:`PcapngWriter.write` (or per frame of :meth:`PcapngWriter.write_batch`: the same bytes, one file write)
with ``opt_comment`` (the per-packet trace text) and ``epb_flags`` (direction: inbound 1, outbound 2) when given.
Every block is padded to 32 bits, carries its total length at both ends, and its option list (when it has one)
ends with ``opt_endofopt``.

Why no library: writing needs three block types and a few options, about a hundred lines of ``struct``. The PyPI
package python-pcapng exists, but its newest release (2.1.1, per ``pip index versions python-pcapng``) was built in
August 2022, declares Python 3.5-3.8 only and ships no type hints, so mypy strict would see ``Any`` at every call;
and its writer builds a checked block object per packet (``blocks.EnhancedPacket`` plus option objects, validated by
``FileWriter.write_block``), which is a lot of work for a capture that runs beside the forwarding loop. Here a packet
costs one ``Struct.pack``, one join and one buffered write.

Size cap and ring buffer (like ``dumpcap -b filesize:… -b files:…``, but counted in bytes, headers included):

- ``max_bytes=None``: one file, no limit.
- ``max_bytes`` set, ``ring_files=0``: one file at ``path``; the first record that would take the file past
  ``max_bytes`` marks it full, and it and every later record are dropped and counted in ``records_dropped``
  (later records are not squeezed into the space left, so the file is always a prefix of what was offered).
- ``max_bytes`` set, ``ring_files=N``: files are named ``<stem>_00001<suffix>``, ``<stem>_00002<suffix>``, … from
  ``path`` (``cap.pcapng`` → ``cap_00001.pcapng``): dumpcap's ``_NNNNN`` sequence number without its
  ``_YYYYmmddHHMMSS`` part, so names are deterministic and sort in writing order (the first packet's time is in the
  file). When a record would take the current file past ``max_bytes``, the next file is started with the SHB and all
  IDBs again, and the oldest is deleted so that at most N files remain. A record that could not fit even in a
  fresh file is dropped and counted.
- ``max_bytes`` set, ``circular=True``: two files, the newest records always at ``path`` itself (New-NetEventSession's
  circular file at exactly its -LocalFilePath): when ``path`` is full it is renamed ``<stem>_00001<suffix>``
  (replacing the previous one) and a new ``path`` is started.

Every file is created, never overwritten (issue 11: the daemon runs as root and writes where a request says):
``O_CREAT | O_EXCL | O_NOFOLLOW``, mode 0600. An existing file or symlink at a name the writer is about to
create is ``FileExistsError`` (from the constructor, or stopping a ring that meets one when it rotates).

The section header plus every interface description must fit within ``max_bytes``; otherwise the constructor or
``add_interface`` raises ``ValueError``, because a file without its interfaces cannot be read. Invalid arguments
(unknown interface, negative timestamp, ``orig_len`` shorter than the frame) are caller bugs and raise
``ValueError``; I/O errors (``OSError``, e.g. a full disk) propagate and the caller decides whether to stop.
A writer has one user at a time (the engine's forwarding thread, or a session); it takes no locks.
"""

from __future__ import annotations

import logging
import os
import struct
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import BinaryIO, Literal

from pyvswitch import __version__
from pyvswitch.packet.frame import UNTAGGED, Buffer, tag_bytes

log = logging.getLogger(__name__)

# Block types.
BT_SHB = 0x0A0D0D0A
BT_IDB = 0x00000001
BT_EPB = 0x00000006
BYTE_ORDER_MAGIC = 0x1A2B3C4D

# Option codes (per block type; 0 and 1 are common to all).
OPT_ENDOFOPT = 0
OPT_COMMENT = 1
SHB_OS = 3
SHB_USERAPPL = 4
IF_NAME = 2
IF_DESCRIPTION = 3
IF_TSRESOL = 9
EPB_FLAGS = 2

EPB_FLAG_INBOUND = 1
EPB_FLAG_OUTBOUND = 2
_DIRECTION_FLAGS: dict[str, int] = {"in": EPB_FLAG_INBOUND, "out": EPB_FLAG_OUTBOUND}

LINKTYPE_ETHERNET = 1
TSRESOL_NS = 9  # if_tsresol: 10^-9 s
DEFAULT_SNAPLEN = 262144  # tcpdump's and pcapfile.SNAPLEN's default: whole frames, even GSO super-frames
MAX_OPTION_BYTES = 0xFFFF  # an option's length field is 16 bits
MAX_RING_DIGITS = 5

_BLOCK_HEAD = struct.Struct("<II")  # block type, block total length
_BLOCK_TAIL = struct.Struct("<I")  # block total length, again
_SHB_BODY = struct.Struct("<IHHq")  # byte-order magic, major, minor, section length (-1: not given)
_IDB_BODY = struct.Struct("<HHI")  # link type, reserved, snap length
_EPB_HEAD = struct.Struct("<IIIIIII")  # type, total length, interface id, ts high, ts low, captured, original
_OPT_HEAD = struct.Struct("<HH")
_OPT_U32 = struct.Struct("<HHI")
_END_OF_OPT = _OPT_HEAD.pack(OPT_ENDOFOPT, 0)
_PAD = (b"", b"\0\0\0", b"\0\0", b"\0")  # indexed by length % 4

Direction = Literal["in", "out"]


def _option(code: int, value: bytes) -> bytes:
    return _OPT_HEAD.pack(code, len(value)) + value + _PAD[len(value) % 4]


def _text_option(code: int, text: str, what: str) -> bytes:
    value = text.encode()
    if len(value) > MAX_OPTION_BYTES:
        raise ValueError(f"{what} is {len(value)} bytes of UTF-8; an option holds at most {MAX_OPTION_BYTES}")
    return _option(code, value)


def _comment_value(comment: str) -> bytes:
    """The comment as UTF-8, cut at a character boundary to fit one option (trace text is never worth a raise)."""
    value = comment.encode()
    if len(value) > MAX_OPTION_BYTES:
        value = value[:MAX_OPTION_BYTES].decode(errors="ignore").encode()
    return value


def _block(block_type: int, body: bytes) -> bytes:
    """A whole block around ``body``, which the caller has already padded to 32 bits."""
    total = _BLOCK_HEAD.size + len(body) + _BLOCK_TAIL.size
    return _BLOCK_HEAD.pack(block_type, total) + body + _BLOCK_TAIL.pack(total)


def _options(opts: list[bytes]) -> bytes:
    return b"".join(opts) + _END_OF_OPT if opts else b""


def ring_file_name(path: Path, number: int) -> Path:
    """The ring file ``number`` (from 1) for ``path``: ``cap.pcapng`` -> ``cap_00001.pcapng``."""
    return path.with_name(f"{path.stem}_{number:0{MAX_RING_DIGITS}d}{path.suffix}")


def create_exclusive(path: Path) -> BinaryIO:
    """A new file at ``path`` for writing, mode 0600: never an existing file, never through a symlink."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    fd = os.open(path, flags, 0o600)
    try:
        return os.fdopen(fd, "wb")
    except BaseException:
        os.close(fd)
        raise


class PcapngWriter:
    """Appends Enhanced Packet Blocks to a pcapng file, optionally capped in size and rotated as a ring.

    ``path_or_file`` is a path (the writer owns the file; with ``ring_files`` it is the base of the ring's names) or
    a binary file object opened for writing (not closed by :meth:`close`, no rotation). ``snaplen`` is the default
    for :meth:`add_interface` (capture sessions pass their own, e.g. 128); 0 means no limit, as in pcapng.
    """

    def __init__(
        self,
        path_or_file: str | os.PathLike[str] | BinaryIO,
        *,
        snaplen: int = DEFAULT_SNAPLEN,
        max_bytes: int | None = None,
        ring_files: int = 0,
        circular: bool = False,
    ) -> None:
        _check_snaplen(snaplen)
        if ring_files < 0:
            raise ValueError(f"ring_files must be >= 0, not {ring_files}")
        if ring_files and max_bytes is None:
            raise ValueError("ring_files needs max_bytes (the size at which to start the next file)")
        if circular and (ring_files or max_bytes is None):
            raise ValueError("circular needs max_bytes and no ring_files (it is a ring of two at path)")
        path: Path | None = None
        stream: BinaryIO | None = None
        if isinstance(path_or_file, str | os.PathLike):
            path = Path(path_or_file)
        elif ring_files or circular:
            raise ValueError("a ring of files needs a path, not a file object")
        else:
            stream = path_or_file
        self._path = path
        self._snaplen = snaplen
        self._max_bytes = max_bytes
        self._ring_files = ring_files
        self._circular = circular

        uname = os.uname()
        self._shb = _block(
            BT_SHB,
            _SHB_BODY.pack(BYTE_ORDER_MAGIC, 1, 0, -1)
            + _options(
                [
                    _text_option(SHB_OS, f"{uname.sysname} {uname.release}", "shb_os"),
                    _text_option(SHB_USERAPPL, f"pyvswitch {__version__}", "shb_userappl"),
                ]
            ),
        )
        self._idbs: list[bytes] = []
        self._snaplens: list[int] = []
        self._header_bytes = len(self._shb)
        if max_bytes is not None and max_bytes < self._header_bytes:
            raise ValueError(
                f"max_bytes {max_bytes} is smaller than the section header ({self._header_bytes} bytes)"
            )

        self.records_written = 0
        self.records_dropped = 0
        self._full = False
        self._closed = False
        self._file_bytes = 0
        self._sequence = 0
        self._files: list[Path] = []
        self._owns_file = stream is None
        self._f: BinaryIO
        if stream is None:
            self._open_next()
        else:
            self._f = stream
            self._emit(self._shb)

    # -- public API -------------------------------------------------------------------------------------------

    @property
    def files(self) -> list[Path]:
        """The files this writer has written that it has not deleted, oldest first (empty for a file object)."""
        return list(self._files)

    @property
    def full(self) -> bool:
        """True once a capped single file has refused a record (every later record is dropped)."""
        return self._full

    def add_interface(
        self,
        name: str,
        description: str = "",
        linktype: int = LINKTYPE_ETHERNET,
        snaplen: int | None = None,
    ) -> int:
        """Describe one more interface (an IDB); returns its id for :meth:`write`. ``snaplen`` defaults to the writer's."""
        self._check_open()
        snaplen = self._snaplen if snaplen is None else snaplen
        _check_snaplen(snaplen)
        if not 0 <= linktype <= 0xFFFF:
            raise ValueError(f"linktype {linktype} does not fit 16 bits")
        opts = [_text_option(IF_NAME, name, "if_name")]
        if description:
            opts.append(_text_option(IF_DESCRIPTION, description, "if_description"))
        opts.append(_option(IF_TSRESOL, bytes([TSRESOL_NS])))
        idb = _block(BT_IDB, _IDB_BODY.pack(linktype, 0, snaplen) + _options(opts))
        if self._max_bytes is not None and self._header_bytes + len(idb) > self._max_bytes:
            raise ValueError(
                f"max_bytes {self._max_bytes} cannot hold the section header and {len(self._idbs) + 1} interfaces "
                f"({self._header_bytes + len(idb)} bytes)"
            )
        self._idbs.append(idb)
        self._snaplens.append(snaplen)
        self._header_bytes += len(idb)
        # Written where packets will follow it; a file started later writes every IDB itself.
        if not self._full:
            if self._fits(len(idb)):
                self._emit(idb)
            elif self._ring_files or self._circular:
                self._rotate()
            else:
                self._mark_full()
        return len(self._idbs) - 1

    def write(
        self,
        interface_id: int,
        frame: Buffer,
        timestamp_ns: int,
        *,
        orig_len: int | None = None,
        comment: str | None = None,
        direction: Direction | None = None,
        tci: int = UNTAGGED,
    ) -> bool:
        """Record one frame seen on ``interface_id`` at ``timestamp_ns`` (nanoseconds since the Unix epoch).

        The frame is cut to the interface's snaplen; ``orig_len`` is its length on the wire when the caller has
        already cut it (default: ``len(frame)``). ``tci`` (PCP<<13 | DEI<<12 | VID), when not ``UNTAGGED``, is
        inserted as an 802.1Q tag after the MAC addresses, as a device would send it (frames inside the switch are
        untagged, docs/architecture.md §10); the recorded original length then includes the 4 tag bytes.
        ``comment`` becomes ``opt_comment`` (cut to 65,535 bytes of UTF-8), ``direction`` the ``epb_flags``
        direction bits. Returns False when the record was dropped by the size cap.
        """
        self._check_open()
        if not 0 <= interface_id < len(self._snaplens):
            raise ValueError(f"unknown interface id {interface_id} ({len(self._snaplens)} interfaces added)")
        if not 0 <= timestamp_ns < 1 << 64:
            raise ValueError(f"timestamp_ns {timestamp_ns} does not fit the 64-bit pcapng timestamp")
        length = len(frame)
        if orig_len is None:
            orig_len = length
        elif orig_len < length:
            raise ValueError(f"orig_len {orig_len} is shorter than the {length} bytes given")
        tagged = tci != UNTAGGED
        if tagged:
            length += 4
            orig_len += 4
        if orig_len >= 1 << 32:
            raise ValueError(f"orig_len {orig_len} does not fit 32 bits")
        flags = 0
        if direction is not None:
            flags = _DIRECTION_FLAGS.get(direction, 0)
            if not flags:
                raise ValueError(f"direction must be 'in', 'out' or None, not {direction!r}")
        if self._full:
            self.records_dropped += 1
            return False

        snaplen = self._snaplens[interface_id]
        cut = bool(snaplen) and length > snaplen
        parts: list[Buffer]
        if not tagged:
            parts = [frame[:snaplen] if cut else frame]
        elif not cut:
            parts = [frame[:12], tag_bytes(tci), frame[12:]]
        elif snaplen >= 16:
            parts = [frame[:12], tag_bytes(tci), frame[12 : snaplen - 4]]
        else:  # a snaplen that cuts into the tag itself
            parts = [(bytes(frame[:12]) + tag_bytes(tci))[:snaplen]]
        captured = sum(len(p) for p in parts)

        opts = b""
        if comment or flags:
            opt_list: list[bytes] = []
            if comment:
                opt_list.append(_option(OPT_COMMENT, _comment_value(comment)))
            if flags:
                opt_list.append(_OPT_U32.pack(EPB_FLAGS, 4, flags))
            opts = _options(opt_list)

        total = _EPB_HEAD.size + captured + (-captured % 4) + len(opts) + _BLOCK_TAIL.size
        if not self._make_room(total):
            self.records_dropped += 1
            return False
        tail = _BLOCK_TAIL.pack(total)
        head = _EPB_HEAD.pack(
            BT_EPB, total, interface_id, timestamp_ns >> 32, timestamp_ns & 0xFFFFFFFF, captured, orig_len
        )
        self._emit(b"".join([head, *parts, _PAD[captured % 4], opts, tail]))
        self.records_written += 1
        return True

    def write_batch(
        self,
        interface_id: int,
        frames: Sequence[Buffer],
        timestamp_ns: int,
        *,
        direction: Direction | None = None,
        tcis: Sequence[int] | None = None,
    ) -> int:
        """Record ``frames`` seen on ``interface_id`` at one time, exactly as :meth:`write` would one by one
        (without comments; ``tcis[i]`` is frame i's tag, None = all untagged), in one file write.

        What a batch shares is checked once, so a capture session pays per frame only for the cut, the header
        and its share of the write. Returns how many were written; the rest were dropped by the size cap.
        """
        self._check_open()
        if not 0 <= interface_id < len(self._snaplens):
            raise ValueError(f"unknown interface id {interface_id} ({len(self._snaplens)} interfaces added)")
        if not 0 <= timestamp_ns < 1 << 64:
            raise ValueError(f"timestamp_ns {timestamp_ns} does not fit the 64-bit pcapng timestamp")
        flags = 0
        if direction is not None:
            flags = _DIRECTION_FLAGS.get(direction, 0)
            if not flags:
                raise ValueError(f"direction must be 'in', 'out' or None, not {direction!r}")
        if self._full:
            self.records_dropped += len(frames)
            return 0
        snaplen = self._snaplens[interface_id]
        opts = _options([_OPT_U32.pack(EPB_FLAGS, 4, flags)]) if flags else b""
        fixed = _EPB_HEAD.size + len(opts) + _BLOCK_TAIL.size
        ts_hi, ts_lo = timestamp_ns >> 32, timestamp_ns & 0xFFFFFFFF
        head_pack, tail_pack = _EPB_HEAD.pack, _BLOCK_TAIL.pack
        max_bytes = self._max_bytes
        out: list[Buffer] = []
        pending = 0  # bytes in ``out``, not yet counted in _file_bytes
        written = 0
        for i, frame in enumerate(frames):
            tci = UNTAGGED if tcis is None else tcis[i]
            length = orig_len = len(frame)
            body: tuple[Buffer, ...] | None
            if tci == UNTAGGED:
                if snaplen and length > snaplen:
                    body, captured = (frame[:snaplen],), snaplen
                else:
                    body, captured = (frame,), length
            elif not snaplen or length + 4 <= snaplen:
                orig_len += 4
                body, captured = (frame[:12], tag_bytes(tci), frame[12:]), length + 4
            elif snaplen >= 16:
                orig_len += 4
                body, captured = (frame[:12], tag_bytes(tci), frame[12 : snaplen - 4]), snaplen
            else:
                body, captured = None, 0  # a snaplen that cuts into the tag: write() knows how
            total = fixed + captured + (-captured % 4)
            if body is None or (max_bytes is not None and self._file_bytes + pending + total > max_bytes):
                # The cap decides (full, next ring file, or too big for any): the one-frame path knows how.
                self._emit_parts(out, pending)
                out, pending = [], 0
                written += self.write(interface_id, frame, timestamp_ns, direction=direction, tci=tci)
                if self._full:
                    self.records_dropped += len(frames) - i - 1
                    return written
                continue
            out.append(head_pack(BT_EPB, total, interface_id, ts_hi, ts_lo, captured, orig_len))
            out += body
            out += (_PAD[captured % 4], opts, tail_pack(total))
            pending += total
            self.records_written += 1
            written += 1
        self._emit_parts(out, pending)
        return written

    def _emit_parts(self, parts: list[Buffer], size: int) -> None:
        if parts:
            self._f.write(b"".join(parts))
            self._file_bytes += size

    def flush(self) -> None:
        if not self._closed:
            self._f.flush()

    def close(self) -> None:
        """Flush and close the file (a file object passed in is flushed, not closed). Safe to call twice."""
        if self._closed:
            return
        self._closed = True
        if self._owns_file:
            self._f.close()
        else:
            self._f.flush()

    def __enter__(self) -> PcapngWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- internals --------------------------------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise ValueError("the pcapng writer is closed")

    def _fits(self, size: int) -> bool:
        return self._max_bytes is None or self._file_bytes + size <= self._max_bytes

    def _make_room(self, size: int) -> bool:
        """Whether a block of ``size`` bytes can be written now, starting the next ring file if that helps."""
        if self._fits(size):
            return True
        assert self._max_bytes is not None  # _fits is always true without a cap
        if not (self._ring_files or self._circular):
            self._mark_full()
            return False
        if self._header_bytes + size > self._max_bytes:
            return False  # too big for any file: drop it, keep the current file going
        self._rotate()
        return True

    def _mark_full(self) -> None:
        self._full = True
        log.info(
            "pcapng file %s reached its size cap of %s bytes; dropping further records",
            self._name(),
            self._max_bytes,
        )

    def _name(self) -> str:
        return str(self._files[-1]) if self._files else repr(self._f)

    def _emit(self, block: bytes) -> None:
        self._f.write(block)
        self._file_bytes += len(block)

    def _open_next(self) -> None:
        """Open the next file (the only one, or the next of the ring) and write the section header and IDBs."""
        assert self._path is not None
        self._sequence += 1
        path = ring_file_name(self._path, self._sequence) if self._ring_files else self._path
        self._f = create_exclusive(path)  # owned by the writer, closed by _rotate() or close()
        self._files.append(path)
        self._file_bytes = 0
        self._emit(self._shb)
        for idb in self._idbs:
            self._emit(idb)

    def _rotate(self) -> None:
        self._f.close()
        if self._circular:
            assert self._path is not None
            previous = ring_file_name(self._path, 1)
            # rename() replaces the name, never follows it: a symlink put at `previous` is what goes.
            os.rename(self._path, previous)
            self._files = [previous]
        self._open_next()
        while len(self._files) > (self._ring_files or 2):  # circular: the previous file and path
            old = self._files.pop(0)
            try:
                old.unlink()
            except FileNotFoundError:
                pass  # someone moved it away already; nothing left to limit
        log.debug("pcapng ring: now writing %s", self._files[-1])


def _check_snaplen(snaplen: int) -> None:
    if not 0 <= snaplen < 1 << 32:
        raise ValueError(f"snaplen {snaplen} must be 0 (no limit) or a positive 32-bit length")
