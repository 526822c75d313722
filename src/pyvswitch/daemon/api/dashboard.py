"""POST /v1/dashboard: start the web dashboard (daemon/dashboard.py) on 127.0.0.1 and answer its URL with the
token; GET /v1/dashboard: whether it runs, and where."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from pydantic import Field

from pyvswitch.daemon.api.common import Request_
from pyvswitch.daemon.dashboard import Dashboard
from pyvswitch.errors import ConfigError


class DashboardBody(Request_):
    port: int = Field(0, ge=0, le=65535)  # 0: any free port


def add_dashboard_routes(app: FastAPI, dashboard: Dashboard) -> Dashboard:
    @app.post("/v1/dashboard")
    def start_dashboard(body: DashboardBody) -> dict[str, Any]:
        try:
            url = dashboard.start(body.port)
        except OSError as exc:
            raise ConfigError([("port", f"cannot listen on 127.0.0.1:{body.port}: {exc.strerror}")]) from None
        return {"running": True, "url": url, "port": dashboard.port}

    @app.get("/v1/dashboard")
    def dashboard_status() -> dict[str, Any]:
        return {"running": dashboard.url is not None, "url": dashboard.url, "port": dashboard.port}

    return dashboard
