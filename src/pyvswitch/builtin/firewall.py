"""The built-in stateful firewall: enforces every port's extended ACLs (Add-VMNetworkAdapterExtendedAcl).

Hyper-V enforces extended ACLs through its in-box WFP filter extension, which is enabled on every switch by
default; this is that extension here. Disabling it on a switch (Disable-VMSwitchExtension) stops extended-ACL
enforcement there, as in Hyper-V. It fails closed: if it raises, the batch is dropped, because a firewall that
lets traffic through when it breaks is not one.

Directions are the VM's: frames a port sends into the switch are that port's Outbound traffic (checked on
ingress), frames delivered to a port are its Inbound traffic (checked on egress to it).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

from pyvswitch.ext.acl import Action, Direction, ExtendedAcl, ExtendedRule, FlowState, packet_l3
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
        # The engine clock's last reading (flows expire on it) and restored flows whose ``expires`` still
        # holds their remaining seconds: another host's clock means nothing here, so they are put on ours at
        # the next batch.
        self._now = 0.0
        self._rebase: list[FlowState] = []

    def port_event(self, event: PortEvent, port: PortInfo) -> None:
        if port.validation:
            return  # a validation port: rules always compile, nothing to check or reserve
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
        now = self._now = ctx.now()
        if self._rebase:
            for state in self._rebase:
                state.expires += now
            self._rebase = []
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
        """The port's connection table (live migration): each flow with its rule and remaining idle time.

        JSON, version 1: ``{"v": 1, "flows": [[flow id], remaining_s, timeout_s, packets, rule]]}``. The
        remaining time is measured against the last batch's clock reading (flows are refreshed only then)."""
        acl = self.acls.get(port)
        if acl is None or not acl.flows:
            return None
        flows = [
            [list(fid), max(0.0, st.expires - self._now), st.timeout, st.packets, _rule_json(st.rule)]
            for fid, st in acl.flows.items()
        ]
        return json.dumps({"v": 1, "flows": flows}).encode()

    def restore_state(self, port: str, blob: bytes) -> None:
        """Take a connection table from ``save_state`` (another host's) for ``port``: a stateful rule that
        admits only established traffic keeps admitting the connections that were open on the source."""
        acl = self.acls.get(port)
        if acl is None:
            return  # the port has no extended ACLs here: nothing would consult the flows
        data = json.loads(blob)
        if data.get("v") != 1:
            raise ValueError(f"firewall state version {data.get('v')!r} is not 1")
        for fid, remaining, timeout, packets, rule in data["flows"]:
            state = FlowState(float(remaining), float(timeout), _rule_of(rule), int(packets))
            acl.flows[(int(fid[0]), int(fid[1]), int(fid[2]), int(fid[3]), int(fid[4]), int(fid[5]))] = state
            self._rebase.append(state)


def _rule_json(rule: ExtendedRule) -> dict[str, Any]:
    return {k: (v.value if isinstance(v, Action | Direction) else v) for k, v in asdict(rule).items()}


def _rule_of(data: dict[str, Any]) -> ExtendedRule:
    def pair(v: list[int] | None) -> tuple[int, int] | None:
        return None if v is None else (int(v[0]), int(v[1]))

    def triple(v: list[int] | None) -> tuple[int, int, int] | None:
        return None if v is None else (int(v[0]), int(v[1]), int(v[2]))

    return ExtendedRule(
        action=Action(data["action"]),
        direction=Direction(data["direction"]),
        weight=int(data["weight"]),
        local=triple(data["local"]),
        remote=triple(data["remote"]),
        local_ports=pair(data["local_ports"]),
        remote_ports=pair(data["remote_ports"]),
        protocol=data["protocol"],
        stateful=bool(data["stateful"]),
        idle_timeout_s=float(data["idle_timeout_s"]),
        isolation_id=data["isolation_id"],
    )
