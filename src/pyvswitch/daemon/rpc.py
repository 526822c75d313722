"""Calls between pyvswitchd and its forwarder process (daemon/forwarder.py) over a unix stream socket.

A message is a 4-byte length and a pickle; file descriptors travel beside it (SCM_RIGHTS, for the SR-IOV socket
filter, which must be set on the forwarder's own receive socket). Pickle is acceptable here and nowhere else:
the socket is mode 0600 inside the 0700 state directory, so only root reaches it, and both ends run the same
code (the forwarder refuses a control plane whose code fingerprint differs; the daemon then replaces it).

Exceptions cross as (module, class, args, attributes) and are rebuilt without calling ``__init__``: the
project's errors take keyword arguments (``DeviceError(msg, port=...)``) that plain pickling loses, and the
service matches on their class (ConfigError, NotFoundError...), so they must arrive as themselves.
"""

from __future__ import annotations

import array
import contextlib
import importlib
import os
import pickle
import socket
import struct
from collections.abc import Sequence
from typing import Any

# Where a state directory's forwarder serves and holds its lock (both ends agree; here rather than in forwarder.py
# so that pyvswitchd can find or start its forwarder before it imports the data path).
SOCKET_NAME = "forwarder.sock"
LOCK_NAME = "forwarder.lock"

HEADER = struct.Struct("!I")
MAX_FDS = 4
MAX_MESSAGE = 256 << 20  # a whole configuration with 10,000 rules is ~10 MB pickled


class RemoteError(Exception):
    """An exception of the forwarder's that could not be rebuilt here (its text is kept)."""


class Closed(ConnectionError):
    """The other end closed the connection (between messages)."""


def send(sock: socket.socket, obj: object, fds: Sequence[int] = ()) -> None:
    data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    msg = HEADER.pack(len(data)) + data
    if fds:
        # The descriptors ride on the first bytes; the rest of a long message follows as plain data.
        sent = sock.sendmsg([msg], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds))])
        if sent < len(msg):
            sock.sendall(msg[sent:])
    else:
        sock.sendall(msg)


def recv(sock: socket.socket) -> tuple[Any, list[int]]:
    """One message and the descriptors that came with it. Closed at a clean end of stream."""
    fds: list[int] = []
    head = b""
    while len(head) < HEADER.size:
        data, anc, _, _ = sock.recvmsg(HEADER.size - len(head), socket.CMSG_LEN(MAX_FDS * 4))
        for level, kind, payload in anc:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                got = array.array("i")
                got.frombytes(payload[: len(payload) - len(payload) % got.itemsize])
                fds.extend(got)
        if not data:
            for fd in fds:
                with contextlib.suppress(OSError):
                    os.close(fd)
            if head:
                raise ConnectionError("connection closed inside a message")
            raise Closed("connection closed")
        head += data
    (length,) = HEADER.unpack(head)
    if length > MAX_MESSAGE:
        raise ConnectionError(f"message of {length} bytes refused")
    body = bytearray(length)
    view = memoryview(body)
    got_bytes = 0
    while got_bytes < length:
        n = sock.recv_into(view[got_bytes:])
        if n == 0:
            raise ConnectionError("connection closed inside a message")
        got_bytes += n
    return pickle.loads(body), fds


def pack_error(exc: BaseException) -> tuple[str, str, tuple[Any, ...], dict[str, Any], str]:
    attrs = dict(getattr(exc, "__dict__", {}))
    try:
        pickle.dumps((exc.args, attrs))
    except Exception:
        return (type(exc).__module__, type(exc).__qualname__, (str(exc),), {}, str(exc))
    return (type(exc).__module__, type(exc).__qualname__, exc.args, attrs, str(exc))


def unpack_error(packed: tuple[str, str, tuple[Any, ...], dict[str, Any], str]) -> BaseException:
    module, qualname, args, attrs, text = packed
    try:
        obj: Any = importlib.import_module(module)
        for part in qualname.split("."):
            obj = getattr(obj, part)
        if isinstance(obj, type) and issubclass(obj, Exception):
            exc = obj.__new__(obj)
            exc.args = args
            exc.__dict__.update(attrs)
            return exc
    except Exception:
        pass
    return RemoteError(f"{qualname}: {text}")


def connect(path: str, timeout_s: float | None = None) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout_s)
    try:
        sock.connect(path)
    except OSError:
        sock.close()
        raise
    return sock


def code_fingerprint() -> str:
    """What identifies the code both ends run: the version and every module's size and modification time.

    A control plane attaches only to a forwarder with the same fingerprint: an upgrade (new files) replaces
    the forwarder, which costs that one restart its hitlessness but never runs two versions against each other.
    """
    import hashlib
    from pathlib import Path

    import pyvswitch

    h = hashlib.sha256(pyvswitch.__version__.encode())
    root = Path(pyvswitch.__file__).parent
    for path in sorted(root.rglob("*.py")):
        st = path.stat()
        h.update(f"{path.relative_to(root)}:{st.st_size}:{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:16]
