"""The SQLite store of desired state: one table per object kind, JSON documents, versioned, audited.

Layout (schema version in ``PRAGMA user_version``):

* ``team``, ``switch``, ``port``, ``vm``: ``name`` (primary key), ``position`` (keeps the configuration's order, so
  error paths such as ``ports[2]`` stay meaningful after a restart) and ``doc``, the object's JSON. Documents
  are validated by the pydantic model when loaded: a hand-edited or corrupt row is an error naming the row.
* ``qos_policy`` (New-NetQosPolicy) has the same layout; ``setting`` holds singletons, ``name`` -> ``doc``: the
  row ``dcb`` is the DcbConfig (absent while it is the default).
* ``sriov_adapter`` (Enable-NetAdapterSriov, schema v4) has the same layout as ``team``.
* ``history``: one row per successful save: time, the request summary, and what changed.
* ``intent`` (schema v4): what a writer is about to do outside the database (create or remove kernel objects,
  program tc, hand a VM over), recorded *before* it does it and ended once that work is finished; an intent
  still present at start-up is an interrupted operation, which its owner completes or rolls back
  (``begin_intent`` / ``end_intent`` / ``intents``; ``kind`` says whose it is, ``doc`` is the owner's JSON).

``save`` writes the difference between the stored and the new configuration in one transaction: either the
whole new configuration is on disk or none of it. WAL with ``synchronous=FULL`` makes a committed save survive
kill -9 and power loss.

Tolerance (issue 11): ``open_store`` moves a file that is not a pyvswitch store (random bytes, a truncated or
corrupt database, another program's database, a directory) aside to ``config.db.corrupt-<timestamp>`` and
starts an empty one; ``load_tolerant`` returns the rows that validate and names those that do not, and rows
``hold`` marks are never deleted or rewritten by ``save`` (a failed object keeps its stored row until an
object of the same name replaces it). Migrations: ``MIGRATIONS[i]`` upgrades a database from version ``i`` to ``i + 1``;
each runs in its own transaction together with the version bump.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from pyvswitch.config.schema import (
    DcbConfig,
    HostConfig,
    PortConfig,
    QosPolicyConfig,
    SriovAdapterConfig,
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


def _v4(conn: sqlite3.Connection) -> None:
    # Issue 11: SR-IOV enablement was kept in memory only (a restart lost it), and writers record what they are
    # about to do to the kernel before doing it, so start-up can finish or undo an interrupted change.
    conn.execute(
        "CREATE TABLE sriov_adapter (name TEXT PRIMARY KEY, position INTEGER NOT NULL, doc TEXT NOT NULL) STRICT"
    )
    conn.execute(
        "CREATE TABLE intent (id INTEGER PRIMARY KEY AUTOINCREMENT, ts REAL NOT NULL, kind TEXT NOT NULL,"
        " doc TEXT NOT NULL) STRICT"
    )


MIGRATIONS: tuple[Migration, ...] = (_v1, _v2, _v3, _v4)

# (table, HostConfig field, model)
_KINDS: tuple[tuple[str, str, type[BaseModel]], ...] = (
    ("team", "teams", TeamConfig),
    ("switch", "switches", SwitchConfig),
    ("vm", "vms", VmConfig),
    ("port", "ports", PortConfig),
    ("qos_policy", "qos_policies", QosPolicyConfig),
    ("sriov_adapter", "sriov_adapters", SriovAdapterConfig),
)
# (setting row, HostConfig field, model): one document each, stored only when it differs from the default.
_SETTINGS: tuple[tuple[str, str, type[BaseModel]], ...] = (("dcb", "dcb", DcbConfig),)
# table (or "setting") -> the HostConfig field it holds, for naming failed rows.
TABLE_OF_FIELD = {field: table for table, field, _ in _KINDS} | {
    field: "setting" for _, field, _ in _SETTINGS
}

# SQLite's primary result codes for "this is not (or no longer) a database".
_SQLITE_CORRUPT = 11
_SQLITE_NOTADB = 26


class NotAStore(Exception):
    """The file is readable but is not a pyvswitch store (corrupt, truncated, or another program's)."""


@dataclass(frozen=True, slots=True)
class FailedRow:
    """A stored row that does not validate: the object is kept on disk and reported, not run."""

    table: str  # "switch", "port", ..., or "setting"
    name: str
    error: str  # one line: the first problem, with its field
    doc: str  # the stored JSON as it is (may not even be JSON)


@dataclass(frozen=True, slots=True)
class Loaded:
    """``load_tolerant``'s answer: the configuration of every row that validates, and the rows that do not."""

    config: HostConfig
    failed: tuple[FailedRow, ...]


@dataclass(frozen=True, slots=True)
class Intent:
    """Work outside the database that was begun and not (yet) ended."""

    id: int
    ts: float
    kind: str
    doc: dict[str, Any]


class Store:
    """Desired state on disk. Thread-safe: one connection, serialised by a lock."""

    def __init__(self, path: str | Path, migrations: Sequence[Migration] = MIGRATIONS) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        # (table, name) of failed rows: ``save`` neither deletes nor rewrites them (see ``hold``).
        self._held: set[tuple[str, str]] = set()
        # isolation_level=None: we issue BEGIN ourselves so a save is exactly one transaction.
        self._conn = sqlite3.connect(str(self.path), isolation_level=None, check_same_thread=False)
        try:
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=FULL")
            self._check_foreign()
            self._migrate(list(migrations))
            self._check_tables(len(migrations))
        except BaseException:
            self._conn.close()
            raise

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

    def _check_foreign(self) -> None:
        """Refuse another program's database before migrating writes our tables into it."""
        tables = {r[0] for r in self._conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if self.version == 0 and tables - {"sqlite_sequence"}:
            raise NotAStore(
                f"schema version 0 with tables {', '.join(sorted(tables))}: not a pyvswitch store"
            )

    def _check_tables(self, version: int) -> None:
        # quick_check reads every page: a truncated or overwritten file fails here rather than in a later save.
        result = self._conn.execute("PRAGMA quick_check").fetchone()[0]
        if result != "ok":
            raise NotAStore(f"integrity check failed: {result}")
        if version < 4:
            return  # an older migration list (tests of the migrations themselves)
        tables = {r[0] for r in self._conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        missing = {t for t, _, _ in _KINDS} | {"setting", "history", "intent"}
        missing -= tables
        if missing:
            raise NotAStore(f"tables missing: {', '.join(sorted(missing))}")

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def load(self) -> HostConfig:
        """The stored configuration; raises ConfigError naming every row that does not validate."""
        problems, parts, _ = self._load_rows()
        if problems:
            raise ConfigError(problems)
        return HostConfig.model_validate(parts)

    def load_tolerant(self) -> Loaded:
        """The rows that validate, and every row that does not (each named, with its first problem)."""
        _, parts, failed = self._load_rows()
        return Loaded(HostConfig.model_validate(parts), tuple(failed))

    def _load_rows(self) -> tuple[list[tuple[str, str]], dict[str, Any], list[FailedRow]]:
        with self._lock:
            rows = {
                field: self._conn.execute(f"SELECT name, doc FROM {table} ORDER BY position, name").fetchall()
                for table, field, _ in _KINDS
            }
            settings = dict(self._conn.execute("SELECT name, doc FROM setting").fetchall())
        problems: list[tuple[str, str]] = []
        failed: list[FailedRow] = []
        parts: dict[str, Any] = {}
        for table, field, model in _KINDS:
            parts[field] = []
            for name, doc in rows[field]:
                try:
                    parts[field].append(model.model_validate_json(doc, context=STORED))
                except ValidationError as exc:
                    found = problems_from_validation_error(exc, f"store.{table}[{name!r}]")
                    problems.extend(found)
                    failed.append(FailedRow(table, name, _one_line(found), doc))
        for name, field, model in _SETTINGS:
            if name not in settings:
                continue
            try:
                parts[field] = model.model_validate_json(settings[name], context=STORED)
            except ValidationError as exc:
                found = problems_from_validation_error(exc, f"store.setting[{name!r}]")
                problems.extend(found)
                failed.append(FailedRow("setting", name, _one_line(found), settings[name]))
        return problems, parts, failed

    def hold(self, table: str, name: str) -> None:
        """Keep row ``name`` of ``table`` as it is on disk: ``save`` neither deletes nor rewrites it, until a
        saved configuration has an object of that name again (which replaces it and ends the hold)."""
        with self._lock:
            self._held.add((table, name))

    def held(self) -> frozenset[tuple[str, str]]:
        with self._lock:
            return frozenset(self._held)

    # ---- intents: work outside the database, recorded before it is done ----

    def begin_intent(self, kind: str, doc: dict[str, Any]) -> int:
        """Record (durably, before returning) that ``kind``'s owner is about to do ``doc``; returns its id."""
        with self._lock:
            cur = self._conn.execute(
                "INSERT INTO intent (ts, kind, doc) VALUES (?, ?, ?)",
                (time.time(), kind, json.dumps(doc, sort_keys=True)),
            )
            return int(cur.lastrowid or 0)

    def end_intent(self, intent_id: int) -> None:
        """The work is done (or undone): forget it. No error if it is already gone."""
        with self._lock:
            self._conn.execute("DELETE FROM intent WHERE id = ?", (intent_id,))

    def intents(self, kind: str | None = None) -> list[Intent]:
        """Intents begun and not ended, oldest first (all kinds, or one)."""
        with self._lock:
            rows = self._conn.execute("SELECT id, ts, kind, doc FROM intent ORDER BY id").fetchall()
        return [Intent(i, ts, k, json.loads(d)) for i, ts, k, d in rows if kind is None or k == kind]

    def save(self, new: HostConfig, summary: str) -> dict[str, dict[str, list[str]]]:
        """Make the store hold ``new``, atomically, and record ``summary``; returns what changed per table."""
        with self._lock:
            held = set(self._held)
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
                self._held = held
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
            # A held (failed) row stays on disk until an object of its name is saved again.
            held = {n for t, n in self._held if t == table}
            removed = sorted(old.keys() - wanted.keys() - held)
            self._held -= {(table, n) for n in held & wanted.keys()}
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
            if ("setting", name) in self._held:
                if value == model():
                    continue  # still the failed row's stand-in (the default): keep the row
                self._held.discard(("setting", name))
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


def _one_line(problems: Iterable[tuple[str, str]]) -> str:
    first = next(iter(problems), ("", "does not validate"))
    return f"{first[0]}: {first[1]}" if first[0] else first[1]


def _sqlite_code(exc: sqlite3.Error) -> int:
    return int(getattr(exc, "sqlite_errorcode", 0)) & 0xFF


def quarantine(path: Path, now: Callable[[], float] = time.time) -> Path:
    """Move ``path`` (and its WAL and shared-memory files, which belong to it and would be replayed into a new
    database of the same name) aside to ``<path>.corrupt-<UTC timestamp>``; returns the new name."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(now()))
    aside = path.with_name(f"{path.name}.corrupt-{stamp}")
    n = 1
    while aside.exists() or aside.is_symlink():
        n += 1
        aside = path.with_name(f"{path.name}.corrupt-{stamp}-{n}")
    path.rename(aside)
    for suffix in ("-wal", "-shm"):
        extra = path.with_name(path.name + suffix)
        if extra.exists() or extra.is_symlink():
            extra.rename(aside.with_name(aside.name + suffix))
    return aside


def open_store(path: str | Path, migrations: Sequence[Migration] = MIGRATIONS) -> Store:
    """The store at ``path``; one that is not a pyvswitch store is moved aside (logged in one line) and an empty
    store is started in its place (issue 11).

    Moved aside: something other than a regular file, SQLite's "not a database" / "malformed", a failed
    integrity check, another program's tables. Not moved: a database of a newer schema (ConfigError: a newer
    pyvswitchd's data is not corrupt) and errors that say nothing about the file (locked, permissions, disk):
    those raise, for the caller to report."""
    path = Path(path)
    why: str | None = None
    if (path.exists() or path.is_symlink()) and not path.is_file():
        why = "not a regular file"
    else:
        try:
            return Store(path, migrations)
        except NotAStore as exc:
            why = str(exc)
        except sqlite3.DatabaseError as exc:
            if _sqlite_code(exc) not in (_SQLITE_CORRUPT, _SQLITE_NOTADB):
                raise
            why = str(exc)
    aside = quarantine(path)
    log.error(
        "configuration store %s is unusable (%s): moved it to %s and starting with an empty configuration",
        path,
        why,
        aside,
    )
    return Store(path, migrations)
