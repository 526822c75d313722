"""Logs of pyvswitchd and its forwarder (issue 14 item 5): text on stderr as before (journald keeps it when systemd
runs the daemon), and the same records as JSON lines in ``STATE_DIR/log/<process>.jsonl`` (rotated at 5 MiB,
3 kept), with the structured fields of an *event*: a state change an operator cares about, logged with
``extra={"event": "team.member", "fields": {...}}`` by whatever layer sees it (standard logging, so the switch
and the extensions need nothing of this module).

Events: ``team.member`` (a member's OperationalStatus and FailureReason changed), ``team.state`` (the team's
active members), ``lacp.partner`` (a member's partner system or key changed), ``sriov.path`` (a port moved to or
from its VF, and why), ``migration.phase`` (a live migration's recorded step), ``migration.done``,
``extension.fault``, ``port.ring_overrun`` (frames the kernel dropped on a full receive ring).

Every handler is rate-limited per logger, event and key (``RateLimit``): at most 5 records per 10 s, then one
line saying how many similar ones were suppressed, so a flapping cable or a ring overrunning every batch cannot
flood the disk. The level changes at run time (``set_level``: ``pyvswitch log level debug``, both processes);
SIGHUP reopens the files (logrotate) and keeps the level.
"""

from __future__ import annotations

import json
import logging
import logging.handlers
import os
import sys
import time
from collections import deque
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

LEVELS = ("debug", "info", "warning", "error")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s%(proc)s: %(message)s"
MAX_BYTES = 5 << 20
BACKUPS = 3
BURST = 5  # records per key and window before suppression
WINDOW_S = 10.0


def log_dir(state_dir: Path) -> Path:
    return state_dir / "log"


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (UTC, ISO 8601), level, logger, process, message, and an event's name
    and fields at the top level."""

    def __init__(self, process: str) -> None:
        super().__init__()
        self.process = process

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "process": self.process,
            "pid": record.process,
            "message": record.getMessage(),
        }
        event = getattr(record, "event", None)
        if event:
            out["event"] = event
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            for k, v in fields.items():
                out.setdefault(k, v if isinstance(v, str | int | float | bool | type(None)) else str(v))
        suppressed = getattr(record, "suppressed", 0)
        if suppressed:
            out["suppressed"] = suppressed
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        return json.dumps(out, sort_keys=False)


class TextFormatter(logging.Formatter):
    def __init__(self, process: str) -> None:
        super().__init__(TEXT_FORMAT)
        self.proc = "" if process == "pyvswitchd" else f"[{process}]"

    def format(self, record: logging.LogRecord) -> str:
        record.proc = self.proc
        text = super().format(record)
        suppressed = getattr(record, "suppressed", 0)
        return f"{text} ({suppressed} similar suppressed)" if suppressed else text


class RateLimit(logging.Filter):
    """At most ``burst`` records per key in ``window_s``; the first one let through after a suppression carries
    how many were suppressed. Key: logger, event (or the message's format) and the event's ``key`` field."""

    def __init__(
        self, burst: int = BURST, window_s: float = WINDOW_S, clock: Callable[[], float] = time.monotonic
    ) -> None:
        super().__init__()
        self.burst = burst
        self.window_s = window_s
        self.clock = clock
        self._seen: dict[tuple[str, str, str], deque[float]] = {}
        self._suppressed: dict[tuple[str, str, str], int] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        fields = getattr(record, "fields", None)
        key = (
            record.name,
            str(getattr(record, "event", None) or record.msg),
            str(fields.get("key", "")) if isinstance(fields, dict) else "",
        )
        now = self.clock()
        times = self._seen.setdefault(key, deque())
        while times and now - times[0] > self.window_s:
            times.popleft()
        if len(times) >= self.burst:
            self._suppressed[key] = self._suppressed.get(key, 0) + 1
            return False
        times.append(now)
        n = self._suppressed.pop(key, 0)
        if n and not getattr(record, "suppressed", 0):
            record.suppressed = n
        if len(self._seen) > 10_000:  # keys of long-gone objects: start again
            self._seen = {key: times}
        return True


_handlers: list[logging.Handler] = []
_file: dict[str, Any] = {}


def setup(process: str, level: str, state_dir: Path | None, stream: Any = None) -> None:
    """Text on ``stream`` (stderr) and JSON lines in ``STATE_DIR/log/<process>.jsonl``, both rate-limited."""
    root = logging.getLogger()
    for h in _handlers:
        root.removeHandler(h)
    _handlers.clear()
    limit = RateLimit()
    text = logging.StreamHandler(stream or sys.stderr)
    text.setFormatter(TextFormatter(process))
    text.addFilter(limit)
    _handlers.append(text)
    if state_dir is not None:
        d = log_dir(state_dir)
        d.mkdir(mode=0o700, parents=True, exist_ok=True)
        _file.update(path=d / f"{process}.jsonl", process=process, limit=limit)
        _handlers.append(_json_handler())
    for h in _handlers:
        root.addHandler(h)
    set_level(level)


def _json_handler() -> logging.Handler:
    h = logging.handlers.RotatingFileHandler(_file["path"], maxBytes=MAX_BYTES, backupCount=BACKUPS)
    h.setFormatter(JsonFormatter(_file["process"]))
    h.addFilter(_file["limit"])
    return h


def set_level(level: str) -> str:
    """The level of every logger of ours from now on; ValueError naming the levels for anything else."""
    name = level.lower()
    if name not in LEVELS:
        raise ValueError(f"{level!r} is not a log level: {', '.join(LEVELS)}")
    logging.getLogger().setLevel(name.upper())
    return name


def level() -> str:
    return logging.getLevelName(logging.getLogger().level).lower()


def reopen() -> None:
    """SIGHUP: close and reopen the JSON file (logrotate moved it); the level stays."""
    if "path" not in _file:
        return
    root = logging.getLogger()
    for h in [h for h in _handlers if isinstance(h, logging.handlers.RotatingFileHandler)]:
        root.removeHandler(h)
        _handlers.remove(h)
        h.close()
    fresh = _json_handler()
    _handlers.append(fresh)
    root.addHandler(fresh)
    logging.getLogger(__name__).info("log files reopened (SIGHUP)", extra={"event": "log.reopened"})


def read_events(state_dir: Path, limit: int = 100, event: str | None = None) -> list[dict[str, Any]]:
    """The newest ``limit`` records of both processes' JSON logs (current files), oldest first; ``event``: only
    events whose name starts with it."""
    rows: list[dict[str, Any]] = []
    for path in sorted(log_dir(state_dir).glob("*.jsonl")):
        for row in _tail(path, 4 * limit + 200):
            if event is not None and not str(row.get("event", "")).startswith(event):
                continue
            rows.append(row)
    rows.sort(key=lambda r: str(r.get("ts", "")))
    return rows[-limit:] if limit > 0 else []


def _tail(path: Path, lines: int) -> Iterator[dict[str, Any]]:
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - lines * 512))
            chunk = f.read().splitlines()
    except OSError:
        return
    for raw in chunk[-lines:]:
        try:
            row = json.loads(raw)
        except ValueError:
            continue  # a line cut by the seek, or one being written
        if isinstance(row, dict):
            yield row
