"""The kernel side of a live migration's hand-over (issue 6 item 4, issue 11 item 4): namespaces and veths
found, moved and marked by name, never through a process that may be dead.

A daemon's network namespace is recorded as its pid, its inode and its /run/netns name when it has one. A
daemon that died leaves its pid behind, but a named namespace outlives it (the bind mount under /run/netns
holds it), and so do the veths in it: ``netns_path`` therefore prefers the name, checked against the inode so a
re-created namespace of the same name is not taken for it, then the live pid, then any named namespace with
that inode. ``pull`` brings veths home from wherever they are (ours, the peer's namespace, any named one: their
names, ``pv`` + 8 hex digits, are the daemon's own), so a VM is taken back even when the destination died with
its veths.

The *commit mark* is the destination's durable "this VM is mine" (daemon/migration.py): the interface alias
(``IFLA_IFALIAS``) of the VM's first veth set to ``pyvswitch-migrated <id>``. It lives in the kernel, on the
object that moves, so either daemon can read it while the other is dead, and it is set in one netlink call.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Protocol

from pyvswitch.errors import DeviceError

log = logging.getLogger(__name__)

NETNS_SELF = "/proc/self/ns/net"
NETNS_DIR = "/run/netns"
MARK_PREFIX = "pyvswitch-migrated "


def commit_mark(ident: str) -> str:
    return MARK_PREFIX + ident


@dataclass(frozen=True, slots=True)
class Netns:
    """A daemon's network namespace: its pid (to move links there), the namespace inode (to tell whether two
    daemons share one) and its /run/netns name when it has one."""

    pid: int
    inode: int
    name: str | None = None

    @classmethod
    def mine(cls) -> Netns:
        inode = os.stat(NETNS_SELF).st_ino
        name = None
        try:
            for entry in os.scandir(NETNS_DIR):
                if os.stat(entry.path).st_ino == inode:
                    name = entry.name
                    break
        except OSError:
            pass
        return cls(os.getpid(), inode, name)

    def as_json(self) -> dict[str, Any]:
        return {"pid": self.pid, "inode": self.inode, "name": self.name}

    @classmethod
    def of(cls, data: dict[str, Any]) -> Netns:
        return cls(int(data["pid"]), int(data["inode"]), data.get("name"))


def _inode(path: str) -> int | None:
    try:
        return os.stat(path).st_ino
    except OSError:
        return None


def netns_path(ns: Netns) -> str | None:
    """A path that opens ``ns`` now, or None when it is gone (see the module docstring for the order)."""
    candidates = [os.path.join(NETNS_DIR, ns.name)] if ns.name and "/" not in ns.name else []
    candidates.append(f"/proc/{ns.pid}/ns/net")
    for path in candidates:
        if _inode(path) == ns.inode:
            return path
    try:
        for entry in os.scandir(NETNS_DIR):
            if _inode(entry.path) == ns.inode:
                return entry.path
    except OSError:
        pass
    return None


class LinkMover(Protocol):
    """What a migration does to veths (NetlinkMover; a fake in the component tests)."""

    def move(self, ifnames: list[str], dest: Netns, src: Netns | None = None) -> None:
        """Move interfaces from ``src`` (None: ours) into namespace ``dest`` (the forward path: fast, by pid)."""

    def arrived(self, ifnames: list[str]) -> bool:
        """Whether all of ``ifnames`` are in our namespace (a destination waiting for the source's move)."""

    def pull(self, ifnames: list[str], peers: list[Netns]) -> list[str]:
        """Bring ``ifnames`` into our namespace from wherever they are; returns those found nowhere."""

    def push(self, ifnames: list[str], dest: Netns) -> None:
        """Send those of ``ifnames`` that are in our namespace to ``dest``, found by name or pid."""

    def set_mark(self, ifname: str, mark: str | None) -> None:
        """Set (None: clear) the commit mark of ``ifname``, in our namespace."""

    def read_mark(self, ifname: str, peers: list[Netns]) -> str | None:
        """The commit mark of ``ifname`` wherever it is (ours, ``peers``, any named namespace), or None."""


class NetlinkMover:
    """LinkMover through pyroute2 (no subprocess: ``move``, ``arrived`` and ``set_mark`` are on the blackout's
    path, and use one netlink socket in our namespace, kept open: a new one costs ~1 ms idle and up to ~20 ms
    on the loaded lab)."""

    def __init__(self) -> None:
        self._ipr: Any = None
        self._ipr_lock = threading.Lock()

    @contextlib.contextmanager
    def _here(self) -> Iterator[Any]:
        from pyroute2 import IPRoute

        with self._ipr_lock:
            if self._ipr is None:
                self._ipr = IPRoute()
            try:
                yield self._ipr
            except DeviceError:
                raise
            except Exception:  # a socket in an unknown state: a new one next time
                self._ipr.close()
                self._ipr = None
                raise

    def move(self, ifnames: list[str], dest: Netns, src: Netns | None = None) -> None:
        if src is None:
            with self._here() as ipr:
                self._move(ipr, ifnames, dest)
            return
        from pyroute2 import IPRoute

        with IPRoute(netns=f"/proc/{src.pid}/ns/net", flags=0) as ipr:
            self._move(ipr, ifnames, dest)

    @staticmethod
    def _move(ipr: Any, ifnames: list[str], dest: Netns) -> None:
        for name in ifnames:
            idx = ipr.link_lookup(ifname=name)
            if not idx:
                raise DeviceError(f"interface {name!r} is not in the namespace it should be in")
            ipr.link("set", index=idx[0], net_ns_pid=dest.pid)

    def arrived(self, ifnames: list[str]) -> bool:
        with self._here() as ipr:
            return all(ipr.link_lookup(ifname=name) for name in ifnames)

    def _places(self, peers: list[Netns]) -> list[str]:
        """Namespaces to look in after ours: the peers', then every other named one."""
        mine = _inode(NETNS_SELF)
        out: list[str] = []
        for p in peers:
            path = netns_path(p)
            if path is not None and _inode(path) != mine and path not in out:
                out.append(path)
        try:
            seen = {_inode(p) for p in out} | {mine}
            for entry in sorted(os.scandir(NETNS_DIR), key=lambda e: e.name):
                ino = _inode(entry.path)
                if ino not in seen:
                    seen.add(ino)
                    out.append(entry.path)
        except OSError:
            pass
        return out

    def _find(self, ifnames: list[str], peers: list[Netns], fn: Any) -> list[str]:
        """Call ``fn(ipr, index, name)`` for each of ``ifnames`` where it is found; returns those not found."""
        from pyroute2 import IPRoute

        left = list(ifnames)
        with IPRoute() as ipr:
            for name in list(left):
                idx = ipr.link_lookup(ifname=name)
                if idx:
                    fn(ipr, idx[0], name, True)
                    left.remove(name)
        for path in self._places(peers) if left else []:
            try:
                with IPRoute(netns=path, flags=0) as ipr:
                    for name in list(left):
                        idx = ipr.link_lookup(ifname=name)
                        if idx:
                            fn(ipr, idx[0], name, False)
                            left.remove(name)
            except Exception as exc:  # a namespace going away while we look: look elsewhere
                log.debug("looking for %s in %s: %s", left, path, exc)
            if not left:
                break
        return left

    def pull(self, ifnames: list[str], peers: list[Netns]) -> list[str]:
        me = os.getpid()

        def bring(ipr: Any, index: int, name: str, here: bool) -> None:
            if not here:
                ipr.link("set", index=index, net_ns_pid=me)
                log.info("pulled %s back into this namespace", name)

        return self._find(ifnames, peers, bring)

    def push(self, ifnames: list[str], dest: Netns) -> None:
        from pyroute2 import IPRoute

        path = netns_path(dest)
        if path is None:
            log.error("cannot send %s back: the namespace of pid %d is gone", ifnames, dest.pid)
            return
        if _inode(path) == _inode(NETNS_SELF):
            return
        fd = os.open(path, os.O_RDONLY)
        try:
            with IPRoute() as ipr:
                for name in ifnames:
                    for idx in ipr.link_lookup(ifname=name):
                        ipr.link("set", index=idx, net_ns_fd=fd)
                        log.info("sent %s back to %s", name, path)
        finally:
            os.close(fd)

    def set_mark(self, ifname: str, mark: str | None) -> None:
        with self._here() as ipr:
            idx = ipr.link_lookup(ifname=ifname)
            if not idx:
                raise DeviceError(f"interface {ifname!r} is not here to be marked", interface=ifname)
            ipr.link("set", index=idx[0], ifalias=mark or "")

    def read_mark(self, ifname: str, peers: list[Netns]) -> str | None:
        found: list[str | None] = []

        def read(ipr: Any, index: int, name: str, here: bool) -> None:
            alias = ipr.link("get", index=index)[0].get("IFLA_IFALIAS")
            found.append(str(alias) if alias else None)

        self._find([ifname], peers, read)
        return found[0] if found else None
