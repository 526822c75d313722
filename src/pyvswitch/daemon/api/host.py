"""Routes about the daemon as a whole: health, the whole configuration, the audit history, its logs."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

import pyvswitch
from pyvswitch.config.schema import HostConfig
from pyvswitch.daemon import logs
from pyvswitch.daemon.api.common import Request_
from pyvswitch.daemon.dry_run import DRY_RUN
from pyvswitch.daemon.service import Service
from pyvswitch.errors import ConfigError


class LogLevelBody(Request_):
    level: str


class Health(BaseModel):
    """``status`` is "degraded" when forwarding is not progressing or recently failed (``forwarding.problems``
    says why) or a stored object failed to load, "ok" otherwise; ``degraded`` lists ports the engine could not
    open, ``failed`` stored objects that did not validate at start-up ("switch sw1": why; issue 11)."""

    status: str
    version: str
    degraded: dict[str, str] = Field(default_factory=dict)
    failed: dict[str, str] = Field(default_factory=dict)
    forwarding: dict[str, Any] = Field(default_factory=dict)


def router(service: Service) -> APIRouter:
    r = APIRouter()

    @r.get("/v1/health")
    def health() -> Health:
        forwarding = service.forwarding()
        failed = {f"{f['kind']} {f['name']}": f["error"] for f in service.failed()}
        status = str(forwarding.get("state", "ok"))
        return Health(
            status="degraded" if failed and status == "ok" else status,
            version=pyvswitch.__version__,
            degraded=service.degraded(),
            failed=failed,
            forwarding=forwarding,
        )

    @r.get("/v1/log")
    def log_settings() -> dict[str, Any]:
        """The log level, and where the JSON logs are (STATE_DIR/log: pyvswitchd.jsonl, forwarder.jsonl)."""
        return {"level": logs.level(), "directory": str(logs.log_dir(service.state_dir))}

    @r.put("/v1/log")
    def set_log_level(body: LogLevelBody) -> dict[str, Any]:
        """``pyvswitch log level LEVEL``: the daemon's and the forwarder's level, at once, until the next start."""
        try:
            level = logs.set_level(body.level)
        except ValueError as exc:
            raise ConfigError([("level", str(exc))]) from None
        forwarder = getattr(service.engine, "set_log_level", None)
        if callable(forwarder):
            forwarder(level)
        return {"level": level, "directory": str(logs.log_dir(service.state_dir))}

    @r.get("/v1/log/events")
    def log_events(
        limit: int = Query(100, ge=1, le=10_000), event: str | None = None
    ) -> list[dict[str, Any]]:
        """The newest records of both processes' JSON logs (``event``: only events whose name starts with it)."""
        return logs.read_events(service.state_dir, limit, event)

    @r.get("/v1/failed")
    def failed_objects() -> list[dict[str, str]]:
        """Stored objects not running because their row did not validate at start-up: kind, name, error."""
        return service.failed()

    @r.get("/v1/config")
    def get_config() -> HostConfig:
        return service.config

    @r.put("/v1/config", openapi_extra=DRY_RUN)
    def put_config(cfg: HostConfig) -> HostConfig:
        return service.replace_config(cfg)

    @r.get("/v1/history")
    def history(limit: int = Query(100, ge=1, le=10000)) -> list[dict[str, Any]]:
        return service.history(limit)

    return r
