"""A small typed client for the pyvswitchd REST API (docs/contracts.md) over its unix socket.

Bodies go and come back as plain JSON objects: the CLI prints what the daemon said (``--json`` must be the
daemon's own answer) and the daemon validates every request, so re-modelling the schema here would only add
a second place to keep in step. Two failures are told apart because the CLI exits differently for each:
``DaemonUnreachable`` (nobody to ask: exit 3) and ``ApiError`` (the daemon said no: exit 1).

Over the socket, requests go through cli/unix_http.py (one request per connection, written by hand: httpx took
~0.1 s and http.client ~40 ms of every CLI call's start-up, and issue 15 asks for < 150 ms in all). httpx stays
for what only it does here: a test hands the client an httpx transport (MockTransport, the ASGI app in process),
and httpx is imported then.
"""

from __future__ import annotations

import json as jsonlib
import os
import time
from types import TracebackType
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import quote, urlencode

from pyvswitch.cli.unix_http import ProtocolError, exchange

if TYPE_CHECKING:
    import httpx

DEFAULT_SOCKET = "/run/pyvswitch/pyvswitchd.sock"
BASE_URL = "http://pyvswitchd/v1"
# Long enough for a request that creates namespaces and veths on a loaded host; a hung daemon still ends.
DEFAULT_TIMEOUT_S = 60.0

JsonObj = dict[str, Any]


class DaemonUnreachable(Exception):
    """No answer from pyvswitchd at all; the message tells the operator what to do about it."""

    def __init__(self, socket_path: str, reason: str = "missing") -> None:
        self.socket_path = socket_path
        self.reason = reason
        if reason == "missing":
            text = f"pyvswitchd is not running (no socket at {socket_path}); start it with `pyvswitchd`"
        elif reason == "refused":
            text = f"pyvswitchd is not running (nothing listens on {socket_path}); start it with `pyvswitchd`"
        elif reason == "permission":
            text = (
                f"cannot connect to pyvswitchd at {socket_path}: permission denied "
                "(run as root or as a user allowed to use the socket)"
            )
        else:
            text = f"cannot reach pyvswitchd at {socket_path}: {reason}"
        super().__init__(text)


class NotRehearsed(Exception):
    """Under a dry run (``Client.dry_run``), the daemon did not run a request it cannot rehearse (it acts outside
    the configuration: a capture, a migration...); ``operation`` is ``METHOD /v1/path``."""

    def __init__(self, operation: str) -> None:
        self.operation = operation
        super().__init__(operation)


class ApiError(Exception):
    """The daemon rejected a request: its status and the ``(field, message)`` pairs it gave."""

    def __init__(self, status: int, errors: list[tuple[str, str]]) -> None:
        self.status = status
        self.errors = errors
        super().__init__("; ".join(f"{f}: {m}" if f else m for f, m in errors))

    @classmethod
    def from_response(cls, resp: Response) -> ApiError:
        problems: list[tuple[str, str]] = []
        try:
            body = resp.json()
        except ValueError:
            body = None
        if isinstance(body, dict) and isinstance(body.get("errors"), list):
            for e in body["errors"]:
                if isinstance(e, dict):
                    problems.append((str(e.get("field") or ""), str(e.get("message") or "")))
        elif isinstance(body, dict) and "detail" in body:
            # Starlette's own answers (unknown route, wrong method) do not use the errors shape.
            problems.append(("", str(body["detail"])))
        if not problems:
            problems.append(("", f"HTTP {resp.status_code}: {resp.text.strip() or resp.reason_phrase}"))
        return cls(resp.status_code, problems)


class Response(Protocol):
    """What the client reads of an answer (httpx.Response has it, and so has ``_Answer``)."""

    @property
    def status_code(self) -> int: ...
    @property
    def content(self) -> bytes: ...
    @property
    def text(self) -> str: ...
    @property
    def reason_phrase(self) -> str: ...
    def json(self) -> Any: ...


class _Answer:
    """An answer over the socket (cli/unix_http.py), read whole."""

    def __init__(self, status: int, reason: str, content: bytes) -> None:
        self.status_code = status
        self.reason_phrase = reason
        self.content = content

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", "replace")

    def json(self) -> Any:
        return jsonlib.loads(self.content)


def _seg(name: str) -> str:
    return quote(name, safe="")


class Client:
    """Calls pyvswitchd. ``transport`` replaces the unix socket (tests use httpx.MockTransport)."""

    def __init__(
        self,
        socket_path: str = DEFAULT_SOCKET,
        *,
        transport: httpx.BaseTransport | None = None,
        timeout_s: float = DEFAULT_TIMEOUT_S,
    ) -> None:
        self.socket_path = socket_path
        self.timeout_s = timeout_s
        # A dry run's id (-WhatIf): every request carries it, so the daemon validates and answers without
        # changing anything, later requests seeing the earlier ones' effect (daemon/dry_run.py).
        self.dry_run: str | None = None
        self._check_socket = transport is None
        self._http: httpx.Client | None = None
        if transport is not None:
            import httpx

            self._http = httpx.Client(base_url=BASE_URL, transport=transport, timeout=timeout_s)

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        if self._http is not None:
            self._http.close()

    def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: dict[str, str] | None = None,
        timeout_s: float | None = None,
    ) -> Any:
        """One call; the decoded JSON answer (None for 204). Raises DaemonUnreachable or ApiError."""
        # Checked first so the common case (daemon not started) gets the plain message, not a socket errno.
        if self._check_socket and not os.path.exists(self.socket_path):
            raise DaemonUnreachable(self.socket_path, "missing")
        timeout = timeout_s if timeout_s is not None else self.timeout_s
        if self.dry_run is not None:
            params = {**(params or {}), "dry_run": self.dry_run}
        if self._http is not None:
            resp: Response = self._http.request(method, path, json=json, params=params, timeout=timeout)
        else:
            resp = self._over_socket(method, path, json, params, timeout)
        if resp.status_code >= 400:
            raise ApiError.from_response(resp)
        if resp.status_code == 204 or not resp.content:
            return None
        body = resp.json()
        if (
            self.dry_run is not None
            and isinstance(body, dict)
            and body.get("run") is False
            and "dry_run" in body
        ):
            raise NotRehearsed(str(body.get("operation") or f"{method} {path}"))
        return body

    def _over_socket(
        self, method: str, path: str, json: Any, params: dict[str, str] | None, timeout_s: float
    ) -> _Answer:
        url = "/v1" + path + ("?" + urlencode(params) if params else "")
        body = None if json is None else jsonlib.dumps(json).encode()
        try:
            return _Answer(*exchange(self.socket_path, method, url, body, timeout_s))
        except TimeoutError as exc:
            raise DaemonUnreachable(self.socket_path, f"no answer within {timeout_s:g} s") from exc
        except FileNotFoundError as exc:
            raise DaemonUnreachable(self.socket_path, "missing") from exc
        except PermissionError as exc:
            raise DaemonUnreachable(self.socket_path, "permission") from exc
        except ConnectionRefusedError as exc:
            raise DaemonUnreachable(self.socket_path, "refused") from exc
        except (OSError, ProtocolError) as exc:
            raise DaemonUnreachable(self.socket_path, str(exc) or type(exc).__name__) from exc

    # ---- typed calls, one per route ----

    def health(self) -> JsonObj:
        return dict(self.request("GET", "/health"))

    def config(self) -> JsonObj:
        return dict(self.request("GET", "/config"))

    def switches(self) -> list[JsonObj]:
        return list(self.request("GET", "/switches"))

    def switch(self, name: str) -> JsonObj:
        return dict(self.request("GET", f"/switches/{_seg(name)}"))

    def add_switch(self, body: JsonObj) -> JsonObj:
        return dict(self.request("POST", "/switches", json=body))

    def update_switch(self, name: str, changes: JsonObj) -> JsonObj:
        return dict(self.request("PATCH", f"/switches/{_seg(name)}", json=changes))

    def delete_switch(self, name: str) -> None:
        self.request("DELETE", f"/switches/{_seg(name)}")

    def vms(self) -> list[JsonObj]:
        return list(self.request("GET", "/vms"))

    def vm(self, name: str) -> JsonObj:
        return dict(self.request("GET", f"/vms/{_seg(name)}"))

    def add_vm(self, body: JsonObj) -> JsonObj:
        return dict(self.request("POST", "/vms", json=body))

    def delete_vm(self, name: str) -> None:
        self.request("DELETE", f"/vms/{_seg(name)}")

    def wait_vm_booted(self, name: str, timeout_s: float = 180.0) -> JsonObj:
        """VM ``name`` once its QEMU guest is no longer booting (running or failed), or as it is after
        ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        vm = self.vm(name)
        while vm.get("state") == "booting" and time.monotonic() < deadline:
            time.sleep(0.2)
            vm = self.vm(name)
        return vm

    def exec_vm(self, name: str, argv: list[str], timeout_s: float = 60.0) -> JsonObj:
        """A command in a QEMU guest (its agent); the answer has returncode, stdout, stderr."""
        body = {"argv": argv, "timeout_s": timeout_s}
        return dict(self.request("POST", f"/vms/{_seg(name)}/exec", json=body, timeout_s=timeout_s + 10))

    def ports(self, switch: str | None = None, vm: str | None = None) -> list[JsonObj]:
        params = {k: v for k, v in (("switch", switch), ("vm", vm)) if v is not None}
        return list(self.request("GET", "/ports", params=params or None))

    def port(self, name: str) -> JsonObj:
        return dict(self.request("GET", f"/ports/{_seg(name)}"))

    def add_port(self, body: JsonObj) -> JsonObj:
        return dict(self.request("POST", "/ports", json=body))

    def update_port(self, name: str, changes: JsonObj) -> JsonObj:
        return dict(self.request("PATCH", f"/ports/{_seg(name)}", json=changes))

    def delete_port(self, name: str) -> None:
        self.request("DELETE", f"/ports/{_seg(name)}")

    def extensions(self) -> list[JsonObj]:
        return list(self.request("GET", "/extensions"))

    def switch_extensions(self, switch: str) -> list[JsonObj]:
        return list(self.request("GET", f"/switches/{_seg(switch)}/extensions"))

    def fdb(self, switch: str) -> list[JsonObj]:
        return list(self.request("GET", f"/fdb/{_seg(switch)}"))

    def counters(self, switch: str | None = None) -> JsonObj:
        return dict(self.request("GET", "/counters", params={"switch": switch} if switch else None))
