"""What the daemon chooses for a port the request left open: interface names, peer names, dynamic MACs.

Step 2 of the commit (``commit.py``): a VM adapter or host vNIC gets a switch-side interface ``pv`` + 8 hex
(<= 15 characters, free in the daemon's namespace), a peer (``eth<N>`` inside the VM, ``pvh`` + 8 hex for a host
vNIC) and, without a static MAC, one from the host's pool. What is already resolved stays, so resolving a stored
configuration again (start-up) changes nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pyvswitch.config.schema import HostConfig, PortConfig, PortKind
from pyvswitch.daemon.macpool import MacPool
from pyvswitch.daemon.service.errors import Conflict
from pyvswitch.errors import ConflictError, DeviceError


def resolve(
    cfg: HostConfig, pool: MacPool, new_ifname: Callable[[str], str], link_exists: Callable[[str], bool]
) -> HostConfig:
    """Fill in what the daemon chooses for ports: interface and peer names, dynamic MACs."""
    taken: set[str] = set()
    for p in cfg.ports:
        # Names in the daemon's namespace; a VM's eth<N> lives in the VM's own.
        if p.interface:
            taken.add(p.interface)
        if p.kind is PortKind.HOST and p.peer_interface:
            taken.add(p.peer_interface)

    def fresh_ifname(prefix: str) -> str:
        for _ in range(100):
            name = new_ifname(prefix)
            if name not in taken and not link_exists(name):
                taken.add(name)
                return name
        raise DeviceError(f"could not find a free interface name with prefix {prefix!r}")

    macs = {p.mac for p in cfg.ports if p.mac}
    vm_peers: dict[str, set[str]] = {}
    for p in cfg.ports:
        if p.kind is PortKind.VM and p.vm and p.peer_interface:
            vm_peers.setdefault(p.vm, set()).add(p.peer_interface)
    ports: list[PortConfig] = []
    for i, p in enumerate(cfg.ports):
        update: dict[str, Any] = {}
        if p.kind in (PortKind.VM, PortKind.HOST) and p.interface is None:
            update["interface"] = fresh_ifname("pv")
        if p.kind is PortKind.VM and p.peer_interface is None:
            used = vm_peers.setdefault(p.vm or "", set())
            n = next(n for n in range(len(used) + 1) if f"eth{n}" not in used)
            update["peer_interface"] = f"eth{n}"
            used.add(f"eth{n}")
        if p.kind is PortKind.HOST and p.peer_interface is None:
            update["peer_interface"] = fresh_ifname("pvh")
        # Only the NICs the daemon creates get a MAC from the pool; behind a bound interface, an uplink or a
        # TAP live MACs the switch learns (a pool MAC there would be set on nothing).
        if p.mac is None and p.kind in (PortKind.VM, PortKind.HOST):
            try:
                mac = pool.allocate(macs)
            except ConflictError as exc:
                raise Conflict(f"ports[{i}].mac", str(exc)) from exc
            update["mac"] = mac
            macs.add(mac)
        ports.append(p.model_copy(update=update) if update else p)
    return cfg.model_copy(update={"ports": ports})
