"""Ports (Add-/Set-/Remove-VMNetworkAdapter, Connect-/Disconnect-VMNetworkAdapter, bound interfaces and TAPs).

A port is a VM adapter, a host vNIC, a bound host interface or TAP, or a switch's uplink. Uplinks belong to
their switch (``switches.py`` makes and removes them from its ``net_adapter``), so they are refused here. The
builders are pure: current HostConfig + request -> ``Change``; ``PortOps`` commits them under the service's lock.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pyvswitch.config.schema import HostConfig, PortConfig, PortKind
from pyvswitch.daemon.service import switches, vms
from pyvswitch.daemon.service.commit import Change, Transaction, changed
from pyvswitch.daemon.service.errors import Conflict, build
from pyvswitch.daemon.service.named import appended, find, replaced
from pyvswitch.errors import ConfigError


def get(cfg: HostConfig, name: str) -> PortConfig:
    return find(cfg.ports, name, "port")


def select(cfg: HostConfig, switch: str | None = None, vm: str | None = None) -> list[PortConfig]:
    """The ports on ``switch`` and of ``vm`` (either may be None: any); naming a missing one is NotFound."""
    if switch is not None:
        switches.get(cfg, switch, "switch")
    if vm is not None:
        vms.get(cfg, vm, "vm")
    return [p for p in cfg.ports if (switch is None or p.switch == switch) and (vm is None or p.vm == vm)]


def add(cfg: HostConfig, port: PortConfig) -> Change:
    """Add-VMNetworkAdapter (kind vm or host) or bind an interface / TAP."""
    change = appended(cfg, "ports", port, "port")  # a name taken is refused first
    if port.kind is PortKind.UPLINK:
        raise ConfigError([("kind", "uplink ports are made by giving a switch its net_adapter")])
    return change


def update(cfg: HostConfig, name: str, changes: Mapping[str, Any]) -> Change:
    """Connect/Disconnect-VMNetworkAdapter, Set-VMNetworkAdapter(Vlan): only the given fields change."""
    old = get(cfg, name)
    if old.kind is PortKind.UPLINK and "switch" in changes and changes["switch"] != old.switch:
        raise ConfigError([("switch", "an uplink belongs to its switch; change the switch's net_adapter")])
    new = build(PortConfig, {**old.model_dump(), **changes})
    return replaced(cfg, "ports", new, f"set port {name}: {changed(changes)}")


def delete(cfg: HostConfig, name: str) -> Change:
    old = get(cfg, name)
    if old.kind is PortKind.UPLINK:
        raise Conflict("name", f"port {name!r} is switch {old.switch!r}'s uplink; remove its net_adapter")
    ports = [p for p in cfg.ports if p.name != name]
    return Change(cfg.model_copy(update={"ports": ports}), f"remove port {name}")


class PortOps(Transaction):
    """The service's port requests."""

    def port(self, name: str) -> PortConfig:
        return get(self._cfg, name)

    def ports(self, switch: str | None = None, vm: str | None = None) -> list[PortConfig]:
        return select(self._cfg, switch, vm)

    def add_port(self, port: PortConfig) -> PortConfig:
        """Add-VMNetworkAdapter (kind vm or host) or bind an interface / TAP."""
        with self._lock:
            self._commit(add(self._cfg, port))
            return self.port(port.name)

    def update_port(self, name: str, changes: Mapping[str, Any]) -> PortConfig:
        """Connect/Disconnect-VMNetworkAdapter, Set-VMNetworkAdapter(Vlan): only the given fields change."""
        with self._lock:
            self._commit(update(self._cfg, name, changes))
            return self.port(name)

    def delete_port(self, name: str) -> None:
        with self._lock:
            self._commit(delete(self._cfg, name))
