"""What both kinds of live migration share (daemon/migration.py for namespace VMs, daemon/guest_migration.py for
QEMU guests): the outcomes, the destination's calls (``Peer``) and their HTTP client, the error, step timing,
the SR-IOV hold of a moving port, and how saved extension state travels (base64 in JSON)."""

from __future__ import annotations

import base64
import logging
import re
from time import perf_counter
from typing import Any, Protocol

import httpx

from pyvswitch.config.intents import Intent
from pyvswitch.config.schema import PortConfig, VmConfig
from pyvswitch.daemon.service import NotFound, Service
from pyvswitch.errors import ConfigError, PyvswitchError

log = logging.getLogger(__name__)

RECOVERY_TIMEOUT_S = 5.0  # asking the other daemon at start-up or after a failure: a live one answers in ms
_ID_RE = re.compile(r"^[0-9a-f]{32}$")
COMMITTED = "committed"
ABORTED = "aborted"
UNKNOWN = "unknown"  # the destination has no record: the commit mark decides
RETRY_FORGET_S = 1.0  # a committed migration's record waits for the destination to confirm it forgot
# The destination's wait for the veths the source moves as its commit request travels (daemon/migration.py):
# 15-60 ms normally; longer only if the source died or hangs before moving, when the VM is given back.
ARRIVAL_TIMEOUT_S = 10.0
ARRIVAL_POLL_S = 0.001


class MigrationError(PyvswitchError):
    """The destination refused or failed; ``problems`` are its (field, message) pairs. ``unreachable``: it did
    not answer at all (dead, or not listening)."""

    def __init__(self, problems: list[tuple[str, str]], unreachable: bool = False) -> None:
        self.problems = problems
        self.unreachable = unreachable
        super().__init__("; ".join(f"{f}: {m}" if f else m for f, m in problems))


class Phases:
    """Durations of consecutive steps (seconds), for the answer: where a blackout goes."""

    def __init__(self) -> None:
        self.done: dict[str, float] = {}
        self._last = perf_counter()

    def mark(self, name: str) -> None:
        now = perf_counter()
        self.done[name] = round(now - self._last, 6)
        self._last = now


class Peer(Protocol):
    """The destination daemon's migration calls."""

    def validate(self, body: dict[str, Any]) -> dict[str, Any]: ...
    def commit(self, body: dict[str, Any]) -> dict[str, Any]: ...
    def abort(self, body: dict[str, Any]) -> dict[str, Any]: ...
    def forget(self, body: dict[str, Any]) -> dict[str, Any]: ...


class HttpPeer:
    """The destination over its unix socket."""

    def __init__(self, socket_path: str, timeout_s: float = 60.0) -> None:
        self.socket_path = socket_path
        # One client for every call, made before the blackout. verify=False: a unix socket has no TLS, and
        # loading the CA bundle for nothing costs ~65 ms per transport.
        self._client = httpx.Client(
            base_url="http://pyvswitchd/v1",
            transport=httpx.HTTPTransport(uds=socket_path, verify=False),
            timeout=timeout_s,
        )

    def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        try:
            resp = self._client.post(path, json=body)
        except httpx.TransportError as exc:
            raise MigrationError(
                [("to", f"cannot reach the destination at {self.socket_path}: {exc}")], unreachable=True
            ) from exc
        if resp.status_code >= 400:
            try:
                errors = resp.json().get("errors") or []
            except ValueError:
                errors = []
            raise MigrationError(
                [(str(e.get("field") or ""), str(e.get("message") or "")) for e in errors]
                or [("", f"destination answered HTTP {resp.status_code}")]
            )
        out = resp.json()
        assert isinstance(out, dict)
        return out

    def close(self) -> None:
        self._client.close()

    def validate(self, body: dict[str, Any]) -> dict[str, Any]:
        return self._post("/migrations/validate", body)

    def commit(self, body: dict[str, Any]) -> dict[str, Any]:
        return self._post("/migrations/commit", body)

    def abort(self, body: dict[str, Any]) -> dict[str, Any]:
        return self._post("/migrations/abort", body)

    def forget(self, body: dict[str, Any]) -> dict[str, Any]:
        return self._post("/migrations/forget", body)


def resolve_target(to: str) -> str:
    """The destination's API socket when ``to`` is one (a path). A host name is resolved by whoever knows the
    hosts (the CLI, from a lab's registry) and sent as ``socket``: the daemon depends on no lab."""
    if "/" in to:
        return to
    raise NotFound(
        "to",
        f"no host {to!r} known to this daemon: give the destination daemon's API socket path "
        "(the pyvswitch CLI resolves lab host names when a lab is up)",
    )


# SR-IOV (daemon/iov.py): a migrating port loses its VF before it moves (hyperv-networking.md §4.4: its traffic
# falls back to the software path without a reset) and gets one on the destination if that host can give one.
def release_vf(service: Service, port: str) -> None:
    """Source, before the blackout: the port's VF goes and its traffic takes the software path."""
    if service.iov is not None:
        service.iov.set_migrating(port, True)


def forget_vf(service: Service, port: str) -> None:
    """Source, after the VM left (or came back): the port is no longer held off its VF."""
    if service.iov is not None:
        service.iov.set_migrating(port, False)


def assign_vf(service: Service, port: str) -> None:
    """Destination (or the source taking the VM back): a VF if the port asks for one and one is free."""
    if service.iov is not None:
        service.iov.set_migrating(port, False)  # reconciles now: the VF plan includes the new port


def engine_call(engine: object, method: str, *args: Any) -> Any:
    fn = getattr(engine, method, None)
    return fn(*args) if callable(fn) else None


def migration_id(body: dict[str, Any]) -> str:
    ident = body.get("id")
    if not isinstance(ident, str) or not _ID_RE.match(ident):
        raise ConfigError([("id", "a migration id (32 hex digits) is required")])
    return ident


def parse_record(rec: Intent) -> tuple[VmConfig, list[PortConfig]]:
    return VmConfig.model_validate(rec.vm), [PortConfig.model_validate(p) for p in rec.ports]


def encode_states(states: dict[str, dict[str, bytes]]) -> dict[str, dict[str, str]]:
    return {
        port: {ext: base64.b64encode(b).decode() for ext, b in blobs.items()}
        for port, blobs in states.items()
    }


def decode_states(data: dict[str, dict[str, str]]) -> dict[str, dict[str, bytes]]:
    return {port: {ext: base64.b64decode(s) for ext, s in blobs.items()} for port, blobs in data.items()}
