"""`pyvswitch show drops`: every drop counter with where it happened and why (TR)."""

from __future__ import annotations

from pyvswitch.cli.views import drop_rows
from pyvswitch.config.schema import AclEntry, PortConfig, PortKind, SwitchConfig
from pyvswitch.testing.frames import eth, ipv4, udp
from pyvswitch.testing.harness import SwitchHarness

A, B = "02:00:00:00:00:0a", "02:00:00:00:00:0b"


def test_drop_rows_name_element_and_reason() -> None:
    acl = [AclEntry(action="Deny", direction="Outbound", remote_ip="10.0.0.2")]
    h = SwitchHarness(
        [SwitchConfig(name="s")],
        [PortConfig(name="a", kind=PortKind.VM, vm="a", switch="s", mac=A, acls=acl),
         PortConfig(name="b", kind=PortKind.VM, vm="b", switch="s", mac=B)],
    )  # fmt: skip
    h.send("a", b"\x00" * 10)  # runt
    for _ in range(2):
        h.send("a", eth(B, A, ipv4("10.0.0.1", "10.0.0.2", 17, udp(1, 2))))
    h.send("a", eth(B, "02:00:00:00:00:66"))  # spoofed source
    rows = drop_rows(h.engine.counters())  # type: ignore[arg-type]
    assert rows[0][:4] == ["s", "a ACL outbound", "acl-deny", 2]
    assert ["s", "ingress", "runt", 1, "shorter than an Ethernet header"] in rows
    # Every reason the switch counted says what it means (issue 16: drop reasons are typed and described).
    assert all(r[4] for r in rows), rows
    assert any(r[1].startswith("a ") and r[2] == "mac-spoofing" for r in rows), rows


def test_a_standalone_teams_hidden_switch_shows_as_the_team() -> None:
    """issue 14: the engine's '_team:<team>' switch is the team to the operator."""
    counters = {
        "switches": {
            "_team:t1": {
                "elements": {"ingress": {"drops": {"runt": 3}}},
                # Its ports are "_team:t1:uplink" and "_team:t1:<team interface>" (config/team_nics.py).
                "ports": {"_team:t1:uplink": {"drops": {"ring-overrun": 2}}},
            }
        },
        "drop_reasons": {
            "runt": "shorter than an Ethernet header",
            "ring-overrun": "the receive ring was full",
        },
    }
    assert drop_rows(counters) == [
        ["team t1", "ingress", "runt", 3, "shorter than an Ethernet header"],
        ["team t1", "uplink device", "ring-overrun", 2, "the receive ring was full"],
    ]


def test_what_the_nic_switch_delivered_is_counted_but_is_no_drop() -> None:
    """issue 14: frames the emulated NIC switch already delivered (SR-IOV) are no drop."""
    C = "02:00:00:00:00:0c"
    h = SwitchHarness(
        [SwitchConfig(name="s")],
        [
            PortConfig(name=n, kind=PortKind.VM, vm=n, switch="s", mac=m)
            for n, m in (("a", A), ("b", B), ("c", C))
        ],
    )
    h.engine.switches["s"].set_nic_switched({"a": frozenset({"b"})})
    h.send("a", eth("ff:ff:ff:ff:ff:ff", A))
    h.expect_nothing("b")
    assert len(h.take("c")) == 1
    counters = h.engine.counters()["switches"]["s"]  # type: ignore[index]
    assert counters["elements"]["egress"]["nic_switch_delivered"] == 1
    assert counters["drops"] == {} and drop_rows(h.engine.counters()) == []  # type: ignore[arg-type]
