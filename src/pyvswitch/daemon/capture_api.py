"""REST routes for capture sessions (/v1/captures) and NetEvent sessions (/v1/netevent/sessions).

Errors use the API's shapes (``daemon.api``): 400 names the request field, 404 a missing session, 409 a state
conflict (a second NetEvent session, stopping one that is not running, a path another capture is writing).

| method + path | body | returns |
|---|---|---|
| POST /v1/captures | CaptureRequest | 201, status (with ``id``) |
| GET /v1/captures, GET /v1/captures/{id} | | statuses: captured, filtered, dropped, files, ... |
| DELETE /v1/captures/{id} | | final status (stopped, file flushed) |
| POST /v1/netevent/sessions | NetEventSessionCreate | 201, session |
| GET /v1/netevent/sessions, GET .../{name} | | sessions |
| DELETE /v1/netevent/sessions/{name} | | 204 (stopped first if running) |
| POST .../{name}/provider, DELETE .../{name}/provider | PacketCaptureProvider | session |
| POST .../{name}/provider/vm-switches, .../vm-network-adapters | ``{"name"}`` | session |
| POST .../{name}/start, .../{name}/stop | | session |
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Response

from pyvswitch.daemon.capture import (
    CaptureManager,
    CaptureRequest,
    NameBody,
    NetEventSessionCreate,
    PacketCaptureProvider,
)


def add_capture_routes(app: FastAPI, captures: CaptureManager) -> None:
    @app.post("/v1/captures", status_code=201)
    def capture_start(body: CaptureRequest) -> dict[str, Any]:
        """Start a capture session: ports (none = all), direction, snaplen, size cap / ring, filter."""
        return captures.start(body)

    @app.get("/v1/captures")
    def capture_list() -> list[dict[str, Any]]:
        return captures.sessions()

    @app.get("/v1/captures/{capture_id}")
    def capture_get(capture_id: str) -> dict[str, Any]:
        return captures.session(capture_id)

    @app.delete("/v1/captures/{capture_id}")
    def capture_stop(capture_id: str) -> dict[str, Any]:
        """Stop, flush and close the file(s); the final status."""
        return captures.stop(capture_id)

    @app.post("/v1/netevent/sessions", status_code=201)
    def netevent_new(body: NetEventSessionCreate) -> dict[str, Any]:
        return captures.new_netevent_session(body)

    @app.get("/v1/netevent/sessions")
    def netevent_list() -> list[dict[str, Any]]:
        return captures.netevent_sessions()

    @app.get("/v1/netevent/sessions/{name}")
    def netevent_get(name: str) -> dict[str, Any]:
        return captures.netevent_session(name)

    @app.delete("/v1/netevent/sessions/{name}", status_code=204)
    def netevent_remove(name: str) -> Response:
        captures.remove_netevent_session(name)
        return Response(status_code=204)

    @app.post("/v1/netevent/sessions/{name}/provider", status_code=201)
    def netevent_add_provider(name: str, body: PacketCaptureProvider) -> dict[str, Any]:
        return captures.add_provider(name, body)

    @app.delete("/v1/netevent/sessions/{name}/provider")
    def netevent_remove_provider(name: str) -> dict[str, Any]:
        return captures.remove_provider(name)

    @app.post("/v1/netevent/sessions/{name}/provider/vm-switches")
    def netevent_add_switch(name: str, body: NameBody) -> dict[str, Any]:
        return captures.add_vm_switch(name, body.name)

    @app.post("/v1/netevent/sessions/{name}/provider/vm-network-adapters")
    def netevent_add_adapter(name: str, body: NameBody) -> dict[str, Any]:
        return captures.add_vm_network_adapter(name, body.name)

    @app.post("/v1/netevent/sessions/{name}/start")
    def netevent_start(name: str) -> dict[str, Any]:
        return captures.start_netevent_session(name)

    @app.post("/v1/netevent/sessions/{name}/stop")
    def netevent_stop(name: str) -> dict[str, Any]:
        return captures.stop_netevent_session(name)
