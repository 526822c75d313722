"""The cluster's key-value store: etcd, reached through etcd3gw (etcd's v3 JSON gateway, synchronous: it fits the
daemon's threads), with what a host agent needs on top: failover across the cluster's members and a watch that
resumes from a revision.

Written by hand here, and why: etcd3gw talks to one member, and its watch drops errors on the floor (a compacted
start revision, a member that died mid-stream: the iterator just goes quiet). ``watch_prefix`` reads the
gateway's watch stream itself (JSON lines: a ``created`` line, then ``result.events`` with each key's
``mod_revision``), remembers the last revision it delivered, and on a broken stream reopens it on the next member
from that revision + 1, so no event is lost or repeated; a revision etcd has compacted away raises
``Compacted`` (the caller then reads the whole prefix again: a resync, counted). aetcd (asyncio, gRPC) was the
other candidate; it would bring grpcio and a second event loop into a threaded daemon.
"""

from __future__ import annotations

import base64
import contextlib
import functools
import json
import logging
import socket
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import requests
from etcd3gw.client import Etcd3Client
from etcd3gw.exceptions import ConnectionFailedError, ConnectionTimeoutError, Etcd3Exception

from pyvswitch.errors import PyvswitchError

log = logging.getLogger(__name__)

TXN_OPS = 100  # puts per transaction (etcd refuses more than --max-txn-ops, 128 by default)
API_PATH = "/v3/"  # etcd >= 3.4 (Debian 12 has 3.4.23); skips etcd3gw's /version discovery per member


class ClusterError(PyvswitchError):
    """No member of the cluster answered (the message lists them)."""


class Compacted(ClusterError):
    """A watch asked for history etcd no longer keeps: read the prefix again from the current revision."""

    def __init__(self, compact_revision: int) -> None:
        super().__init__(f"revision compacted (oldest kept: {compact_revision})")
        self.compact_revision = compact_revision


@dataclass(frozen=True)
class KeyValue:
    key: str
    value: bytes
    mod_revision: int
    lease: int = 0


@dataclass(frozen=True)
class Event:
    kind: str  # put | delete
    key: str
    value: bytes  # b"" for a delete
    revision: int


def _b64(data: str | bytes) -> str:
    return base64.b64encode(data.encode() if isinstance(data, str) else data).decode()


def _unb64(data: str | None) -> bytes:
    return base64.b64decode(data) if data else b""


def prefix_end(prefix: str) -> str:
    """etcd's range end for "every key starting with ``prefix``" (the prefix with its last byte + 1)."""
    raw = bytearray(prefix.encode())
    raw[-1] += 1
    return bytes(raw).decode()


def parse_endpoints(spec: str | Sequence[str]) -> list[str]:
    """``http://127.0.0.1:2379,http://127.0.0.1:22379`` (or a list) -> the URLs, checked."""
    items = [s.strip() for s in (spec.split(",") if isinstance(spec, str) else spec) if s.strip()]
    if not items:
        raise ValueError("no etcd endpoint given")
    for url in items:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname or parts.port is None:
            raise ValueError(f"{url!r}: an etcd endpoint is http(s)://HOST:PORT")
    return items


class ClusterClient:
    """One client for the whole cluster: each call goes to the member that answered last, then to the others."""

    def __init__(self, endpoints: str | Sequence[str], timeout_s: float = 2.0) -> None:
        self.endpoints = parse_endpoints(endpoints)
        self.timeout_s = timeout_s
        self._clients = []
        for url in self.endpoints:
            parts = urlsplit(url)
            assert parts.hostname is not None and parts.port is not None
            self._clients.append(
                Etcd3Client(
                    host=parts.hostname, port=parts.port, protocol=parts.scheme, timeout=timeout_s,
                    api_path=API_PATH,
                )
            )  # fmt: skip
        self._current = 0
        self._lock = threading.Lock()
        self.failovers = 0  # calls that had to move to another member

    # ---- plumbing ----

    def _call(self, fn: Callable[[Etcd3Client], Any]) -> Any:
        errors = []
        with self._lock:
            start = self._current
        for i in range(len(self._clients)):
            idx = (start + i) % len(self._clients)
            try:
                result = fn(self._clients[idx])
            except (ConnectionFailedError, ConnectionTimeoutError) as exc:
                errors.append(f"{self.endpoints[idx]}: {type(exc).__name__}")
                continue
            except Etcd3Exception as exc:
                # A member that lost its quorum answers 503-ish errors: another may have it.
                errors.append(f"{self.endpoints[idx]}: {exc.detail_text or exc}")
                continue
            if idx != start:
                with self._lock:
                    self._current = idx
                    self.failovers += 1
                log.info("etcd: now using %s", self.endpoints[idx])
            return result
        raise ClusterError("no etcd member answered: " + "; ".join(errors))

    def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        return dict(self._call(lambda c: c.post(c.get_url(path), json=body)))

    # ---- key-value ----

    def range_prefix(self, prefix: str) -> tuple[list[KeyValue], int]:
        """Every key under ``prefix`` and the store's revision they were read at (to watch from + 1)."""
        res = self._post("/kv/range", {"key": _b64(prefix), "range_end": _b64(prefix_end(prefix))})
        kvs = [
            KeyValue(_unb64(kv["key"]).decode(), _unb64(kv.get("value")), int(kv.get("mod_revision", 0)),
                     int(kv.get("lease", 0)))
            for kv in res.get("kvs", [])
        ]  # fmt: skip
        return kvs, int(res["header"]["revision"])

    def get(self, key: str) -> KeyValue | None:
        res = self._post("/kv/range", {"key": _b64(key)})
        kvs = res.get("kvs", [])
        if not kvs:
            return None
        kv = kvs[0]
        return KeyValue(key, _unb64(kv.get("value")), int(kv.get("mod_revision", 0)), int(kv.get("lease", 0)))

    def put(self, key: str, value: bytes | str, lease: int = 0) -> int:
        body: dict[str, Any] = {"key": _b64(key), "value": _b64(value)}
        if lease:
            body["lease"] = lease
        return int(self._post("/kv/put", body)["header"]["revision"])

    def put_many(self, items: Sequence[tuple[str, bytes | str]], lease: int = 0) -> int:
        """Write several keys in transactions of at most ``TXN_OPS`` puts (etcd's default limit: 128): one
        round trip per batch instead of per key. Returns the last revision."""
        revision = 0
        for i in range(0, len(items), TXN_OPS):
            ops = []
            for key, value in items[i : i + TXN_OPS]:
                put: dict[str, Any] = {"key": _b64(key), "value": _b64(value)}
                if lease:
                    put["lease"] = lease
                ops.append({"request_put": put})
            revision = int(self._post("/kv/txn", {"success": ops})["header"]["revision"])
        return revision

    def delete(self, key: str) -> int:
        """Remove ``key``; returns how many keys went (0 or 1)."""
        return int(self._post("/kv/deleterange", {"key": _b64(key)}).get("deleted", 0))

    def delete_if(self, key: str, value: bytes | str) -> bool:
        """Remove ``key`` only if it still holds ``value`` (a transaction): a host withdrawing its record must not
        remove the one another host wrote over it since (the VM migrated there). True if it went."""
        body = {
            "compare": [{"key": _b64(key), "target": "VALUE", "result": "EQUAL", "value": _b64(value)}],
            "success": [{"request_delete_range": {"key": _b64(key)}}],
        }
        return bool(self._post("/kv/txn", body).get("succeeded", False))

    def delete_prefix(self, prefix: str) -> int:
        body = {"key": _b64(prefix), "range_end": _b64(prefix_end(prefix))}
        return int(self._post("/kv/deleterange", body).get("deleted", 0))

    def revision(self) -> int:
        """The store's current revision."""
        return int(self._post("/kv/range", {"key": _b64("\0")})["header"]["revision"])

    def compact(self, revision: int) -> None:
        self._post("/kv/compaction", {"revision": revision, "physical": True})

    # ---- leases ----

    def grant(self, ttl_s: int) -> int:
        return int(self._post("/lease/grant", {"TTL": ttl_s})["ID"])

    def keepalive(self, lease: int) -> int:
        """Renew ``lease``; its remaining TTL, or -1 if it had already expired (its keys are gone)."""
        res = self._post("/lease/keepalive", {"ID": lease})
        return int(res.get("result", {}).get("TTL", -1))

    def revoke(self, lease: int) -> None:
        self._post("/kv/lease/revoke", {"ID": lease})

    # ---- watch ----

    def watch_prefix(
        self,
        prefix: str,
        start_revision: int,
        deliver: Callable[[list[Event]], None],
        stop: threading.Event,
        on_stream: Callable[[Callable[[], None]], None] | None = None,
    ) -> None:
        """Call ``deliver`` with each batch of changes under ``prefix`` from ``start_revision`` on, until ``stop``
        is set; a broken stream is reopened on the next member from the revision after the last one delivered.
        ``on_stream`` receives a function that closes the current stream (so another thread can end the wait
        after setting ``stop``). Raises ``Compacted`` if that history is gone, ``ClusterError`` if no member
        serves the watch."""
        next_rev = start_revision
        failures = 0
        while not stop.is_set():
            with self._lock:
                idx = self._current
            client = self._clients[idx]
            body: dict[str, Any] = {
                "create_request": {
                    "key": _b64(prefix), "range_end": _b64(prefix_end(prefix)), "start_revision": next_rev,
                }
            }  # fmt: skip
            try:
                resp = client.session.post(
                    client.get_url("/watch"), json=body, stream=True, timeout=(self.timeout_s, None)
                )
            except requests.RequestException as exc:
                failures += 1
                self._next_member(idx, f"watch: {exc}")
                if failures >= 2 * len(self._clients):
                    raise ClusterError(f"no etcd member serves a watch of {prefix!r}: {exc}") from exc
                stop.wait(0.1)
                continue
            if on_stream is not None:
                on_stream(functools.partial(_shut, resp))
            try:
                # chunk_size None: each HTTP chunk (an etcd message) as it arrives, not once 512 bytes are in.
                for line in resp.iter_lines(chunk_size=None):  # type: ignore[call-overload]
                    if stop.is_set():
                        break
                    if not line.strip():
                        continue
                    result = json.loads(line).get("result", {})
                    if int(result.get("compact_revision", 0) or 0):
                        raise Compacted(int(result["compact_revision"]))
                    if result.get("canceled"):
                        raise ClusterError(f"etcd cancelled the watch: {result.get('cancel_reason', '?')}")
                    events = [_event(e) for e in result.get("events", [])]
                    if events:
                        failures = 0
                        deliver(events)
                        next_rev = events[-1].revision + 1
            except (requests.RequestException, OSError, ValueError, AttributeError) as exc:
                if stop.is_set():
                    return
                log.info("etcd watch of %s on %s broke (%s); resuming at %d", prefix, self.endpoints[idx], exc,
                         next_rev)  # fmt: skip
            finally:
                resp.close()
            if not stop.is_set():
                failures += 1
                self._next_member(idx, "watch stream ended")
                if failures >= 2 * len(self._clients):
                    raise ClusterError(f"no etcd member serves a watch of {prefix!r}")
                stop.wait(0.05 * failures)

    def _next_member(self, idx: int, why: str) -> None:
        with self._lock:
            if self._current == idx:
                self._current = (idx + 1) % len(self._clients)
                self.failovers += 1
        log.info("etcd: %s on %s; trying %s", why, self.endpoints[idx], self.endpoints[self._current])


def _shut(resp: requests.Response) -> None:
    """End a streaming response from another thread: shut its socket down (closing the response there would
    wait for the reading thread's buffer lock)."""
    conn = getattr(resp.raw, "_connection", None)
    sock = getattr(conn, "sock", None)
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)


def _event(e: dict[str, Any]) -> Event:
    kv = e.get("kv", {})
    return Event(
        "delete" if e.get("type") == "DELETE" else "put",
        _unb64(kv.get("key")).decode(),
        _unb64(kv.get("value")),
        int(kv.get("mod_revision", 0)),
    )
