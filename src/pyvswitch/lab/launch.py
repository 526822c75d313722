"""Start a command the way the lab needs it, without a shell (issue 11: no ``sh -c`` anywhere in src/).

    python -m pyvswitch.lab.launch [--own-sysfs] [--at MONOTONIC_S] -- COMMAND [ARG...]

``--own-sysfs``: enter a mount namespace of our own and mount a fresh sysfs on /sys there, so /sys shows the
current network namespace's interfaces (a daemon started with ``nsenter --net``; see lab/hosts.py for why not
``ip netns exec``). The mount namespace is made with the unshare(2) system call, which copies the mounts with
their propagation unchanged: /run/netns stays shared, so the namespaces the daemon creates are seen by every
process. Only /sys is made private before it is mounted over.

``--at``: sleep until ``time.monotonic()`` reaches MONOTONIC_S, then start COMMAND. CLOCK_MONOTONIC is one
clock for every process of the machine, so a caller's start delay is kept from when it decided, whatever
this process's own start-up took.

Then COMMAND replaces this process (``execvp``: the caller's child, its signals and exit status, are COMMAND's).
Every argument is passed as a list element: nothing here is parsed by a shell.
"""

from __future__ import annotations

import argparse
import ctypes
import os
import sys
import time

CLONE_NEWNS = 0x00020000
MS_REC = 0x4000
MS_PRIVATE = 1 << 18


def _check(rc: int, what: str) -> None:
    if rc != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def own_sysfs() -> None:
    """A mount namespace of this process's own in which /sys is a fresh sysfs of the current net namespace."""
    libc = ctypes.CDLL(None, use_errno=True)
    _check(libc.unshare(CLONE_NEWNS), "unshare(CLONE_NEWNS)")
    # Private first: mounting over a shared /sys would propagate the new sysfs back to the host's /sys.
    _check(libc.mount(None, b"/sys", None, MS_REC | MS_PRIVATE, None), "make /sys private")
    _check(libc.mount(b"sysfs", b"/sys", b"sysfs", 0, None), "mount sysfs on /sys")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m pyvswitch.lab.launch", description=__doc__.split("\n\n")[0])
    ap.add_argument("--own-sysfs", action="store_true", help="a private sysfs of the current net namespace")
    ap.add_argument("--at", type=float, metavar="MONOTONIC_S", help="start COMMAND at this time.monotonic()")
    ap.add_argument("command", nargs=argparse.REMAINDER, help="-- COMMAND [ARG...]")
    args = ap.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        ap.error("no COMMAND after --")
    if args.own_sysfs:
        own_sysfs()
    if args.at is not None:
        delay = args.at - time.monotonic()
        if delay > 0:
            time.sleep(delay)
    os.execvp(command[0], command)
    return 127  # not reached: execvp replaces this process or raises


if __name__ == "__main__":
    sys.exit(main())
