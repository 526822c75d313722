"""The pcapng writer: block layout, options, truncation, timestamps, size cap and ring of files."""

from __future__ import annotations

import io
import os
import struct
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pyvswitch import __version__
from pyvswitch.observe.pcapng import (
    BT_EPB,
    BT_IDB,
    BT_SHB,
    BYTE_ORDER_MAGIC,
    DEFAULT_SNAPLEN,
    MAX_OPTION_BYTES,
    PcapngWriter,
    ring_file_name,
)
from pyvswitch.testing.frames import eth

TS = 1_700_000_000_123_456_789  # nanoseconds since the epoch; needs all 64 bits of the split timestamp
SRC = "02:00:00:00:00:01"
DST = "02:00:00:00:00:02"


# -- a minimal pcapng reader, strict about what the writer promises ---------------------------------------------


@dataclass
class Block:
    type: int
    body: bytes  # between the leading length and the trailing one
    total: int


@dataclass
class Epb:
    interface_id: int
    timestamp_ns: int
    captured: int
    orig_len: int
    data: bytes
    options: list[tuple[int, bytes]] = field(default_factory=list)

    def comment(self) -> str | None:
        values = [v for code, v in self.options if code == 1]
        return values[0].decode() if values else None

    def flags(self) -> int | None:
        values = [v for code, v in self.options if code == 2]
        return struct.unpack("<I", values[0])[0] if values else None


def blocks(raw: bytes) -> list[Block]:
    out: list[Block] = []
    pos = 0
    while pos < len(raw):
        btype, total = struct.unpack_from("<II", raw, pos)
        assert total % 4 == 0, f"block at {pos} has length {total}, not a multiple of 4"
        assert total >= 12 and pos + total <= len(raw), f"block at {pos} runs past the end"
        (trailer,) = struct.unpack_from("<I", raw, pos + total - 4)
        assert trailer == total, f"block at {pos}: lengths {total} and {trailer} differ"
        out.append(Block(btype, raw[pos + 8 : pos + total - 4], total))
        pos += total
    assert pos == len(raw)
    return out


def options(raw: bytes) -> list[tuple[int, bytes]]:
    """Options up to opt_endofopt, which must be present and last; padding must be zeros."""
    out: list[tuple[int, bytes]] = []
    pos = 0
    while True:
        assert pos + 4 <= len(raw), "options end without opt_endofopt"
        code, length = struct.unpack_from("<HH", raw, pos)
        pos += 4
        if code == 0:
            assert length == 0
            assert pos == len(raw), "bytes after opt_endofopt"
            return out
        out.append((code, raw[pos : pos + length]))
        padded = length + (-length % 4)
        assert raw[pos + length : pos + padded] == bytes(padded - length)
        pos += padded


def parse_epb(b: Block) -> Epb:
    assert b.type == BT_EPB
    iface, hi, lo, captured, orig = struct.unpack_from("<IIIII", b.body)
    padded = captured + (-captured % 4)
    data = b.body[20 : 20 + captured]
    assert b.body[20 + captured : 20 + padded] == bytes(padded - captured)
    rest = b.body[20 + padded :]
    return Epb(iface, hi << 32 | lo, captured, orig, data, options(rest) if rest else [])


def parse_idb(b: Block) -> tuple[int, int, dict[int, bytes]]:
    assert b.type == BT_IDB
    linktype, reserved, snaplen = struct.unpack_from("<HHI", b.body)
    assert reserved == 0
    return linktype, snaplen, dict(options(b.body[8:]))


def check_header(bs: list[Block], interfaces: int) -> None:
    """The file starts with an SHB and then exactly ``interfaces`` IDBs."""
    assert bs[0].type == BT_SHB
    assert [b.type for b in bs[1 : 1 + interfaces]] == [BT_IDB] * interfaces
    assert all(b.type == BT_EPB for b in bs[1 + interfaces :])


def epbs(raw: bytes) -> list[Epb]:
    return [parse_epb(b) for b in blocks(raw) if b.type == BT_EPB]


def frame(n: int, seed: int = 0) -> bytes:
    return bytes((seed + i) & 0xFF for i in range(n))


# -- section and interfaces -------------------------------------------------------------------------------------


def test_section_header(tmp_path: Path) -> None:
    path = tmp_path / "a.pcapng"
    with PcapngWriter(path) as w:
        pass
    (shb,) = blocks(path.read_bytes())
    assert shb.type == BT_SHB
    magic, major, minor, section_len = struct.unpack_from("<IHHq", shb.body)
    assert (magic, major, minor, section_len) == (BYTE_ORDER_MAGIC, 1, 0, -1)
    opts = dict(options(shb.body[16:]))
    assert opts[4] == f"pyvswitch {__version__}".encode()  # shb_userappl
    assert opts[3] == f"{os.uname().sysname} {os.uname().release}".encode()  # shb_os
    assert w.files == [path]


def test_interfaces_get_ids_and_options(tmp_path: Path) -> None:
    path = tmp_path / "a.pcapng"
    with PcapngWriter(path, snaplen=128) as w:
        assert w.add_interface("vm1", "VM port vm1") == 0
        assert w.add_interface("uplink0", snaplen=0) == 1
        assert w.add_interface("odd", "x", linktype=113, snaplen=65535) == 2
    bs = blocks(path.read_bytes())
    check_header(bs, 3)
    assert parse_idb(bs[1]) == (1, 128, {2: b"vm1", 3: b"VM port vm1", 9: b"\x09"})
    assert parse_idb(bs[2]) == (1, 0, {2: b"uplink0", 9: b"\x09"})  # no empty if_description
    assert parse_idb(bs[3]) == (113, 65535, {2: b"odd", 3: b"x", 9: b"\x09"})


def test_interface_added_after_packets_goes_in_place(tmp_path: Path) -> None:
    path = tmp_path / "a.pcapng"
    with PcapngWriter(path) as w:
        a = w.add_interface("a")
        w.write(a, frame(60), TS)
        b = w.add_interface("b")
        w.write(b, frame(60), TS + 1)
    assert [blk.type for blk in blocks(path.read_bytes())] == [BT_SHB, BT_IDB, BT_EPB, BT_IDB, BT_EPB]
    assert [e.interface_id for e in epbs(path.read_bytes())] == [0, 1]


# -- packets ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("length", [60, 61, 62, 63, 64, 1514])
def test_packet_blocks_are_aligned_and_hold_the_frame(tmp_path: Path, length: int) -> None:
    path = tmp_path / "a.pcapng"
    data = frame(length, seed=length)
    with PcapngWriter(path) as w:
        w.write(w.add_interface("p"), data, TS)
        assert w.records_written == 1
    bs = blocks(path.read_bytes())
    (e,) = epbs(path.read_bytes())
    assert bs[-1].total == 12 + 20 + length + (-length % 4)  # no options: no opt_endofopt either
    assert (e.interface_id, e.timestamp_ns, e.captured, e.orig_len, e.data) == (0, TS, length, length, data)
    assert e.options == []


@pytest.mark.parametrize(
    "comment", ["a", "ab", "abc", "abcd", "ingress vm1: learn 02:00:00:00:00:01 vlan 10", "é→✓"]
)
def test_comment_is_opt_comment(tmp_path: Path, comment: str) -> None:
    path = tmp_path / "a.pcapng"
    with PcapngWriter(path) as w:
        w.write(w.add_interface("p"), frame(61), TS, comment=comment)
    (e,) = epbs(path.read_bytes())
    assert e.comment() == comment
    assert e.flags() is None


@pytest.mark.parametrize(("direction", "flags"), [("in", 1), ("out", 2), (None, None)])
def test_direction_is_epb_flags(tmp_path: Path, direction: str | None, flags: int | None) -> None:
    path = tmp_path / "a.pcapng"
    with PcapngWriter(path) as w:
        w.write(w.add_interface("p"), frame(60), TS, direction=direction, comment="c")  # type: ignore[arg-type]
    (e,) = epbs(path.read_bytes())
    assert e.flags() == flags
    assert e.comment() == "c"


def test_long_comment_is_cut_at_a_character_boundary(tmp_path: Path) -> None:
    path = tmp_path / "a.pcapng"
    comment = "é" * MAX_OPTION_BYTES  # 2 bytes each: twice what fits
    with PcapngWriter(path) as w:
        w.write(w.add_interface("p"), frame(60), TS, comment=comment)
    (e,) = epbs(path.read_bytes())
    text = e.comment()
    assert text is not None
    assert text == "é" * (MAX_OPTION_BYTES // 2)


@pytest.mark.parametrize("ts", [0, 1, (1 << 32) - 1, 1 << 32, TS, (1 << 64) - 1])
def test_nanosecond_timestamps(tmp_path: Path, ts: int) -> None:
    path = tmp_path / "a.pcapng"
    with PcapngWriter(path) as w:
        w.write(w.add_interface("p"), frame(60), ts)
    (e,) = epbs(path.read_bytes())
    assert e.timestamp_ns == ts


def test_memoryview_frames(tmp_path: Path) -> None:
    path = tmp_path / "a.pcapng"
    ring = bytearray(frame(300))
    with PcapngWriter(path, snaplen=128) as w:
        p = w.add_interface("p")
        w.write(p, memoryview(ring)[10:110], TS)
        w.write(p, memoryview(ring)[:200], TS)
    first, second = epbs(path.read_bytes())
    assert first.data == bytes(ring[10:110])
    assert (second.data, second.orig_len) == (bytes(ring[:128]), 200)


# -- truncation -------------------------------------------------------------------------------------------------


def test_truncation_to_the_interface_snaplen_keeps_orig_len(tmp_path: Path) -> None:
    path = tmp_path / "a.pcapng"
    data = frame(1514)
    with PcapngWriter(path, snaplen=128) as w:
        short = w.add_interface("short")  # the writer's default: 128
        whole = w.add_interface("whole", snaplen=0)
        mid = w.add_interface("mid", snaplen=1000)
        w.write(short, data, TS)
        w.write(whole, data, TS)
        w.write(mid, data, TS)
        w.write(short, data[:128], TS)
        w.write(short, data[:100], TS)
    records = epbs(path.read_bytes())
    assert [(e.captured, e.orig_len) for e in records] == [
        (128, 1514),
        (1514, 1514),
        (1000, 1514),
        (128, 128),
        (100, 100),
    ]
    assert records[0].data == data[:128]
    assert records[2].data == data[:1000]


def test_default_snaplen_keeps_whole_frames(tmp_path: Path) -> None:
    path = tmp_path / "a.pcapng"
    with PcapngWriter(path) as w:
        p = w.add_interface("p")
        w.write(p, frame(65535 + 14), TS)
    (idb,) = [b for b in blocks(path.read_bytes()) if b.type == BT_IDB]
    assert parse_idb(idb)[1] == DEFAULT_SNAPLEN
    (e,) = epbs(path.read_bytes())
    assert e.captured == e.orig_len == 65549


def test_orig_len_of_a_frame_the_caller_already_cut(tmp_path: Path) -> None:
    path = tmp_path / "a.pcapng"
    with PcapngWriter(path, snaplen=128) as w:
        p = w.add_interface("p")
        w.write(p, frame(128), TS, orig_len=9000)
        w.write(p, frame(64), TS, orig_len=64)
        with pytest.raises(ValueError, match="orig_len"):
            w.write(p, frame(64), TS, orig_len=63)
    assert [(e.captured, e.orig_len) for e in epbs(path.read_bytes())] == [(128, 9000), (64, 64)]


def test_tci_is_inserted_as_an_8021q_tag(tmp_path: Path) -> None:
    path = tmp_path / "a.pcapng"
    untagged = eth(DST, SRC, frame(100))
    tci = (3 << 13) | 10
    with PcapngWriter(path, snaplen=128) as w:
        p = w.add_interface("p")
        w.write(p, untagged, TS, tci=tci)
        w.write(p, untagged[:60], TS, tci=tci, orig_len=len(untagged))
        whole = w.add_interface("whole", snaplen=0)
        w.write(whole, untagged, TS, tci=tci)
        for snaplen in (14, 16, 17, 118, 119):
            w.write(w.add_interface(f"s{snaplen}", snaplen=snaplen), untagged, TS, tci=tci)
    tagged = eth(DST, SRC, frame(100), vlan=10, pcp=3)
    a, b, c, *cut = epbs(path.read_bytes())
    assert (a.data, a.captured, a.orig_len) == (tagged[:118], 118, 118)
    assert (b.data, b.orig_len) == (tagged[:64], 118)
    assert (c.data, c.orig_len) == (tagged, 118)
    assert [(e.data, e.captured, e.orig_len) for e in cut] == [
        (tagged[:n], n, 118) for n in (14, 16, 17, 118, 118)
    ]


# -- size cap and ring ------------------------------------------------------------------------------------------


def header_size(w_interfaces: int, tmp_path: Path) -> int:
    """Bytes of SHB plus IDBs named like those the ring tests use."""
    path = tmp_path / "header.pcapng"
    with PcapngWriter(path) as w:
        for i in range(w_interfaces):
            w.add_interface(f"if{i}", "d")
    size = path.stat().st_size
    path.unlink()  # writers create their files exclusively: the next call makes it again
    return size


EPB_60 = 12 + 20 + 60  # an EPB of a 60-byte frame without options


def test_cap_without_ring_stops_and_counts_drops(tmp_path: Path) -> None:
    path = tmp_path / "a.pcapng"
    cap = header_size(1, tmp_path) + 3 * EPB_60 + 10
    with PcapngWriter(path, max_bytes=cap) as w:
        p = w.add_interface("if0", "d")
        results = [w.write(p, frame(60), TS + i) for i in range(5)]
        assert w.full
        assert w.write(p, frame(1), TS) is False  # would fit the room left, but the file is closed to records
        assert (w.records_written, w.records_dropped) == (3, 3)
        assert w.files == [path]
    assert results == [True, True, True, False, False]
    assert path.stat().st_size <= cap
    assert [e.timestamp_ns - TS for e in epbs(path.read_bytes())] == [0, 1, 2]
    assert sorted(tmp_path.iterdir()) == [path]  # no rotation without a ring


def test_cap_exactly_reached_is_allowed(tmp_path: Path) -> None:
    path = tmp_path / "a.pcapng"
    cap = header_size(1, tmp_path) + 2 * EPB_60
    with PcapngWriter(path, max_bytes=cap) as w:
        p = w.add_interface("if0", "d")
        assert w.write(p, frame(60), TS)
        assert w.write(p, frame(60), TS)
        assert not w.full
        assert not w.write(p, frame(60), TS)
    assert path.stat().st_size == cap


def test_ring_rotates_and_keeps_the_newest_files(tmp_path: Path) -> None:
    base = tmp_path / "ring" / "cap.pcapng"
    base.parent.mkdir()
    cap = header_size(2, tmp_path) + 3 * EPB_60
    with PcapngWriter(base, max_bytes=cap, ring_files=3) as w:
        a = w.add_interface("if0", "d")
        b = w.add_interface("if1", "d")
        for i in range(20):
            assert w.write(a if i % 2 else b, frame(60, seed=i), TS + i)
        assert (w.records_written, w.records_dropped) == (20, 0)
        files = w.files
    # 20 records at 3 a file: files 1..7, the last holding 2; the ring keeps 5, 6 and 7.
    assert files == [ring_file_name(base, n) for n in (5, 6, 7)]
    assert [f.name for f in files] == ["cap_00005.pcapng", "cap_00006.pcapng", "cap_00007.pcapng"]
    assert sorted(base.parent.iterdir()) == files
    seen: list[int] = []
    for f in files:
        raw = f.read_bytes()
        assert len(raw) <= cap
        bs = blocks(raw)
        check_header(bs, 2)
        assert [parse_idb(x)[2][2] for x in bs[1:3]] == [b"if0", b"if1"]
        seen += [e.timestamp_ns - TS for e in epbs(raw)]
    assert seen == list(range(12, 20))


def test_ring_file_names_follow_the_path() -> None:
    assert ring_file_name(Path("/x/cap.pcapng"), 1) == Path("/x/cap_00001.pcapng")
    assert ring_file_name(Path("/x/cap"), 42) == Path("/x/cap_00042")
    assert ring_file_name(Path("/x/a.b.pcapng"), 123456) == Path("/x/a.b_123456.pcapng")


def test_ring_of_one_file(tmp_path: Path) -> None:
    base = tmp_path / "cap.pcapng"
    cap = header_size(1, tmp_path) + EPB_60
    with PcapngWriter(base, max_bytes=cap, ring_files=1) as w:
        p = w.add_interface("if0", "d")
        for i in range(4):
            w.write(p, frame(60), TS + i)
        assert w.files == [tmp_path / "cap_00004.pcapng"]
    assert [e.timestamp_ns - TS for e in epbs(w.files[0].read_bytes())] == [3]
    assert not base.exists()


def test_ring_interface_added_when_full_starts_next_file(tmp_path: Path) -> None:
    base = tmp_path / "cap.pcapng"
    cap = header_size(1, tmp_path) + 2 * EPB_60
    with PcapngWriter(base, max_bytes=cap, ring_files=2) as w:
        a = w.add_interface("if0", "d")
        w.write(a, frame(60), TS)
        w.write(a, frame(60), TS)  # fills file 1: SHB, IDB, EPB, EPB
        b = w.add_interface("if1", "d")  # no room: file 2 starts with both IDBs
        w.write(b, frame(60), TS)
        assert w.records_written == 3
    first, second = w.files
    assert first.stat().st_size == cap
    assert [x.type for x in blocks(first.read_bytes())] == [BT_SHB, BT_IDB, BT_EPB, BT_EPB]
    assert [x.type for x in blocks(second.read_bytes())] == [BT_SHB, BT_IDB, BT_IDB, BT_EPB]


def test_ring_record_too_big_for_any_file_is_dropped_without_rotating(tmp_path: Path) -> None:
    base = tmp_path / "cap.pcapng"
    cap = header_size(1, tmp_path) + 2 * EPB_60
    with PcapngWriter(base, max_bytes=cap, ring_files=2) as w:
        p = w.add_interface("if0", "d")
        assert w.write(p, frame(60), TS)
        assert not w.write(p, frame(1000), TS)
        assert w.write(p, frame(60), TS)
        assert (w.records_written, w.records_dropped, len(w.files)) == (2, 1, 1)


def test_cap_must_hold_the_header(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="section header"):
        PcapngWriter(tmp_path / "a.pcapng", max_bytes=20)
    w = PcapngWriter(tmp_path / "b.pcapng", max_bytes=header_size(0, tmp_path) + 10)
    with pytest.raises(ValueError, match="interfaces"):
        w.add_interface("a-long-interface-name")
    w.close()


# -- file objects, lifecycle and argument errors ----------------------------------------------------------------


def test_file_object_is_written_and_left_open() -> None:
    buf = io.BytesIO()
    with PcapngWriter(buf, snaplen=64) as w:
        p = w.add_interface("p")
        w.write(p, frame(100), TS, comment="x", direction="in")
        assert w.files == []
    assert not buf.closed
    (e,) = epbs(buf.getvalue())
    assert (e.captured, e.orig_len, e.comment(), e.flags()) == (64, 100, "x", 1)


def test_file_object_with_a_cap() -> None:
    buf = io.BytesIO()
    with PcapngWriter(buf, max_bytes=500) as w:
        p = w.add_interface("p")
        while w.write(p, frame(60), TS):
            pass
        assert w.records_dropped == 1
    assert len(buf.getvalue()) <= 500


def test_close_is_idempotent_and_final(tmp_path: Path) -> None:
    w = PcapngWriter(tmp_path / "a.pcapng")
    p = w.add_interface("p")
    w.write(p, frame(60), TS)
    w.flush()
    w.close()
    w.close()
    with pytest.raises(ValueError, match="closed"):
        w.write(p, frame(60), TS)
    with pytest.raises(ValueError, match="closed"):
        w.add_interface("q")
    assert len(epbs((tmp_path / "a.pcapng").read_bytes())) == 1


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"ring_files": 2}, "needs max_bytes"),
        ({"ring_files": -1}, "ring_files"),
        ({"snaplen": -1}, "snaplen"),
        ({"snaplen": 1 << 32}, "snaplen"),
    ],
)
def test_bad_writer_arguments(tmp_path: Path, kwargs: dict[str, int], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        PcapngWriter(tmp_path / "a.pcapng", **kwargs)


def test_ring_needs_a_path() -> None:
    with pytest.raises(ValueError, match="path"):
        PcapngWriter(io.BytesIO(), max_bytes=1000, ring_files=2)


def test_bad_write_arguments(tmp_path: Path) -> None:
    with PcapngWriter(tmp_path / "a.pcapng") as w:
        p = w.add_interface("p")
        with pytest.raises(ValueError, match="interface"):
            w.write(1, frame(60), TS)
        with pytest.raises(ValueError, match="timestamp"):
            w.write(p, frame(60), -1)
        with pytest.raises(ValueError, match="timestamp"):
            w.write(p, frame(60), 1 << 64)
        with pytest.raises(ValueError, match="32 bits"):
            w.write(p, frame(60), TS, orig_len=(1 << 32) - 2, tci=10)
        with pytest.raises(ValueError, match="direction"):
            w.write(p, frame(60), TS, direction="both")  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="linktype"):
            w.add_interface("q", linktype=1 << 16)
        with pytest.raises(ValueError, match="if_name"):
            w.add_interface("n" * (MAX_OPTION_BYTES + 1))
        assert w.records_written == 0


# -- round trip -------------------------------------------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(
    records=st.lists(
        st.tuples(
            st.binary(min_size=0, max_size=300),
            st.integers(min_value=0, max_value=(1 << 64) - 1),
            st.none() | st.text(max_size=40),
            st.sampled_from([None, "in", "out"]),
        ),
        max_size=8,
    ),
    snaplen=st.integers(min_value=0, max_value=400),
)
def test_round_trip(records: list[tuple[bytes, int, str | None, str | None]], snaplen: int) -> None:
    buf = io.BytesIO()
    with PcapngWriter(buf, snaplen=snaplen) as w:
        p = w.add_interface("p")
        for data, ts, comment, direction in records:
            w.write(p, data, ts, comment=comment, direction=direction)  # type: ignore[arg-type]
    got = epbs(buf.getvalue())
    assert len(got) == len(records)
    for e, (data, ts, comment, direction) in zip(got, records, strict=True):
        want = data[:snaplen] if snaplen else data
        assert (e.data, e.captured, e.orig_len, e.timestamp_ns) == (want, len(want), len(data), ts)
        assert e.comment() == (comment or None)
        assert e.flags() == {None: None, "in": 1, "out": 2}[direction]
