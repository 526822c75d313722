"""Host QoS policies (New-NetQosPolicy) compiled into a per-frame classifier.

``PolicyClassifier(host.qos_policies).match(frame)`` names the policy whose actions apply to an untagged Ethernet
frame the management OS sends (host vNICs, team interfaces), or None. The rules:

- **Templates** (each used alone, ``hyperv-networking.md`` §5.4): SMB = TCP 445, iSCSI = TCP 3260,
  NFS = TCP or UDP 2049, LiveMigration = TCP 6600, Cluster = TCP or UDP 3343, FCOE = EtherType 0x8906,
  Default = every frame no other policy matches.
- **Which port a template matches**: the frame's destination port *or* its source port. The template names a
  server's well-known port; requests go to it and replies come from it, and both belong to the application
  (an SMB server's reads leave from 445), as with Windows' templates. Explicit ``ip_src_port``/``ip_dst_port`` and
  their ranges test only that port; ``ip_port`` tests either. Ranges are inclusive.
- **Conditions combine with AND.** ``ip_protocol`` TCP or UDP requires that protocol; Both means TCP or UDP when the
  policy has a port condition, and any IP protocol when it tests only prefixes. A prefix matches only frames of its
  IP version. Port conditions match TCP and UDP only (other protocols have no ports here), and never a non-first
  fragment or a header cut short; such a frame can still match a prefix-only policy.
- **When several match**: the highest ``precedence`` wins; at equal precedence the more specific one (more
  conditions, then more prefix bits in total), then the first defined. A template counts as the conditions it
  stands for: TCP templates 2 (protocol and port), TCP-or-UDP templates and FCOE 1. Default policies apply only to
  frames no other policy matches, whatever their precedence; among several, the same order decides.

Speed: each policy is compiled once into plain integers and sets, and the policies are sorted into that order so
the first match wins. Results are memoized per flow key (EtherType, addresses, protocol, ports; fields no policy
tests are left out of the key) in a bounded dict with first-in-first-out eviction, so the per-packet cost of a
known flow is one key extraction and one dict lookup.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

from pyvswitch.config.schema import IpProtocolMatch, QosPolicyConfig, QosTemplate
from pyvswitch.packet.classify import l3_start, l4_header
from pyvswitch.packet.frame import ETH_P_8021AD, ETH_P_8021Q, ETH_P_IPV4, ETH_P_IPV6, Buffer

IPPROTO_TCP = 6
IPPROTO_UDP = 17
ETH_P_FCOE = 0x8906
DEFAULT_CACHE_SIZE = 4096

_TCP = frozenset({IPPROTO_TCP})
_UDP = frozenset({IPPROTO_UDP})
_TCP_UDP = frozenset({IPPROTO_TCP, IPPROTO_UDP})

# Template -> (protocols, either-direction port); FCOE and Default are handled apart.
TEMPLATE_PORTS: dict[QosTemplate, tuple[frozenset[int], int]] = {
    QosTemplate.SMB: (_TCP, 445),
    QosTemplate.ISCSI: (_TCP, 3260),
    QosTemplate.NFS: (_TCP_UDP, 2049),
    QosTemplate.LIVE_MIGRATION: (_TCP, 6600),
    QosTemplate.CLUSTER: (_TCP_UDP, 3343),
}

_SRC, _DST, _EITHER = 0, 1, 2

# A flow key: (EtherType,) for frames that are not well-formed IP; else
# (EtherType, source and destination address bytes or b"", protocol or -1, source port or -1, destination port or -1).
FlowKey = tuple[int] | tuple[int, bytes, int, int, int]


class _Prefix:
    __slots__ = ("bits", "mask", "net", "version")

    def __init__(self, text: str) -> None:
        network = ipaddress.ip_network(text, strict=False)
        self.version = network.version
        self.bits = network.prefixlen
        self.net = int(network.network_address)
        self.mask = int(network.netmask)


class _Compiled:
    """One policy as integers: what it tests, and its rank (precedence, specificity, definition order)."""

    __slots__ = (
        "dst",
        "ethertype",
        "is_default",
        "needs_addrs",
        "needs_ports",
        "needs_proto",
        "policy",
        "ports",
        "protos",
        "rank",
        "src",
    )

    def __init__(self, policy: QosPolicyConfig, index: int) -> None:
        self.policy = policy
        self.is_default = policy.template is QosTemplate.DEFAULT
        self.ethertype: int | None = None
        self.protos: frozenset[int] | None = None  # None: any IP protocol
        self.src: _Prefix | None = None
        self.dst: _Prefix | None = None
        self.ports: list[tuple[int, int, int]] = []  # (which, low, high)
        conditions = 0
        t = policy.template
        if t is QosTemplate.FCOE:
            self.ethertype = ETH_P_FCOE
            conditions = 1
        elif t is not None and t is not QosTemplate.DEFAULT:
            self.protos, port = TEMPLATE_PORTS[t]
            self.ports.append((_EITHER, port, port))
            conditions = 2 if len(self.protos) == 1 else 1
        elif t is None:
            if policy.ip_src_prefix is not None:
                self.src = _Prefix(policy.ip_src_prefix)
            if policy.ip_dst_prefix is not None:
                self.dst = _Prefix(policy.ip_dst_prefix)
            for which, lo, hi in (
                (_SRC, policy.ip_src_port, policy.ip_src_port),
                (_DST, policy.ip_dst_port, policy.ip_dst_port),
                (_EITHER, policy.ip_port, policy.ip_port),
                (_SRC, policy.ip_src_port_start, policy.ip_src_port_end),
                (_DST, policy.ip_dst_port_start, policy.ip_dst_port_end),
            ):
                if lo is not None:
                    self.ports.append((which, lo, hi if hi is not None else lo))
            conditions = len(self.ports) + (self.src is not None) + (self.dst is not None)
            if policy.ip_protocol is IpProtocolMatch.TCP:
                self.protos, conditions = _TCP, conditions + 1
            elif policy.ip_protocol is IpProtocolMatch.UDP:
                self.protos, conditions = _UDP, conditions + 1
            elif self.ports:
                self.protos = _TCP_UDP
        bits = (self.src.bits if self.src else 0) + (self.dst.bits if self.dst else 0)
        self.needs_addrs = self.src is not None or self.dst is not None
        self.needs_ports = bool(self.ports)
        self.needs_proto = self.protos is not None
        # Sorted ascending: the best policy first.
        self.rank = (-policy.precedence, -conditions, -bits, index)

    def matches(self, key: FlowKey) -> bool:
        if self.ethertype is not None:
            return key[0] == self.ethertype
        if len(key) == 1:
            return False  # every other condition needs IP
        _, addrs, proto, sport, dport = key
        if self.protos is not None and proto not in self.protos:
            return False
        if self.src is not None or self.dst is not None:
            version = 4 if key[0] == ETH_P_IPV4 else 6
            half = len(addrs) // 2
            for prefix, raw in ((self.src, addrs[:half]), (self.dst, addrs[half:])):
                if prefix is not None and (
                    prefix.version != version or int.from_bytes(raw, "big") & prefix.mask != prefix.net
                ):
                    return False
        for which, lo, hi in self.ports:
            if sport < 0:
                return False
            if which == _SRC:
                ok = lo <= sport <= hi
            elif which == _DST:
                ok = lo <= dport <= hi
            else:
                ok = lo <= sport <= hi or lo <= dport <= hi
            if not ok:
                return False
        return True


class PolicyClassifier:
    """The winning QoS policy for each frame (module docstring: the rules). Build a new one when policies change."""

    def __init__(self, policies: Sequence[QosPolicyConfig], *, cache_size: int = DEFAULT_CACHE_SIZE) -> None:
        if cache_size < 1:
            raise ValueError(f"cache_size must be >= 1, not {cache_size}")
        self.policies: tuple[QosPolicyConfig, ...] = tuple(policies)
        compiled = sorted((_Compiled(p, i) for i, p in enumerate(self.policies)), key=lambda c: c.rank)
        self._specific = [c for c in compiled if not c.is_default]
        defaults = [c for c in compiled if c.is_default]
        self._default = defaults[0].policy if defaults else None
        self._needs_addrs = any(c.needs_addrs for c in self._specific)
        self._needs_ports = any(c.needs_ports for c in self._specific)
        self._needs_l4 = self._needs_ports or any(c.needs_proto for c in self._specific)
        self._cache: dict[FlowKey, QosPolicyConfig | None] = {}
        self._cache_size = cache_size

    def match(self, data: Buffer) -> QosPolicyConfig | None:
        """The policy whose actions apply to the untagged Ethernet frame ``data``, or None. Never raises."""
        if not self._specific:
            return self._default
        key = self.flow_key(data)
        try:
            return self._cache[key]
        except KeyError:
            pass
        result = self._default
        for c in self._specific:
            if c.matches(key):
                result = c.policy
                break
        cache = self._cache
        if len(cache) >= self._cache_size:
            del cache[next(iter(cache))]
        cache[key] = result
        return result

    def flow_key(self, data: Buffer) -> FlowKey:
        """What the policies can tell frames apart by (fields no policy tests are left out)."""
        n = len(data)
        if n < 14:
            return (-1,)
        etype = (data[12] << 8) | data[13]
        off = 14
        if etype in (ETH_P_8021Q, ETH_P_8021AD):
            etype, off = l3_start(data)
        proto = sport = dport = -1
        p = -1
        if etype == ETH_P_IPV4:
            if n < off + 20:
                return (etype,)
            b0 = data[off]
            ihl = (b0 & 0x0F) * 4
            if b0 >> 4 != 4 or ihl < 20 or n < off + ihl:
                return (etype,)
            addrs = bytes(data[off + 12 : off + 20]) if self._needs_addrs else b""
            if self._needs_l4 and not (data[off + 6] & 0x1F or data[off + 7]):  # a non-first fragment: no L4
                proto, p = data[off + 9], off + ihl  # what l4_header would say, without the call
        elif etype == ETH_P_IPV6:
            if n < off + 40 or data[off] >> 4 != 6:
                return (etype,)
            addrs = bytes(data[off + 8 : off + 40]) if self._needs_addrs else b""
            if self._needs_l4:
                l4 = l4_header(data)  # the extension-header walk
                if l4 is not None:
                    proto, p = l4[1], l4[2]
        else:
            return (etype,)
        if self._needs_ports and proto in (IPPROTO_TCP, IPPROTO_UDP) and n >= p + 4:
            sport = (data[p] << 8) | data[p + 1]
            dport = (data[p + 2] << 8) | data[p + 3]
        return (etype, addrs, proto, sport, dport)

    def clear_cache(self) -> None:
        self._cache.clear()

    @property
    def cache_len(self) -> int:
        return len(self._cache)
