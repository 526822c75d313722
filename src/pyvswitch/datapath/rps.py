"""Receive Packet Steering: on which CPUs the kernel runs an interface's receive processing.

Used by the daemon's receive steering (daemon/steering.py: guest NICs away from the forwarding CPU) and by the
benchmark harness (generators on their own CPU). The sysfs of another namespace is reachable only through
``ip netns exec``, which mounts it, hence a subprocess rather than a write from this process.
"""

from __future__ import annotations

import logging
import subprocess

log = logging.getLogger(__name__)

# The interface name and the mask are the shell's positional parameters, never part of the script text: a name
# is data, whatever characters it holds (an interface name with `...` or $(...) once ran as root).
_SCRIPT = 'for q in /sys/class/net/"$1"/queues/rx-*; do echo "$2" > "$q/rps_cpus"; done'


def cpu_mask(cpus: frozenset[int] | set[int]) -> str:
    """The sysfs hex mask of ``cpus`` ("0" for none: RPS off)."""
    return format(sum(1 << c for c in cpus), "x")


def steer_receive(ifname: str, cpus: frozenset[int] | set[int], netns: str | None = None) -> None:
    """Set RPS on every receive queue of ``ifname`` (no CPUs: off); a failure is logged, not raised (steering
    is a tuning, and the interface works without it)."""
    cmd = (["ip", "netns", "exec", netns] if netns else []) + [
        "sh",
        "-c",
        _SCRIPT,
        "sh",
        ifname,
        cpu_mask(cpus),
    ]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
    if res.returncode != 0:
        log.warning("cannot steer receive processing of %s: %s", ifname, res.stderr.strip())
