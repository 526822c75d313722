"""An extension whose constructor raises (issue 11, item 2): that extension is disabled on that switch, with its
error shown in the stack (REST, ``extension show``/``list``, Get-VMSwitchExtension) and the host's health when it is
enabled; the switch, its forwarding and every configuration change keep working. Before, building the stack raised,
so every apply failed and the daemon could not start."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from pyvswitch.builtin.firewall import Firewall
from pyvswitch.config.schema import ExtensionSetting, PortConfig, PortKind, SwitchConfig
from pyvswitch.config.store import Store
from pyvswitch.daemon.api import create_app
from pyvswitch.daemon.macpool import MacPool
from pyvswitch.daemon.service import Service
from pyvswitch.datapath.memory import MemoryDevice
from pyvswitch.ext.api import FilterExtension
from pyvswitch.ext.registry import Installed, Registry
from pyvswitch.switch.engine import Engine
from pyvswitch.testing.clock import FakeClock
from pyvswitch.testing.frames import eth
from pyvswitch.testing.harness import SwitchHarness
from tests.component.test_api import FakeLab
from tests.component.test_cli import Cli

A, B = "02:00:00:00:00:0a", "02:00:00:00:00:0b"


class Broken(FilterExtension):
    name = "broken"

    def __init__(self, switch: str) -> None:
        raise RuntimeError("no licence file")


class Quitter(FilterExtension):
    name = "quitter"

    def __init__(self, switch: str) -> None:
        raise SystemExit(3)  # contained like anything an extension raises in the data path


def vm(name: str, mac: str) -> PortConfig:
    return PortConfig(name=name, kind=PortKind.VM, vm=name, switch="s", mac=mac)


def rows(h: SwitchHarness) -> dict[str, dict[str, Any]]:
    counters = h.engine.counters()["switches"]["s"]["extensions"]  # type: ignore[index]
    return {r["name"]: r for r in counters}


def test_a_constructor_that_raises_disables_that_extension_only() -> None:
    """issue 11: installed but not enabled, then enabled: the switch applies and forwards either way."""
    reg = Registry.of(Firewall, Broken, Quitter)
    ports = [vm("a", A), vm("b", B)]
    h = SwitchHarness([SwitchConfig(name="s")], ports, reg)
    h.send("a", eth(B, A, b"one"))
    h.expect("b", eth(B, A, b"one"))
    r = rows(h)
    assert r["pyvswitch-firewall"]["running"] is True and r["pyvswitch-firewall"]["problem"] is None
    assert r["broken"]["enabled"] is False and r["broken"]["running"] is False
    assert "RuntimeError: no licence file" in r["broken"]["problem"]
    assert "SystemExit" in r["quitter"]["problem"]
    assert h.engine.health()["state"] == "ok"  # nobody asked for them

    # Enabling it is accepted (the configuration says what the operator wants) but it does not run.
    h.configure(
        [
            SwitchConfig(
                name="s", extensions=[ExtensionSetting(name="broken"), ExtensionSetting(name="quitter")]
            )
        ],
        ports,
    )
    h.send("a", eth(B, A, b"two"))
    h.expect("b", eth(B, A, b"two"))
    r = rows(h)
    assert r["broken"]["enabled"] is True and r["broken"]["running"] is False
    assert "no licence file" in r["broken"]["problem"]
    health = h.engine.health()
    assert health["state"] == "degraded" and any("broken" in p for p in health["problems"])  # type: ignore[attr-defined]
    installed = {i["name"]: i for i in h.engine.installed_extensions()}
    assert "no licence file" in str(installed["broken"]["problem"])
    # Other changes keep applying.
    h.configure([SwitchConfig(name="s")], [*ports, vm("c", "02:00:00:00:00:0c")])
    h.send("a", eth(B, A, b"three"))
    h.expect("b", eth(B, A, b"three"))


class EngineDaemon:
    """The real service and API over a real engine on memory devices, with ``registry`` as what is installed."""

    def __init__(self, path: Path, registry: Registry) -> None:
        self.lab = FakeLab()
        self.engine = Engine(
            clock=FakeClock(), open_device=lambda kind, ifname: MemoryDevice(ifname), registry=registry
        )
        self.store = Store(path)
        self.service = Service(self.store, self.engine, self.lab, MacPool(0x0102))  # type: ignore[arg-type]
        self.service.start()
        self.client = TestClient(create_app(self.service))


@pytest.fixture
def d(tmp_path: Path) -> Iterator[EngineDaemon]:
    reg = Registry(
        {
            "pyvswitch-firewall": Installed(
                "pyvswitch-firewall",
                Firewall,
                "pyvswitch.builtin.firewall:Firewall",
                "pyvswitch",
                builtin=True,
            ),
            "broken": Installed("broken", Broken, "vendor:Broken", "vendor-ext"),
        }
    )
    daemon = EngineDaemon(tmp_path / "config.db", reg)
    yield daemon
    daemon.engine.stop()
    daemon.store.close()


def test_rest_and_cli_show_the_error_and_changes_keep_applying(
    d: EngineDaemon, capsys: pytest.CaptureFixture[str]
) -> None:
    """issue 11: POST a switch, enable the broken extension, reorder: all accepted; the error text is in
    GET /v1/switches/{name}/extensions, /v1/extensions, `extension show|list` and Get-VMSwitchExtension."""
    r = d.client.post("/v1/switches", json={"name": "sw", "type": "Private"})
    assert r.status_code == 201, r.text
    r = d.client.patch(
        "/v1/switches/sw",
        json={
            "extensions": [
                {"name": "broken", "enabled": True},
                {"name": "pyvswitch-firewall", "enabled": True},
            ]
        },
    )
    assert r.status_code == 200, r.text
    stack = {x["name"]: x for x in d.client.get("/v1/switches/sw/extensions").json()}
    assert stack["broken"]["enabled"] is True and stack["broken"]["running"] is False
    assert "no licence file" in stack["broken"]["problem"]
    assert stack["pyvswitch-firewall"]["running"] is True
    installed = {x["name"]: x for x in d.client.get("/v1/extensions").json()}
    assert "no licence file" in installed["broken"]["problem"]
    assert d.client.post("/v1/switches", json={"name": "sw2", "type": "Private"}).status_code == 201

    cli = Cli(d, capsys)  # type: ignore[arg-type]
    assert "no licence file" in cli.ok("extension", "show", "sw").out
    assert "no licence file" in cli.ok("extension", "list").out
    objs = json.loads(cli.ok("--json", "Get-VMSwitchExtension", "-VMSwitchName", "sw").out)
    broken = next(o for o in objs if o["Name"] == "broken")
    assert broken["Enabled"] is True and broken["Running"] is False and "no licence file" in broken["Problem"]
