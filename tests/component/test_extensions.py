"""Extensions inside a whole switch on memory devices (EX-01, EX-05, EX-07, EX-10, EX-11, EX-16)."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from pyvswitch.config.schema import ExtensionSetting, PortConfig, PortKind, SwitchConfig, VlanConfig, VlanMode
from pyvswitch.errors import ConfigError
from pyvswitch.ext.api import (
    CapturedFrame,
    CaptureExtension,
    Context,
    FilterExtension,
    ForwardingExtension,
    Gate,
    PortEvent,
    PortInfo,
    Veto,
)
from pyvswitch.ext.registry import Registry
from pyvswitch.packet.frame import Packet
from pyvswitch.packet.mac import parse_mac
from pyvswitch.testing.frames import BCAST, eth
from pyvswitch.testing.harness import SwitchHarness

A, B, C = "02:00:00:00:00:0a", "02:00:00:00:00:0b", "02:00:00:00:00:0c"


class Tap(CaptureExtension):
    name = "tap"

    def __init__(self, switch: str) -> None:
        super().__init__(switch)
        self.seen: list[tuple[str, int, int]] = []
        self.events: list[tuple[str, str]] = []

    def capture(self, ctx: Context, frames: Sequence[CapturedFrame], direction: str, port: int) -> None:
        self.seen += [(direction, port, f.src) for f in frames]
        if direction == "ingress" and any(f.dst == parse_mac(C) for f in frames):
            ctx.originate(eth(BCAST, "02:00:00:00:00:ee", b"report"))  # a capture may originate

    def port_event(self, event: PortEvent, port: PortInfo) -> None:
        self.events.append((event.value, port.name))


class Crash(FilterExtension):
    name = "crash"

    def ingress(self, ctx: Context, pkts: Sequence[Packet], gate: Gate) -> None:
        raise ZeroDivisionError


class NoB(FilterExtension):
    name = "no-b"

    def egress(self, ctx: Context, pkts: Sequence[Packet], gate: Gate) -> None:
        port = ctx.port(gate.out_port or 0)
        if port is not None and port.name == "b":
            for p in pkts:
                gate.exclude(p, "not-to-b")

    def port_event(self, event: PortEvent, port: PortInfo) -> None:
        if port.name == "evil" and event is PortEvent.CREATE:
            raise Veto("evil is not welcome")
        if port.name == "b" and event is PortEvent.UPDATE and port.vlan_mode == VlanMode.ACCESS:
            raise Veto("b stays untagged")


class AllToC(ForwardingExtension):
    name = "all-to-c"

    def forward(self, ctx: Context, pkts: Sequence[Packet]) -> None:
        c = ctx.port_index("c")
        for p in pkts:
            p.dsts = [c] if c is not None else []


REGISTRY = Registry.of(Tap, Crash, NoB, AllToC)


def vm(name: str, mac: str) -> PortConfig:
    return PortConfig(name=name, kind=PortKind.VM, vm=name, switch="s", mac=mac)


def harness(*enabled: str) -> SwitchHarness:
    sw = SwitchConfig(name="s", extensions=[ExtensionSetting(name=n) for n in enabled])
    return SwitchHarness([sw], [vm("a", A), vm("b", B), vm("c", C)], REGISTRY)


def ext(h: SwitchHarness, name: str) -> object:
    stack = h.engine.switches["s"].ext
    assert stack is not None
    return next(s.instance for s in stack.slots if s.name == name)


def test_capture_sees_vm_to_vm_traffic_both_ways_and_events() -> None:
    h = harness("tap")
    h.send("a", eth(B, A, b"hello"))
    h.expect("b", eth(B, A, b"hello"))
    tap = ext(h, "tap")
    assert isinstance(tap, Tap)
    idx = h.engine.switches["s"].index_of
    assert tap.seen == [("ingress", idx["a"], parse_mac(A)), ("egress", idx["b"], parse_mac(A))]
    assert ("create", "a") in tap.events and ("connect", "c") in tap.events


def test_installed_but_not_enabled_sees_nothing() -> None:
    h = harness()
    h.send("a", eth(B, A))
    h.expect("b", eth(B, A))
    tap = ext(h, "tap")
    assert isinstance(tap, Tap) and tap.seen == [] and tap.events == []


def test_crashing_filter_does_not_stop_forwarding() -> None:
    h = harness("crash")
    for _ in range(3):
        h.send("a", eth(B, A))
        h.expect("b", eth(B, A))
    counters = h.engine.counters()["switches"]["s"]["extensions"]  # type: ignore[index]
    assert next(e for e in counters if e["name"] == "crash")["errors"] == 3


def test_egress_exclusion_and_reason() -> None:
    h = harness("no-b")
    h.send("a", eth(BCAST, A))
    h.expect("c", eth(BCAST, A))
    h.expect_nothing("b")
    counters = h.engine.counters()["switches"]["s"]["extensions"]  # type: ignore[index]
    assert next(e for e in counters if e["name"] == "no-b")["drops"] == {"not-to-b": 1}


def test_forwarding_extension_decides_destinations() -> None:
    h = harness("all-to-c")
    h.send("a", eth(B, A))
    h.expect("c", eth(B, A))
    h.expect_nothing("b")


def test_capture_originates_a_frame_into_the_switch() -> None:
    h = harness("tap")
    h.send("a", eth(C, A))
    report = eth(BCAST, "02:00:00:00:00:ee", b"report")
    assert h.take("c") == [eth(C, A), report]
    # the report is broadcast from the trusted default port: every port gets it, the sender's too
    assert h.take("a") == [report] and h.take("b") == [report]


def test_veto_rejects_the_port_and_changes_nothing() -> None:
    h = harness("no-b")
    before = h.engine.switches["s"].index_of.copy()
    with pytest.raises(ConfigError, match="evil is not welcome"):
        h.configure([SwitchConfig(name="s", extensions=[ExtensionSetting(name="no-b")])],
                     [vm("a", A), vm("b", B), vm("c", C), vm("evil", "02:00:00:00:00:66")])  # fmt: skip
    assert h.engine.switches["s"].index_of == before
    with pytest.raises(ConfigError, match="b stays untagged"):
        h.configure(
            [SwitchConfig(name="s", extensions=[ExtensionSetting(name="no-b")])],
            [vm("a", A), vm("b", B).model_copy(update={"vlan": VlanConfig(mode=VlanMode.ACCESS, access_vlan_id=5)}),
             vm("c", C)],
        )  # fmt: skip


def test_enable_reorder_disable_at_run_time_keeps_learning_and_state() -> None:
    h = harness()
    h.send("a", eth(B, A))
    h.take("b")
    h.configure(
        [SwitchConfig(name="s", extensions=[ExtensionSetting(name="tap")])],
        [vm("a", A), vm("b", B), vm("c", C)],
    )
    tap = ext(h, "tap")
    assert isinstance(tap, Tap) and ("create", "a") in tap.events  # told about the ports already there
    h.send("c", eth(A, C))
    h.expect("a", eth(A, C))
    h.configure(
        [SwitchConfig(name="s", extensions=[ExtensionSetting(name="tap", enabled=False)])],
        [vm("a", A), vm("b", B), vm("c", C)],
    )
    assert ext(h, "tap") is tap  # same instance: its state survives being disabled
    h.send("c", eth(A, C))
    h.expect("a", eth(A, C))
    assert len(tap.seen) == 2


def test_unknown_extension_and_two_forwarders_are_rejected_by_field() -> None:
    with pytest.raises(ConfigError) as e:
        SwitchHarness([SwitchConfig(name="s", extensions=[ExtensionSetting(name="nope")])], [], REGISTRY)
    assert e.value.problems == [("switches[0].extensions[0].name", "no extension 'nope' is installed")]

    class Other(AllToC):
        name = "other"

    reg = Registry.of(AllToC, Other)
    with pytest.raises(ConfigError, match="at most one forwarding"):
        SwitchHarness(
            [
                SwitchConfig(
                    name="s", extensions=[ExtensionSetting(name="all-to-c"), ExtensionSetting(name="other")]
                )
            ],
            [],
            reg,
        )


class Injector(FilterExtension):
    """Injects a frame claiming to come from port a, spoofing C's MAC, for every batch it sees from b."""

    name = "injector"
    source: str | None = "a"

    def ingress(self, ctx: Context, pkts: Sequence[Packet], gate: Gate) -> None:
        b = ctx.port_index("b")
        if pkts and pkts[0].in_port == b:
            src = ctx.port_index(self.source) if self.source is not None else None
            gate.inject(eth(BCAST, C, b"injected"), source_port=src)


def test_injected_with_a_source_port_gets_its_policies_default_port_is_trusted() -> None:
    reg = Registry.of(Injector)
    sw = SwitchConfig(name="s", extensions=[ExtensionSetting(name="injector")])
    h = SwitchHarness([sw], [vm("a", A), vm("b", B), vm("c", C)], reg)
    h.send("b", eth(A, B))
    h.expect("a", eth(A, B))
    h.expect_nothing("c")  # from port a with C's MAC: a's spoofing guard dropped it (EX-08)
    assert h.drops("s").get("mac-spoofing") == 1
    Injector.source = None
    try:
        h.send("b", eth(A, B))
        assert h.take("c") == [eth(BCAST, C, b"injected")]  # the default port is trusted
    finally:
        Injector.source = "a"
