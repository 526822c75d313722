"""Recorded intents of live migrations in progress (issue 11 item 4): one small JSON file per migration.

A migration changes two hosts' configurations and moves kernel objects between them, so no single transaction
covers it. Each daemon writes what it is about to do here *before* each step (``daemon/migration.py`` tells the
state machine), and at start-up it reads what was left and settles it. The records live beside the store, in
``<state dir>/migrations/<id>.json``, not in ``config.db``: they are run-time bookkeeping of a protocol, not
desired state, and keeping them out of the database keeps its schema (and its migrations) untouched.

A write is atomic and durable: a temporary file is written and fsynced, renamed over the record and the
directory fsynced, so after kill -9 or a power cut a record is either the old one or the new one, never half.
A record that does not parse (a foreign or damaged file) is moved aside as ``<name>.bad`` with a log line
instead of stopping the daemon.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import time
from dataclasses import asdict, dataclass, field, replace
from enum import StrEnum
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

_ID_RE = re.compile(r"^[0-9a-f]{32}$")


class Role(StrEnum):
    SOURCE = "source"
    DESTINATION = "destination"


class Phase(StrEnum):
    """Source: PREPARING -> HANDED_OVER -> COMMITTED; destination: PREPARED -> ACCEPTED -> COMMITTED."""

    PREPARING = "preparing"  # source: about to ask the destination; nothing has moved
    HANDED_OVER = "handed_over"  # source: the veths are being / were moved to the destination
    PREPARED = "prepared"  # destination: validated, expecting the veths; owns nothing
    ACCEPTED = "accepted"  # destination: the veths are here, about to mark and adopt them
    COMMITTED = "committed"  # either side: the destination owns the VM


@dataclass(frozen=True, slots=True)
class Intent:
    """One side's record of one migration. ``vm`` and ``ports`` are the VM as the source resolved it (so either
    side can re-create its configuration), ``state`` the extensions' saved port state (base64 by port and
    extension), ``peer_netns`` the other daemon's namespace as ``{pid, inode, name}`` and ``peer_socket`` its
    API (the source's record only: the destination never needs to ask)."""

    id: str
    role: Role
    phase: Phase
    vm: dict[str, Any]
    ports: list[dict[str, Any]]
    peer: str = ""  # the other host as the operator named it
    peer_socket: str | None = None
    peer_netns: dict[str, Any] | None = None
    state: dict[str, dict[str, str]] = field(default_factory=dict)
    updated: float = 0.0

    @property
    def vm_name(self) -> str:
        return str(self.vm.get("name", ""))

    @property
    def interfaces(self) -> list[str]:
        """The switch-side veth ends, in port order (the first is where the commit mark goes)."""
        return [str(p["interface"]) for p in self.ports if p.get("interface")]

    def at(self, phase: Phase, **changes: Any) -> Intent:
        return replace(self, phase=phase, **changes)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Intent:
        return cls(**{**data, "role": Role(data["role"]), "phase": Phase(data["phase"])})


class IntentLog:
    """The records of one daemon, in ``directory`` (created 0700)."""

    def __init__(self, directory: str | Path) -> None:
        self.dir = Path(directory)
        self.dir.mkdir(mode=0o700, parents=True, exist_ok=True)

    def _path(self, ident: str) -> Path:
        if not _ID_RE.match(ident):  # ids come from the other host: never a path
            raise ValueError(f"not a migration id: {ident!r}")
        return self.dir / f"{ident}.json"

    def put(self, intent: Intent) -> Intent:
        """Record ``intent`` durably (see the module docstring) and return it as stored."""
        intent = replace(intent, updated=time.time())
        path = self._path(intent.id)
        tmp = path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
        try:
            os.write(fd, json.dumps(intent.to_json(), sort_keys=True).encode())
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
        self._sync_dir()
        # A live migration's recorded step is an operator's event (daemon/logs.py): which VM, which side, where.
        log.info("migration %s of VM %s: %s %s (peer %s)", intent.id[:8], intent.vm_name, intent.role.value,
                 intent.phase.value, intent.peer or "-",
                 extra={"event": "migration.phase", "fields": {"key": intent.id, "migration": intent.id,
                        "vm": intent.vm_name, "role": intent.role.value, "phase": intent.phase.value,
                        "peer": intent.peer}})  # fmt: skip
        return intent

    def get(self, ident: str) -> Intent | None:
        try:
            return self._read(self._path(ident))
        except ValueError:
            return None

    def drop(self, ident: str) -> None:
        with contextlib.suppress(FileNotFoundError, ValueError):
            self._path(ident).unlink()
            self._sync_dir()

    def all(self) -> list[Intent]:
        """Every readable record, oldest first; unreadable ones are moved aside."""
        out = [i for p in sorted(self.dir.glob("*.json")) if (i := self._read(p)) is not None]
        return sorted(out, key=lambda i: i.updated)

    def _read(self, path: Path) -> Intent | None:
        try:
            return Intent.from_json(json.loads(path.read_text()))
        except FileNotFoundError:
            return None
        except (OSError, ValueError, TypeError, KeyError) as exc:
            log.error("migration record %s is unreadable (%s): moved aside as %s.bad", path, exc, path.name)
            with contextlib.suppress(OSError):
                path.replace(path.with_name(path.name + ".bad"))
            return None

    def _sync_dir(self) -> None:
        fd = os.open(self.dir, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
