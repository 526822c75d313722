"""The chain as data (issue 16): each port's compiled steps, typed drop reasons, and tracing as a runner."""

from __future__ import annotations

from collections import Counter

from pyvswitch.builtin.firewall import Firewall
from pyvswitch.config.schema import (
    AclEntry,
    ExtendedAclEntry,
    ExtensionSetting,
    PortConfig,
    PortKind,
    PortMirroring,
    SwitchConfig,
)
from pyvswitch.ext.registry import Registry
from pyvswitch.observe.trace import TraceRecord, run_traced
from pyvswitch.packet.frame import Packet
from pyvswitch.pipeline.chain import Chain, Outs, Step
from pyvswitch.switch.elements.fanout import EgressDrop
from pyvswitch.switch.elements.forward import ForwardDrop
from pyvswitch.switch.elements.ingress import IngressDrop
from pyvswitch.switch.security import SecurityDrop
from pyvswitch.testing.frames import BCAST, eth
from pyvswitch.testing.harness import SwitchHarness

A, B, C = "02:00:00:00:00:0a", "02:00:00:00:00:0b", "02:00:00:00:00:0c"


def vm(name: str, mac: str, **kw: object) -> PortConfig:
    return PortConfig(name=name, kind=PortKind.VM, vm=name, switch="s", mac=mac, **kw)  # type: ignore[arg-type]


def labels(h: SwitchHarness, port: str) -> list[str]:
    sw = h.engine.switches["s"]
    p = sw.ports[sw.index_of[port]]
    assert p is not None and p.chain is not None
    return p.chain.labels()


def test_a_plain_port_runs_only_ingress_and_forward() -> None:
    h = SwitchHarness([SwitchConfig(name="s")], [vm("a", A, mac_spoofing=True), vm("b", B)])
    assert labels(h, "a") == ["ingress", "forward (learning switch)"]
    assert labels(h, "b") == [
        "ingress",
        "port security",
        "forward (learning switch)",
    ]  # the MAC guard (PS-01)
    sw = h.engine.switches["s"]
    chain = sw.ports[sw.index_of["a"]].chain  # type: ignore[union-attr]
    assert chain is not None and chain.egress == ()  # no ACL, extension, mirror: nothing after fan-out


def test_policies_add_their_steps_in_hyperv_order_and_leave_other_ports_alone() -> None:
    acl = [AclEntry(action="Deny", direction="Outbound", remote_mac=C)]
    xacl = [ExtendedAclEntry(action="Deny", direction="Inbound", weight=5, local_port="80", protocol="TCP")]
    ports = [
        vm("a", A, acls=acl, dhcp_guard=True, storm_limit=100, port_mirroring=PortMirroring.SOURCE),
        vm("b", B, extended_acls=xacl),
        vm("c", C, port_mirroring=PortMirroring.DESTINATION),
    ]
    sw_cfg = SwitchConfig(name="s", extensions=[ExtensionSetting(name="pyvswitch-firewall")])
    h = SwitchHarness([sw_cfg], ports, Registry.of(Firewall))
    assert labels(h, "a") == [
        "ingress",
        "port ACL outbound (a)",
        "extensions ingress (pyvswitch-firewall)",
        "port security",
        "forward (learning switch)",
        "storm limit",
        "extension injections",
    ]
    assert labels(h, "b") == [
        "ingress",
        "extensions ingress (pyvswitch-firewall)",
        "port security",
        "forward (learning switch)",
        "extension injections",
    ]
    # Reconfiguring recompiles: without the firewall's rules the extension is idle and leaves every chain.
    h.configure([sw_cfg], [vm("a", A), vm("b", B), vm("c", C)])
    assert labels(h, "b") == ["ingress", "port security", "forward (learning switch)"]


def test_drop_reasons_are_typed_and_counted_as_their_strings() -> None:
    h = SwitchHarness([SwitchConfig(name="s")], [vm("a", A, dhcp_guard=True), vm("b", B)])
    h.send("a", b"\x00" * 10)  # runt
    h.send("a", eth(A, A))  # to itself: hairpin
    h.expect_nothing("b")
    drops = h.drops("s")
    assert drops[IngressDrop.RUNT] == 1 and drops["runt"] == 1
    assert drops[ForwardDrop.HAIRPIN] == 1
    assert {str(r) for r in IngressDrop} >= {"runt", "oversize", "vlan-not-admitted"}
    assert EgressDrop.VLAN_EGRESS_FILTERED == "vlan-egress-filtered"
    assert SecurityDrop.DHCP_GUARD == "dhcp-guard"


def test_steps_skip_an_empty_batch_unless_they_always_run() -> None:
    seen: list[str] = []

    def drop_all(batch: list[Packet]) -> list[Packet]:
        seen.append("drop-all")
        return []

    def never(batch: list[Packet]) -> list[Packet]:
        seen.append("never")
        return batch

    def adds(batch: list[Packet]) -> list[Packet]:
        seen.append("adds")
        return [*batch, Packet(eth(B, A))]

    def fanout(batch: list[Packet]) -> Outs:
        return {1: (batch, [-1] * len(batch))}

    chain = Chain(
        (Step(drop_all, "drop-all"), Step(never, "never"), Step(adds, "adds", always=True)), fanout, ()
    )
    outs = chain.run([Packet(eth(B, A))])
    assert seen == ["drop-all", "adds"] and len(outs[1][0]) == 1


def test_the_trace_runner_records_each_crossing_and_skips_untraced_steps() -> None:

    drops: Counter[tuple[str, str]] = Counter()
    ran: list[str] = []

    def ok(batch: list[Packet]) -> list[Packet]:
        ran.append("ok")
        return batch

    def other(batch: list[Packet]) -> list[Packet]:
        ran.append("other")
        return batch

    def deny(batch: list[Packet]) -> list[Packet]:
        drops[("acl", "acl-deny")] += len(batch)
        return []

    chain = Chain(
        (
            Step(ok, "first", detail=lambda p: "fine"),
            Step(other, "injections", traced=False, always=True),
            Step(deny, "acl"),
        ),
        lambda b: {},
        (),
    )
    rec = TraceRecord("s", "a", "frame")
    run_traced(chain, [Packet(eth(B, A))], rec, lambda: Counter(drops), lambda d, t: None)
    assert [(s.stage, s.verdict, s.detail) for s in rec.steps] == [
        ("first", "pass", "fine"),
        ("acl", "drop", "acl-deny (acl)"),
    ]
    assert ran == ["ok"]  # the untraced step did not run for the traced packet


def test_broadcast_reaches_the_mirror_and_what_if_leaves_the_chain_untouched() -> None:
    ports = [
        vm("a", A, port_mirroring=PortMirroring.SOURCE),
        vm("b", B),
        vm("c", C, port_mirroring="Destination"),
    ]
    h = SwitchHarness([SwitchConfig(name="s")], ports)  # type: ignore[list-item]
    sw = h.engine.switches["s"]
    before = [p.chain for p in sw.ports if p is not None]
    rec = sw.what_if("a", eth(BCAST, A))
    assert [p.chain for p in sw.ports if p is not None] == before  # the twin compiled its own chains
    assert ("b", "deliver") in [(s.stage, s.verdict) for s in rec.steps]
    h.send("a", eth(B, A))
    h.expect("b", eth(B, A))
    h.expect("c", eth(B, A))  # the mirror copy
