"""A real etcd cluster on loopback for labs and tests (issue 13): N members of Debian's etcd-server, each its own
process with its own data directory, started together as a new cluster and stopped, killed or restarted one at a
time (the "kill one member: changes go on" test).

Timing: heartbeat 50 ms and election timeout 500 ms instead of etcd's 100/1000 ms defaults, so a killed leader is
replaced in about half a second on a loaded 2-CPU machine without spurious elections (etcd's tuning guide: the
election timeout should be at least 10x the heartbeat and above the round-trip time, here sub-millisecond).
"""

from __future__ import annotations

import contextlib
import functools
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from pyvswitch.testing.netns import process_gone, wait_for

ETCD_BINARY = "etcd"
HEARTBEAT_MS = 50
ELECTION_MS = 500


class EtcdError(RuntimeError):
    """The etcd cluster could not be started (the message says which member and why)."""


def etcd_unavailable() -> str | None:
    """Why no etcd cluster can be run here (None if it can)."""
    if shutil.which(ETCD_BINARY) is None:
        return "etcd is not installed (apt install etcd-server)"
    return None


def _die_with_parent() -> None:
    """In the child before exec: SIGKILL when the parent (thread) that started it ends (prctl PR_SET_PDEATHSIG)."""
    import ctypes

    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL, 0, 0, 0)  # 1 = PR_SET_PDEATHSIG


def _free_ports(n: int) -> list[int]:
    socks = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


@dataclass
class Member:
    name: str
    address: str
    client_port: int
    peer_port: int
    data_dir: Path
    log: Path
    netns: str | None = None
    proc: subprocess.Popen[bytes] | None = None

    @property
    def client_url(self) -> str:
        return f"http://{self.address}:{self.client_port}"

    @property
    def peer_url(self) -> str:
        return f"http://{self.address}:{self.peer_port}"

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def healthy(self) -> bool:
        return member_healthy(self.netns, self.client_url)


def member_healthy(netns: str | None, url: str) -> bool:
    """Whether the etcd member at ``url`` (in ``netns``, if given) says it is healthy (it has a leader)."""
    if netns is not None:  # not reachable from here: ask from inside its namespace
        try:
            res = subprocess.run(
                ["ip", "netns", "exec", netns, "etcdctl", "--endpoints", url, "--command-timeout=1s",
                 "endpoint", "health"],
                capture_output=True, text=True, timeout=10, env={**os.environ, "ETCDCTL_API": "3"},
            )  # fmt: skip
        except (OSError, subprocess.TimeoutExpired):
            return False
        return res.returncode == 0
    try:
        r = httpx.get(f"{url}/health", timeout=1.0)
    except httpx.HTTPError:
        return False
    return r.status_code == 200 and r.json().get("health") in ("true", True)


def _answers_within(m: Member, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while not m.healthy():
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.2)
    return True


def etcd_pids(data_dir_part: str) -> list[int]:
    """The etcd processes whose data directory's path contains ``data_dir_part`` (a member's directory, or a
    lab's name): found in /proc, so also those another process (an earlier ``lab up``) started."""
    want = data_dir_part.encode()
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmd = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if (
            cmd[0].endswith(b"etcd")
            and b"--data-dir" in cmd
            and want in b"".join(cmd[cmd.index(b"--data-dir") :][1:2])
        ):
            pids.append(int(entry.name))
    return pids


def _kill_pids(pids: list[int]) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    for pid in pids:  # gone (or a zombie: its ports are free) before they are bound again
        with contextlib.suppress(TimeoutError):
            wait_for(functools.partial(process_gone, pid), timeout_s=5, interval_s=0.02)


@dataclass
class EtcdCluster:
    """``members`` etcd processes on 127.0.0.1 (free ports), or in network namespace ``netns`` on ``addresses``
    (one each, etcd's ports 2379/2380: a lab's provider network); ``endpoints`` is what ``pyvswitchd --cluster``
    takes."""

    size: int = 3
    root: Path | None = None
    netns: str | None = None
    addresses: list[str] | None = None
    token: str = field(default_factory=lambda: f"pyvswitch-{uuid.uuid4().hex[:8]}")
    members: list[Member] = field(default_factory=list)
    _own_root: bool = False

    @property
    def endpoints(self) -> list[str]:
        return [m.client_url for m in self.members]

    @property
    def cluster_arg(self) -> str:
        return ",".join(self.endpoints)

    def start(self, timeout_s: float = 30.0) -> EtcdCluster:
        """A new cluster: every member started afresh (what their data directories held is not read)."""
        self._lay_out()
        for m in self.members:
            self._spawn(m, new=True)
        for m in self.members:
            self._wait_healthy(m, timeout_s)
        return self

    def converge(self, timeout_s: float = 30.0) -> str:
        """Bring a lab's cluster up without losing what it holds, and say what was done: members that answer are
        left alone ("kept"), members that are down are started again on their own data ("restarted m0"): the
        cluster keeps every key and lease, so the hosts' registrations survive. Only a cluster that never had
        data, or whose members cannot come back on theirs, is started new ("started").

        Why: ``lab up`` used to start the whole cluster afresh (its data removed) as soon as one member did not
        answer; after the kill-one-member test that wiped every lease under running daemons, and a host
        restarted next found its lease gone (a fresh-clone CI run, 2026-12-07)."""
        self._lay_out()
        if not all(m.data_dir.is_dir() for m in self.members):
            return self._start_afresh(timeout_s)
        # A loaded machine's health check can miss its 1 s deadline once: ask again before restarting anything.
        down = [m for m in self.members if not _answers_within(m, 3.0)]
        if not down:
            return "kept"
        for m in down:
            _kill_pids(etcd_pids(str(m.data_dir)))
            self._spawn(m, new=False)
        try:
            for m in down:
                self._wait_healthy(m, timeout_s)
        except (EtcdError, TimeoutError):
            # Their data could not be served again (a half-written first start): a new cluster, as a last resort.
            return self._start_afresh(timeout_s)
        return "restarted " + ",".join(m.name for m in down)

    def _start_afresh(self, timeout_s: float) -> str:
        for m in self.members:
            _kill_pids(etcd_pids(str(m.data_dir)))
            shutil.rmtree(m.data_dir, ignore_errors=True)
        self.start(timeout_s)
        return "started"

    def _lay_out(self) -> None:
        """Who the members are and where they live (nothing is started; kept once known: a loopback cluster's
        ports were chosen free when it was first started)."""
        why = etcd_unavailable()
        if why is not None:
            raise EtcdError(why)
        if self.members:
            return
        if self.root is None:
            self.root = Path(tempfile.mkdtemp(prefix="pyvswitch-etcd-"))
            self._own_root = True
        if self.addresses is not None:
            if len(self.addresses) != self.size:
                raise EtcdError(f"{self.size} members need {self.size} addresses, not {len(self.addresses)}")
            places = [(a, 2379, 2380) for a in self.addresses]
        else:
            ports = _free_ports(2 * self.size)
            places = [("127.0.0.1", ports[2 * i], ports[2 * i + 1]) for i in range(self.size)]
        self.root.mkdir(parents=True, exist_ok=True)
        self.members = [
            Member(f"m{i}", addr, cport, pport, self.root / f"m{i}.etcd", self.root / f"m{i}.log", self.netns)
            for i, (addr, cport, pport) in enumerate(places)
        ]

    def _spawn(self, m: Member, new: bool) -> None:
        initial = ",".join(f"{x.name}={x.peer_url}" for x in self.members)
        argv = [
            ETCD_BINARY, "--name", m.name, "--data-dir", str(m.data_dir),
            "--listen-client-urls", m.client_url, "--advertise-client-urls", m.client_url,
            "--listen-peer-urls", m.peer_url, "--initial-advertise-peer-urls", m.peer_url,
            "--initial-cluster", initial, "--initial-cluster-token", self.token,
            "--initial-cluster-state", "new" if new else "existing",
            "--heartbeat-interval", str(HEARTBEAT_MS), "--election-timeout", str(ELECTION_MS),
            "--logger", "zap", "--log-outputs", "stderr",
        ]  # fmt: skip
        if m.netns is not None:
            argv = ["ip", "netns", "exec", m.netns, *argv]
        # A loopback cluster (tests, benches) dies with the process that started it, also when that process is
        # killed (a timed-out test); a lab's outlives `pyvswitch lab up` and goes with `lab down`.
        with open(m.log, "ab") as logf:
            m.proc = subprocess.Popen(
                argv,
                stdout=logf,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_die_with_parent if m.netns is None else None,
            )

    def _wait_healthy(self, m: Member, timeout_s: float) -> None:
        def ready() -> bool:
            if m.proc is not None and m.proc.poll() is not None:
                tail = m.log.read_text(errors="replace")[-1500:]
                raise EtcdError(f"etcd member {m.name} exited with {m.proc.returncode}: {tail}")
            return m.healthy()

        wait_for(ready, timeout_s=timeout_s, interval_s=0.05, what=f"etcd member {m.name} healthy ({m.log})")

    def kill(self, index: int) -> None:
        """kill -9 member ``index`` (its data directory stays, for ``restart``)."""
        m = self.members[index]
        if m.proc is not None and m.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(m.proc.pid, signal.SIGKILL)
            m.proc.wait(timeout=10)

    def restart(self, index: int, timeout_s: float = 30.0) -> None:
        m = self.members[index]
        self.kill(index)
        self._spawn(m, new=False)
        self._wait_healthy(m, timeout_s)

    def stop(self) -> None:
        for m in self.members:
            if m.proc is not None and m.proc.poll() is None:
                m.proc.terminate()
        deadline = time.monotonic() + 10
        for m in self.members:
            if m.proc is None:
                continue
            try:
                m.proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                m.proc.kill()
                m.proc.wait(timeout=5)
        if self._own_root and self.root is not None:
            shutil.rmtree(self.root, ignore_errors=True)

    @classmethod
    @contextlib.contextmanager
    def running(cls, size: int = 3, root: Path | None = None) -> Iterator[EtcdCluster]:
        """A cluster that is always stopped (and its temporary data removed) at the end."""
        cluster = cls(size=size, root=root)
        try:
            yield cluster.start()
        finally:
            cluster.stop()
