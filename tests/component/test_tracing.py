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


def _tree(rec: object) -> str:
    return str(rec.as_dict()["tree"])  # type: ignore[attr-defined]


def test_a_drop_names_the_deciding_entry_with_its_weight_and_fields() -> None:
    """Issue 14 item 4: not only the counter's name but what decided it, as the admin wrote it."""
    h = harness()
    sw = h.engine.switches["s"]
    rec = sw.what_if("a", *build(f"dst={B} tcp ip=10.0.0.1>10.0.0.2 dport=80", default_src=A))
    drop = next(s for s in rec.steps if s.verdict == "drop")
    assert drop.detail.startswith("extended-acl-deny")
    assert "extended ACL entry Deny Inbound weight 5 (LocalPort 80, Protocol TCP)" in drop.detail
    assert "Deny Inbound weight 5" in rec.verdict
    # The same port, another destination port: no entry matches, and the delivery says so.
    rec = sw.what_if("a", *build(f"dst={B} tcp ip=10.0.0.1>10.0.0.2 dport=81", default_src=A))
    deliver = next(s for s in rec.steps if s.verdict == "deliver")
    assert "no Inbound extended ACL entry matches: allowed" in deliver.detail


def test_the_summary_decodes_l2_to_l4() -> None:
    h = harness()
    sw = h.engine.switches["s"]
    rec = sw.what_if(
        "a", *build(f"dst={B} vlan=0 pcp=5 tcp ip=10.0.0.1>10.0.0.2 sport=4000 dport=80", default_src=A)
    )
    assert f"{A} > {B} vlan 0 prio 5 10.0.0.1:4000 > 10.0.0.2:80 TCP [S]" in rec.summary
    rec = sw.what_if("a", *build(f"dst={B} icmp ip=10.0.0.1>10.0.0.2", default_src=A))
    assert "10.0.0.1 > 10.0.0.2 ICMP type 8" in rec.summary
    assert " ARP " in sw.what_if("a", *build("arp", default_src=A)).summary


def test_guards_acls_and_vlans_say_what_they_compared() -> None:
    ports = [
        vm("a", A, acls=[AclEntry(action="Deny", direction="Outbound", remote_ip="10.0.0.0/24"),
                         AclEntry(action="Allow", direction="Outbound", remote_ip="10.0.0.7")]),
        vm("b", B),
    ]  # fmt: skip
    h = SwitchHarness([SwitchConfig(name="s")], ports)
    sw = h.engine.switches["s"]
    rec = sw.what_if("a", *build(f"dst={B} udp ip=10.0.0.1>10.0.0.2", default_src=A))
    assert "port ACL entry Deny Outbound RemoteIPAddress 10.0.0.0/24 (longest match)" in _tree(rec)
    rec = sw.what_if("a", *build(f"dst={B} udp ip=10.0.0.1>10.0.0.7", default_src=A))
    passed = next(s for s in rec.steps if s.stage == "port ACL outbound (a)")
    assert passed.verdict == "pass" and "Allow Outbound RemoteIPAddress 10.0.0.7/32" in passed.detail
    rec = sw.what_if("a", *build(f"src={C} dst={B} udp ip=10.0.0.1>10.0.0.7", default_src=A))
    assert f"MacAddressSpoofing Off: source {C} is not the port's ({A})" in _tree(rec)
    rec = sw.what_if("a", *build(f"dst={B} vlan=7 udp", default_src=A))
    assert "the port admits untagged; the frame is tagged VLAN 7" in _tree(rec)


def test_extended_acl_entries_count_the_packets_they_decide_cached_or_not() -> None:
    """Per-rule hit counters (OVS's n_packets): an entry's own matches, the packets of the connections it
    opened, whether the switch's flow cache replayed them or not; what-if traces count nothing."""
    allow_out = ExtendedAclEntry(
        action="Allow", direction="Outbound", weight=10, protocol="UDP", stateful=True
    )
    deny_in = ExtendedAclEntry(action="Deny", direction="Inbound", weight=1)
    ports = [vm("a", A), vm("b", B, extended_acls=[allow_out, deny_in])]
    h = SwitchHarness([SwitchConfig(name="s")], ports, Registry.of(Firewall))
    sw = h.engine.switches["s"]
    out, _ = build(f"dst={A} udp ip=10.0.0.2>10.0.0.1 sport=5000 dport=6000", default_src=B)
    back, _ = build(f"dst={B} udp ip=10.0.0.1>10.0.0.2 sport=6000 dport=5000", default_src=A)
    stray, _ = build(f"dst={B} udp ip=10.0.0.1>10.0.0.2 sport=7000 dport=5000", default_src=A)
    for _ in range(5):
        h.send("b", out)  # opens the connection, then refreshes it (cached after the first)
        h.send("a", back)  # the reply: admitted by the connection weight 10 opened
    h.send("a", stray)
    h.send("a", stray)
    sw.what_if("a", stray, -1)

    def hits() -> dict[tuple[str, int], int]:
        fw = next(e for e in sw.counters()["extensions"] if e["name"] == "pyvswitch-firewall")  # type: ignore[union-attr, index]
        return {(r["direction"], r["weight"]): r["hits"] for r in fw["status"]["ports"]["b"]["rule_hits"]}

    assert hits() == {("Outbound", 10): 10, ("Inbound", 1): 2}
    cache = sw.counters()["ports"]["a"]["flow_cache"]  # type: ignore[index]
    assert cache["hits"] > 0  # some of the replies were replayed, and still counted
