"""Port ACLs as the switch's built-in policy (AC-01..03): compiled per port, one table per direction.

Outbound (frames the port sends) are checked before forwarding, inbound (frames delivered to the port) after,
as Hyper-V orders its built-in policies (hyperv-networking.md §1.9). The matching is ``PortAclTable`` below.
A port without entries has no element at all.

A table answers per packet with an exact-match cache in front, so a flow costs a few dict lookups however many
entries there are; a miss costs one lookup per distinct prefix length and is then cached. The cache is dropped
whenever the entries change (a new table is compiled) and is bounded.

Choices where Hyper-V's documentation leaves room (docs/architecture.md §10):
- A MAC entry counts as specific as a host IP entry (/32 or /128); ANY as /0. Among equally specific matching
  entries, Deny wins over Allow.
- Frames that are not IP (ARP, LLDP...) are judged by MAC entries only; IP entries do not apply to them, so
  ``RemoteIPAddress ANY Deny`` does not stop ARP.
- No matching entry: allowed (a port without ACLs allows everything).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from pyvswitch.config.schema import AclAction, AclDirection, AclEntry
from pyvswitch.drops import DropReason
from pyvswitch.ext.rules import CACHE_MAX, Action
from pyvswitch.observe.trace import explain
from pyvswitch.packet.frame import Packet
from pyvswitch.packet.l3l4 import L3L4, packet_l3
from pyvswitch.packet.mac import format_mac, parse_mac
from pyvswitch.pipeline.element import Element

# ------------------------------------------------------------------ the table (longest prefix match)


@dataclass(frozen=True, slots=True)
class PortAclEntry:
    """One compiled Add-VMNetworkAdapterAcl entry for one direction.

    ``kind``: "ip" or "mac"; ``local``: applies to the local (True) or remote address; for IP, ``version`` 4/6
    (0 = ANY: both families) and ``prefix``/``plen``; for MAC, ``mac`` (None = ANY).
    """

    action: Action
    kind: str
    local: bool
    version: int = 0
    prefix: int = 0
    plen: int = 0
    mac: int | None = None


def ip_entry(action: Action, address: str, local: bool) -> list[PortAclEntry]:
    """Entries for an IP address/prefix or ANY (= 0.0.0.0/0 and ::/0)."""
    if address.upper() == "ANY":
        return [PortAclEntry(action, "ip", local, 4, 0, 0), PortAclEntry(action, "ip", local, 6, 0, 0)]
    net = ipaddress.ip_network(address, strict=False)
    return [PortAclEntry(action, "ip", local, net.version, int(net.network_address), net.prefixlen)]


def mac_entry(action: Action, mac: int | None, local: bool) -> PortAclEntry:
    return PortAclEntry(action, "mac", local, mac=mac)


@dataclass(slots=True)
class Meter:
    packets: int = 0
    bytes: int = 0


class PortAclTable:
    """The port ACL of one direction of one port: a verdict per packet by longest prefix match."""

    def __init__(self, entries: Iterable[PortAclEntry]) -> None:
        self.entries = list(entries)
        # (version, local, plen) -> {masked prefix: action}; prefix lengths searched longest first.
        self._ip: dict[tuple[int, bool], list[tuple[int, int, dict[int, Action]]]] = {}
        self._mac: dict[tuple[bool, int | None], Action] = {}
        self.meters: dict[PortAclEntry, Meter] = {}
        self._meter_ip: list[PortAclEntry] = []
        by_len: dict[tuple[int, bool, int], dict[int, Action]] = {}
        for e in self.entries:
            if e.action is Action.METER:
                self.meters[e] = Meter()
                self._meter_ip.append(e)
                continue
            if e.kind == "mac":
                key = (e.local, e.mac)
                self._mac[key] = _stronger(self._mac.get(key), e.action)
                continue
            table = by_len.setdefault((e.version, e.local, e.plen), {})
            table[e.prefix] = _stronger(table.get(e.prefix), e.action)
        for (version, local, plen), table in by_len.items():
            bits = 32 if version == 4 else 128
            mask = ((1 << plen) - 1) << (bits - plen) if plen else 0
            self._ip.setdefault((version, local), []).append((plen, mask, table))
        for lists in self._ip.values():
            lists.sort(key=lambda t: -t[0])
        self.decides = bool(self._ip or self._mac)
        self._cache: dict[tuple[int, int, int, int, int], bool] = {}

    def allows(
        self, l3: L3L4, local_mac: int, remote_mac: int, local_ip: int, remote_ip: int, size: int
    ) -> bool:
        if self._meter_ip and l3.version:
            self._meter(l3.version, local_ip, remote_ip, size)
        if not self.decides:
            return True
        key = (l3.version, local_ip, remote_ip, local_mac, remote_mac)
        verdict = self._cache.get(key)
        if verdict is None:
            verdict = self._decide(l3.version, local_ip, remote_ip, local_mac, remote_mac)
            if len(self._cache) >= CACHE_MAX:
                self._cache.clear()
            self._cache[key] = verdict
        return verdict

    def _decide(self, version: int, local_ip: int, remote_ip: int, local_mac: int, remote_mac: int) -> bool:
        best_len = -1
        best: Action | None = None
        # MAC entries: a host MAC is as specific as a host address; ANY as /0.
        host_len = 32 if version == 4 else 128
        for (local, mac), action in self._mac.items():
            if mac is None or mac == (local_mac if local else remote_mac):
                plen = host_len if mac is not None else 0
                if plen > best_len or (plen == best_len and action is Action.DENY):
                    best_len, best = plen, action
        if version:
            for local in (True, False):
                addr = local_ip if local else remote_ip
                for plen, mask, table in self._ip.get((version, local), ()):
                    if plen < best_len:
                        break
                    found = table.get(addr & mask)
                    if found is not None:
                        if plen > best_len or found is Action.DENY:
                            best_len, best = plen, found
                        break
        return best is not Action.DENY

    def deciding(
        self, version: int, local_ip: int, remote_ip: int, local_mac: int, remote_mac: int
    ) -> PortAclEntry | None:
        """The entry ``_decide`` follows (longest match, Deny winning a tie), for a trace: a scan, never per
        packet."""
        best: tuple[int, bool] | None = None
        found: PortAclEntry | None = None
        host_len = 32 if version == 4 else 128
        for e in self.entries:
            if e.action is Action.METER:
                continue
            if e.kind == "mac":
                if e.mac is not None and e.mac != (local_mac if e.local else remote_mac):
                    continue
                plen = host_len if e.mac is not None else 0
            else:
                if e.version != version or not version:
                    continue
                bits = 32 if version == 4 else 128
                mask = ((1 << e.plen) - 1) << (bits - e.plen) if e.plen else 0
                if (local_ip if e.local else remote_ip) & mask != e.prefix:
                    continue
                plen = e.plen
            rank = (plen, e.action is Action.DENY)
            if best is None or rank > best:
                best, found = rank, e
        return found

    def _meter(self, version: int, local_ip: int, remote_ip: int, size: int) -> None:
        bits = 32 if version == 4 else 128
        for e in self._meter_ip:
            if e.version != version:
                continue
            mask = ((1 << e.plen) - 1) << (bits - e.plen) if e.plen else 0
            if (local_ip if e.local else remote_ip) & mask == e.prefix:
                m = self.meters[e]
                m.packets += 1
                m.bytes += size


def _stronger(old: Action | None, new: Action) -> Action:
    return Action.DENY if Action.DENY in (old, new) else new


class AclDrop(DropReason):
    """Why a port ACL drops a frame (``show drops``, per port and direction)."""

    ACL_DENY = "acl-deny", "the port's matching Add-VMNetworkAdapterAcl entry says Deny"


def compile_entries(entries: Sequence[AclEntry], outbound: bool) -> list[PortAclEntry]:
    """The entries of one direction (Both counts for each), as classifier entries."""
    want = AclDirection.OUTBOUND if outbound else AclDirection.INBOUND
    out: list[PortAclEntry] = []
    for e in entries:
        if e.direction not in (want, AclDirection.BOTH):
            continue
        action = Action(e.action.value)
        if e.local_ip is not None or e.remote_ip is not None:
            addr = e.local_ip if e.local_ip is not None else e.remote_ip
            assert addr is not None
            out += ip_entry(action, addr, local=e.local_ip is not None)
        else:
            mac = e.local_mac if e.local_mac is not None else e.remote_mac
            assert mac is not None
            out.append(
                mac_entry(action, None if mac == "ANY" else parse_mac(mac), local=e.local_mac is not None)
            )
    return out


class PortAcl(Element):
    """One direction of one port's ACL. Drops: acl-deny."""

    __slots__ = ("outbound", "table")

    def __init__(self, port: str, table: PortAclTable, outbound: bool) -> None:
        super().__init__(f"acl-{'out' if outbound else 'in'}:{port}")
        self.table = table
        self.outbound = outbound

    def process(self, batch: list[Packet]) -> list[Packet]:
        self.packets += len(batch)
        allows = self.table.allows
        outbound = self.outbound
        keep: list[Packet] = []
        for p in batch:
            l3 = packet_l3(p)
            if outbound:
                ok = allows(l3, p.src, p.dst, l3.src, l3.dst, len(p.data))
            else:
                ok = allows(l3, p.dst, p.src, l3.dst, l3.src, len(p.data))
            if p.trace is not None:
                explain(p, self.describe(l3, p))
            if ok:
                keep.append(p)
            else:
                self.drop(AclDrop.ACL_DENY)
                if p.flow is not None:
                    p.flow.ok = False  # inbound: one destination of several may refuse it
        return keep

    def describe(self, l3: L3L4, p: Packet) -> str:
        """The entry that decides ``p`` here, as Add-VMNetworkAdapterAcl names its fields (for a trace)."""
        if self.outbound:
            e = self.table.deciding(l3.version, l3.src, l3.dst, p.src, p.dst)
        else:
            e = self.table.deciding(l3.version, l3.dst, l3.src, p.dst, p.src)
        direction = "Outbound" if self.outbound else "Inbound"
        if e is None:
            return f"no {direction} port ACL entry matches: allowed"
        side = "Local" if e.local else "Remote"
        if e.kind == "mac":
            what = f"{side}MacAddress {format_mac(e.mac) if e.mac is not None else 'ANY'}"
        else:
            net = (
                ipaddress.ip_network((e.prefix, e.plen))
                if e.version == 4
                else ipaddress.IPv6Network((e.prefix, e.plen))
            )
            what = f"{side}IPAddress {net}"
        return f"port ACL entry {e.action.value} {direction} {what} (longest match)"

    def meters(self) -> list[dict[str, object]]:
        """AC-03: what each Meter entry counted."""
        rows: list[dict[str, object]] = []
        for e, m in self.table.meters.items():
            net = (
                ipaddress.IPv4Network((e.prefix, e.plen))
                if e.version == 4
                else ipaddress.IPv6Network((e.prefix, e.plen))
            )
            rows.append({"address": str(net), "local": e.local, "packets": m.packets, "bytes": m.bytes})
        return rows

    def counters(self) -> dict[str, object]:
        return {**super().counters(), "meters": self.meters()}


def compile_port_acls(port: str, entries: Sequence[AclEntry]) -> tuple[PortAcl | None, PortAcl | None]:
    """(outbound element, inbound element); None for a direction without entries."""
    result: list[PortAcl | None] = []
    for outbound in (True, False):
        compiled = compile_entries(entries, outbound)
        result.append(PortAcl(port, PortAclTable(compiled), outbound) if compiled else None)
    return result[0], result[1]


__all__ = ["AclAction", "PortAcl", "compile_entries", "compile_port_acls"]
