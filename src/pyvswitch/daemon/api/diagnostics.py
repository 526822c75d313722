"""Read-only routes into the engine: extensions, packet traces, what-if, FDB and counters."""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Query, Response
from pydantic import Field

from pyvswitch.daemon.api.common import Request_
from pyvswitch.daemon.dry_run import READ_ONLY
from pyvswitch.daemon.service import Service


class TraceStart(Request_):
    port: str
    count: int = Field(20, ge=1, le=10_000)


class WhatIf(Request_):
    port: str
    # e.g. "dst=02:00:00:00:00:0b vlan=10 tcp dport=80" (observe/describe.py): a few words, never kilobytes
    frame: str = Field("", max_length=1024)


def router(service: Service) -> APIRouter:
    r = APIRouter()

    @r.get("/v1/extensions")
    def extensions() -> list[dict[str, Any]]:
        """Installed extensions (Get-VMSystemSwitchExtension), including ones that failed to load and why."""
        return service.installed_extensions()

    @r.get("/v1/switches/{name}/extensions")
    def switch_extensions(name: str) -> list[dict[str, Any]]:
        """The switch's stack in order (Get-VMSwitchExtension): kind, enabled, counters, run-time status."""
        return service.switch_extensions(name)

    @r.post("/v1/traces", status_code=201)
    def trace_start(body: TraceStart) -> dict[str, Any]:
        """Trace the next ``count`` packets arriving on a port (or a VM's first adapter)."""
        port = service.trace_start(body.port, body.count)
        return {"port": port.name, "switch": port.switch, "count": body.count}

    @r.delete("/v1/traces/{port}", status_code=204)
    def trace_stop(port: str) -> Response:
        service.trace_stop(port)
        return Response(status_code=204)

    @r.get("/v1/traces")
    def traces(port: str | None = None, limit: int = Query(100, ge=1, le=1000)) -> list[dict[str, Any]]:
        return service.traces(port, limit)

    @r.post("/v1/whatif", openapi_extra=READ_ONLY)
    def what_if(body: WhatIf) -> dict[str, Any]:
        """Trace a described frame as if received on ``port``: no learning, counting or sending."""
        return service.what_if(body.port, body.frame)

    @r.get("/v1/fdb/{switch}")
    def fdb(switch: str) -> list[dict[str, Any]]:
        return service.fdb(switch)

    @r.get("/v1/counters", response_model=dict[str, Any])
    async def counters(switch: str | None = None) -> Response:
        # Monitoring polls this often and the forwarding thread shares the GIL with us: answer on the event
        # loop (no worker-thread hop) with plain json.dumps (no jsonable_encoder walk of the nested dicts).
        return Response(json.dumps(service.counters(switch)), media_type="application/json")

    return r
