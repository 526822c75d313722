"""Unified tracing (TR): per-port traces with a budget, what-if traces without side effects, drop reasons."""

from __future__ import annotations

from pathlib import Path

import pytest

from pyvswitch.builtin.firewall import Firewall
from pyvswitch.config.schema import AclEntry, ExtendedAclEntry, PortConfig, PortKind, SwitchConfig, VlanConfig
from pyvswitch.ext.registry import Registry
from pyvswitch.observe.describe import DescriptionError, build
from pyvswitch.testing.frames import eth
from pyvswitch.testing.harness import SwitchHarness
from pyvswitch.testing.pcapng import read_pcapng

A, B, C = "02:00:00:00:00:0a", "02:00:00:00:00:0b", "02:00:00:00:00:0c"


def vm(name: str, mac: str, **kw: object) -> PortConfig:
    return PortConfig(name=name, kind=PortKind.VM, vm=name, switch="s", mac=mac, **kw)  # type: ignore[arg-type]


def harness() -> SwitchHarness:
    deny_web = [
        ExtendedAclEntry(action="Deny", direction="Inbound", weight=5, local_port="80", protocol="TCP")
    ]
    ports = [
        vm("a", A),
        vm("b", B, extended_acls=deny_web),
        vm("c", C, vlan=VlanConfig(mode="Access", access_vlan_id=10)),
    ]
    return SwitchHarness([SwitchConfig(name="s")], ports, Registry.of(Firewall))


def test_traced_port_records_budgeted_packets_and_forwarding_continues() -> None:
    h = harness()
    sw = h.engine.switches["s"]
    sw.traced[sw.index_of["a"]] = 2
    for _ in range(3):
        h.send("a", eth(B, A))
        h.expect("b", eth(B, A))
    recs = list(sw.trace_records)
    assert len(recs) == 2 and not sw.traced  # budget used up: tracing switched itself off
    steps = [(s.stage, s.verdict) for s in recs[0].steps]
    assert steps[0] == ("ingress", "pass") and ("b", "deliver") in steps


def test_what_if_explains_a_firewall_drop_without_side_effects() -> None:
    h = harness()
    sw = h.engine.switches["s"]
    before = h.engine.counters()
    frame, tci = build(f"dst={B} tcp ip=10.0.0.1>10.0.0.2 dport=80", default_src=A)
    rec = sw.what_if("a", frame, tci).as_dict()
    assert rec["verdict"] == "dropped at pyvswitch-firewall: extended-acl-deny" or "extended-acl-deny" in str(
        rec
    )
    tree = str(rec["tree"])
    assert "what-if" in tree and "extended-acl-deny" in tree
    assert h.engine.counters() == before  # nothing counted
    assert not [r for r in h.engine.fdb("s") if not r["static"]]  # nothing learned
    h.expect_nothing()  # nothing sent


def test_what_if_vlan_mismatch_and_arp() -> None:
    h = harness()
    sw = h.engine.switches["s"]
    rec = sw.what_if("a", *build(f"dst={C} udp", default_src=A))
    assert rec.verdict == "dropped at egress: vlan-egress-filtered"
    rec = sw.what_if("a", *build("arp", default_src=A))
    assert {s.stage for s in rec.steps if s.verdict == "deliver"} == {"b"}  # c is in VLAN 10


def test_what_if_port_acl_drop_names_the_acl() -> None:
    ports = [
        vm("a", A, acls=[AclEntry(action="Deny", direction="Outbound", remote_ip="10.0.0.2")]),
        vm("b", B),
    ]
    h = SwitchHarness([SwitchConfig(name="s")], ports)
    rec = h.engine.switches["s"].what_if("a", *build(f"dst={B} udp ip=10.0.0.1>10.0.0.2", default_src=A))
    drop = next(s for s in rec.steps if s.verdict == "drop")
    assert drop.stage == "port ACL outbound (a)" and "acl-deny" in drop.detail


def test_description_errors_name_the_word() -> None:
    with pytest.raises(DescriptionError, match="bogus"):
        build("tcp bogus=1")
    with pytest.raises(DescriptionError, match="wat"):
        build("wat")


def test_traced_packets_carry_their_trace_as_the_capture_comment(tmp_path: Path) -> None:
    h = harness()
    sw = h.engine.switches["s"]
    session = h.capture(tmp_path / "t.pcapng", ports=["a", "b"])
    sw.traced[sw.index_of["a"]] = 1
    h.send("a", eth(B, A, b"traced"))
    h.send("a", eth(B, A, b"plain"))
    h.stop_capture(session)
    cap = read_pcapng(tmp_path / "t.pcapng")
    records = [r for i in cap.interfaces for r in cap.on(i.name)]
    traced = [r for r in records if r.comment]
    assert len(traced) == 2  # the traced packet, in at a and out at b
    assert all("ingress" in (r.comment or "") and "delivered to b" in (r.comment or "") for r in traced)
    assert len(records) == 4  # and the untraced one, twice, without comments
