"""What the cluster holds (issue 13), as Hyper-V Network Virtualization names it, and where in etcd.

    /pyvswitch/hosts/<host>                        a host: provider address, capabilities (under its lease)
    /pyvswitch/vsid/<vsid>/hosts/<host>            the host has ports on virtual subnet <vsid> (under its lease):
                                                   where broadcast and unknown traffic of the subnet is replicated
    /pyvswitch/vsid/<vsid>/records/<CA>            a lookup record: customer address -> customer MAC, provider
                                                   address, host (a port's: under its host's lease; one made
                                                   with New-NetVirtualizationLookupRecord: no lease)
    /pyvswitch/routes/<RDID>/<vsid>/<prefix>       a customer route (New-NetVirtualizationCustomerRoute): in
                                                   routing domain RDID, ``prefix`` is reached on subnet <vsid>
                                                   (on-link, or through a next hop there); no lease

One prefix per virtual subnet, so a host watches only the subnets it has ports on (HNV's "the policy a host
needs", not the whole cluster's), and a subnet's records and hosts arrive in one ordered stream; plus the subnets
its subnets route to (same routing domain). Customer routes are few (a handful per virtual subnet, written by
operators, not per VM), so every host watches all of them in one stream: that is what tells it which routing
domain its subnets belong to and which other subnets it must watch to route.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import uuid
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


def routes_prefix() -> str:
    return f"{ROOT}routes/"


def check_rdid(rdid: str) -> str:
    """A routing domain id as Windows writes it: a GUID in braces, upper case ("{11111111-2222-...}")."""
    try:
        return "{" + str(uuid.UUID(rdid.strip().strip("{}"))).upper() + "}"
    except ValueError:
        raise RecordError(f"routing_domain_id: {rdid!r} is not a GUID") from None


def router_mac(rdid: str) -> int:
    """The MAC of a routing domain's distributed router (the VMs' default gateway): derived from the RDID, so
    every host answers with the same one and a migrated VM's ARP entry stays right. Locally administered."""
    digest = hashlib.sha256(check_rdid(rdid).encode()).digest()
    return (0x02 << 40) | int.from_bytes(digest[:5], "big")


@dataclass(frozen=True)
class CustomerRoute:
    """New-NetVirtualizationCustomerRoute's object: in routing domain ``rdid``, ``destination_prefix`` is reached
    on virtual subnet ``vsid``: on-link (``next_hop`` 0.0.0.0: the addresses' own lookup records) or through
    ``next_hop``, a customer address on that subnet (a gateway VM). ``metric``: the lower wins among routes of
    the same prefix length."""

    rdid: str
    vsid: int
    destination_prefix: str
    next_hop: str = "0.0.0.0"
    metric: int = 256

    def __post_init__(self) -> None:
        object.__setattr__(self, "rdid", check_rdid(self.rdid))
        check_vsid(self.vsid)
        try:
            net = ipaddress.ip_network(self.destination_prefix, strict=False)
        except ValueError:
            raise RecordError(
                f"destination_prefix: {self.destination_prefix!r} is not an IP prefix"
            ) from None
        if net.version != 4:
            raise RecordError(f"destination_prefix: {self.destination_prefix!r}: only IPv4 is routed")
        object.__setattr__(self, "destination_prefix", str(net))
        try:
            hop = ipaddress.ip_address(self.next_hop)
        except ValueError:
            raise RecordError(f"next_hop: {self.next_hop!r} is not an IP address") from None
        if hop.version != 4:
            raise RecordError(f"next_hop: {self.next_hop!r}: only IPv4 is routed")
        if not 0 <= self.metric <= 0xFFFFFFFF:
            raise RecordError(f"metric: {self.metric} is not a UInt32")

    @property
    def on_link(self) -> bool:
        return self.next_hop == "0.0.0.0"

    @property
    def gateway_address(self) -> str | None:
        """The distributed router's address on an on-link prefix: its first host address (.1 of a /24), the
        default gateway HNV gives a virtual subnet; None for a next-hop route or a prefix too small for one."""
        net = ipaddress.ip_network(self.destination_prefix)
        if not self.on_link or net.prefixlen > 30:
            return None
        return str(net.network_address + 1)

    @property
    def key(self) -> str:
        return route_key(self.rdid, self.vsid, self.destination_prefix)

    def encode(self) -> bytes:
        return json.dumps(asdict(self), sort_keys=True).encode()

    @classmethod
    def decode(cls, data: bytes) -> CustomerRoute:
        d = json.loads(data)
        return cls(**{k: d[k] for k in cls.__dataclass_fields__ if k in d})


def route_key(rdid: str, vsid: int, prefix: str) -> str:
    return f"{routes_prefix()}{check_rdid(rdid)}/{check_vsid(vsid)}/{prefix.replace('/', '_')}"


def parse_subnet_key(key: str) -> tuple[int, str, str] | None:
    """``/pyvswitch/vsid/<vsid>/<kind>/<name>`` -> (vsid, kind, name); None for anything else."""
    if not key.startswith(f"{ROOT}vsid/"):
        return None
    parts = key[len(ROOT) :].split("/")
    if len(parts) != 4 or not parts[1].isdigit() or parts[2] not in ("hosts", "records"):
        return None
    return int(parts[1]), parts[2], parts[3]
