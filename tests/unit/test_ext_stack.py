"""The extension stack alone (EX-01, EX-05, EX-06, EX-10, EX-11, EX-15): order, powers, containment, events."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest

from pyvswitch.ext.api import (
    CapturedFrame,
    CaptureExtension,
    Context,
    FilterExtension,
    ForwardingExtension,
    Gate,
    OnError,
    PortEvent,
    PortInfo,
    Veto,
)
from pyvswitch.ext.registry import Registry, check_class
from pyvswitch.ext.stack import ExtensionStack, ExtensionVeto, settings_problems, stack_order
from pyvswitch.packet.frame import Packet
from pyvswitch.testing.frames import eth

A, B = "02:00:00:00:00:0a", "02:00:00:00:00:0b"
CALLS: list[str] = []


class Spy(CaptureExtension):
    name = "spy"

    def capture(self, ctx: Context, frames: Sequence[CapturedFrame], direction: str, port: int) -> None:
        CALLS.append(f"spy:{direction}:{len(frames)}")
        frames[0].data[0:1] = b"\x00"  # must fail: capture is read-only


class Dropper(FilterExtension):
    name = "dropper"

    def ingress(self, ctx: Context, pkts: Sequence[Packet], gate: Gate) -> None:
        CALLS.append("dropper:ingress")
        gate.drop(pkts[0], "first-one")

    def egress(self, ctx: Context, pkts: Sequence[Packet], gate: Gate) -> None:
        CALLS.append("dropper:egress")


class Crasher(FilterExtension):
    name = "crasher"

    def ingress(self, ctx: Context, pkts: Sequence[Packet], gate: Gate) -> None:
        CALLS.append("crasher:ingress")
        gate.drop(pkts[-1], "never-applied")
        raise RuntimeError("boom")


class StrictCrasher(Crasher):
    name = "strict"
    on_error = OnError.DROP


class ToPortTwo(ForwardingExtension):
    name = "to-two"

    def forward(self, ctx: Context, pkts: Sequence[Packet]) -> None:
        CALLS.append("to-two:forward")
        for p in pkts:
            p.dsts = [2]


class Picky(FilterExtension):
    name = "picky"
    enabled_by_default = True
    seen: list[tuple[str, str]] = []

    def port_event(self, event: PortEvent, port: PortInfo) -> None:
        Picky.seen.append((event.value, port.name))
        if port.name == "evil" and event is PortEvent.CREATE:
            raise Veto("no evil ports")


class Setting:
    def __init__(self, name: str, enabled: bool) -> None:
        self.name, self.enabled = name, enabled


def stack(*enabled: str, **extra: Any) -> ExtensionStack:
    reg = Registry.of(Spy, Dropper, Crasher, StrictCrasher, ToPortTwo, Picky)
    return ExtensionStack.build("sw", reg, [Setting(n, True) for n in enabled], lambda: 0.0)


def pkts(n: int) -> list[Packet]:
    out = []
    for i in range(n):
        p = Packet(eth(B, A, bytes([i]) * 10))
        p.in_port = 0
        out.append(p)
    return out


@pytest.fixture(autouse=True)
def _reset() -> None:
    CALLS.clear()
    Picky.seen.clear()


def test_order_is_by_kind_then_configuration() -> None:
    reg = Registry.of(Spy, Dropper, Crasher, ToPortTwo, Picky)
    order = stack_order(reg, [Setting("to-two", True), Setting("crasher", False), Setting("dropper", True)])
    assert [(n, on) for n, _, on in order] == [
        ("spy", False),  # capture first, unconfigured: disabled by default
        ("crasher", False),
        ("dropper", True),
        ("picky", True),  # unconfigured filter after the configured ones, enabled by default (like WFP)
        ("to-two", True),
    ]


def test_capture_is_read_only_and_contained_filter_drops_with_reason() -> None:
    st = stack("spy", "dropper")
    out = st.ingress(pkts(3), port=0)
    assert len(out) == 2
    assert CALLS[:2] == ["spy:ingress:3", "dropper:ingress"]
    slots = {s["name"]: s for s in st.counters()}
    assert slots["spy"]["errors"] == 1  # its write into the frame raised and was contained
    assert slots["dropper"]["drops"] == {"first-one": 1}


def test_crash_bypass_keeps_the_batch_and_drop_mode_drops_it() -> None:
    assert len(stack("crasher").ingress(pkts(3), port=0)) == 3  # decisions of a failed call are ignored
    st = stack("strict")
    assert st.ingress(pkts(3), port=0) == []
    assert {s["name"]: s for s in st.counters()}["strict"]["drops"] == {"extension-error": 3}


def test_forwarding_extension_sets_destinations_and_egress_runs_in_reverse() -> None:
    st = stack("dropper", "to-two")
    batch = st.forward(pkts(2), port_count=3)
    assert [p.dsts for p in batch] == [[2], [2]]
    st.egress(batch, [-1, -1], port=2)
    assert CALLS == ["to-two:forward", "dropper:egress"]


def test_excludes_hold_when_the_same_call_also_drops() -> None:
    """A filter that drops one packet and excludes another of the same egress batch delivers neither (the stack
    read only the drops when there were any, so the exclude was lost)."""

    class DropAndExclude(FilterExtension):
        name = "drop-and-exclude"

        def egress(self, ctx: Context, pkts: Sequence[Packet], gate: Gate) -> None:
            gate.drop(pkts[0], "dropped")
            gate.exclude(pkts[1], "excluded")

    st = ExtensionStack.build(
        "sw", Registry.of(DropAndExclude), [Setting("drop-and-exclude", True)], lambda: 0.0
    )
    batch = pkts(3)
    out, tcis = st.egress(batch, [-1, -1, -1], port=2)
    assert out == [batch[2]] and tcis == [-1]
    drops = {s["name"]: s for s in st.counters()}["drop-and-exclude"]["drops"]
    assert drops == {"dropped": 1, "excluded": 1}


def test_forwarder_cannot_send_back_to_source_or_outside() -> None:
    class Bad(ForwardingExtension):
        name = "bad"

        def forward(self, ctx: Context, pkts: Sequence[Packet]) -> None:
            for p in pkts:
                p.dsts = [0, 7]  # 0 is the source, 7 does not exist

    st = ExtensionStack.build("sw", Registry.of(Bad), [Setting("bad", True)], lambda: 0.0)
    assert st.forward(pkts(1), port_count=3) == []


def test_veto_undoes_creation_for_those_that_accepted() -> None:
    st = stack()  # picky is on by default
    info = PortInfo("evil", 3, "vm", "sw", None, None, "Untagged")
    with pytest.raises(ExtensionVeto, match="picky"):
        st.deliver([(PortEvent.CREATE, info)])
    st.deliver([(PortEvent.CREATE, PortInfo("good", 1, "vm", "sw", None, None, "Untagged"))])
    assert Picky.seen == [("create", "evil"), ("create", "good")]


def test_settings_problems_name_the_field() -> None:
    reg = Registry.of(ToPortTwo, Dropper)

    class Other(ToPortTwo):
        name = "other"

    reg2 = Registry.of(ToPortTwo, Other)
    assert settings_problems(reg, [Setting("nope", True)]) == [
        ("extensions[0].name", "no extension 'nope' is installed")
    ]
    assert settings_problems(reg2, [Setting("to-two", True), Setting("other", True)])[0][0] == "extensions"


def test_check_class_rejects_what_is_not_an_extension() -> None:
    assert check_class("x", object) is not None
    assert "name" in (check_class("x", Dropper) or "")

    class Future(FilterExtension):
        name = "future"
        api_version = "2.0"

    assert "API 2.0" in (check_class("future", Future) or "")


def test_state_save_and_restore_by_extension_name() -> None:
    class Stateful(FilterExtension):
        name = "stateful"
        got: dict[str, bytes] = {}

        def save_state(self, port: str) -> bytes | None:
            return port.encode()

        def restore_state(self, port: str, blob: bytes) -> None:
            Stateful.got[port] = blob

    st = ExtensionStack.build("sw", Registry.of(Stateful), [Setting("stateful", True)], lambda: 0.0)
    saved = st.save_port_state("web01-eth0")
    assert saved == {"stateful": b"web01-eth0"}
    assert st.restore_port_state("web01-eth0", {**saved, "gone": b"x"}) == ["gone"]
    assert Stateful.got == {"web01-eth0": b"web01-eth0"}
