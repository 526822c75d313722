"""What one request may cost the daemon (issue 11): a cap on the body, read before any handler sees it.

A body over ``MAX_BODY_BYTES`` is answered 413 with the API's error shape, whether its Content-Length says so up
front (nothing is read) or a chunked body grows past the cap while it is read. The cap sits above the largest body
the project itself sends (``make bench-rules`` replaces a port's 10,000 ACL and 10,000 extended ACL entries in one
PATCH: 3.7 MB of JSON) with room to spare, and far below what parsing it into models could cost in memory.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

MAX_BODY_BYTES = 8 * 1024 * 1024


class BodyLimit:
    """ASGI middleware: buffers a request's body up to ``limit`` bytes and hands it on whole, or answers 413.

    Buffering first (instead of counting while the app reads) matters: FastAPI turns any exception raised while it
    reads a body into a 400 "error parsing the body", so a limit enforced inside that read could not say 413.
    """

    def __init__(self, app: ASGIApp, limit: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.limit:
            await self._too_large(send, declared)
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client went away: nobody to answer
                return
            chunk = bytes(message.get("body", b""))
            size += len(chunk)
            if size > self.limit:
                await self._too_large(send, None)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()  # after the body: http.disconnect when the client leaves

        await self.app(scope, replay, send)

    async def _too_large(self, send: Send, declared: int | None) -> None:
        size = f"{declared} bytes" if declared is not None else f"over {self.limit} bytes"
        message = f"request body too large ({size}): at most {self.limit} bytes"
        content = json.dumps({"errors": [{"field": "body", "message": message}]}).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(content)).encode()),
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": content})


def _content_length(scope: Scope) -> int | None:
    for key, value in scope.get("headers", ()):
        if key.lower() == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None  # the server refuses a malformed one before we are called
    return None
