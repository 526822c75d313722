"""The built-in stateful firewall: enforces every port's extended ACLs (Add-VMNetworkAdapterExtendedAcl).

Hyper-V enforces extended ACLs through its in-box WFP filter extension, which is enabled on every switch by
default; this is that extension here. Disabling it on a switch (Disable-VMSwitchExtension) stops extended-ACL
enforcement there, as in Hyper-V. It fails closed: if it raises, the batch is dropped, because a firewall that
lets traffic through when it breaks is not one.

Directions are the VM's: frames a port sends into the switch are that port's Outbound traffic (checked on
ingress), frames delivered to a port are its Inbound traffic (checked on egress to it).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pyvswitch.ext.acl import Direction, ExtendedAcl, packet_l3
from pyvswitch.ext.api import Context, FilterExtension, Gate, OnError, PortEvent, PortInfo
from pyvswitch.packet.frame import Packet

EXPIRE_EVERY_S = 1.0


class Firewall(FilterExtension):
    name = "pyvswitch-firewall"
    description = "stateful firewall enforcing extended port ACLs (Hyper-V's WFP extension)"
    enabled_by_default = True
    on_error = OnError.DROP

    def __init__(self, switch: str) -> None:
        super().__init__(switch)
        self.acls: dict[str, ExtendedAcl] = {}  # by port name: indices may change, names do not
        self.index_of: dict[str, int] = {}
        self.by_index: dict[int, ExtendedAcl] = {}
        self._next_expiry = 0.0

    def port_event(self, event: PortEvent, port: PortInfo) -> None:
        if event in (PortEvent.DISCONNECT, PortEvent.DELETE):
            self.acls.pop(port.name, None)
        elif port.extended_acls:
            self.acls[port.name] = ExtendedAcl.compile(port.extended_acls, self.acls.get(port.name))
        else:
            self.acls.pop(port.name, None)
        self._reindex(port)

    def _reindex(self, changed: PortInfo) -> None:
        self.by_index = {
            i: a for i, a in self.by_index.items() if a in self.acls.values() and i != changed.index
        }
        if changed.name in self.acls:
            self.by_index[changed.index] = self.acls[changed.name]

    def idle(self) -> bool:
        return not self.acls

    def ingress(self, ctx: Context, pkts: Sequence[Packet], gate: Gate) -> None:
        self._check(ctx, pkts, gate, Direction.OUTBOUND, pkts[0].in_port if pkts else -1)

    def egress(self, ctx: Context, pkts: Sequence[Packet], gate: Gate) -> None:
        self._check(ctx, pkts, gate, Direction.INBOUND, gate.out_port if gate.out_port is not None else -1)

    def _check(
        self, ctx: Context, pkts: Sequence[Packet], gate: Gate, direction: Direction, port: int
    ) -> None:
        now = ctx.now()
        if now >= self._next_expiry:
            self._next_expiry = now + EXPIRE_EVERY_S
            for each in self.acls.values():
                each.expire(now)
        acl = self.by_index.get(port)
        if acl is None:
            return
        outbound = direction is Direction.OUTBOUND
        for p in pkts:
            l3 = packet_l3(p)
            if not l3.version:
                continue  # extended ACLs are IP rules
            if outbound:
                ok = acl.allows(direction, l3, l3.src, l3.dst, l3.sport, l3.dport, p.vlan, now)
            else:
                ok = acl.allows(direction, l3, l3.dst, l3.src, l3.dport, l3.sport, p.vlan, now)
            if not ok:
                gate.drop(p, "extended-acl-deny")

    def status(self) -> dict[str, Any]:
        return {
            name: {
                "rules": sum(len(r) for r in acl.rules.values()),
                "flows": len(acl.flows),
                "hits": acl.hits,
            }
            for name, acl in self.acls.items()
        }

    def save_state(self, port: str) -> bytes | None:
        return None  # flows are rebuilt by traffic after a move; a live-migration format comes with migration
