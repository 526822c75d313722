"""Per-port MAC limits (issue 10 item 4): a port that may send from any MAC (PS-02) cannot flush the MAC
table (SW-07) and take the other ports' learned MACs with it. The switch on memory devices with a fake clock,
then the setting through configuration validation, the API and the CLI."""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import ValidationError

from pyvswitch.cli.main import main
from pyvswitch.cli.views import counters_text
from pyvswitch.config.schema import PortConfig, PortKind, SwitchConfig
from pyvswitch.testing.frames import BCAST, eth, ipv4, udp
from pyvswitch.testing.harness import SwitchHarness
from tests.component.test_api import Daemon
from tests.component.test_cli import bridge

EVIL, V = "02:00:00:00:0e:01", "02:00:00:00:00:0a"
X = "02:00:00:00:99:01"  # a host behind the interface port wire1
FLOOD = 10_000  # more than the switch's 8192-entry table


def ports(mac_limit: int | None) -> list[PortConfig]:
    vm = dict(kind=PortKind.VM, switch="s")
    return [
        PortConfig(name="evil", vm="evil", mac=EVIL, mac_spoofing=True, mac_limit=mac_limit, **vm),  # type: ignore[arg-type]
        PortConfig(name="v", vm="v", mac=V, **vm),  # type: ignore[arg-type]
        PortConfig(name="wire1", kind=PortKind.INTERFACE, interface="wire1", switch="s"),
        PortConfig(name="wire2", kind=PortKind.INTERFACE, interface="wire2", switch="s"),
    ]


def frame(dst: str | int, src: str | int) -> bytes:
    return eth(dst, src, ipv4("10.0.0.1", "10.0.0.2", 17, udp(1, 2)))


def flood_from_evil(h: SwitchHarness) -> int:
    """FLOOD broadcasts from made-up unicast sources on the spoofing port; returns how many reached wire2."""
    rng = random.Random(1)
    dev = h.port_device("evil")
    for _ in range(FLOOD):
        src = (0x02 << 40) | rng.getrandbits(40)  # locally administered unicast
        dev.inject(frame(BCAST, src))
    delivered = 0
    while h.engine.run_once():
        delivered += len(h.take("wire2"))
        h.take("wire1")
        h.take("v")
    return delivered


def switch_with_x_learned(mac_limit: int | None) -> SwitchHarness:
    h = SwitchHarness([SwitchConfig(name="s")], ports(mac_limit))
    h.send("wire1", frame(BCAST, X))  # X is learned on wire1
    h.take("v")
    h.take("wire2")
    h.take("evil")
    h.send("v", frame(X, V))
    h.expect("wire1", frame(X, V))  # known: to wire1 only
    h.expect_nothing("wire2")
    return h


def test_a_spoofing_port_at_its_mac_limit_cannot_evict_another_ports_mac() -> None:
    """PS-02 (a spoofing port's sources are learned) bounded by mac_limit; SW-07 (unicast goes where the table
    says): 10k made-up sources from one port leave X, learned on wire1, in the table. Their frames are still
    forwarded; the sources past the limit are counted, not learned."""
    h = switch_with_x_learned(mac_limit=100)
    assert flood_from_evil(h) == FLOOD
    h.send("v", frame(X, V))
    h.expect("wire1", frame(X, V))
    h.expect_nothing("wire2")
    fdb = h.engine.counters()["switches"]["s"]["fdb"]  # type: ignore[index]
    assert fdb["mac_limits"] == {"evil": {"limit": 100, "learned": 100, "not_learned": FLOOD - 100}}
    assert fdb["learned"] == 101 and fdb["evictions"] == 0 and fdb["not_learned"] == FLOOD - 100
    text = counters_text(h.engine.counters())
    assert f"mac limit evil: 100 (learned 100, not learned {FLOOD - 100})" in text


def test_without_a_limit_the_same_flood_evicts_it() -> None:
    """Why the limit exists: the same flood without it pushes X out of the 8192-entry table, and a frame to X
    becomes unknown unicast, sent to every interface port."""
    h = switch_with_x_learned(mac_limit=None)
    flood_from_evil(h)
    h.send("v", frame(X, V))
    h.expect("wire1", frame(X, V))
    h.expect("wire2", frame(X, V))
    assert h.engine.counters()["switches"]["s"]["fdb"]["mac_limits"] == {}  # type: ignore[index]


def test_raising_the_limit_lets_the_port_learn_again() -> None:
    h = SwitchHarness([SwitchConfig(name="s")], ports(mac_limit=1))
    h.send("evil", frame(BCAST, "02:00:00:00:0e:02"))
    h.send("evil", frame(BCAST, "02:00:00:00:0e:03"))  # over the limit: not learned
    h.send("v", frame("02:00:00:00:0e:03", V))
    assert h.take("wire1") and h.take("wire2") and not h.take("evil")  # unknown: interface ports only
    h.configure([SwitchConfig(name="s")], ports(mac_limit=2))
    h.send("evil", frame(BCAST, "02:00:00:00:0e:03"))
    h.send("v", frame("02:00:00:00:0e:03", V))
    h.expect("evil", frame("02:00:00:00:0e:03", V))


def test_mac_limit_must_be_at_least_one_and_the_error_names_it() -> None:
    with pytest.raises(ValidationError) as exc:
        PortConfig(name="p", kind=PortKind.INTERFACE, interface="eth9", mac_limit=0)
    assert [e["loc"] for e in exc.value.errors()] == [("mac_limit",)]


@pytest.fixture
def d(tmp_path: Path) -> Iterator[Daemon]:
    daemon = Daemon(tmp_path / "config.db")
    yield daemon
    daemon.store.close()


def test_api_and_cli_show_the_mac_limit(d: Daemon, capsys: pytest.CaptureFixture[str]) -> None:
    d.client.post("/v1/switches", json={"name": "sw"})
    r = d.client.post(
        "/v1/ports",
        json={"name": "p", "kind": "interface", "interface": "eth2", "switch": "sw", "mac_limit": 0},
    )
    assert r.status_code == 400 and r.json()["errors"][0]["field"] == "mac_limit"
    r = d.client.post(
        "/v1/ports",
        json={"name": "p", "kind": "interface", "interface": "eth2", "switch": "sw", "mac_limit": 50},
    )
    assert r.status_code == 201 and r.json()["mac_limit"] == 50
    assert next(p for p in d.engine.current.ports if p.name == "p").mac_limit == 50  # what the engine applies
    assert main(["port", "show", "p"], transport=bridge(d)) == 0
    assert [ln.split() for ln in capsys.readouterr().out.splitlines() if "mac limit" in ln] == [
        ["mac", "limit:", "50"]
    ]


def test_port_set_mac_limit(d: Daemon, capsys: pytest.CaptureFixture[str]) -> None:
    d.client.post("/v1/switches", json={"name": "sw"})
    d.client.post("/v1/ports", json={"name": "p", "kind": "interface", "interface": "eth2", "switch": "sw"})
    assert main(["port", "set", "p", "--mac-limit", "64"], transport=bridge(d)) == 0, capsys.readouterr().err
    assert d.service.port("p").mac_limit == 64
    assert main(["port", "set", "p", "--mac-limit", "0"], transport=bridge(d)) == 0  # 0: no limit
    assert d.service.port("p").mac_limit is None
