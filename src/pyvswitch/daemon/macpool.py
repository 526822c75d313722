"""Dynamic MAC allocation for ports without a static MAC: Hyper-V's per-host pool, made locally administered.

Hyper-V (hyperv-networking.md §1.3, SW-09) gives each host a pool of 256 addresses ``00-15-5D-XX-YY-00..FF``
where ``XX-YY`` come from the host's IPv4 address. We keep the shape but:

* use ``02:15:5d`` instead of Microsoft's OUI: the locally administered bit (0x02) marks the addresses as
  ours, so they never collide with a vendor-assigned NIC and never impersonate Microsoft's OUI;
* derive ``XX:YY`` from a *host id* (0-65535) instead of an IPv4 address: the daemon takes ``--host-id``,
  and by default hashes the machine id together with its state directory, so two daemons on one machine
  (different state directories) get different pools.

Allocation is a pure function of the addresses already in use, so the pool needs no state of its own: the
chosen MAC is written into the port's configuration and survives restarts from there. To avoid handing a
just-freed address to a new port (peers may still have it in their ARP caches), allocation continues after
the highest address in use and wraps, as Hyper-V's sequential allocation does.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass

from pyvswitch.errors import ConflictError
from pyvswitch.packet.mac import format_mac, parse_mac

POOL_OUI = 0x02155D  # 00-15-5D with the locally administered bit set
POOL_SIZE = 256


def host_id_from(machine_id: str, state_dir: str) -> int:
    """A stable 16-bit host id from the machine id and the daemon's state directory."""
    digest = hashlib.sha256(f"{machine_id.strip()}\0{state_dir}".encode()).digest()
    return int.from_bytes(digest[:2], "big")


@dataclass(frozen=True, slots=True)
class MacPool:
    """The 256 addresses ``02:15:5d:XX:YY:00-ff`` of one host id."""

    host_id: int

    def __post_init__(self) -> None:
        if not 0 <= self.host_id <= 0xFFFF:
            raise ValueError(f"host id {self.host_id} outside 0-65535")

    @property
    def base(self) -> int:
        return (POOL_OUI << 24) | (self.host_id << 8)

    @property
    def first(self) -> str:
        return format_mac(self.base)

    @property
    def last(self) -> str:
        return format_mac(self.base + POOL_SIZE - 1)

    def contains(self, mac: str) -> bool:
        return parse_mac(mac) & ~0xFF == self.base

    def allocate(self, in_use: Iterable[str]) -> str:
        """The next free address after the highest pool address in use (wrapping); raises when exhausted."""
        used = {parse_mac(m) for m in in_use}
        mine = [m - self.base for m in used if m & ~0xFF == self.base]
        start = (max(mine) + 1) if mine else 0
        for step in range(POOL_SIZE):
            candidate = self.base + (start + step) % POOL_SIZE
            if candidate not in used:
                return format_mac(candidate)
        raise ConflictError(f"MAC pool {self.first}-{self.last} is exhausted; give the port a static MAC")
