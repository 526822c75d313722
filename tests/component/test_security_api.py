"""Port security through the management plane: REST PATCH, `pyvswitch port set`, Set-/Get-VMNetworkAdapter,
persisted across a restart (PS-01..07 settings; the data path is test_security.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.component.test_api import Daemon, errors
from tests.component.test_cli import Cli

ALL_ON = {
    "mac_spoofing": True,
    "dhcp_guard": True,
    "router_guard": True,
    "allow_teaming": True,
    "storm_limit": 2500,
    "ieee_priority_tag": True,
}
SECURITY = tuple(ALL_ON)


@pytest.fixture
def d(tmp_path: Path) -> Iterator[Daemon]:
    daemon = Daemon(tmp_path / "config.db")
    daemon.client.post("/v1/switches", json={"name": "sw", "type": "Internal"})
    daemon.client.post("/v1/vms", json={"name": "web01", "switch": "sw"})
    yield daemon
    daemon.store.close()


@pytest.fixture
def cli(d: Daemon, capsys: pytest.CaptureFixture[str]) -> Cli:
    return Cli(d, capsys)


def settings(d: Daemon, port: str) -> dict[str, object]:
    p = d.service.port(port)
    return {k: getattr(p, k) for k in SECURITY}


def test_defaults_are_hyperv_defaults(d: Daemon) -> None:
    port = d.client.get("/v1/ports/web01-eth0").json()
    assert {k: port[k] for k in SECURITY} == dict.fromkeys(SECURITY, False) | {"storm_limit": 0}


def test_patch_sets_persists_and_reaches_the_engine(d: Daemon) -> None:
    r = d.client.patch("/v1/ports/web01-eth0", json=ALL_ON)
    assert r.status_code == 200, r.text
    assert {k: r.json()[k] for k in SECURITY} == ALL_ON
    applied = next(p for p in d.engine.current.ports if p.name == "web01-eth0")
    assert applied.storm_limit == 2500 and applied.dhcp_guard
    d.restart()
    assert settings(d, "web01-eth0") == ALL_ON
    r = d.client.patch("/v1/ports/web01-eth0", json={"dhcp_guard": False})
    assert settings(d, "web01-eth0") == ALL_ON | {"dhcp_guard": False}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"storm_limit": -1}, "storm_limit"),
        ({"storm_limit": 2**32}, "storm_limit"),
        ({"dhcp_guard": None}, "dhcp_guard"),
        ({"router_guard": "maybe"}, "router_guard"),
        ({"port_security": True}, "port_security"),
    ],
)
def test_bad_values_are_400_naming_the_field(d: Daemon, body: dict[str, object], field: str) -> None:
    r = d.client.patch("/v1/ports/web01-eth0", json=body)
    assert r.status_code == 400, r.text
    assert errors(r)[0][0] == field


def test_teaming_only_on_vm_ports_PS03(d: Daemon) -> None:
    r = d.client.patch("/v1/ports/sw", json={"allow_teaming": True})  # the Internal switch's host vNIC
    assert r.status_code == 400
    assert errors(r) == [("allow_teaming", "guest teaming applies to vm ports only, not host")]
    assert d.client.patch("/v1/ports/sw", json={"dhcp_guard": True, "storm_limit": 10}).status_code == 200


def test_port_set_verbs(cli: Cli, d: Daemon) -> None:
    out = cli.ok(
        "port",
        "set",
        "web01-eth0",
        "--dhcp-guard",
        "--router-guard",
        "--allow-teaming",
        "--storm-limit",
        "2500",
        "--ieee-priority-tag",
        "--mac-spoofing",
    ).out
    assert settings(d, "web01-eth0") == ALL_ON
    assert "dhcp guard" in out and "2500" in out
    cli.ok("port", "set", "web01-eth0", "--no-dhcp-guard", "--storm-limit", "0", "--no-mac-spoofing")
    assert settings(d, "web01-eth0") == ALL_ON | {
        "dhcp_guard": False,
        "storm_limit": 0,
        "mac_spoofing": False,
    }
    shown = cli.ok("port", "show", "web01-eth0").out
    assert "storm limit (pps)" in shown and "- (off)" in shown
    res = cli("port", "set", "web01-eth0", "--storm-limit", "-5")
    assert res.rc == 2 and "--storm-limit" in res.err
    res = cli("port", "set", "sw", "--allow-teaming")
    assert res.rc == 1 and "allow_teaming" in res.err


def test_set_and_get_vmnetworkadapter_cmdlets(cli: Cli, d: Daemon) -> None:
    cli.ok(
        "Set-VMNetworkAdapter",
        "-VMName",
        "web01",
        "-MacAddressSpoofing",
        "On",
        "-DhcpGuard",
        "on",
        "-RouterGuard",
        "On",
        "-AllowTeaming",
        "On",
        "-StormLimit",
        "2500",
        "-IeeePriorityTag",
        "On",
    )
    assert settings(d, "web01-eth0") == ALL_ON
    (obj,) = cli.ok("--json", "Get-VMNetworkAdapter", "web01").json()
    assert {k: obj[k] for k in ("MacAddressSpoofing", "DhcpGuard", "RouterGuard", "AllowTeaming")} == {
        "MacAddressSpoofing": "On",
        "DhcpGuard": "On",
        "RouterGuard": "On",
        "AllowTeaming": "On",
    }
    assert obj["IeeePriorityTag"] == "On" and obj["StormLimit"] == 2500

    (obj,) = cli.ok(
        "--json", "Set-VMNetworkAdapter", "web01", "eth0", "-DhcpGuard", "Off", "-Passthru"
    ).json()
    assert obj["DhcpGuard"] == "Off" and not d.service.port("web01-eth0").dhcp_guard
    cli.ok("Set-VMNetworkAdapter", "-ManagementOS", "-Name", "sw", "-RouterGuard", "On")
    assert d.service.port("sw").router_guard

    res = cli("Set-VMNetworkAdapter", "web01", "-DhcpGuard", "Maybe")
    assert res.rc == 2 and "On, Off" in res.err
    res = cli("Set-VMNetworkAdapter", "web01", "-StormLimit", "-1")
    assert res.rc == 2 and "minimum allowed range of 0" in res.err
    res = cli("Set-VMNetworkAdapter", "web01", "-Name", "nosuch", "-DhcpGuard", "On")
    assert res.rc == 1 and "network adapter named 'nosuch'" in res.err
