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
