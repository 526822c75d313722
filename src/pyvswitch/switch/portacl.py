"""Port ACLs as the switch's built-in policy (AC-01..03): compiled per port, one table per direction.

Outbound (frames the port sends) are checked before forwarding, inbound (frames delivered to the port) after,
as Hyper-V orders its built-in policies (hyperv-networking.md §1.9). The matching is ``ext.acl.PortAclTable``.
A port without entries has no element at all.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from enum import StrEnum

from pyvswitch.config.schema import AclAction, AclDirection, AclEntry
from pyvswitch.ext.acl import Action, PortAclEntry, PortAclTable, ip_entry, mac_entry, packet_l3
from pyvswitch.packet.frame import Packet
from pyvswitch.packet.mac import parse_mac
from pyvswitch.pipeline.element import Element


class AclDrop(StrEnum):
    """Why a port ACL drops a frame (``show drops``, per port and direction)."""

    ACL_DENY = "acl-deny"  # the port's matching Add-VMNetworkAdapterAcl entry says Deny


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
            if ok:
                keep.append(p)
            else:
                self.drop(AclDrop.ACL_DENY)
        return keep

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
