"""Switches (New-/Set-/Remove-VMSwitch): candidate builders and the service's switch requests.

A switch's type decides the ports that come with it (``switch_ports``): an External switch has an uplink port
bound to its ``net_adapter`` and, with ``allow_management_os``, a host vNIC named after it; an Internal switch
always has that host vNIC; a Private switch has neither. The builders are pure: current HostConfig + request ->
``Change`` (or ConfigError/NotFound/Conflict); ``SwitchOps`` commits them under the service's lock.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pyvswitch.config.schema import HostConfig, PortConfig, PortKind, SwitchConfig, SwitchType
from pyvswitch.daemon.service.commit import Change, Transaction
from pyvswitch.daemon.service.errors import Conflict, build
from pyvswitch.daemon.service.named import find
from pyvswitch.errors import ConfigError


def uplink_port_name(switch: str) -> str:
    # Port names are limited to 32 characters; a clash after truncation is reported by validation.
    return f"{switch[:25]}-uplink"


def switch_ports(sw: SwitchConfig, ports: list[PortConfig]) -> list[PortConfig]:
    """``ports`` with the switch's uplink and management-OS vNIC made to match its type.

    External: one uplink port bound to ``net_adapter``; a host vNIC named after the switch if
    ``allow_management_os`` (False removes its host vNICs). Internal: always a host vNIC. Private: neither.
    """
    external = sw.type is SwitchType.EXTERNAL
    want_host = sw.type is SwitchType.INTERNAL or (external and sw.allow_management_os)
    out: list[PortConfig] = []
    has_uplink = has_host = False
    for p in ports:
        if p.switch == sw.name and p.kind is PortKind.UPLINK:
            if not external:
                continue
            if p.interface != sw.net_adapter:
                p = p.model_copy(update={"interface": sw.net_adapter, "mac": None})
            has_uplink = True
        elif p.switch == sw.name and p.kind is PortKind.HOST:
            if not want_host:
                continue
            has_host = True
        out.append(p)
    if external and not has_uplink:
        out.append(
            PortConfig(
                name=uplink_port_name(sw.name), kind=PortKind.UPLINK, switch=sw.name, interface=sw.net_adapter
            )
        )
    if want_host and not has_host:
        out.append(PortConfig(name=sw.name, kind=PortKind.HOST, switch=sw.name))
    return out


def get(cfg: HostConfig, name: str, field: str = "name") -> SwitchConfig:
    return find(cfg.switches, name, "switch", field)


def add(cfg: HostConfig, sw: SwitchConfig, link_speed: int | None = None) -> Change:
    """New-VMSwitch; ``link_speed`` (bit/s) is the line rate of an External switch's uplink NIC."""
    if any(s.name == sw.name for s in cfg.switches):
        raise Conflict("name", f"switch {sw.name!r} already exists")
    ports = switch_ports(sw, list(cfg.ports))
    if link_speed is not None:
        if sw.net_adapter is None:
            raise ConfigError([("link_speed", "only an External switch has an uplink NIC")])
        team = next((t for t in cfg.teams if t.name == sw.net_adapter), None)
        if team is not None:
            raise ConfigError(
                [
                    (
                        "link_speed",
                        f"{team.name!r} is a team: its line rate is its members' (member_link_speed, "
                        f"PATCH /v1/teams/{team.name})",
                    )
                ]
            )
        ports = [
            build(PortConfig, {**p.model_dump(), "link_speed": link_speed}, "link_speed")
            if p.switch == sw.name and p.kind is PortKind.UPLINK
            else p
            for p in ports
        ]
    return Change(
        cfg.model_copy(update={"switches": [*cfg.switches, sw], "ports": ports}),
        f"add switch {sw.name} ({sw.type.value})",
        focus=("switches", sw.name),
    )


def update(cfg: HostConfig, name: str, changes: Mapping[str, Any]) -> Change:
    """Set-VMSwitch: ``changes`` holds only the fields the request gave (None may be a value)."""
    old = get(cfg, name)
    if changes.get("name", name) != name:
        raise ConfigError([("name", "a switch cannot be renamed")])
    data = old.model_dump()
    data.update(changes)
    # Hyper-V: giving an adapter makes the switch External; choosing another type unbinds it.
    if changes.get("net_adapter") is not None and "type" not in changes:
        data["type"] = SwitchType.EXTERNAL
    if "type" in changes and changes["type"] != SwitchType.EXTERNAL and "net_adapter" not in changes:
        data["net_adapter"] = None
    new = build(SwitchConfig, data)
    switches = [new if s.name == name else s for s in cfg.switches]
    ports = switch_ports(new, list(cfg.ports))
    return Change(
        cfg.model_copy(update={"switches": switches, "ports": ports}),
        f"set switch {name}",
        focus=("switches", name),
    )


def delete(cfg: HostConfig, name: str) -> Change:
    """Remove-VMSwitch: its host vNICs and uplink go; VM and bound ports stay, disconnected."""
    get(cfg, name)
    ports: list[PortConfig] = []
    for p in cfg.ports:
        if p.switch == name:
            if p.kind in (PortKind.HOST, PortKind.UPLINK):
                continue
            p = p.model_copy(update={"switch": None})
        ports.append(p)
    switches = [s for s in cfg.switches if s.name != name]
    return Change(cfg.model_copy(update={"switches": switches, "ports": ports}), f"remove switch {name}")


class SwitchOps(Transaction):
    """The service's switch requests."""

    def switch(self, name: str) -> SwitchConfig:
        return get(self._cfg, name)

    def add_switch(self, sw: SwitchConfig, link_speed: int | None = None) -> SwitchConfig:
        """New-VMSwitch; ``link_speed`` (bit/s) is the line rate of an External switch's uplink NIC."""
        with self._lock:
            self._commit(add(self._cfg, sw, link_speed))
            return self.switch(sw.name)

    def update_switch(self, name: str, changes: Mapping[str, Any]) -> SwitchConfig:
        """Set-VMSwitch: ``changes`` holds only the fields the request gave (None may be a value)."""
        with self._lock:
            self._commit(update(self._cfg, name, changes))
            return self.switch(name)

    def delete_switch(self, name: str) -> None:
        """Remove-VMSwitch: its host vNICs and uplink go; VM and bound ports stay, disconnected."""
        with self._lock:
            self._commit(delete(self._cfg, name))
