"""GET /metrics: the Prometheus text exposition of the daemon's metrics (daemon/metrics.py), and the middleware
that times every API request for ``pyvswitch_api_request_duration_seconds``."""

from __future__ import annotations

import time
from typing import Any

from fastapi import FastAPI, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from pyvswitch.daemon.metrics import CONTENT_TYPE, Metrics, SwitchMetrics
from pyvswitch.daemon.migration import Migrations
from pyvswitch.daemon.service import Service


def service_metrics(service: Service, migrations: Migrations) -> Metrics:
    """The collector over the service's snapshots: the same ones /v1/counters, /v1/health, the QoS and team
    routes, /v1/sriov/status and the migrations answer."""

    def qos() -> list[dict[str, Any]]:
        return [service.qos_status(sw.name) for sw in service.config.switches]

    iov = service.iov
    return Metrics(
        SwitchMetrics(
            counters=service.counters,
            health=service.forwarding,
            qos=qos,
            teams=service.teams,
            sriov=iov.status if iov is not None else lambda: None,
            migrations=migrations.stats,
        )
    )


class ApiTiming:
    """Pure ASGI middleware (not Starlette's BaseHTTPMiddleware, which would wrap whatever a handler raises in an
    exception group): times each request; the route template is in the scope once routing has run."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        try:
            await self.app(scope, receive, send)
        finally:
            # The template, not the path: one series per route, whatever names the requests carry.
            route = getattr(scope.get("route"), "path", "unmatched")
            self.metrics.observe(str(scope.get("method", "")), route, started)


def add_metrics_route(app: FastAPI, metrics: Metrics) -> Metrics:
    app.add_middleware(ApiTiming, metrics=metrics)

    @app.get("/metrics", include_in_schema=False)
    def prometheus_metrics() -> Response:
        return Response(metrics.render(), media_type=CONTENT_TYPE)

    return metrics
