"""ACL rules as the public extension API carries them: actions, directions, and the compiled extended ACL entries
a port has (``PortInfo.extended_acls``), which the built-in firewall (builtin/extended_acl.py) and third-party
filters enforce, as Hyper-V's extended ACLs are enforced by its WFP extension.

Directions are the VM's (Hyper-V): Outbound = frames the port sends into the switch, Inbound = frames the switch
delivers to the port. Local/remote likewise: outbound local = source, inbound local = destination.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from enum import StrEnum

# Exact-match caches in front of rule tables (port ACLs, extended ACLs) hold at most this many flows.
CACHE_MAX = 65536


class Action(StrEnum):
    ALLOW = "Allow"
    DENY = "Deny"
    METER = "Meter"


class Direction(StrEnum):
    INBOUND = "Inbound"
    OUTBOUND = "Outbound"


@dataclass(frozen=True, slots=True)
class ExtendedRule:
    """One compiled Add-VMNetworkAdapterExtendedAcl entry (any field None = any)."""

    action: Action
    direction: Direction
    weight: int
    local: tuple[int, int, int] | None = None  # (version, prefix, plen)
    remote: tuple[int, int, int] | None = None
    local_ports: tuple[int, int] | None = None
    remote_ports: tuple[int, int] | None = None
    protocol: int | None = None
    stateful: bool = False
    idle_timeout_s: float = 3600.0
    isolation_id: int | None = None  # VLAN


def prefix(address: str | None) -> tuple[int, int, int] | None:
    if address is None or address.upper() == "ANY":
        return None
    net = ipaddress.ip_network(address, strict=False)
    return (net.version, int(net.network_address), net.prefixlen)


def port_range(spec: str | int | None) -> tuple[int, int] | None:
    """ "80", 80, "49152-49182" -> (lo, hi); None/"ANY" -> None."""
    if spec is None or (isinstance(spec, str) and spec.upper() == "ANY"):
        return None
    if isinstance(spec, int):
        return (spec, spec)
    lo, _, hi = spec.partition("-")
    return (int(lo), int(hi or lo))
