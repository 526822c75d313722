"""Namespaces and veth pairs for system tests: unique names, wait-for-condition, cleanup that never raises."""

from __future__ import annotations

import os
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path


def unique(prefix: str) -> str:
    """A short name unique to this process and call (interface names are limited to 15 characters)."""
    return f"{prefix}{os.getpid() % 1000:03d}{uuid.uuid4().hex[:5]}"[:15]


def sh(*args: str, netns: str | None = None, check: bool = True, timeout: float = 60) -> str:
    """Run a command (inside ``netns`` if given) and return its stdout; raise with stderr on failure."""
    cmd = (["ip", "netns", "exec", netns] if netns else []) + list(args)
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if check and res.returncode != 0:
        raise RuntimeError(
            f"{' '.join(cmd)} failed ({res.returncode}): {res.stderr.strip() or res.stdout.strip()}"
        )
    return res.stdout


def wait_for(
    cond: Callable[[], bool], timeout_s: float = 10.0, interval_s: float = 0.02, what: str = ""
) -> None:
    """Poll ``cond`` until it is true; fail with ``what`` after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(interval_s)
    raise TimeoutError(f"timed out after {timeout_s}s waiting for {what or cond}")


def process_gone(pid: int) -> bool:
    """Whether ``pid`` has exited: not in the process table, or a zombie nobody reaped yet (its sockets and
    files are already released; a process another ``lab up`` started is not ours to reap)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] == "Z"


def process_cpu_s(pid: int) -> float:
    """utime + stime of ``pid`` (every thread), in seconds: only what it ran, not what other processes took."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class NetnsPool:
    """Creates namespaces and veth pairs and removes all of them on close, even after a failure."""

    def __init__(self) -> None:
        self.namespaces: list[str] = []
        self.links: list[str] = []

    def netns(self, prefix: str = "pvt", ipv6: bool = True) -> str:
        """A new namespace; ``ipv6=False`` keeps its kernel quiet (no router solicitations, no DAD frames)."""
        name = unique(prefix)
        sh("ip", "netns", "add", name)
        self.namespaces.append(name)
        if not ipv6:
            for scope in ("all", "default"):
                sh("sysctl", "-qw", f"net.ipv6.conf.{scope}.disable_ipv6=1", netns=name)
        sh("ip", "link", "set", "lo", "up", netns=name)
        return name

    def veth(self, a: str, b: str, a_ns: str | None = None, b_ns: str | None = None) -> tuple[str, str]:
        """veth a<->b, each end moved to its namespace (None = the current one) and brought up."""
        # Each end is created directly in its namespace: a name like eth0 may already exist here.
        cmd = ["ip", "link", "add", a, *(["netns", a_ns] if a_ns else []), "type", "veth", "peer", "name", b]
        sh(*cmd, *(["netns", b_ns] if b_ns else []))
        if not a_ns:
            self.links.append(a)
        for end, ns in ((a, a_ns), (b, b_ns)):
            sh("ip", "link", "set", end, "up", netns=ns)
        return a, b

    def close(self) -> None:
        for link in self.links:
            subprocess.run(["ip", "link", "del", link], capture_output=True)
        for ns in self.namespaces:
            pids = subprocess.run(["ip", "netns", "pids", ns], capture_output=True, text=True).stdout.split()
            for pid in pids:
                subprocess.run(["kill", "-9", pid], capture_output=True)
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)


@contextmanager
def netns_pool() -> Iterator[NetnsPool]:
    pool = NetnsPool()
    try:
        yield pool
    finally:
        pool.close()
