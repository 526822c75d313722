"""One process per role and state directory: an flock'ed file holding the owner's pid.

The kernel releases the lock when the holder dies, even by kill -9, so a stale file never blocks a start; the
pid inside tells tools which process holds the role (the forwarder's CPU time, for instance)."""

from __future__ import annotations

import errno
import fcntl
import os
from pathlib import Path
from typing import IO


class Held(Exception):
    """Another live process holds the lock."""


def hold(path: Path) -> IO[str]:
    """Take ``path``'s lock for this process's lifetime (keep the returned file open) and write our pid in it."""
    f = open(path, "a+")  # noqa: SIM115 - held for the process's lifetime
    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        f.close()
        if exc.errno in (errno.EWOULDBLOCK, errno.EACCES):
            raise Held(str(path)) from None
        raise
    f.seek(0)
    f.truncate()
    f.write(f"{os.getpid()}\n")
    f.flush()
    return f
