"""Dry runs: a request validated and answered as if committed, with nothing changed (``-WhatIf``, issue 15).

A dry run has an id the client chooses (``?dry_run=ID`` on any request; the CLI makes one per cmdlet line).
Its first request starts a scratch copy of the committed configuration; every request of the dry run then
reads and "commits" that scratch instead: the transaction builds, resolves and validates the candidate exactly
as for a real change (every check that refuses a real request refuses the dry run, fields named the same), and
stops before the kernel, the engine and the store. So a cmdlet that sends two requests (create, then set) is
answered as it would be for real, the second request seeing the first's effect, and ``GET /v1/dry-runs/ID``
says what the whole line would change (``config/diff.py``).

Which dry run a request belongs to is a context variable, set by the API's middleware (``daemon/api/dry_run.py``)
before the handler's thread starts (Starlette copies the context into it): only that request's reads see the
scratch; every other request, the forwarding thread and the reconcilers keep seeing the committed state.

Scratches live in memory: a few per client at most, dropped when the client asks (``DELETE``), when unused for
``TTL_S``, or the oldest first past ``LIMIT``. A restart forgets them, which loses nothing real.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from pyvswitch.config.schema import HostConfig

TTL_S = 300.0
LIMIT = 64
ID_RE = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")

# How a REST route says what a dry run does with it (daemon/api/dry_run.py reads these from its openapi_extra).
DRY_RUN_KEY = "x-pyvswitch-dry-run"
READ_ONLY_KEY = "x-pyvswitch-read-only"
_PARAM = {
    "name": "dry_run",
    "in": "query",
    "required": False,
    "schema": {"type": "string", "pattern": ID_RE.pattern},
    "description": "Validate and answer as if applied, change nothing (-WhatIf); GET /v1/dry-runs/{id} "
    "then says what the dry run's requests would change.",
}
# openapi_extra of a route that a dry run rehearses (it only changes the configuration).
DRY_RUN: dict[str, Any] = {DRY_RUN_KEY: True, "parameters": [_PARAM]}
# openapi_extra of a POST that changes nothing (it runs as usual under a dry run).
READ_ONLY: dict[str, Any] = {READ_ONLY_KEY: True}


@dataclass
class DryRun:
    """One dry run: the configuration it started from, its scratch, and what each of its changes was."""

    id: str
    base: HostConfig
    cfg: HostConfig
    summaries: list[str] = field(default_factory=list)
    not_run: list[str] = field(default_factory=list)  # requests it could not rehearse (daemon/api/dry_run.py)
    used: float = 0.0


_current: ContextVar[DryRun | None] = ContextVar("pyvswitch_dry_run", default=None)


def active() -> DryRun | None:
    """The dry run the running request belongs to (None: a real request)."""
    return _current.get()


@contextmanager
def within(run: DryRun) -> Iterator[None]:
    token = _current.set(run)
    try:
        yield
    finally:
        _current.reset(token)


class DryRuns:
    """The dry runs in progress, by id."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._runs: dict[str, DryRun] = {}
        self._lock = threading.Lock()

    def open(self, run_id: str, committed: HostConfig) -> DryRun:
        """The dry run ``run_id``, started from ``committed`` if it is new (or expired)."""
        now = self._clock()
        with self._lock:
            self._runs = {k: r for k, r in self._runs.items() if now - r.used < TTL_S}
            run = self._runs.get(run_id)
            if run is None:
                while len(self._runs) >= LIMIT:
                    del self._runs[min(self._runs, key=lambda k: self._runs[k].used)]
                run = self._runs[run_id] = DryRun(run_id, committed, committed)
            run.used = now
            return run

    def get(self, run_id: str) -> DryRun | None:
        with self._lock:
            run = self._runs.get(run_id)
            if run is not None and self._clock() - run.used >= TTL_S:
                del self._runs[run_id]
                return None
            return run

    def close(self, run_id: str) -> bool:
        with self._lock:
            return self._runs.pop(run_id, None) is not None
