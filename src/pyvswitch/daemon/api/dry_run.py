"""Dry runs over REST (``-WhatIf``, issue 15): ``?dry_run=ID`` on a request, ``/v1/dry-runs/ID`` for the outcome.

Every route depends on ``guard`` first (``create_app`` gives it to FastAPI). A route that only changes the
configuration (it goes through the service's one transaction) is marked
``openapi_extra=DRY_RUN`` (``daemon/dry_run.py``): under a dry run it runs as usual against the dry run's scratch configuration
(``daemon/dry_run.py``) and answers what it would have answered, headers ``Pyvswitch-Dry-Run: ID``; refusals are
the real ones. A route that acts outside the configuration (captures, NetEvent sessions, migrations, VF
revocation, a command in a guest, lookup records in the cluster) cannot be rehearsed that way: under a dry run it
is not run at all and answers 200 ``{"dry_run": ID, "run": false, "operation": "POST /v1/captures", ...}`` with
``Pyvswitch-Dry-Run: not-run``, and the dry run lists it under ``not_run``. A route marked ``READ_ONLY`` (the
what-if trace) changes nothing and runs as usual. Reads (GET) with ``dry_run`` see the scratch.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qs

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from pyvswitch.config.diff import diff
from pyvswitch.daemon import dry_run
from pyvswitch.daemon.api.limits import ASGIApp, Message, Receive, Scope, Send
from pyvswitch.daemon.dry_run import DRY_RUN_KEY, READ_ONLY, READ_ONLY_KEY
from pyvswitch.daemon.service import NotFound, Service

HEADER = "pyvswitch-dry-run"
HEADER_B = HEADER.encode()
MUTATING = frozenset({"POST", "PUT", "PATCH", "DELETE"})


class DryRunView(BaseModel):
    """What a dry run's requests would change: the changes as `config diff` shows them, each change's summary,
    and the requests it could not rehearse (they were not run)."""

    id: str
    summaries: list[str]
    changes: list[dict[str, Any]]
    not_run: list[str]


class DryRunScope:
    """ASGI middleware: puts a request with ``?dry_run=ID`` in its dry run (pure ASGI, not BaseHTTPMiddleware,
    so the context variable reaches the handler's thread) and marks the answer with ``Pyvswitch-Dry-Run``."""

    def __init__(self, app: ASGIApp, service: Service) -> None:
        self.app = app
        self.service = service

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        ids = (
            parse_qs(scope.get("query_string", b"").decode("latin-1")).get("dry_run")
            if scope["type"] == "http"
            else None
        )
        if not ids:
            await self.app(scope, receive, send)
            return
        run_id = ids[-1]
        if not dry_run.ID_RE.match(run_id):
            await _answer(send, 400, {"errors": [{"field": "dry_run", "message": "an id of 1-64 letters, digits, "
                                                  "'.', '_' or '-'"}]})  # fmt: skip
            return

        async def marked(message: Message) -> None:
            if message["type"] == "http.response.start" and not any(
                k == HEADER_B for k, _ in message.get("headers", [])
            ):
                message["headers"] = [*message.get("headers", []), (HEADER_B, run_id.encode())]
            await send(message)

        with dry_run.within(self.service.dry_runs.open(run_id, self.service.config)):
            await self.app(scope, receive, marked)


class NotRehearsable(Exception):
    """Raised by ``guard`` for a changing route a dry run cannot rehearse; answered by ``not_run_answer``."""

    def __init__(self, run_id: str, operation: str) -> None:
        self.run_id = run_id
        self.operation = operation
        super().__init__(operation)


async def guard(request: Request) -> None:
    """Every route's first dependency (before its body is read): under a dry run, a changing route that is not
    marked DRY_RUN or READ_ONLY is not run."""
    run = dry_run.active()
    if run is None or request.method not in MUTATING:
        return
    extra = getattr(request.scope.get("route"), "openapi_extra", None) or {}
    if not (extra.get(DRY_RUN_KEY) or extra.get(READ_ONLY_KEY)):
        operation = f"{request.method} {request.url.path}"
        run.not_run.append(operation)
        raise NotRehearsable(run.id, operation)


def not_run_answer(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, NotRehearsable)
    return JSONResponse(
        {"dry_run": exc.run_id, "run": False, "operation": exc.operation,
         "message": "this request acts outside the configuration, so a dry run cannot rehearse it: it was not "
                    "run, and nothing was checked beyond its address"},
        headers={HEADER: "not-run"},
    )  # fmt: skip


async def _answer(send: Send, status: int, body: dict[str, Any]) -> None:
    content = json.dumps(body).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(content)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": content})


def add_dry_run_routes(app: FastAPI, service: Service) -> None:
    """``GET /v1/dry-runs/{id}`` (what the dry run would change), ``DELETE`` (forget it), and the middleware."""

    def view(run_id: str) -> DryRunView:
        run = service.dry_runs.get(run_id)
        if run is None:
            raise NotFound("id", f"no dry run {run_id!r} (unknown, or unused for {dry_run.TTL_S:.0f} s)")
        changes = diff(run.base.model_dump(mode="json"), run.cfg.model_dump(mode="json"))
        return DryRunView(
            id=run.id, summaries=list(run.summaries), changes=changes, not_run=list(run.not_run)
        )

    @app.get("/v1/dry-runs/{run_id}", openapi_extra=READ_ONLY)
    def get_dry_run(run_id: str) -> DryRunView:
        return view(run_id)

    @app.delete("/v1/dry-runs/{run_id}", openapi_extra=READ_ONLY)
    def delete_dry_run(run_id: str) -> DryRunView:
        """What the dry run would have changed, and it is forgotten."""
        out = view(run_id)
        service.dry_runs.close(run_id)
        return out

    app.add_exception_handler(NotRehearsable, not_run_answer)
    app.add_middleware(DryRunScope, service=service)
