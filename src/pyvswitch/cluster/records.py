"""What the cluster holds (issue 13), as Hyper-V Network Virtualization names it, and where in etcd.

    /pyvswitch/hosts/<host>                        a host: provider address, capabilities (under its lease)
    /pyvswitch/vsid/<vsid>/hosts/<host>            the host has ports on virtual subnet <vsid> (under its lease):
                                                   where broadcast and unknown traffic of the subnet is replicated
    /pyvswitch/vsid/<vsid>/records/<CA>            a lookup record: customer address -> customer MAC, provider
                                                   address, host (a port's: under its host's lease; one made
                                                   with New-NetVirtualizationLookupRecord: no lease)

One prefix per virtual subnet, so a host watches only the subnets it has ports on (HNV's "the policy a host
needs", not the whole cluster's), and a subnet's records and hosts arrive in one ordered stream.
"""

from __future__ import annotations

import ipaddress
import json
from dataclasses import asdict, dataclass

from pyvswitch.packet.mac import format_mac, parse_mac

ROOT = "/pyvswitch/"
VSID_MIN, VSID_MAX = 4096, 16_777_215  # Hyper-V's VirtualSubnetId: 0 (none) or 4096..2^24-1
ENCAP = "TranslationMethodEncap"  # the only rule we implement (NVGRE/VXLAN); NAT is HNV v1's other method


class RecordError(ValueError):
    """A record or key that is not well formed (the message names the field)."""


def check_vsid(vsid: int) -> int:
    if not VSID_MIN <= vsid <= VSID_MAX:
        raise RecordError(f"virtual_subnet_id: {vsid} is not in {VSID_MIN}..{VSID_MAX}")
    return vsid


def host_key(host: str) -> str:
    return f"{ROOT}hosts/{host}"


def hosts_prefix() -> str:
    return f"{ROOT}hosts/"


def subnet_prefix(vsid: int) -> str:
    return f"{ROOT}vsid/{check_vsid(vsid)}/"


def member_key(vsid: int, host: str) -> str:
    return f"{subnet_prefix(vsid)}hosts/{host}"


def record_key(vsid: int, customer_address: str) -> str:
    return f"{subnet_prefix(vsid)}records/{customer_address}"


@dataclass(frozen=True)
class HostInfo:
    name: str
    provider_address: str
    capabilities: tuple[str, ...] = ("vxlan",)

    def encode(self) -> bytes:
        return json.dumps({**asdict(self), "capabilities": list(self.capabilities)}).encode()

    @classmethod
    def decode(cls, data: bytes) -> HostInfo:
        d = json.loads(data)
        return cls(str(d["name"]), str(d["provider_address"]), tuple(d.get("capabilities", ())))


@dataclass(frozen=True)
class LookupRecord:
    """New-NetVirtualizationLookupRecord's object: CustomerAddress, VirtualSubnetID, MACAddress, ProviderAddress,
    Rule; plus which host and VM port it belongs to (None for a record an operator made)."""

    vsid: int
    customer_address: str
    customer_mac: str
    provider_address: str
    host: str | None = None
    vm: str | None = None
    port: str | None = None
    rule: str = ENCAP

    def __post_init__(self) -> None:
        check_vsid(self.vsid)
        try:
            ipaddress.ip_address(self.customer_address)
        except ValueError:
            raise RecordError(f"customer_address: {self.customer_address!r} is not an IP address") from None
        try:
            ipaddress.ip_address(self.provider_address)
        except ValueError:
            raise RecordError(f"provider_address: {self.provider_address!r} is not an IP address") from None
        try:
            object.__setattr__(self, "customer_mac", format_mac(parse_mac(self.customer_mac)))
        except ValueError:
            raise RecordError(f"customer_mac: {self.customer_mac!r} is not a MAC address") from None
        if self.rule != ENCAP:
            raise RecordError(f"rule: only {ENCAP} is supported, not {self.rule!r}")

    @property
    def key(self) -> str:
        return record_key(self.vsid, self.customer_address)

    def encode(self) -> bytes:
        return json.dumps(asdict(self), sort_keys=True).encode()

    @classmethod
    def decode(cls, data: bytes) -> LookupRecord:
        d = json.loads(data)
        return cls(**{k: d[k] for k in cls.__dataclass_fields__ if k in d})


def parse_subnet_key(key: str) -> tuple[int, str, str] | None:
    """``/pyvswitch/vsid/<vsid>/<kind>/<name>`` -> (vsid, kind, name); None for anything else."""
    if not key.startswith(f"{ROOT}vsid/"):
        return None
    parts = key[len(ROOT) :].split("/")
    if len(parts) != 4 or not parts[1].isdigit() or parts[2] not in ("hosts", "records"):
        return None
    return int(parts[1]), parts[2], parts[3]
