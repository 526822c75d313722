"""The desired-state schema: switches, ports (VM NICs, host vNICs, bound interfaces, TAPs) and VMs.

Names and defaults follow Hyper-V (hyperv-networking.md §1, §6). Every model is strict about unknown
fields so that a typo is an error that names the field, not a silently ignored setting. Cross-object
rules (a port's switch exists, names are unique) live in ``config.validate``.
"""

from __future__ import annotations

import ipaddress
import re
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator

from pyvswitch.config.model import Model
from pyvswitch.config.qos_schema import (
    DcbConfig,
    IpProtocolMatch,
    Port16,
    Priority,
    QosPolicyConfig,
    QosTemplate,
    TrafficClassAlgorithm,
    TrafficClassConfig,
)
from pyvswitch.config.vocabulary import VlanMode, format_bps, format_vlan_list, parse_vlan_list
from pyvswitch.packet.mac import format_mac, is_multicast, parse_mac

# The QoS models live in config/qos_schema.py, and the words the CLI shares in config/vocabulary.py; they are part
# of this schema, and imported from here.
__all__ = [
    "DcbConfig",
    "IpProtocolMatch",
    "Model",
    "Port16",
    "Priority",
    "QosPolicyConfig",
    "QosTemplate",
    "TrafficClassAlgorithm",
    "TrafficClassConfig",
    "VlanMode",
    "format_bps",
    "format_vlan_list",
    "parse_vlan_list",
]

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,31}$")
# Names that reach the kernel or a command line (issue 11). An interface name is at most IFNAMSIZ - 1 = 15
# bytes; ASCII letters, digits, '_', '.', '-' only, so a name is as many bytes as characters and is data
# wherever it lands (a path under /sys, an argv element, a netlink attribute). "." and ".." would name
# directories under /sys/class/net, and a leading '-' would be read as an option by ip/tc/ethtool.
IFNAME_RE = re.compile(r"[A-Za-z0-9_.][A-Za-z0-9_.-]{0,14}")
IFNAME_RULE = "1-15 ASCII letters, digits, '_', '.' or '-', not starting with '-', not '.' or '..'"
# A namespace name becomes /run/netns/<name> and an argv element of `ip netns exec`: iproute2 refuses "/",
# "." and ".." and empty names; we also keep to the interface alphabet (no newline, no shell metacharacter,
# no leading '-') and 64 bytes, ample for a VM's name yet far from NAME_MAX (255).
NETNS_MAX = 64
NETNS_RE = re.compile(rf"[A-Za-z0-9_.][A-Za-z0-9_.-]{{0,{NETNS_MAX - 1}}}")
NETNS_RULE = f"1-{NETNS_MAX} ASCII letters, digits, '_', '.' or '-', not starting with '-', not '.' or '..'"


def is_ifname(name: str) -> bool:
    """Whether ``name`` is an interface name pyvswitch will hand to the kernel (IFNAME_RULE)."""
    return IFNAME_RE.fullmatch(name) is not None and name not in (".", "..")


def is_netns_name(name: str) -> bool:
    """Whether ``name`` is a network namespace name pyvswitch will create or enter (NETNS_RULE)."""
    return NETNS_RE.fullmatch(name) is not None and name not in (".", "..")


def shown(v: str) -> str:
    """``v`` quoted for an error message, cut so that a 5 MB name does not make a 5 MB answer."""
    return repr(v) if len(v) <= 40 else repr(v[:40]) + f"... ({len(v)} characters)"


def check_ifname(v: str | None, what: str = "an interface name") -> str | None:
    """A field validator's body: ``v`` unchanged, or ValueError saying the rule."""
    if v is not None and not is_ifname(v):
        raise ValueError(f"{shown(v)} is not {what} ({IFNAME_RULE})")
    return v


def check_netns(v: str | None) -> str | None:
    if v is not None and not is_netns_name(v):
        raise ValueError(f"{shown(v)} is not a namespace name ({NETNS_RULE})")
    return v


VlanId = Annotated[int, Field(ge=1, le=4094)]
# A switch's notes (Set-VMSwitch -Notes), in UTF-8 bytes (issue 11: 5 MB were accepted, stored and sent back with
# every GET). Rows stored before the limit existed still load (the store validates with context "stored").
NOTES_MAX_BYTES = 4096


def check_notes(v: str, info: ValidationInfo) -> str:
    """``v`` if it fits in NOTES_MAX_BYTES, or it comes from the store; ValueError otherwise."""
    size = len(v.encode("utf-8", "surrogatepass"))
    if size > NOTES_MAX_BYTES and not (isinstance(info.context, dict) and info.context.get("stored")):
        raise ValueError(f"notes are at most {NOTES_MAX_BYTES} bytes (UTF-8), not {size}")
    return v


class SwitchType(StrEnum):
    EXTERNAL = "External"
    INTERNAL = "Internal"
    PRIVATE = "Private"


class PortKind(StrEnum):
    VM = "vm"  # a VM's network adapter: veth whose peer is eth<N> in the VM's namespace
    HOST = "host"  # a management-OS vNIC: veth whose peer stays in the daemon's namespace
    INTERFACE = "interface"  # an existing interface bound as a port (a NIC, a veth end, QEMU's tap)
    TAP = "tap"  # a TAP device the switch owns (/dev/net/tun); the kernel side is the attached "NIC"
    UPLINK = "uplink"  # the external switch's adapter (NetAdapterName)
    # A VXLAN tunnel to the other hosts of the switch's virtual subnets (cluster mode, issue 13): made by the
    # daemon in what the engine runs (``interface`` is the provider address), never configured.
    TUNNEL = "tunnel"


class VlanConfig(Model):
    """Set-VMNetworkAdapterVlan: modes are mutually exclusive; each mode requires exactly its fields."""

    mode: VlanMode = VlanMode.UNTAGGED
    access_vlan_id: VlanId | None = None
    native_vlan_id: Annotated[int, Field(ge=0, le=4094)] | None = None  # 0 = untagged frames dropped
    allowed_vlan_ids: list[VlanId] = []
    primary_vlan_id: VlanId | None = None
    secondary_vlan_id: VlanId | None = None  # isolated / community
    secondary_vlan_ids: list[VlanId] = []  # promiscuous

    @field_validator("allowed_vlan_ids", "secondary_vlan_ids", mode="before")
    @classmethod
    def _lists(cls, v: object) -> object:
        if isinstance(v, str):
            return parse_vlan_list(v)
        return v

    @model_validator(mode="after")
    def _fields_match_mode(self) -> VlanConfig:
        need: dict[VlanMode, set[str]] = {
            VlanMode.UNTAGGED: set(),
            VlanMode.ACCESS: {"access_vlan_id"},
            VlanMode.TRUNK: {"allowed_vlan_ids", "native_vlan_id"},
            VlanMode.ISOLATED: {"primary_vlan_id", "secondary_vlan_id"},
            VlanMode.COMMUNITY: {"primary_vlan_id", "secondary_vlan_id"},
            VlanMode.PROMISCUOUS: {"primary_vlan_id", "secondary_vlan_ids"},
        }
        fields = [
            "access_vlan_id",
            "native_vlan_id",
            "allowed_vlan_ids",
            "primary_vlan_id",
            "secondary_vlan_id",
            "secondary_vlan_ids",
        ]
        given = {f for f in fields if getattr(self, f) not in (None, [])}
        missing = need[self.mode] - given
        extra = given - need[self.mode]
        if missing:
            raise ValueError(f"mode {self.mode.value} requires {', '.join(sorted(missing))}")
        if extra:
            raise ValueError(f"mode {self.mode.value} does not take {', '.join(sorted(extra))}")
        if (
            self.mode in (VlanMode.ISOLATED, VlanMode.COMMUNITY)
            and self.primary_vlan_id == self.secondary_vlan_id
        ):
            raise ValueError("secondary_vlan_id must differ from primary_vlan_id")
        return self


def _check_name(v: str) -> str:
    if not NAME_RE.match(v):
        raise ValueError("must be 1-32 characters of letters, digits, '_', '.', '-', starting alphanumeric")
    return v


def _check_mac(v: str | None) -> str | None:
    if v is None:
        return None
    mac = parse_mac(v)
    if is_multicast(mac) or mac == 0:
        raise ValueError("a port MAC must be a non-zero unicast address")
    return format_mac(mac)


class ExtensionSetting(Model):
    """One installed extension on one switch (Enable/Disable-VMSwitchExtension); list order = stack order
    within its kind (Set-VMSwitch -Extensions)."""

    name: str
    enabled: bool = True
    # The extension's own settings (its settings_model, ext/api.py), validated by the daemon against it.
    settings: dict[str, Any] = {}


class MinimumBandwidthMode(StrEnum):
    """New-VMSwitch -MinimumBandwidthMode. Default = Weight (None on a bypass-enabled switch, issue 6)."""

    DEFAULT = "Default"
    WEIGHT = "Weight"
    ABSOLUTE = "Absolute"
    NONE = "None"


def round_bits(v: int) -> int:
    """Hyper-V rounds bandwidth values (bit/s) to the nearest multiple of 8."""
    return (v + 4) // 8 * 8


BitsPerSecond = Annotated[int, Field(ge=0, le=10**13)]


class SwitchConfig(Model):
    """New-VMSwitch. External when ``net_adapter`` is set (Hyper-V: NetAdapterName implies External)."""

    name: str
    type: SwitchType = SwitchType.PRIVATE
    net_adapter: str | None = None
    allow_management_os: bool = True
    # Hyper-V drops unknown unicast towards VM ports and sends it to the uplink only (SW-07);
    # True floods it to every port of the VLAN, like a plain learning bridge.
    flood_unknown_unicast: bool = False
    mac_aging_s: Annotated[float, Field(ge=1, le=86400)] = 300.0
    mac_table_size: Annotated[int, Field(ge=1, le=1_000_000)] = 8192
    notes: str = ""
    # Extensions named here get this order and state; installed ones not named keep their default
    # (disabled, except built-ins such as the firewall), after the named ones.
    extensions: list[ExtensionSetting] = []
    # QoS (hyperv-networking.md §5.2): fixed at creation (New-VMSwitch -MinimumBandwidthMode).
    minimum_bandwidth_mode: MinimumBandwidthMode = MinimumBandwidthMode.DEFAULT
    # The default flow: every port without a minimum of its own shares it (Set-VMSwitch -DefaultFlow...).
    default_flow_minimum_bandwidth_weight: Annotated[int, Field(ge=0, le=100)] = 1
    # SR-IOV (hyperv-networking.md §4.2): fixed at creation (New-VMSwitch -EnableIov). Its ports with an
    # IovWeight get a VF (a kernel fast path that skips the switch) while the uplink has one free.
    enable_iov: bool = False
    # bit/s, rounded down to a multiple of 8 (Hyper-V: 1234567 -> 1234560); None = 10 % of the uplink's
    # capacity (Absolute mode)
    default_flow_minimum_bandwidth_absolute: BitsPerSecond | None = None

    _n = field_validator("name")(classmethod(lambda cls, v: _check_name(v)))
    _notes = field_validator("notes")(classmethod(lambda cls, v, info: check_notes(v, info)))

    @field_validator("default_flow_minimum_bandwidth_absolute")
    @classmethod
    def _round_down8(cls, v: int | None) -> int | None:
        return None if v is None else v // 8 * 8

    @field_validator("net_adapter")
    @classmethod
    def _ifname(cls, v: str | None) -> str | None:
        return check_ifname(v)

    @property
    def bandwidth_mode(self) -> MinimumBandwidthMode:
        """The minimum-bandwidth mode in force: Default is Weight, or None on an IOV switch (its VF traffic
        bypasses the scheduler, hyperv-networking.md §4.3)."""
        if self.minimum_bandwidth_mode is MinimumBandwidthMode.DEFAULT:
            return MinimumBandwidthMode.NONE if self.enable_iov else MinimumBandwidthMode.WEIGHT
        return self.minimum_bandwidth_mode

    @model_validator(mode="after")
    def _type_matches_adapter(self) -> SwitchConfig:
        if self.type is SwitchType.EXTERNAL and self.net_adapter is None:
            raise ValueError("an External switch needs net_adapter")
        if self.type is not SwitchType.EXTERNAL and self.net_adapter is not None:
            raise ValueError(f"net_adapter makes a switch External, not {self.type.value}")
        return self


class PortMirroring(StrEnum):
    """Hyper-V port mirroring (PM-01): a Source port's traffic is copied to the Destination ports of its switch."""

    NONE = "None"
    SOURCE = "Source"
    DESTINATION = "Destination"


class AclAction(StrEnum):
    ALLOW = "Allow"
    DENY = "Deny"
    METER = "Meter"


class AclDirection(StrEnum):
    INBOUND = "Inbound"
    OUTBOUND = "Outbound"
    BOTH = "Both"


def _address(v: str | None) -> str | None:
    """An IP address or prefix (v4 or v6) or ANY."""
    if v is None or v.upper() == "ANY":
        return None if v is None else "ANY"
    try:
        return str(ipaddress.ip_network(v, strict=False))
    except ValueError:
        raise ValueError(f"{v!r} is not an IP address, a prefix like 10.0.0.0/8, or ANY") from None


def _mac_or_any(v: str | None) -> str | None:
    if v is None or v.upper() == "ANY":
        return None if v is None else "ANY"
    return format_mac(parse_mac(v))


class AclEntry(Model):
    """Add-VMNetworkAdapterAcl: exactly one of the four addresses; directions and local/remote are the VM's."""

    action: AclAction
    direction: AclDirection
    local_ip: str | None = None
    remote_ip: str | None = None
    local_mac: str | None = None
    remote_mac: str | None = None

    _ip = field_validator("local_ip", "remote_ip")(classmethod(lambda cls, v: _address(v)))
    _mac = field_validator("local_mac", "remote_mac")(classmethod(lambda cls, v: _mac_or_any(v)))

    @model_validator(mode="after")
    def _one_address(self) -> AclEntry:
        given = [
            f for f in ("local_ip", "remote_ip", "local_mac", "remote_mac") if getattr(self, f) is not None
        ]
        if len(given) != 1:
            raise ValueError("give exactly one of local_ip, remote_ip, local_mac, remote_mac")
        if self.action is AclAction.METER and given[0].endswith("mac"):
            raise ValueError("Meter entries must be IP-based")
        return self


class ExtendedAclEntry(Model):
    """Add-VMNetworkAdapterExtendedAcl: a weighted 5-tuple rule; highest weight first, first match decides."""

    action: Literal[AclAction.ALLOW, AclAction.DENY]
    direction: Literal[AclDirection.INBOUND, AclDirection.OUTBOUND]
    weight: Annotated[int, Field(ge=1, le=2**31 - 1)]
    local_ip: str | None = None
    remote_ip: str | None = None
    local_port: str | None = None
    remote_port: str | None = None
    protocol: str | None = None  # TCP, UDP, ICMP or an IP protocol number
    stateful: bool = False
    idle_session_timeout_s: Annotated[int, Field(ge=1, le=86400 * 7)] = 3600
    isolation_id: VlanId | None = None

    _ip = field_validator("local_ip", "remote_ip")(classmethod(lambda cls, v: _address(v)))

    @field_validator("local_port", "remote_port")
    @classmethod
    def _ports(cls, v: str | None) -> str | None:
        if v is None or v.upper() == "ANY":
            return None
        lo, _, hi = v.partition("-")
        try:
            a, b = int(lo), int(hi or lo)
        except ValueError:
            raise ValueError(f"{v!r} is not a port or a range like 49152-49182") from None
        if not 0 <= a <= b <= 65535:
            raise ValueError(f"{v!r}: ports are 0-65535, low-high")
        return f"{a}-{b}" if a != b else str(a)

    @field_validator("protocol")
    @classmethod
    def _protocol(cls, v: str | None) -> str | None:
        if v is None or v.upper() == "ANY":
            return None
        named = {"TCP": "6", "UDP": "17", "ICMP": "1", "ICMPV6": "58"}
        num = named.get(v.upper(), v)
        if not num.isdigit() or not 0 <= int(num) <= 255:
            raise ValueError(f"{v!r} is not TCP, UDP, ICMP or an IP protocol number 0-255")
        return num

    @model_validator(mode="after")
    def _stateful_allow(self) -> ExtendedAclEntry:
        if self.stateful and self.action is not AclAction.ALLOW:
            raise ValueError("only Allow entries can be stateful")
        return self


class PortConfig(Model):
    """A port: a VM network adapter, a host vNIC, a bound interface or a TAP.

    ``interface`` is the OS device the switch opens (a veth end, a NIC, a TAP name). For VM and host
    ports the daemon creates it and fills it in; for interface/tap ports the user names it.
    """

    name: str
    kind: PortKind
    switch: str | None = None  # None: not connected (Disconnect-VMNetworkAdapter)
    interface: str | None = None
    # The other end of the daemon-made veth: eth<N> inside the VM's namespace (kind vm) or the
    # management-OS vNIC (kind host). Filled in by the daemon and stored so restarts keep the names.
    peer_interface: str | None = None
    vm: str | None = None  # owning VM for kind=vm
    mac: str | None = None  # static MAC; None = dynamic (assigned from the pool, then recorded)
    ip: list[str] = []  # addresses configured inside the VM / on the host vNIC (CIDR)
    vlan: VlanConfig = VlanConfig()
    # Port security (Set-VMNetworkAdapter, hyperv-networking.md §1.6), Hyper-V's defaults: everything off.
    # Where each applies is switch/security.py's docstring.
    mac_spoofing: bool = False  # False: a VM/host port may send only with its own MAC
    dhcp_guard: bool = False  # drop DHCP server messages from the port
    router_guard: bool = False  # drop router advertisements and redirects from the port
    allow_teaming: bool = False  # guest teaming: may send with the MACs of the VM's other teamed adapters
    # Broadcast + multicast + unknown-unicast packets/s the port may send; 0 = no limit (UInt32 in Hyper-V).
    storm_limit: Annotated[int, Field(ge=0, le=4_294_967_295)] = 0
    # Most source MACs the switch learns on this port (None = only the switch's mac_table_size bounds it), so
    # a port that may spoof (mac_spoofing on, or an uplink/TAP) cannot push other ports' MACs out of the
    # table. Sources beyond it are not learned; their frames are still forwarded (switch/fdb.py).
    mac_limit: Annotated[int, Field(ge=1, le=1_000_000)] | None = None
    ieee_priority_tag: bool = False  # keep the 802.1p priority of frames from the port
    port_mirroring: PortMirroring = PortMirroring.NONE  # Set-VMNetworkAdapter -PortMirroring
    acls: list[AclEntry] = []  # Add-VMNetworkAdapterAcl (enforced by the switch)
    extended_acls: list[ExtendedAclEntry] = []  # Add-VMNetworkAdapterExtendedAcl (the firewall extension)
    # Bandwidth the port may *send* (Set-VMNetworkAdapter, hyperv-networking.md §5.2), bit/s rounded to 8.
    maximum_bandwidth: BitsPerSecond = 0  # a ceiling at any time; 0 = none
    minimum_bandwidth_weight: Annotated[int, Field(ge=0, le=100)] = 0  # Weight-mode switch; 0 = default flow
    minimum_bandwidth_absolute: BitsPerSecond = 0  # Absolute-mode switch; 0 = default flow
    # Set-VMNetworkAdapter -IovWeight: 0 = software path only; > 0 requests a VF on an IOV switch, the value
    # being the port's claim when VFs are scarce (hyperv-networking.md §4.2).
    iov_weight: Annotated[int, Field(ge=0, le=100)] = 0
    # The line rate of the interface behind an uplink or interface port (a NIC's speed): its egress scheduler
    # sends no faster, so contention happens where it would on a real NIC even on veth. 0 = unbounded.
    link_speed: BitsPerSecond = 0
    # Set-VMNetworkAdapter -VirtualSubnetId (HNV, issue 13): 0 = none, else 4096..16777215. In cluster mode the
    # port's addresses become lookup records of that virtual subnet, shared with every host that has it.
    virtual_subnet_id: Annotated[int, Field(ge=0, le=16_777_215)] = 0

    @field_validator("virtual_subnet_id")
    @classmethod
    def _vsid(cls, v: int) -> int:
        if 0 < v < 4096:
            raise ValueError("a virtual subnet id is 0 (none) or 4096..16777215")
        return v

    @field_validator("maximum_bandwidth", "minimum_bandwidth_absolute")
    @classmethod
    def _round8(cls, v: int) -> int:
        return round_bits(v)

    _n = field_validator("name")(classmethod(lambda cls, v: _check_name(v)))
    _m = field_validator("mac")(classmethod(lambda cls, v: _check_mac(v)))

    @field_validator("interface", "peer_interface")
    @classmethod
    def _ifname(cls, v: str | None) -> str | None:
        return check_ifname(v)

    @field_validator("ip")
    @classmethod
    def _ips(cls, v: list[str]) -> list[str]:
        import ipaddress

        for a in v:
            ipaddress.ip_interface(a)
        return v

    @model_validator(mode="after")
    def _kind_rules(self) -> PortConfig:
        if self.kind is PortKind.VM and not self.vm:
            raise ValueError("a vm port needs vm")
        if self.kind is not PortKind.VM and self.vm:
            raise ValueError("only a vm port has vm")
        if self.kind in (PortKind.INTERFACE, PortKind.TAP, PortKind.UPLINK) and not self.interface:
            raise ValueError(f"a {self.kind.value} port needs interface")
        return self


class VmKind(StrEnum):
    NAMESPACE = "namespace"  # a network namespace; its adapters are veth pairs (eth<N> inside)
    QEMU = "qemu"  # a QEMU guest (guest/); its adapters are virtio-net NICs on TAPs the daemon makes


class VmConfig(Model):
    """A VM: a network namespace, or a QEMU guest, whose adapters are ports of kind vm."""

    name: str
    kind: VmKind = VmKind.NAMESPACE
    netns: str | None = None  # a namespace VM's; defaults to the VM name
    # A QEMU guest's memory (MiB) and virtual CPUs; ignored for a namespace VM.
    memory_mb: Annotated[int, Field(ge=64, le=65536)] = 256
    cpus: Annotated[int, Field(ge=1, le=64)] = 1

    @model_validator(mode="after")
    def _kind_rules(self) -> VmConfig:
        if self.kind is VmKind.QEMU and self.netns is not None:
            raise ValueError("a qemu VM has no namespace (netns is for kind namespace)")
        return self

    _n = field_validator("name")(classmethod(lambda cls, v: _check_name(v)))

    @field_validator("netns")
    @classmethod
    def _netns(cls, v: str | None) -> str | None:
        # The VM's name (the default) already fits: NAME_RE is a subset of NETNS_RE.
        return check_netns(v)

    @property
    def namespace(self) -> str:
        return self.netns or self.name


class TeamingMode(StrEnum):
    SWITCH_INDEPENDENT = "SwitchIndependent"
    STATIC = "Static"
    LACP = "Lacp"


class LoadBalancing(StrEnum):
    TRANSPORT_PORTS = "TransportPorts"
    IP_ADDRESSES = "IPAddresses"
    MAC_ADDRESSES = "MacAddresses"
    HYPERV_PORT = "HyperVPort"
    DYNAMIC = "Dynamic"


class LacpTimer(StrEnum):
    FAST = "Fast"
    SLOW = "Slow"


class TeamNicConfig(Model):
    """Add-NetLbfoTeamNic: a VLAN team interface, a host interface that sees the team's frames of one VLAN
    (untagged towards the host). VLAN 0 takes untagged and priority-tagged frames (hyperv-networking §3.6)."""

    name: str
    vlan_id: Annotated[int, Field(ge=0, le=4094)]

    @field_validator("name")
    @classmethod
    def _nic_name(cls, v: str) -> str:
        check_ifname(v, "a team interface name")
        return v


class TeamConfig(Model):
    """New-NetLbfoTeam: 1-32 Ethernet members used as one adapter (an External switch's NetAdapterName)."""

    name: str
    members: Annotated[list[str], Field(min_length=1, max_length=32)]
    teaming_mode: TeamingMode = TeamingMode.SWITCH_INDEPENDENT
    load_balancing: LoadBalancing = LoadBalancing.DYNAMIC
    lacp_timer: LacpTimer = LacpTimer.SLOW
    standby_member: str | None = None
    # Link monitoring: a carrier change counts only once it has lasted this long (flapping links; 0 = at once).
    up_delay_ms: Annotated[int, Field(ge=0, le=600_000)] = 0
    down_delay_ms: Annotated[int, Field(ge=0, le=600_000)] = 0
    # Lacp mode: when no member has an LACP partner, carry traffic as SwitchIndependent instead of nothing
    # (OVS's lacp-fallback-ab). Off by default, as in 802.1AX and Windows.
    lacp_fallback: bool = False
    # The primary team interface (created with the team; TeamNicName). None = Default mode: every VLAN no
    # other team interface claims. Only meaningful while no switch uses the team.
    primary_nic_vlan: Annotated[int | None, Field(ge=0, le=4094)] = None
    # Each member's line rate (bit/s, 0 = unbounded): the team's capacity is the sum over active members.
    member_link_speed: BitsPerSecond = 0
    team_nics: Annotated[list[TeamNicConfig], Field(max_length=31)] = []

    @field_validator("name")
    @classmethod
    def _team_name(cls, v: str) -> str:
        check_ifname(v, "a team name (a team is used like an interface)")
        return v

    @field_validator("members")
    @classmethod
    def _members(cls, v: list[str]) -> list[str]:
        bad = [m for m in v if not is_ifname(m)]
        if bad:
            raise ValueError(f"not interface names ({IFNAME_RULE}): {', '.join(map(shown, bad))}")
        if len(set(v)) != len(v):
            raise ValueError("a member is listed twice")
        return v

    @model_validator(mode="after")
    def _standby_is_member(self) -> TeamConfig:
        if self.standby_member is not None and self.standby_member not in self.members:
            raise ValueError(f"standby_member {self.standby_member!r} is not a member")
        if self.standby_member is not None and len(self.members) < 2:
            raise ValueError("a standby member needs at least one other member")
        vlans = [n.vlan_id for n in self.team_nics] + (
            [self.primary_nic_vlan] if self.primary_nic_vlan is not None else []
        )
        if len(set(vlans)) != len(vlans):
            raise ValueError("two team interfaces have the same VlanID")
        names = [n.name for n in self.team_nics]
        if len(set(names)) != len(names) or self.name in names:
            raise ValueError("two team interfaces have the same name")
        return self


class SriovAdapterConfig(Model):
    """Enable-NetAdapterSriov / Set-NetAdapterSriov -NumVFs: an uplink NIC that offers virtual functions. Here a
    VF is emulated by the kernel (tc u32 + mirred between the NIC and a VM's interface): the NIC switch."""

    name: str  # the NIC's interface name (an External switch's uplink)
    enabled: bool = True
    num_vfs: Annotated[int, Field(ge=0, le=256)] = 8

    @field_validator("name")
    @classmethod
    def _adapter(cls, v: str) -> str:
        check_ifname(v)
        return v


class HostConfig(Model):
    """Everything one pyvswitchd owns."""

    teams: list[TeamConfig] = []
    switches: list[SwitchConfig] = []
    ports: list[PortConfig] = []
    vms: list[VmConfig] = []
    qos_policies: list[QosPolicyConfig] = []  # New-NetQosPolicy
    dcb: DcbConfig = DcbConfig()
    sriov_adapters: list[SriovAdapterConfig] = []  # Enable-NetAdapterSriov
