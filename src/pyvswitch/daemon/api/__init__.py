"""The REST API of pyvswitchd (docs/contracts.md): FastAPI routes over the Service, errors as field lists.

``create_app(service)`` builds a fresh app; there is no module-level app. Handlers are plain ``def`` so
FastAPI runs them in its thread pool: netlink and SQLite work never blocks the event loop, and the engine's
forwarding thread is only touched through ``engine.apply`` (thread-safe) and its read-only snapshots.

Every rejected request answers ``{"errors": [{"field": path, "message": text}]}``: 400 for invalid requests
(including bodies FastAPI itself rejects, JSON nested too deeply to parse among them), 404 for a missing object or
path, 405, 409 for a conflict, 413 for a body over ``limits.MAX_BODY_BYTES``. The handlers that say
so are here; the routes are one router per resource (``host``, ``switches``, ``vms``, ``ports``, ``teams``,
``diagnostics``, ``qos``, ``dcb``), plus the capture, SR-IOV and migration routes their own modules add, and
dry runs (``dry_run.py``: ``?dry_run=ID`` on any request, for ``-WhatIf``).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

import pyvswitch
from pyvswitch.config.validate import problems_from_errors
from pyvswitch.daemon.api import dcb, diagnostics, host, ports, qos, switches, teams, vms
from pyvswitch.daemon.api.common import Request_, patch_changes
from pyvswitch.daemon.api.dashboard import add_dashboard_routes
from pyvswitch.daemon.api.docs import add_local_docs
from pyvswitch.daemon.api.dry_run import add_dry_run_routes, guard
from pyvswitch.daemon.api.limits import BodyLimit
from pyvswitch.daemon.api.metrics import add_metrics_route, service_metrics
from pyvswitch.daemon.api.vnet import add_vnet_routes
from pyvswitch.daemon.capture_api import add_capture_routes
from pyvswitch.daemon.dashboard import Dashboard
from pyvswitch.daemon.iov import add_iov_routes
from pyvswitch.daemon.migration import Migrations, add_migration_routes
from pyvswitch.daemon.service import Service
from pyvswitch.errors import ConfigError, ConflictError, DeviceError, NotFoundError

__all__ = ["Request_", "create_app", "patch_changes"]

log = logging.getLogger(__name__)

# The OpenAPI document lists the paths in this order.
ROUTERS = (host, switches, vms, ports, teams, diagnostics, qos, dcb)


def _errors(
    status: int, problems: list[tuple[str, str]], headers: Mapping[str, str] | None = None
) -> JSONResponse:
    return JSONResponse(
        status_code=status,
        content={"errors": [{"field": f, "message": m} for f, m in problems]},
        headers=headers,
    )


def add_error_handlers(app: FastAPI) -> None:
    """Answer every refusal as ``{"errors": [{"field", "message"}]}`` with its status."""

    @app.exception_handler(RequestValidationError)
    def _invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        # loc starts with where the value came from ("body", "query", "path"); the rest is the field path.
        errors, bad_json = [], []
        for e in exc.errors():
            if e.get("type") == "json_invalid":  # its loc is ("body", character offset): no field
                bad_json.append(("body", f"not valid JSON: {e.get('ctx', {}).get('error', e['msg'])}"))
            else:
                errors.append(e)
        problems = problems_from_errors(errors, skip=1)
        return _errors(400, bad_json + [(f or "body", m) for f, m in problems])

    @app.exception_handler(StarletteHTTPException)
    def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        # What FastAPI and Starlette refuse themselves: a body they cannot parse (JSON nested deeper than the
        # parser recurses answered {"detail": ...}, issue 11), an unknown path, a method a path does not take.
        field = {400: "body", 404: "path", 405: "method"}.get(exc.status_code, "")
        message = str(exc.detail)
        if message == "There was an error parsing the body":  # what FastAPI says for any parser exception
            message = "the body cannot be parsed (not JSON, or nested too deeply)"
        return _errors(exc.status_code, [(field, message)], headers=exc.headers)

    @app.exception_handler(ConfigError)
    def _config_error(request: Request, exc: ConfigError) -> JSONResponse:
        return _errors(400, exc.problems)

    @app.exception_handler(NotFoundError)
    def _not_found(request: Request, exc: NotFoundError) -> JSONResponse:
        return _errors(404, [(getattr(exc, "field", "name"), str(exc))])

    @app.exception_handler(ConflictError)
    def _conflict(request: Request, exc: ConflictError) -> JSONResponse:
        return _errors(409, [(getattr(exc, "field", "name"), str(exc))])

    @app.exception_handler(DeviceError)
    def _device_error(request: Request, exc: DeviceError) -> JSONResponse:
        log.error("device error: %s", exc)
        return _errors(500, [("interface", str(exc))])

    @app.exception_handler(Exception)
    def _internal(request: Request, exc: Exception) -> JSONResponse:
        # The change was rolled back by the service; say so in the usual shape instead of plain text.
        log.error("%s %s failed", request.method, request.url.path, exc_info=exc)
        return _errors(500, [("", f"internal error: {type(exc).__name__}: {exc}")])


def create_app(service: Service, migrations: Migrations | None = None) -> FastAPI:
    """A FastAPI app serving ``service`` under /v1, OpenAPI at /openapi.json, Prometheus metrics at /metrics
    (``app.state.metrics``: the registry, also served by ``pyvswitchd --metrics-listen``)."""
    # /docs from the Swagger UI the swagger-ui-bundle package carries (docs.py), never from a CDN.
    app = FastAPI(
        title="pyvswitchd", version=pyvswitch.__version__, docs_url=None, redoc_url=None,
        dependencies=[Depends(guard)],  # a dry run (?dry_run=ID) runs only the routes it can rehearse
    )  # fmt: skip
    add_local_docs(app)
    app.add_middleware(BodyLimit)
    add_error_handlers(app)
    for resource in ROUTERS:
        app.include_router(resource.router(service))
    add_capture_routes(app, service.captures)
    if service.iov is not None:  # SR-IOV (daemon/iov.py)
        add_iov_routes(app, service.iov)
        service.iov.start()
    mig = add_migration_routes(app, service, migrations)  # live migration (daemon/migration.py)
    add_vnet_routes(app, service)  # cluster mode and virtual subnets (issue 13)
    app.state.metrics = add_metrics_route(app, service_metrics(service, mig))
    app.state.dashboard = add_dashboard_routes(app, Dashboard(service))
    add_dry_run_routes(app, service)  # ?dry_run=ID on any request (-WhatIf), /v1/dry-runs/ID
    return app
