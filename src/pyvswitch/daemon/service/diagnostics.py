"""Read-only questions to the engine: health, counters, FDB, extension stacks, packet traces and what-if.

Nothing here changes the configuration; the names a request gives (a switch, a port or a VM) are checked
against the committed configuration first, so a typo is a 404 naming the field rather than an empty answer.
"""

from __future__ import annotations

from pyvswitch.config.schema import HostConfig, PortConfig
from pyvswitch.daemon.service import switches
from pyvswitch.daemon.service.commit import Transaction
from pyvswitch.daemon.service.errors import NotFound
from pyvswitch.errors import ConfigError
from pyvswitch.observe.describe import DescriptionError
from pyvswitch.observe.describe import build as build_frame


def traced_port(cfg: HostConfig, name: str) -> PortConfig:
    """A port by name, or a VM's first adapter by VM name (``trace web01``); it must be connected."""
    port = next((p for p in cfg.ports if p.name == name), None)
    if port is None:
        port = next((p for p in cfg.ports if p.vm == name), None)
    if port is None:
        raise NotFound("port", f"no port or VM {name!r}")
    if port.switch is None:
        raise ConfigError([("port", f"port {port.name!r} is not connected to a switch")])
    return port


class DiagnosticOps(Transaction):
    """The service's read-only engine queries."""

    def forwarding(self) -> dict[str, object]:
        """Whether the data path is progressing (Engine.health): state, problems, restarts, resyncs."""
        return self._engine.health()

    def installed_extensions(self) -> list[dict[str, object]]:
        return self._engine.installed_extensions()

    def switch_extensions(self, name: str) -> list[dict[str, object]]:
        switches.get(self._cfg, name)
        per_switch = self._engine.counters().get("switches")
        sw = per_switch.get(name) if isinstance(per_switch, dict) else None
        stack = sw.get("extensions") if isinstance(sw, dict) else None
        return list(stack) if isinstance(stack, list) else []

    def fdb(self, switch: str) -> list[dict[str, object]]:
        switches.get(self._cfg, switch, "switch")
        return self._engine.fdb(switch)

    def acl_hits(self, name: str) -> dict[str, list[dict[str, object]]]:
        """Per extended ACL entry of port ``name``: the packets it decided (``extended``: direction, weight,
        hits), from the switch's firewall; entries no firewall has counted yet have 0."""
        port = self.port(name)  # type: ignore[attr-defined]
        hits: dict[tuple[str, int], int] = {}
        if port.switch is not None:
            per_switch = self._engine.counters().get("switches")
            sw = per_switch.get(port.switch) if isinstance(per_switch, dict) else None
            for ext in (sw.get("extensions") if isinstance(sw, dict) else None) or []:
                status = ext.get("status") if isinstance(ext, dict) else None
                ports = status.get("ports") if isinstance(status, dict) else None
                entry = ports.get(port.name) if isinstance(ports, dict) else None
                for h in (entry.get("rule_hits") if isinstance(entry, dict) else None) or []:
                    key = (str(h["direction"]), int(h["weight"]))
                    hits[key] = hits.get(key, 0) + int(h["hits"])
        return {
            "extended": [
                {
                    "direction": e.direction.value,
                    "weight": e.weight,
                    "hits": hits.get((e.direction.value, e.weight), 0),
                }
                for e in port.extended_acls
            ]
        }

    def counters(self, switch: str | None = None) -> dict[str, object]:
        data = self._engine.counters()
        if switch is None:
            return data
        switches.get(self._cfg, switch, "switch")
        per_switch = data.get("switches", {})
        per = per_switch.get(switch, {}) if isinstance(per_switch, dict) else {}
        return {"switches": {switch: per}}

    # ---- tracing ----

    def traced_port(self, name: str) -> PortConfig:
        return traced_port(self._cfg, name)

    def trace_start(self, name: str, count: int) -> PortConfig:
        port = self.traced_port(name)
        assert port.switch is not None
        self._engine.trace_start(port.switch, port.name, count)
        return port

    def trace_stop(self, name: str) -> None:
        port = self.traced_port(name)
        assert port.switch is not None
        self._engine.trace_stop(port.switch, port.name)

    def traces(self, name: str | None, limit: int) -> list[dict[str, object]]:
        if name is None:
            return self._engine.traces(None, None, limit)
        port = self.traced_port(name)
        return self._engine.traces(port.switch, port.name, limit)

    def what_if(self, name: str, description: str) -> dict[str, object]:
        port = self.traced_port(name)
        assert port.switch is not None
        try:
            frame, tci = build_frame(description, default_src=port.mac)
        except DescriptionError as e:
            # The word at fault as a sub-field of the request's "frame" (issue 11): frame.dport, frame.len.
            raise ConfigError([("frame" + (f".{e.field}" if e.field else ""), str(e))]) from e
        return self._engine.what_if(port.switch, port.name, frame, tci)
