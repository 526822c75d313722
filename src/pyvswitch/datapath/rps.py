"""Receive Packet Steering: on which CPUs the kernel runs an interface's receive processing.

Used by the daemon's receive steering (daemon/steering.py: guest NICs away from the forwarding CPU) and by the
benchmark harness (generators on their own CPU). In this process's own namespace the files are written
directly. The sysfs of another namespace is reachable only through ``ip netns exec``, which mounts it (sysfs
shows the interfaces of the namespace that mounted it; entering the namespace with setns is not enough), hence
a subprocess there: ``find`` lists the queues and ``tee`` writes the mask to each, an argv list with no shell
(issue 11: an interface name holding backticks once ran as root through a ``sh -c`` line). Names are checked
by the configuration layer; the check here only keeps a name a path component and not an option.
"""

from __future__ import annotations

import logging
import os
import subprocess

log = logging.getLogger(__name__)

SYS_NET = "/sys/class/net"


def cpu_mask(cpus: frozenset[int] | set[int]) -> str:
    """The sysfs hex mask of ``cpus`` ("0" for none: RPS off)."""
    return format(sum(1 << c for c in cpus), "x")


def _plain(name: str) -> bool:
    """A name that is one path component and no option: no '/', NUL, not '.'/'..', no leading '-'."""
    return bool(name) and "/" not in name and "\0" not in name and name not in (".", "..") and name[0] != "-"


def steer_receive(ifname: str, cpus: frozenset[int] | set[int], netns: str | None = None) -> None:
    """Set RPS on every receive queue of ``ifname`` (no CPUs: off); a failure is logged, not raised (steering
    is a tuning, and the interface works without it)."""
    if not _plain(ifname) or (netns is not None and not _plain(netns)):
        log.warning(
            "cannot steer receive processing of %r in %r: not an interface/namespace name", ifname, netns
        )
        return
    mask = cpu_mask(cpus)
    if netns is None:
        _write_here(ifname, mask)
        return
    # find's children inherit its stdin: tee gets the mask once and writes it to every rx queue's file.
    cmd = [
        "ip", "netns", "exec", netns,
        "find", f"{SYS_NET}/{ifname}/queues/", "-mindepth", "2", "-maxdepth", "2",
        "-path", "*/rx-*/rps_cpus", "-exec", "tee", "--", "{}", "+",
    ]  # fmt: skip
    res = subprocess.run(cmd, input=mask + "\n", capture_output=True, text=True, timeout=30)
    if res.returncode != 0:
        log.warning("cannot steer receive processing of %s: %s", ifname, res.stderr.strip())


def _write_here(ifname: str, mask: str) -> None:
    queues = os.path.join(SYS_NET, ifname, "queues")
    try:
        # listdir, not glob: a name is data, never a pattern.
        names = sorted(q for q in os.listdir(queues) if q.startswith("rx-"))
        for q in names:
            with open(os.path.join(queues, q, "rps_cpus"), "w") as f:
                f.write(mask + "\n")
    except OSError as exc:
        log.warning("cannot steer receive processing of %s: %s", ifname, exc)
