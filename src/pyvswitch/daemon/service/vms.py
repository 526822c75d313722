"""VMs (New-VM, Remove-VM): candidate builders and the service's VM requests.

A VM here is a network namespace (``netns``, by default named after the VM) holding the VM ends of its
adapters' veth pairs, or a QEMU guest (kind qemu: its adapters are TAPs, its process is daemon/guests.py's); its adapters are ports of kind ``vm`` (``ports.py``). Removing a VM removes its adapters,
and the commit then deletes its veths and namespace. Its moves between hosts are ``migrating.py``'s.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pyvswitch.config.schema import HostConfig, PortConfig, PortKind, VmConfig, VmKind
from pyvswitch.daemon.service.commit import Change, Transaction
from pyvswitch.daemon.service.errors import Conflict, build
from pyvswitch.daemon.service.named import find
from pyvswitch.errors import ConfigError


def get(cfg: HostConfig, name: str, field: str = "name") -> VmConfig:
    return find(cfg.vms, name, "VM", field)


def add(
    cfg: HostConfig,
    name: str,
    netns: str | None = None,
    adapter: bool = True,
    port_fields: Mapping[str, Any] | None = None,
    vm_fields: Mapping[str, Any] | None = None,
) -> Change:
    """New-VM (+ one adapter ``<vm>-eth0`` with ``port_fields``: switch, ip, mac, vlan); ``vm_fields``: kind,
    memory_mb, cpus (a QEMU guest's)."""
    if any(v.name == name for v in cfg.vms):
        raise Conflict("name", f"VM {name!r} already exists")
    extra = {k: v for k, v in (vm_fields or {}).items() if v is not None}
    if extra.get("kind") == VmKind.QEMU and netns is not None:
        raise ConfigError([("netns", "a qemu VM has no namespace (netns is for kind namespace)")])
    vm = build(VmConfig, {"name": name, "netns": netns, **extra})
    ports = list(cfg.ports)
    fields = {k: v for k, v in (port_fields or {}).items() if v is not None}
    if adapter:
        ports.append(build(PortConfig, {"name": f"{name}-eth0", "kind": PortKind.VM, "vm": name, **fields}))
    elif fields:
        raise ConfigError([(k, 'given with "adapter": false') for k in sorted(fields)])
    # Problems are named as the request's fields: the adapter's (ip, vlan...), or a guest's (kind) when the
    # VM has no adapter to speak of.
    focus = ("ports", f"{name}-eth0") if adapter else ("vms", name)
    return Change(
        cfg.model_copy(update={"vms": [*cfg.vms, vm], "ports": ports}),
        f"add {vm.kind.value} VM {name}",
        focus=focus,
    )


def without(cfg: HostConfig, name: str) -> HostConfig:
    """``cfg`` without VM ``name`` and its adapters."""
    return cfg.model_copy(
        update={
            "vms": [v for v in cfg.vms if v.name != name],
            "ports": [p for p in cfg.ports if p.vm != name],
        }
    )


def delete(cfg: HostConfig, name: str) -> Change:
    """Remove-VM: its adapters go with it."""
    get(cfg, name)
    return Change(without(cfg, name), f"remove VM {name}")


class VmOps(Transaction):
    """The service's VM requests."""

    def vm(self, name: str) -> VmConfig:
        return get(self._cfg, name)

    def add_vm(
        self,
        name: str,
        netns: str | None = None,
        adapter: bool = True,
        port_fields: Mapping[str, Any] | None = None,
        vm_fields: Mapping[str, Any] | None = None,
    ) -> VmConfig:
        """New-VM (+ one adapter ``<vm>-eth0`` with ``port_fields``: switch, ip, mac, vlan)."""
        with self._lock:
            self._commit(add(self._cfg, name, netns, adapter, port_fields, vm_fields))
            return self.vm(name)

    def delete_vm(self, name: str) -> None:
        with self._lock:
            self._commit(delete(self._cfg, name))
