"""The SQLite store of desired state: one table per object kind, JSON documents, versioned, audited.

Layout (schema version in ``PRAGMA user_version``):

* ``team``, ``switch``, ``port``, ``vm``: ``name`` (primary key), ``position`` (keeps the configuration's order, so
  error paths such as ``ports[2]`` stay meaningful after a restart) and ``doc``, the object's JSON. Documents
  are validated by the pydantic model when loaded: a hand-edited or corrupt row is an error naming the row.
* ``qos_policy`` (New-NetQosPolicy) has the same layout; ``setting`` holds singletons, ``name`` -> ``doc``: the
  row ``dcb`` is the DcbConfig (absent while it is the default).
* ``history``: one row per successful save: time, the request summary, and what changed.

``save`` writes the difference between the stored and the new configuration in one transaction: either the
whole new configuration is on disk or none of it. WAL with ``synchronous=FULL`` makes a committed save survive
kill -9 and power loss. Migrations: ``MIGRATIONS[i]`` upgrades a database from version ``i`` to ``i + 1``;
each runs in its own transaction together with the version bump.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from pyvswitch.config.schema import (
    DcbConfig,
    HostConfig,
    PortConfig,
    QosPolicyConfig,
    SwitchConfig,
    TeamConfig,
    VmConfig,
)
from pyvswitch.config.validate import problems_from_validation_error
from pyvswitch.errors import ConfigError

log = logging.getLogger(__name__)

# Validation context for rows read back: limits added later (a switch's notes, issue 11) refuse new values, not
# what an older version stored.
STORED = {"stored": True}

Migration = Callable[[sqlite3.Connection], None]


def _v1(conn: sqlite3.Connection) -> None:
    for table in ("switch", "port", "vm"):
        conn.execute(
            f"CREATE TABLE {table} (name TEXT PRIMARY KEY, position INTEGER NOT NULL, doc TEXT NOT NULL) STRICT"
        )
    conn.execute(
        "CREATE TABLE history (id INTEGER PRIMARY KEY AUTOINCREMENT, ts REAL NOT NULL,"
        " summary TEXT NOT NULL, changes TEXT NOT NULL) STRICT"
    )


def _v2(conn: sqlite3.Connection) -> None:
    # Teams (New-NetLbfoTeam) were kept only in memory until now: a restart lost them.
    conn.execute(
        "CREATE TABLE team (name TEXT PRIMARY KEY, position INTEGER NOT NULL, doc TEXT NOT NULL) STRICT"
    )


def _v3(conn: sqlite3.Connection) -> None:
    # QoS and DCB (issue 5): host QoS policies, and singletons such as the DCB settings.
    conn.execute(
        "CREATE TABLE qos_policy (name TEXT PRIMARY KEY, position INTEGER NOT NULL, doc TEXT NOT NULL) STRICT"
    )
    conn.execute("CREATE TABLE setting (name TEXT PRIMARY KEY, doc TEXT NOT NULL) STRICT")


MIGRATIONS: tuple[Migration, ...] = (_v1, _v2, _v3)

# (table, HostConfig field, model)
_KINDS: tuple[tuple[str, str, type[BaseModel]], ...] = (
    ("team", "teams", TeamConfig),
    ("switch", "switches", SwitchConfig),
    ("vm", "vms", VmConfig),
    ("port", "ports", PortConfig),
    ("qos_policy", "qos_policies", QosPolicyConfig),
)
# (setting row, HostConfig field, model): one document each, stored only when it differs from the default.
_SETTINGS: tuple[tuple[str, str, type[BaseModel]], ...] = (("dcb", "dcb", DcbConfig),)


class Store:
    """Desired state on disk. Thread-safe: one connection, serialised by a lock."""

    def __init__(self, path: str | Path, migrations: Sequence[Migration] = MIGRATIONS) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        # isolation_level=None: we issue BEGIN ourselves so a save is exactly one transaction.
        self._conn = sqlite3.connect(str(self.path), isolation_level=None, check_same_thread=False)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=FULL")
        self._migrate(list(migrations))

    @property
    def version(self) -> int:
        return int(self._conn.execute("PRAGMA user_version").fetchone()[0])

    def _migrate(self, migrations: list[Migration]) -> None:
        with self._lock:
            current = self.version
            if current > len(migrations):
                raise ConfigError(
                    [
                        (
                            "store",
                            f"{self.path} has schema version {current}; this pyvswitchd knows {len(migrations)}",
                        )
                    ]
                )
            for version in range(current, len(migrations)):
                log.info("migrating %s from schema version %d to %d", self.path, version, version + 1)
                self._conn.execute("BEGIN IMMEDIATE")
                try:
                    migrations[version](self._conn)
                    self._conn.execute(f"PRAGMA user_version = {version + 1}")
                    self._conn.execute("COMMIT")
                except BaseException:
                    self._conn.execute("ROLLBACK")
                    raise

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def load(self) -> HostConfig:
        """The stored configuration; raises ConfigError naming every row that does not validate."""
        with self._lock:
            rows = {
                field: self._conn.execute(f"SELECT name, doc FROM {table} ORDER BY position, name").fetchall()
                for table, field, _ in _KINDS
            }
            settings = dict(self._conn.execute("SELECT name, doc FROM setting").fetchall())
        problems: list[tuple[str, str]] = []
        parts: dict[str, Any] = {}
        for table, field, model in _KINDS:
            parts[field] = []
            for name, doc in rows[field]:
                try:
                    parts[field].append(model.model_validate_json(doc, context=STORED))
                except ValidationError as exc:
                    problems.extend(problems_from_validation_error(exc, f"store.{table}[{name!r}]"))
        for name, field, model in _SETTINGS:
            if name not in settings:
                continue
            try:
                parts[field] = model.model_validate_json(settings[name], context=STORED)
            except ValidationError as exc:
                problems.extend(problems_from_validation_error(exc, f"store.setting[{name!r}]"))
        if problems:
            raise ConfigError(problems)
        return HostConfig.model_validate(parts)

    def save(self, new: HostConfig, summary: str) -> dict[str, dict[str, list[str]]]:
        """Make the store hold ``new``, atomically, and record ``summary``; returns what changed per table."""
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                changes = self._write(new)
                self._conn.execute(
                    "INSERT INTO history (ts, summary, changes) VALUES (?, ?, ?)",
                    (time.time(), summary, json.dumps(changes, sort_keys=True)),
                )
                self._conn.execute("COMMIT")
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
        return changes

    def _write(self, new: HostConfig) -> dict[str, dict[str, list[str]]]:
        changes: dict[str, dict[str, list[str]]] = {}
        for table, field, _ in _KINDS:
            old = {
                n: (pos, doc)
                for n, pos, doc in self._conn.execute(f"SELECT name, position, doc FROM {table}")
            }
            wanted = {obj.name: (pos, obj.model_dump_json()) for pos, obj in enumerate(getattr(new, field))}
            added = sorted(wanted.keys() - old.keys())
            removed = sorted(old.keys() - wanted.keys())
            # Compare documents as JSON values, not text, so a re-serialisation is not a change.
            changed = sorted(
                n for n in wanted.keys() & old.keys() if json.loads(wanted[n][1]) != json.loads(old[n][1])
            )
            moved = [n for n in wanted.keys() & old.keys() if wanted[n][0] != old[n][0]]
            self._conn.executemany(f"DELETE FROM {table} WHERE name = ?", [(n,) for n in removed])
            self._conn.executemany(
                f"INSERT INTO {table} (name, position, doc) VALUES (?, ?, ?)"
                " ON CONFLICT(name) DO UPDATE SET position = excluded.position, doc = excluded.doc",
                [(n, *wanted[n]) for n in sorted({*added, *changed, *moved})],
            )
            kind_changes = {"added": added, "removed": removed, "changed": changed}
            if any(kind_changes.values()):
                changes[table] = {k: v for k, v in kind_changes.items() if v}
        stored = dict(self._conn.execute("SELECT name, doc FROM setting").fetchall())
        setting_changes: dict[str, list[str]] = {}
        for name, field, model in _SETTINGS:
            value = getattr(new, field)
            doc = value.model_dump_json() if value != model() else None
            if doc is None and name in stored:
                self._conn.execute("DELETE FROM setting WHERE name = ?", (name,))
                setting_changes.setdefault("removed", []).append(name)
            elif doc is not None and (name not in stored or json.loads(stored[name]) != json.loads(doc)):
                self._conn.execute(
                    "INSERT INTO setting (name, doc) VALUES (?, ?)"
                    " ON CONFLICT(name) DO UPDATE SET doc = excluded.doc",
                    (name, doc),
                )
                setting_changes.setdefault("changed" if name in stored else "added", []).append(name)
        if setting_changes:
            changes["setting"] = setting_changes
        return changes

    def history(self, limit: int = 100) -> list[dict[str, Any]]:
        """The latest ``limit`` saves, newest first."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT id, ts, summary, changes FROM history ORDER BY id DESC LIMIT ?", (limit,)
            ).fetchall()
        return [{"id": i, "ts": ts, "summary": s, "changes": json.loads(c)} for i, ts, s, c in rows]
