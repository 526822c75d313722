"""The check of a live migration's copy (guest/ram.py): the destination's RAM becomes the source's, page by page."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pyvswitch.guest import ram
from pyvswitch.guest.ram import PAGE, RamPair, ram_file, repaired_copy, run_dir_of


def test_repair_rewrites_exactly_the_pages_that_differ(tmp_path: Path) -> None:
    size = 8 << 20  # four of the check's 2 MiB chunks
    src, dst = tmp_path / "src", tmp_path / "dst"
    data = bytearray(os.urandom(size))
    src.write_bytes(data)
    stale = [
        0,
        5,
        511,
        512,
        2047,
    ]  # first page, inside a chunk, a chunk's last and the next's first, the last
    for p in stale:
        data[p * PAGE + 17] ^= 0xFF
    dst.write_bytes(data)
    loads = []
    with RamPair(src, dst) as pair:
        assert repaired_copy(pair, lambda: loads.append(1), "g") == len(stale)
        assert pair.repair() == 0  # nothing left to do
    assert loads == [1]  # it waited for the destination to load the stream first
    assert src.read_bytes() == dst.read_bytes()


def test_nothing_to_check_without_both_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ram, "RAM_DIR", tmp_path)
    src_dir, dst_dir = Path("/run/x/hostA/g"), Path("/run/x/hostB/g")
    assert run_dir_of(f"unix:{dst_dir}/incoming.sock") == dst_dir
    assert run_dir_of("tcp:10.0.0.2:4444") is None
    assert RamPair.open(src_dir, f"unix:{dst_dir}/incoming.sock") is None  # KVM: no RAM files
    assert repaired_copy(None, lambda: pytest.fail("no wait without a pair"), "g") == 0
    assert ram_file(src_dir) != ram_file(dst_dir) and ram_file(src_dir).parent == tmp_path
