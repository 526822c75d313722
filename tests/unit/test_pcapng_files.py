"""Issue 11 (security): how the pcapng writer creates its files. Every file, single or of a ring, is created
O_CREAT|O_EXCL|O_NOFOLLOW with mode 0600: never an existing file, never through a symlink. The circular mode
(NetEvent sessions) keeps the newest records at exactly the path given."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pyvswitch.observe.pcapng import PcapngWriter, ring_file_name
from pyvswitch.testing.pcapng import read_pcapng

TS = 1_700_000_000_000_000_000
FRAME = bytes(range(60))


def fill(w: PcapngWriter, n: int) -> None:
    p = w.add_interface("if0")
    for i in range(n):
        w.write(p, FRAME, TS + i)


def test_files_are_0600_whatever_the_umask(tmp_path: Path) -> None:
    """issue 11: capture files were 0644."""
    old = os.umask(0)
    try:
        with PcapngWriter(tmp_path / "one.pcapng") as w:
            fill(w, 1)
        with PcapngWriter(tmp_path / "r.pcapng", max_bytes=600, ring_files=3) as w:
            fill(w, 20)
            files = w.files
    finally:
        os.umask(old)
    for f in [tmp_path / "one.pcapng", *files]:
        assert f.stat().st_mode & 0o777 == 0o600, f


def test_symlink_at_the_path_is_not_followed(tmp_path: Path) -> None:
    """issue 11: symlinks were followed (a root daemon writing wherever a link points)."""
    target = tmp_path / "target"
    target.write_text("keep me")
    link = tmp_path / "cap.pcapng"
    link.symlink_to(target)
    with pytest.raises(OSError):
        PcapngWriter(link)
    assert target.read_text() == "keep me"


def test_existing_file_is_not_overwritten(tmp_path: Path) -> None:
    path = tmp_path / "cap.pcapng"
    path.write_text("keep me")
    with pytest.raises(FileExistsError):
        PcapngWriter(path)
    assert path.read_text() == "keep me"


def test_ring_meeting_an_existing_file_stops_instead_of_overwriting_it(tmp_path: Path) -> None:
    """issue 11: a ring capture overwrote an existing x_00001.pcapng; a later ring name is not overwritten
    either, even when it appears after the capture started."""
    base = tmp_path / "x.pcapng"
    w = PcapngWriter(base, max_bytes=400, ring_files=2)
    later = ring_file_name(base, 2)
    later.symlink_to(tmp_path / "elsewhere")
    with pytest.raises(FileExistsError):
        fill(w, 20)  # the rotation to x_00002 meets the link
    w.close()
    assert later.is_symlink() and not (tmp_path / "elsewhere").exists()


def test_circular_keeps_the_newest_records_at_the_path(tmp_path: Path) -> None:
    """issue 11: New-NetEventSession's one file was written to NAME_00001.pcapng, not -LocalFilePath."""
    path = tmp_path / "NetTrace.pcapng"
    with PcapngWriter(path, max_bytes=600, circular=True) as w:
        p = w.add_interface("if0")
        assert w.files == [path]
        for i in range(30):
            assert w.write(p, FRAME, TS + i)
        files = w.files
    previous = tmp_path / "NetTrace_00001.pcapng"
    assert files == [previous, path]
    assert sorted(tmp_path.iterdir()) == sorted(files)  # never more than the two
    older = [r.timestamp_ns - TS for r in read_pcapng(previous).records]
    newer = [r.timestamp_ns - TS for r in read_pcapng(path).records]
    assert newer[-1] == 29 and older[-1] + 1 == newer[0]
    assert path.stat().st_size <= 600 and previous.stat().st_size <= 600


def test_circular_needs_a_cap_and_no_ring(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        PcapngWriter(tmp_path / "a", circular=True)
    with pytest.raises(ValueError):
        PcapngWriter(tmp_path / "b", max_bytes=600, ring_files=2, circular=True)
