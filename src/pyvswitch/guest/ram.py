"""A TCG guest's RAM as a file, and the check of a live migration's copy against the paused source.

Why the check: under TCG, QEMU's dirty-page tracking can miss a store. A store to a page that is already dirty
takes the TLB's fast path; when the migration thread clears the page's dirty bit and marks the TLB entry
NOTDIRTY (accel/tcg/cputlb.c: a cross-thread write with no handshake with the vCPU) between that check and the
store, and copies the page before the store lands (the vCPU thread preempted in between, as on a loaded 2-core
host), the new content is never marked dirty, never sent again, and the guest resumes on a stale page. Measured
here (QEMU 7.2, a guest receiving TCP during the move): 45-286 of the 65,536 pages differed from the paused
source in 3 of 4 moves, while neither side changed after the copy completed; it showed as hrtimer rbtree
corruption and a guest kernel panic, or a guest that stopped answering, right after the move. KVM tracks dirty
pages in the MMU and needs none of this.

So a TCG guest's RAM is a file in /dev/shm (``-object memory-backend-file,share=on``), and after the copy the
destination's RAM is made the source's page by page: the source is paused (its RAM is final and matches the
device state it sent) and the destination has loaded the whole stream (so only pages the stream left stale are
rewritten). Both files are mapped while the copy runs (populating 2 x 256 MiB of page tables takes ~70 ms here)
and compared with libc's memcmp (~25 ms for 256 MiB here; Python's own comparisons copy and take ~0.4 s), so
the check adds ~30 ms to the blackout. It needs both files on one machine: a lab's hosts are namespaces of one
machine, and the destination's incoming URI names its run directory.
"""

from __future__ import annotations

import ctypes
import logging
import mmap
import os
from collections.abc import Callable
from pathlib import Path
from types import TracebackType

log = logging.getLogger(__name__)

RAM_DIR = Path("/dev/shm")
PAGE = 4096
_CHUNK = 2 << 20

_libc = ctypes.CDLL(None, use_errno=True)
_libc.memcmp.restype = ctypes.c_int
_libc.memcmp.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t]


def ram_file(run_dir: Path) -> Path:
    """Where the RAM of the guest whose run directory is ``run_dir`` lives (tmpfs: memory, never a disk file)."""
    return RAM_DIR / ("pyvswitch-ram" + str(run_dir).replace("/", "%"))


def run_dir_of(incoming_uri: str) -> Path | None:
    """The run directory of the QEMU waiting at ``incoming_uri`` (``unix:<run dir>/incoming.sock``)."""
    if not incoming_uri.startswith("unix:"):
        return None
    return Path(incoming_uri[len("unix:") :]).parent


class RamPair:
    """The source's and the destination's RAM files, mapped; ``repair`` makes the second equal to the first."""

    def __init__(self, src: Path, dst: Path) -> None:
        self._files = [open(src, "r+b"), open(dst, "r+b")]  # noqa: SIM115 (closed by close())
        self.size = min(os.fstat(f.fileno()).st_size for f in self._files)
        flags = mmap.MAP_SHARED | mmap.MAP_POPULATE
        self._maps = [mmap.mmap(f.fileno(), self.size, flags=flags) for f in self._files]
        # Addresses for memcmp; the ctypes objects export the buffers, so they go before the maps close.
        self._views: list[ctypes.Array[ctypes.c_char]] | None = [
            (ctypes.c_char * self.size).from_buffer(m) for m in self._maps
        ]

    @classmethod
    def open(cls, src_run_dir: Path, incoming_uri: str) -> RamPair | None:
        """Both RAM files mapped, or None where there is nothing to check (KVM, or another machine's QEMU)."""
        dst_dir = run_dir_of(incoming_uri)
        src, dst = ram_file(src_run_dir), ram_file(dst_dir) if dst_dir is not None else None
        if dst is None or not (src.exists() and dst.exists()):
            return None
        return cls(src, dst)

    def repair(self) -> int:
        """Rewrite every page of the destination that differs from the source's; how many did."""
        assert self._views is not None
        a, b = (ctypes.addressof(v) for v in self._views)
        src, dst = self._maps
        repaired = 0
        for off in range(0, self.size, _CHUNK):
            n = min(_CHUNK, self.size - off)
            if _libc.memcmp(a + off, b + off, n) == 0:
                continue
            for p in range(off, off + n, PAGE):
                if _libc.memcmp(a + p, b + p, PAGE) != 0:
                    dst[p : p + PAGE] = src[p : p + PAGE]
                    repaired += 1
        return repaired

    def close(self) -> None:
        self._views = None
        for m in self._maps:
            m.close()
        for f in self._files:
            f.close()

    def __enter__(self) -> RamPair:
        return self

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def repaired_copy(pair: RamPair | None, loaded: Callable[[], None], name: str) -> int:
    """After the copy completed: wait until the destination has ``loaded`` it, then ``pair.repair()``."""
    if pair is None:
        return 0
    loaded()
    pages = pair.repair()
    if pages:
        log.warning("guest %s: %d page(s) of the migrated copy differed from the paused source; rewritten",
                    name, pages)  # fmt: skip
    return pages
