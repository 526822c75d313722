"""The built-in stateful firewall: enforces every port's extended ACLs (Add-VMNetworkAdapterExtendedAcl).

Hyper-V enforces extended ACLs through its in-box WFP filter extension, which is enabled on every switch by
default; this is that extension here. Disabling it on a switch (Disable-VMSwitchExtension) stops extended-ACL
enforcement there, as in Hyper-V. It fails closed: if it raises, the batch is dropped, because a firewall that
lets traffic through when it breaks is not one.

Directions are the VM's: frames a port sends into the switch are that port's Outbound traffic (checked on
ingress), frames delivered to a port are its Inbound traffic (checked on egress to it).

Resource bounds (issue 10): the connection table of the switch holds at most ``max_connections`` flows, and
``max_connections_per_port`` for any one port (class defaults, changed per instance with ``set_limits``). A
packet that would open a flow over a limit is dropped as ``conn-table-full``; flows already open are not
touched, so a VM flooding new 5-tuples loses only its own new connections. Idle flows are reaped a bounded
number per batch (``builtin/extended_acl.py ConnTable``), never by scanning the table. Drops: ``extended-acl-deny``,
``conn-table-full``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field

from pyvswitch.builtin.extended_acl import (
    MAX_CONNECTIONS,
    MAX_CONNECTIONS_PER_PORT,
    TABLE_FULL,
    ConnTable,
    ExtendedAcl,
    FlowState,
    describe_rule,
)
from pyvswitch.ext.api import Context, FilterExtension, Gate, OnError, PortEvent, PortInfo, explain
from pyvswitch.ext.rules import Action, Direction, ExtendedRule
from pyvswitch.packet.frame import Packet
from pyvswitch.packet.l3l4 import packet_l3

log = logging.getLogger(__name__)


class FirewallSettings(BaseModel):
    """What a switch's configuration may set on its firewall (``extensions[i].settings``)."""

    model_config = ConfigDict(extra="forbid")
    #: Tracked connections on the switch; None: the class default (262,144).
    max_connections: int | None = Field(None, ge=1, le=16_777_216)
    #: Tracked connections opened by one port; None: the class default (65,536).
    max_connections_per_port: int | None = Field(None, ge=1, le=16_777_216)


class Firewall(FilterExtension):
    name = "pyvswitch-firewall"
    description = "stateful firewall enforcing extended port ACLs (Hyper-V's WFP extension)"
    enabled_by_default = True
    on_error = OnError.DROP
    settings_model = FirewallSettings
    # Its decisions hang on IP addresses, protocol, ports, TCP flags, ICMP query ids and its connection table;
    # what a cached packet must still do (refresh its connection, count its rule) it hands over as tokens.
    flow_cacheable = True
    #: Tracked connections on the switch / on one port, unless ``set_limits`` says otherwise.
    max_connections: ClassVar[int] = MAX_CONNECTIONS
    max_connections_per_port: ClassVar[int] = MAX_CONNECTIONS_PER_PORT

    def __init__(self, switch: str) -> None:
        super().__init__(switch)
        self.acls: dict[str, ExtendedAcl] = {}  # by port name: indices may change, names do not
        self.index_of: dict[str, int] = {}
        self.by_index: dict[int, ExtendedAcl] = {}
        self.table = ConnTable(self.max_connections, self.max_connections_per_port)
        # Restored flows whose ``expires`` still holds their remaining seconds: another host's clock means
        # nothing here, so they are put on ours at the next batch.
        self._rebase: list[FlowState] = []
        self._now = 0.0  # the engine clock's last reading: save_state measures remaining idle time on it

    def configure(self, settings: BaseModel) -> None:
        """Settings (``{"max_connections": N, "max_connections_per_port": M}``); one left out is the class
        default again."""
        assert isinstance(settings, FirewallSettings)
        self.set_limits(
            settings.max_connections or type(self).max_connections,
            settings.max_connections_per_port or type(self).max_connections_per_port,
        )

    def set_limits(
        self, max_connections: int | None = None, max_connections_per_port: int | None = None
    ) -> None:
        """Change the connection limits (between batches). Lowering one below the flows already tracked
        closes nothing: new connections are refused until enough have idled out."""
        limits = {"max_connections": max_connections, "max_connections_per_port": max_connections_per_port}
        for what, value in limits.items():
            if value is not None and value < 1:
                raise ValueError(f"{what} must be at least 1, not {value}")
        if max_connections is not None:
            self.table.max_connections = max_connections
        if max_connections_per_port is not None:
            self.table.max_per_port = max_connections_per_port

    def port_event(self, event: PortEvent, port: PortInfo) -> None:
        if port.validation:
            return  # a validation port: rules always compile, nothing to check or reserve
        if event in (PortEvent.DISCONNECT, PortEvent.DELETE) or not port.extended_acls:
            gone = self.acls.pop(port.name, None)
            if gone is not None:
                self.table.forget(gone.flows)
        else:
            self.acls[port.name] = ExtendedAcl.compile(
                port.extended_acls, self.acls.get(port.name), self.table
            )
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
        table = self.table
        if self._rebase:
            table.rebase(self._rebase, now)
            self._rebase = []
        if now > table.next_due:
            table.expire(now)  # a bounded share of the work: the rest at the next batch
        acl = self.by_index.get(port)
        if acl is None:
            return
        verdict = acl.verdict
        outbound = direction is Direction.OUTBOUND
        for p in pkts:
            l3 = packet_l3(p)
            if not l3.version:
                continue  # extended ACLs are IP rules
            if outbound:
                drop = verdict(direction, l3, l3.src, l3.dst, l3.sport, l3.dport, p.vlan, now)
            else:
                drop = verdict(direction, l3, l3.dst, l3.src, l3.dport, l3.sport, p.vlan, now)
            if p.trace is not None:
                explain(p, self._why(acl, direction, drop))
            if drop is not None:
                gate.drop(p, drop)
            elif p.flow is not None and acl.replay is not None:
                gate.cache(p, acl.replay)

    @staticmethod
    def _why(acl: ExtendedAcl, direction: Direction, drop: str | None) -> str:
        """What decided a traced packet: the extended ACL entry, with its weight and fields."""
        rule = acl.decided
        if drop == TABLE_FULL and rule is not None:
            return f"{describe_rule(rule)} would open a connection over the connection limit"
        if rule is None:
            return f"no {direction.value} extended ACL entry matches: allowed"
        if acl.by_flow:
            return f"an established connection opened by {describe_rule(rule)}"
        return f"extended ACL entry {describe_rule(rule)}"

    def status(self) -> dict[str, Any]:
        """The connection table's size, limits and refusals, and per port: rules, flows, rule hits, refusals."""
        return {
            **self.table.status(),
            "ports": {
                name: {
                    "rules": sum(len(r) for r in acl.rules.values()),
                    "flows": len(acl.flows),
                    "hits": acl.hits,
                    "table_full_drops": acl.full_drops,
                    # Per entry: packets it decided (its own match, or a connection it opened), by the
                    # (direction, weight) that names an entry of a port.
                    "rule_hits": [
                        {"direction": r.direction.value, "weight": r.weight, "hits": cell[0]}
                        for r, cell in list(acl.rule_hits.items())
                    ],
                }
                for name, acl in list(self.acls.items())  # read from API threads: a copy first
            },
        }

    def save_state(self, port: str) -> bytes | None:
        """The port's connection table (live migration): each flow with its rule and remaining idle time.

        JSON, version 1: ``{"v": 1, "flows": [[flow id], remaining_s, timeout_s, packets, rule]]}``. The
        remaining time is measured against the latest clock reading the firewall knows: its last batch's, or
        a later packet's that the switch's flow cache replayed (which refreshed its flow to then + timeout)."""
        acl = self.acls.get(port)
        if acl is None or not acl.flows:
            return None
        states = list(acl.flows.items())  # read from the migration's thread: a copy first
        now = max([self._now, *(st.expires - st.timeout for _, st in states)])
        flows = [
            [list(fid), max(0.0, st.expires - now), st.timeout, st.packets, _rule_json(st.rule)]
            for fid, st in states
            if st.expires >= now  # idled out, not reaped yet: nothing to carry
        ]
        return json.dumps({"v": 1, "flows": flows}).encode()

    def restore_state(self, port: str, blob: bytes) -> None:
        """Take a connection table from ``save_state`` (another host's) for ``port``: a stateful rule that
        admits only established traffic keeps admitting the connections that were open on the source.
        The limits hold here too: flows beyond them are not restored (logged)."""
        acl = self.acls.get(port)
        if acl is None:
            return  # the port has no extended ACLs here: nothing would consult the flows
        data = json.loads(blob)
        if data.get("v") != 1:
            raise ValueError(f"firewall state version {data.get('v')!r} is not 1")
        refused = 0
        for fid, remaining, timeout, packets, rule in data["flows"]:
            restored = _rule_of(rule)
            state = FlowState(
                float(remaining), float(timeout), restored, int(packets), cell=acl.cell_of(restored)
            )
            flow = (int(fid[0]), int(fid[1]), int(fid[2]), int(fid[3]), int(fid[4]), int(fid[5]))
            # Queued at this host's last reading for now; rebased at the next batch, before any lookup.
            if self.table.add(acl.flows, flow, state, self._now):
                self._rebase.append(state)
            else:
                refused += 1
        if refused:
            log.warning(
                "port %s: %d migrated connections over the connection limits not restored", port, refused
            )


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
