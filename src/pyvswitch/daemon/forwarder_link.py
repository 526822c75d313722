"""pyvswitchd's side of the forwarder (daemon/forwarder.py): attach to the running one or start it, and the
``RemoteEngine`` / ``RemoteCaptures`` stand-ins the service calls as it would call an in-process Engine.

Calls go over one connection per calling thread (API handlers run concurrently, as they did against the
in-process Engine, whose methods are thread-safe); the control connection only says "attached" and, at the
end, whether the forwarder should linger for a successor (``detach``) or stop (``shutdown``).
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pyvswitch.daemon import rpc
from pyvswitch.daemon.rpc import LOCK_NAME, SOCKET_NAME
from pyvswitch.errors import PyvswitchError

# Light at run time: pyvswitchd starts its forwarder before it imports the configuration schema.
if TYPE_CHECKING:
    from pyvswitch.config.schema import HostConfig
    from pyvswitch.observe.capture import CaptureSession

log = logging.getLogger(__name__)

START_TIMEOUT_S = 30.0


class ForwarderError(PyvswitchError):
    """The forwarder could not be started or reached."""


class ForwarderLink:
    """The attached control connection plus per-thread call connections to one forwarder."""

    def __init__(self, path: Path, control: socket.socket, status: dict[str, Any]) -> None:
        self.path = path
        self._control = control
        self.status = status
        self._local = threading.local()
        self._conns: list[socket.socket] = []
        self._conns_lock = threading.Lock()
        self._fds: dict[str, int] = {}  # port -> our copy of its receive socket (SR-IOV filters)

    @property
    def pid(self) -> int:
        return int(self.status["pid"])

    def call(self, target: str, method: str, *args: Any, **kwargs: Any) -> Any:
        sock: socket.socket | None = getattr(self._local, "sock", None)
        if sock is None:
            sock = rpc.connect(str(self.path))
            self._local.sock = sock
            with self._conns_lock:
                self._conns.append(sock)
        try:
            rpc.send(sock, (target, method, args, kwargs))
            reply, fds = rpc.recv(sock)
        except (OSError, rpc.Closed) as exc:
            self._local.sock = None
            sock.close()
            raise ForwarderError(f"the forwarder (pid {self.pid}) did not answer {method}: {exc}") from exc
        if reply[0] == "err":
            raise rpc.unpack_error(reply[1])
        if fds:
            return fds
        return reply[1]

    def port_fd(self, port: str) -> int | None:
        """A descriptor of ``port``'s receive socket in this process (the same kernel socket)."""
        got = self.call("engine", "port_fileno", port)
        if not isinstance(got, list):
            return None
        old = self._fds.pop(port, None)
        if old is not None:
            with contextlib.suppress(OSError):
                os.close(old)
        for extra in got[1:]:
            os.close(extra)
        fd = int(got[0])
        self._fds[port] = fd
        return fd

    def _end(self, message: tuple[Any, ...]) -> None:
        with contextlib.suppress(OSError, rpc.Closed):
            rpc.send(self._control, message)
            rpc.recv(self._control)
        self._control.close()
        with self._conns_lock:
            for c in self._conns:
                c.close()
            self._conns.clear()
        for fd in self._fds.values():
            with contextlib.suppress(OSError):
                os.close(fd)
        self._fds.clear()

    def detach(self, grace_s: float) -> None:
        """Leave: the forwarder keeps forwarding for ``grace_s`` seconds, waiting for a successor."""
        self._end(("detach", grace_s))

    def shutdown(self, timeout_s: float = 10.0) -> None:
        """Stop the forwarder now, and wait for it to be gone (its devices closed)."""
        self._end(("shutdown",))
        _wait_gone(self.pid, timeout_s)


def _wait_gone(pid: int, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with contextlib.suppress(ChildProcessError):
            if os.waitpid(pid, os.WNOHANG)[0] == pid:
                return
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.01)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, 9)


def _hello(path: Path, fingerprint: str, cpu: int | None) -> tuple[socket.socket, dict[str, Any]] | None:
    try:
        sock = rpc.connect(str(path), timeout_s=5.0)
    except OSError:
        return None
    try:
        rpc.send(sock, ("hello", {"fingerprint": fingerprint, "cpu": cpu, "pid": os.getpid()}))
        status, _ = rpc.recv(sock)
    except (OSError, rpc.Closed):
        sock.close()
        return None
    sock.settimeout(None)
    return sock, status


class ForwarderStart:
    """Finding or starting a state directory's forwarder, in two halves: the constructor attaches to a running
    one or starts a new process and returns at once; ``link()`` waits until it serves. pyvswitchd starts it
    before its own imports (~0.8 s: the API, the schema, netlink), so the forwarder's start (~0.35 s) overlaps
    them instead of following them: every daemon start is that much shorter."""

    def __init__(
        self,
        state_dir: Path,
        cpu: int | None,
        other_cpus: frozenset[int],
        grace_s: float,
        log_level: str = "info",
    ) -> None:
        self.fingerprint = rpc.code_fingerprint()
        self.path = state_dir / SOCKET_NAME
        self.cpu = cpu
        self.proc: subprocess.Popen[bytes] | None = None
        self._running: ForwarderLink | None = None
        found = _hello(self.path, self.fingerprint, cpu)
        if found is not None:
            sock, status = found
            link = ForwarderLink(self.path, sock, status)
            if status.get("compatible"):
                log.info(
                    "attached to the running forwarder (pid %s): forwarding never stopped", status["pid"]
                )
                self._running = link
                return
            log.info(
                "the running forwarder (pid %s) runs other code or settings: replacing it", status["pid"]
            )
            link.shutdown()
        self.proc = subprocess.Popen(
            [
                sys.executable, "-m", "pyvswitch.daemon.forwarder",
                "--state-dir", str(state_dir),
                "--cpu", "none" if cpu is None else str(cpu),
                "--other-cpus", ",".join(str(c) for c in sorted(other_cpus)),
                "--grace", str(grace_s),
                "--fingerprint", self.fingerprint,
                "--log-level", log_level,
            ],
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # signals to the daemon's process group are not the forwarder's
            close_fds=True,
        )  # fmt: skip

    def link(self) -> ForwarderLink:
        """The attached link, once the forwarder serves (a new one: within START_TIMEOUT_S)."""
        if self._running is not None:
            return self._running
        proc = self.proc
        assert proc is not None
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise ForwarderError(
                    f"the forwarder exited with {proc.returncode} before serving (see the log)"
                )
            found = _hello(self.path, self.fingerprint, self.cpu)
            if found is not None and found[1].get("pid") == proc.pid:
                log.info("started the forwarder (pid %d)", proc.pid)
                return ForwarderLink(self.path, *found)
            if found is not None:
                found[0].close()
            time.sleep(0.02)
        proc.kill()
        raise ForwarderError(f"the forwarder did not serve {self.path} within {START_TIMEOUT_S:.0f} s")

    def abandon(self) -> None:
        """Start-up failed before ``link()``: a forwarder started here goes (one found running is left alone)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=5)


def forwarder_pid(state_dir: Path) -> int | None:
    """The pid of the forwarder of ``state_dir`` (for tools measuring its CPU), None when none runs."""
    try:
        pid = int((state_dir / LOCK_NAME).read_text().split()[0])
        os.kill(pid, 0)
    except (OSError, ValueError, IndexError):
        return None
    return pid


class RemoteEngine:
    """The Engine calls the service, the SR-IOV manager, migration and receive steering make, forwarded."""

    def __init__(self, link: ForwarderLink) -> None:
        self.link = link

    def _call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        return self.link.call("engine", method, *args, **kwargs)

    def apply(self, cfg: HostConfig) -> None:
        self._call("apply", cfg)

    def counters(self) -> dict[str, object]:
        out: dict[str, object] = self._call("counters")
        return out

    def health(self) -> dict[str, object]:
        out: dict[str, object] = self._call("health")
        out["forwarder"] = self.link.call("forwarder", "status")
        return out

    def set_busy_poll(self, mode: str) -> None:
        """When the forwarding loop busy-polls (pyvswitchd --busy-poll, switch/runner.py BUSY_POLL_MODES)."""
        self._call("set_busy_poll", mode)

    def set_log_level(self, level: str) -> str:
        """The forwarder process's log level (daemon/logs.py), as ``pyvswitch log level`` sets the daemon's."""
        return str(self.link.call("forwarder", "set_log_level", level))

    def fdb(self, switch: str) -> list[dict[str, object]]:
        out: list[dict[str, object]] = self._call("fdb", switch)
        return out

    def installed_extensions(self) -> list[dict[str, object]]:
        out: list[dict[str, object]] = self._call("installed_extensions")
        return out

    def team_status(self, name: str) -> dict[str, object] | None:
        out: dict[str, object] | None = self._call("team_status", name)
        return out

    def trace_start(self, switch: str, port: str, count: int) -> None:
        self._call("trace_start", switch, port, count)

    def trace_stop(self, switch: str, port: str) -> None:
        self._call("trace_stop", switch, port)

    def traces(self, switch: str | None, port: str | None, limit: int = 100) -> list[dict[str, object]]:
        out: list[dict[str, object]] = self._call("traces", switch, port, limit)
        return out

    def what_if(self, switch: str, port: str, frame: bytes, tci: int) -> dict[str, object]:
        out: dict[str, object] = self._call("what_if", switch, port, frame, tci)
        return out

    def add_capture(self, session: CaptureSession) -> None:
        raise NotImplementedError("captures run in the forwarder: use RemoteCaptures")

    def remove_capture(self, session_id: str) -> CaptureSession | None:
        raise NotImplementedError("captures run in the forwarder: use RemoteCaptures")

    @property
    def busy_s(self) -> float:
        return float(self._call("busy_s"))

    def port_fileno(self, port: str) -> int | None:
        return self.link.port_fd(port)

    def __getattr__(self, method: str) -> Any:
        # Mobility calls (set_nic_switched, take_vf_requests, prepare_device, save/restore_port_state,
        # announce, validate_port, qos_status): the forwarder's allow-list decides what exists.
        if method.startswith("_"):
            raise AttributeError(method)
        return lambda *args, **kwargs: self._call(method, *args, **kwargs)


class RemoteCaptures:
    """CaptureManager's public calls, run by the forwarder's CaptureManager (sessions live where frames are)."""

    def __init__(self, link: ForwarderLink) -> None:
        self.link = link

    def __getattr__(self, method: str) -> Any:
        if method.startswith("_"):
            raise AttributeError(method)
        return lambda *args, **kwargs: self.link.call("captures", method, *args, **kwargs)
