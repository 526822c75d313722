"""One HTTP/1.1 request to pyvswitchd's unix socket, and its answer: the CLI's transport, written by hand.

Why by hand: the CLI must start in < 150 ms (issue 15), and the libraries that speak HTTP over a unix socket cost
too much of that to import: httpx (with httpcore, h11, anyio, ssl) ~100 ms, the standard library's http.client
(which parses headers with the email package and imports ssl) ~40 ms. What the CLI needs is small: its own daemon
(uvicorn) as the only peer, one request per connection (``Connection: close``), JSON bodies, answers framed by
Content-Length or chunked (or, failing both, by the close). Everything else fails as ``ProtocolError``.
"""

from __future__ import annotations

import socket


class ProtocolError(ValueError):
    """The answer is not HTTP/1.x the way this client reads it."""


def exchange(
    socket_path: str, method: str, target: str, body: bytes | None, timeout_s: float
) -> tuple[int, str, bytes]:
    """Send ``method target`` (with a JSON ``body``) and return (status, reason, body). OSError (refused, missing,
    permission, TimeoutError) comes from the socket as it is."""
    head = (
        f"{method} {target} HTTP/1.1\r\nHost: pyvswitchd\r\nAccept: application/json\r\nConnection: close\r\n"
    )
    if body is not None:
        head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout_s)
        sock.connect(socket_path)
        sock.sendall(head.encode("latin-1") + b"\r\n" + (body or b""))
        raw = bytearray()
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            raw += chunk
            if _complete(raw):
                break
    return parse(bytes(raw))


def _complete(raw: bytearray) -> bool:
    """Whether an answer framed by Content-Length is all here (the others end with the connection)."""
    end = raw.find(b"\r\n\r\n")
    if end < 0:
        return False
    length = _headers(bytes(raw[:end]))[1].get("content-length")
    return length is not None and length.isdigit() and len(raw) - end - 4 >= int(length)


def _headers(head: bytes) -> tuple[list[str], dict[str, str]]:
    lines = head.decode("latin-1").split("\r\n")
    fields: dict[str, str] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if not sep:
            raise ProtocolError(f"bad header line {line!r}")
        fields[name.strip().lower()] = value.strip()
    return lines, fields


def parse(raw: bytes) -> tuple[int, str, bytes]:
    """(status, reason, body) of a whole answer."""
    head, sep, rest = raw.partition(b"\r\n\r\n")
    if not sep:
        raise ProtocolError("the answer ended inside its headers" if raw else "no answer (connection closed)")
    lines, fields = _headers(head)
    version, _, status_reason = lines[0].partition(" ")
    status_text, _, reason = status_reason.partition(" ")
    if not version.startswith("HTTP/1.") or not status_text.isdigit():
        raise ProtocolError(f"bad status line {lines[0]!r}")
    if fields.get("transfer-encoding", "").lower() == "chunked":
        return int(status_text), reason, _dechunk(rest)
    length = fields.get("content-length")
    if length is not None:
        if not length.isdigit() or len(rest) < int(length):
            raise ProtocolError(f"the body is shorter than its Content-Length {length}")
        rest = rest[: int(length)]
    return int(status_text), reason, rest


def _dechunk(data: bytes) -> bytes:
    out = bytearray()
    pos = 0
    while True:
        eol = data.find(b"\r\n", pos)
        if eol < 0:
            raise ProtocolError("a chunk size line is cut")
        try:
            size = int(data[pos:eol].split(b";", 1)[0], 16)
        except ValueError:
            raise ProtocolError(f"bad chunk size {data[pos:eol]!r}") from None
        if size == 0:
            return bytes(out)
        start = eol + 2
        if len(data) < start + size + 2:
            raise ProtocolError("a chunk is cut")
        out += data[start : start + size]
        pos = start + size + 2
