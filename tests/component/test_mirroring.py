"""Port mirroring (PM-01, PM-02): exact copies of a Source port's traffic at the Destination port."""

from __future__ import annotations

from collections.abc import Sequence

from pyvswitch.config.schema import ExtensionSetting, PortConfig, PortKind, PortMirroring, SwitchConfig
from pyvswitch.ext.api import Context, ForwardingExtension
from pyvswitch.ext.registry import Registry
from pyvswitch.packet.frame import Packet
from pyvswitch.testing.frames import BCAST, eth
from pyvswitch.testing.harness import SwitchHarness

A, B, C, M = "02:00:00:00:00:0a", "02:00:00:00:00:0b", "02:00:00:00:00:0c", "02:00:00:00:00:0d"


def vm(name: str, mac: str, mirror: PortMirroring = PortMirroring.NONE) -> PortConfig:
    return PortConfig(name=name, kind=PortKind.VM, vm=name, switch="s", mac=mac, port_mirroring=mirror)


PORTS = [vm("a", A, PortMirroring.SOURCE), vm("b", B), vm("c", C), vm("m", M, PortMirroring.DESTINATION)]


def test_destination_gets_what_the_source_sends_and_receives_only() -> None:
    h = SwitchHarness([SwitchConfig(name="s")], PORTS)
    h.send("a", eth(B, A, b"out"))
    h.expect("b", eth(B, A, b"out"))
    h.expect("m", eth(B, A, b"out"))
    h.send("b", eth(A, B, b"in"))
    h.expect("a", eth(A, B, b"in"))
    h.expect("m", eth(A, B, b"in"))
    h.send("c", eth(B, C, b"other"))  # not the source's traffic
    h.expect("b", eth(B, C, b"other"))
    h.expect_nothing("m")
    h.send("a", eth(BCAST, A, b"bcast"))  # a broadcast already reaching m is not doubled
    assert h.take("m") == [eth(BCAST, A, b"bcast")]


class ToB(ForwardingExtension):
    name = "to-b"

    def forward(self, ctx: Context, pkts: Sequence[Packet]) -> None:
        b = ctx.port_index("b")
        for p in pkts:
            p.dsts = [b] if b is not None else []


def test_mirror_holds_under_a_forwarding_extension() -> None:
    h = SwitchHarness(
        [SwitchConfig(name="s", extensions=[ExtensionSetting(name="to-b")])], PORTS, Registry.of(ToB)
    )
    h.send("a", eth(C, A, b"x"))
    h.expect("b", eth(C, A, b"x"))  # the forwarder sent it to b, not c
    h.expect_nothing("c")
    h.expect("m", eth(C, A, b"x"))


def test_no_source_no_copies() -> None:
    ports = [vm("a", A), vm("b", B), vm("m", M, PortMirroring.DESTINATION)]
    h = SwitchHarness([SwitchConfig(name="s")], ports)
    h.send("a", eth(B, A))
    h.expect("b", eth(B, A))
    h.expect_nothing("m")
