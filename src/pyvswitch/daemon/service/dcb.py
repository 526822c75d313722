"""DCB (hyperv-networking.md §5.5): DCBX willing, PFC priorities, traffic classes and the adapters it is on.

The host has one DcbConfig. Set-NetQosDcbxSetting, Enable/Disable-NetQosFlowControl, New/Set/Remove-
NetQosTrafficClass and Enable/Disable-NetAdapterQos each build a new one; problems with it are named as the
request's fields (``dcb.flow_control_priorities[1]`` -> ``flow_control_priorities[1]``) by ``dcb_paths``, whose
renaming map travels in the ``Change``'s ``fields``. Get-NetQosTrafficClass lists a ``[Default]`` class first:
it owns the priorities and the ETS share no other class claims, so it is derived, never stored.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from pyvswitch.config.schema import DcbConfig, HostConfig, PortKind, TrafficClassAlgorithm, TrafficClassConfig
from pyvswitch.config.validate import problems_from_validation_error
from pyvswitch.daemon.service.commit import Change, Transaction, changed
from pyvswitch.daemon.service.errors import Conflict, NotFound, build
from pyvswitch.errors import ConfigError

DEFAULT_CLASS = (
    "[Default]"  # Get-NetQosTrafficClass's name for the class that owns what no other class claims
)


def dcb_paths(problems: list[tuple[str, str]], fields: Mapping[str, str]) -> list[tuple[str, str]]:
    """Problems with the DCB settings named as the request's ``fields`` (``adapters[1]`` -> ``name``)."""
    out = []
    for path, msg in problems:
        path = path.removeprefix("dcb.")
        for prefix, name in fields.items():
            if path == prefix or path.startswith(prefix + ".") or path.startswith(prefix + "["):
                rest = path[len(prefix) :]
                if re.fullmatch(r"\[\d+\]", rest):
                    rest = ""  # adapters[1] -> the request's name
                path = (name + rest).lstrip(".") or "body"
                break
        out.append((path, msg))
    return out


def with_dcb(cfg: HostConfig, data: Mapping[str, Any], summary: str, fields: Mapping[str, str]) -> Change:
    """``cfg`` with the DCB settings ``data``; ``fields`` names their paths as the request's."""
    try:
        new = DcbConfig.model_validate(dict(data))
    except ValidationError as exc:
        problems = problems_from_validation_error(exc)
        raise ConfigError(dcb_paths([(p or "dcb", m) for p, m in problems], fields)) from exc
    return Change(cfg.model_copy(update={"dcb": new}), summary, fields=fields)


def update(cfg: HostConfig, changes: Mapping[str, Any]) -> Change:
    """Set-NetQosDcbxSetting -Willing, Enable/Disable-NetQosFlowControl (the whole priority list)."""
    return with_dcb(cfg, {**cfg.dcb.model_dump(), **changes}, f"set DCB: {changed(changes)}", {})


def traffic_classes(cfg: HostConfig) -> list[dict[str, object]]:
    """Get-NetQosTrafficClass: ``[Default]`` (the priorities and ETS share no class claims) first."""
    dcb = cfg.dcb
    claimed = {p for c in dcb.traffic_classes for p in c.priorities}
    ets = sum(c.bandwidth_percentage for c in dcb.traffic_classes if c.algorithm is TrafficClassAlgorithm.ETS)
    default: dict[str, object] = {
        "name": DEFAULT_CLASS,
        "priorities": [p for p in range(8) if p not in claimed],
        "algorithm": TrafficClassAlgorithm.ETS.value,
        "bandwidth_percentage": 100 - ets,
        "default": True,
    }
    return [default, *({**c.model_dump(mode="json"), "default": False} for c in dcb.traffic_classes)]


def traffic_class(cfg: HostConfig, name: str) -> dict[str, object]:
    for c in traffic_classes(cfg):
        if c["name"] == name:
            return c
    raise NotFound("name", f"no traffic class {name!r}")


def class_problems(new: TrafficClassConfig, others: list[TrafficClassConfig]) -> list[tuple[str, str]]:
    """What New/Set-NetQosTrafficClass refuses, named by the request's fields (QS-09)."""
    out: list[tuple[str, str]] = []
    for c in others:
        both = sorted(set(c.priorities) & set(new.priorities))
        if both:
            out.append(
                ("priorities", f"priority {','.join(map(str, both))} already belongs to class {c.name!r}")
            )
    if new.algorithm is TrafficClassAlgorithm.ETS:
        taken = sum(c.bandwidth_percentage for c in others if c.algorithm is TrafficClassAlgorithm.ETS)
        if taken + new.bandwidth_percentage > 99:
            out.append(
                (
                    "bandwidth_percentage",
                    f"other ETS classes take {taken} %; {new.bandwidth_percentage} % more leaves the default "
                    "class less than 1 % (classes may take at most 99 % together)",
                )
            )
    return out


def _with_classes(cfg: HostConfig, classes: list[dict[str, Any]], summary: str, k: int | None) -> Change:
    """``cfg`` with the traffic classes ``classes``; problems with class ``k`` name the request's fields."""
    fields = {} if k is None else {f"traffic_classes[{k}]": ""}
    return with_dcb(cfg, {**cfg.dcb.model_dump(), "traffic_classes": classes}, summary, fields)


def add_class(cfg: HostConfig, tc: TrafficClassConfig) -> Change:
    """New-NetQosTrafficClass: priorities and ETS share are taken from the default class."""
    dcb = cfg.dcb
    if tc.name == DEFAULT_CLASS or any(c.name == tc.name for c in dcb.traffic_classes):
        raise Conflict("name", f"traffic class {tc.name!r} already exists")
    if len(dcb.traffic_classes) >= 7:
        raise ConfigError([("name", "at most 7 traffic classes besides [Default] (8 in all)")])
    problems = class_problems(tc, list(dcb.traffic_classes))
    if problems:
        raise ConfigError(problems)
    classes = [*dcb.model_dump()["traffic_classes"], tc.model_dump()]
    return _with_classes(cfg, classes, f"add traffic class {tc.name}", len(dcb.traffic_classes))


def update_class(cfg: HostConfig, name: str, changes: Mapping[str, Any]) -> Change:
    """Set-NetQosTrafficClass: priorities, algorithm, bandwidth percentage."""
    dcb = cfg.dcb
    if name == DEFAULT_CLASS:
        raise ConfigError([("name", "the [Default] class has what the other classes leave")])
    k = next((i for i, c in enumerate(dcb.traffic_classes) if c.name == name), None)
    if k is None:
        raise NotFound("name", f"no traffic class {name!r}")
    if changes.get("name", name) != name:
        raise ConfigError([("name", "a traffic class cannot be renamed")])
    new = build(TrafficClassConfig, {**dcb.traffic_classes[k].model_dump(), **changes})
    problems = class_problems(new, [c for c in dcb.traffic_classes if c.name != name])
    if problems:
        raise ConfigError(problems)
    classes = dcb.model_dump()["traffic_classes"]
    classes[k] = new.model_dump()
    return _with_classes(cfg, classes, f"set traffic class {name}: {changed(changes)}", k)


def delete_class(cfg: HostConfig, name: str) -> Change:
    """Remove-NetQosTrafficClass: its priorities and share go back to the default class."""
    dcb = cfg.dcb
    if name == DEFAULT_CLASS:
        raise Conflict("name", "the [Default] class cannot be removed")
    if not any(c.name == name for c in dcb.traffic_classes):
        raise NotFound("name", f"no traffic class {name!r}")
    classes = [c.model_dump() for c in dcb.traffic_classes if c.name != name]
    return _with_classes(cfg, classes, f"remove traffic class {name}", None)


def adapters(cfg: HostConfig) -> list[dict[str, object]]:
    """Get-NetAdapterQos: every adapter DCB can be enabled on (uplink and interface ports' NICs, teams)."""
    enabled = set(cfg.dcb.adapters)
    out: list[dict[str, object]] = []
    for p in cfg.ports:
        if p.kind in (PortKind.UPLINK, PortKind.INTERFACE) and p.interface is not None:
            if any(t.name == p.interface for t in cfg.teams):
                continue
            out.append({"name": p.interface, "kind": "interface", "port": p.name, "switch": p.switch,
                        "enabled": p.interface in enabled})  # fmt: skip
    for t in cfg.teams:
        out.append(
            {"name": t.name, "kind": "team", "port": None, "switch": None, "enabled": t.name in enabled}
        )
    return out


def adapter(cfg: HostConfig, name: str) -> dict[str, object]:
    found = next((a for a in adapters(cfg) if a["name"] == name), None)
    if found is None:
        raise NotFound("name", f"{name!r} is neither the interface of an uplink or interface port nor a team")
    return found


def set_adapter(cfg: HostConfig, name: str, enabled: bool) -> Change | None:
    """Enable-NetAdapterQos / Disable-NetAdapterQos -Name; None when it already is."""
    adapter(cfg, name)
    now = [a for a in cfg.dcb.adapters if a != name] + ([name] if enabled else [])
    if set(now) == set(cfg.dcb.adapters):
        return None
    verb = "enable" if enabled else "disable"
    return with_dcb(
        cfg, {**cfg.dcb.model_dump(), "adapters": now}, f"{verb} DCB on {name}", {"adapters": "name"}
    )


class DcbOps(Transaction):
    """The service's DCB requests."""

    def dcb(self) -> DcbConfig:
        return self._cfg.dcb

    def _commit_dcb(self, change: Change) -> None:
        """Commit a DCB change; problems are named as the request's fields (the change's ``fields``)."""
        try:
            self._commit(change)
        except ConfigError as exc:
            raise ConfigError(dcb_paths(exc.problems, change.fields or {})) from exc

    def update_dcb(self, changes: Mapping[str, Any]) -> DcbConfig:
        """Set-NetQosDcbxSetting -Willing, Enable/Disable-NetQosFlowControl (the whole priority list)."""
        with self._lock:
            self._commit_dcb(update(self._cfg, changes))
            return self._cfg.dcb

    def traffic_classes(self) -> list[dict[str, object]]:
        return traffic_classes(self._cfg)

    def traffic_class(self, name: str) -> dict[str, object]:
        return traffic_class(self._cfg, name)

    def add_traffic_class(self, tc: TrafficClassConfig) -> dict[str, object]:
        """New-NetQosTrafficClass: priorities and ETS share are taken from the default class."""
        with self._lock:
            self._commit_dcb(add_class(self._cfg, tc))
            return self.traffic_class(tc.name)

    def update_traffic_class(self, name: str, changes: Mapping[str, Any]) -> dict[str, object]:
        """Set-NetQosTrafficClass: priorities, algorithm, bandwidth percentage."""
        with self._lock:
            self._commit_dcb(update_class(self._cfg, name, changes))
            return self.traffic_class(name)

    def delete_traffic_class(self, name: str) -> None:
        """Remove-NetQosTrafficClass: its priorities and share go back to the default class."""
        with self._lock:
            self._commit_dcb(delete_class(self._cfg, name))

    def qos_adapters(self) -> list[dict[str, object]]:
        """Get-NetAdapterQos: every adapter DCB can be enabled on (uplink and interface ports' NICs, teams)."""
        return adapters(self._cfg)

    def set_qos_adapter(self, name: str, enabled: bool) -> dict[str, object]:
        """Enable-NetAdapterQos / Disable-NetAdapterQos -Name (idempotent)."""
        with self._lock:
            change = set_adapter(self._cfg, name, enabled)
            if change is not None:
                self._commit_dcb(change)
            return adapter(self._cfg, name)
