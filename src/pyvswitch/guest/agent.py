"""Commands inside a QEMU guest through its virtio-serial agent port (the guest side is image.AGENT).

A virtio-serial port, not the serial console and not the QEMU guest agent: the console carries the kernel's
messages (a prompt to scrape would race them), and qemu-guest-agent is a Debian package with glib and a
libc that would triple the initramfs. One line per request, ``ID BASE64(command)``, one per answer,
``ID RC BASE64(stdout) BASE64(stderr)``: binary-safe and trivially parsed by busybox. A round trip costs
~20 ms under TCG (measured in tests/system/test_qemu_guest.py).
"""

from __future__ import annotations

import base64
import itertools
import shlex
import socket
import time
from dataclasses import dataclass
from pathlib import Path

AGENT_UP = b"AGENT-UP"


class AgentError(RuntimeError):
    """The guest did not answer (not booted, hung, or the port is gone)."""


@dataclass(frozen=True)
class ExecResult:
    returncode: int
    stdout: str
    stderr: str


class Agent:
    """A connection to one guest's agent port (QEMU's chardev socket)."""

    _ids = itertools.count(1)

    def __init__(self, sock_path: Path) -> None:
        self.sock_path = sock_path
        self._sock: socket.socket | None = None
        self._buf = b""

    def _connect(self) -> socket.socket:
        if self._sock is None:
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                s.connect(str(self.sock_path))
            except OSError as exc:
                s.close()
                raise AgentError(f"cannot reach the guest agent at {self.sock_path}: {exc}") from exc
            self._sock = s
        return self._sock

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None
            self._buf = b""

    def _line(self, deadline: float) -> bytes:
        s = self._connect()
        while b"\n" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AgentError("the guest agent did not answer in time")
            s.settimeout(left)
            try:
                chunk = s.recv(65536)
            except TimeoutError:
                continue
            if not chunk:
                self.close()
                raise AgentError("the guest agent's port closed")
            self._buf += chunk
        line, self._buf = self._buf.split(b"\n", 1)
        return line.strip()

    def wait_up(self, timeout_s: float) -> None:
        """Until the agent has announced itself (it does once, when the guest's init starts it)."""
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                if self._line(deadline) == AGENT_UP:
                    return
            except AgentError:
                self.close()
                if time.monotonic() >= deadline:
                    raise
                time.sleep(0.05)

    def run(self, argv: list[str] | str, timeout_s: float = 30.0) -> ExecResult:
        """Run a command in the guest (a list is quoted for its shell, a string is a shell line)."""
        line = argv if isinstance(argv, str) else shlex.join(argv)
        rid = f"r{next(self._ids)}"
        deadline = time.monotonic() + timeout_s
        self._connect().sendall(f"{rid} {base64.b64encode(line.encode()).decode()}\n".encode())
        while True:
            fields = self._line(deadline).split(b" ")
            if fields[0] != rid.encode() or len(fields) < 2:
                continue  # a late answer to an earlier request that timed out, or the start-up line
            out = base64.b64decode(fields[2]) if len(fields) > 2 else b""
            err = base64.b64decode(fields[3]) if len(fields) > 3 else b""
            return ExecResult(int(fields[1]), out.decode(errors="replace"), err.decode(errors="replace"))
