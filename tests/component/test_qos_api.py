"""QoS and DCB through the REST API (hyperv-networking.md §5) with a fake engine and lab: switch and port
bandwidth, admission control, host QoS policies, traffic classes, PFC, DCBX, adapters, status, restart."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from pyvswitch.daemon.api import create_app
from tests.component.test_api import Daemon, FakeEngine
from tests.component.test_cli import Cli

G = 10**9
M = 10**6


class QosEngine(FakeEngine):
    """A FakeEngine with ``qos_status``, as the real engine offers it."""

    def qos_status(self, switch: str) -> dict[str, object] | None:
        if not any(s.name == switch for s in self.current.switches):
            return None
        return {
            "switch": switch,
            "mode": "Weight",
            "capacity": G,
            "reservation": 0,
            "default_flow": {"weight": 1, "absolute": 0, "bandwidth_percentage": 12.5},
            "ports": {
                "web01-eth0": {
                    "sent_bytes": 1000,
                    "drops": 2,
                    "rate_bps": 5 * M,
                    "bandwidth_percentage": 87.5,
                }
            },
            "classes": [],
            "dcb": {"enabled": False, "operational": False},
        }


@pytest.fixture
def d(tmp_path: Path) -> Iterator[Daemon]:
    daemon = Daemon(tmp_path / "config.db")
    yield daemon
    daemon.store.close()


def errors(resp: Any) -> dict[str, str]:
    return {e["field"]: e["message"] for e in resp.json()["errors"]}


def ok(resp: Any, status: int = 200) -> Any:
    assert resp.status_code == status, resp.text
    return resp.json() if resp.content else None


def external(d: Daemon, mode: str = "Absolute", link_speed: int | None = G) -> None:
    body: dict[str, Any] = {
        "name": "ext",
        "type": "External",
        "net_adapter": "eth1",
        "minimum_bandwidth_mode": mode,
    }
    if link_speed is not None:
        body["link_speed"] = link_speed
    ok(d.client.post("/v1/switches", json=body), 201)
    for vm in ("web01", "web02"):
        ok(d.client.post("/v1/vms", json={"name": vm, "switch": "ext"}), 201)


def test_switch_create_sets_the_mode_and_the_uplink_link_speed(d: Daemon) -> None:
    """QS-03: New-VMSwitch -MinimumBandwidthMode Absolute; the uplink's line rate is the capacity."""
    external(d)
    sw = ok(d.client.get("/v1/switches/ext"))
    assert sw["minimum_bandwidth_mode"] == "Absolute"
    assert ok(d.client.get("/v1/ports/ext-uplink"))["link_speed"] == G
    assert {p.name: p.link_speed for p in d.engine.current.ports}["ext-uplink"] == G  # the engine got it
    status = ok(d.client.get("/v1/switches/ext/qos"))
    assert status["running"] is False  # FakeEngine has no qos_status: the configuration speaks
    assert (status["mode"], status["capacity"], status["reservation"]) == ("Absolute", G, 100 * M)
    assert status["default_flow"]["bandwidth_percentage"] == 10.0


def test_link_speed_needs_an_external_switch(d: Daemon) -> None:
    r = d.client.post("/v1/switches", json={"name": "p", "type": "Private", "link_speed": G})
    assert r.status_code == 400 and "link_speed" in errors(r)


def test_mode_is_fixed_at_creation(d: Daemon) -> None:
    """Set-VMSwitch has no -MinimumBandwidthMode: a PATCH or a PUT /v1/config that changes it is refused."""
    external(d)
    r = d.client.patch("/v1/switches/ext", json={"minimum_bandwidth_mode": "Weight"})
    assert r.status_code == 400
    assert "fixed at creation" in errors(r)["minimum_bandwidth_mode"]
    ok(d.client.patch("/v1/switches/ext", json={"minimum_bandwidth_mode": "Absolute"}))  # unchanged: fine
    cfg = ok(d.client.get("/v1/config"))
    cfg["switches"][0]["minimum_bandwidth_mode"] = "None"
    r = d.client.put("/v1/config", json=cfg)
    assert r.status_code == 400 and "switches[0].minimum_bandwidth_mode" in errors(r)


def test_default_flow_settings(d: Daemon) -> None:
    external(d)
    sw = ok(d.client.patch("/v1/switches/ext", json={"default_flow_minimum_bandwidth_absolute": 50_000_007}))
    assert sw["default_flow_minimum_bandwidth_absolute"] == 50_000_000
    assert ok(d.client.get("/v1/switches/ext/qos"))["reservation"] == 50 * M
    sw = ok(d.client.patch("/v1/switches/ext", json={"default_flow_minimum_bandwidth_absolute": None}))
    assert sw["default_flow_minimum_bandwidth_absolute"] is None
    r = d.client.patch("/v1/switches/ext", json={"default_flow_minimum_bandwidth_weight": 5})
    assert r.status_code == 400 and "default_flow_minimum_bandwidth_weight" in errors(r)


def test_port_bandwidth_and_admission_control(d: Daemon) -> None:
    """QS-01, QS-03: a port's minimum and maximum; a reservation beyond capacity is refused whole, in human units."""
    external(d)
    p = ok(
        d.client.patch(
            "/v1/ports/web01-eth0",
            json={"minimum_bandwidth_absolute": 800 * M, "maximum_bandwidth": 900_000_003},
        )
    )
    assert (p["minimum_bandwidth_absolute"], p["maximum_bandwidth"]) == (800 * M, 900_000_000)
    r = d.client.patch("/v1/ports/web02-eth0", json={"minimum_bandwidth_absolute": 150 * M})
    assert r.status_code == 400
    assert errors(r) == {
        "minimum_bandwidth_absolute": "switch 'ext' cannot admit this reservation: 1 Gbit/s capacity, "
        "900 Mbit/s reserved, 150 Mbit/s requested"
    }
    assert ok(d.client.get("/v1/ports/web02-eth0"))["minimum_bandwidth_absolute"] == 0  # nothing changed
    # more capacity admits it
    ok(d.client.patch("/v1/ports/ext-uplink", json={"link_speed": 10 * G}))
    ok(d.client.patch("/v1/ports/web02-eth0", json={"minimum_bandwidth_absolute": 150 * M}))
    r = d.client.patch("/v1/ports/ext-uplink", json={"link_speed": G})
    # another port's reservation no longer fits: that port is named by its name
    assert r.status_code == 400 and list(errors(r)) == ["ports['web02-eth0'].minimum_bandwidth_absolute"]
    status = ok(d.client.get("/v1/switches/ext/qos"))
    assert status["reservation"] == 1950 * M  # 10 % of 10 Gbit/s for the default flow, 800 + 150 Mbit/s
    assert status["ports"]["web01-eth0"]["bandwidth_percentage"] == 8.0


def test_port_bandwidth_errors_name_the_request_fields(d: Daemon) -> None:
    """QS-05: a weight on an Absolute switch; link_speed on a VM port; null is not a value."""
    external(d)
    r = d.client.patch("/v1/ports/web01-eth0", json={"minimum_bandwidth_weight": 5, "link_speed": G})
    assert set(errors(r)) == {"minimum_bandwidth_weight", "link_speed"}
    r = d.client.patch("/v1/ports/web01-eth0", json={"maximum_bandwidth": None})
    assert errors(r) == {"maximum_bandwidth": "may not be null"}
    r = d.client.patch("/v1/ports/web01-eth0", json={"maximum_bandwidth": -1})
    assert r.status_code == 400 and "maximum_bandwidth" in errors(r)


def test_weight_mode_percentages(d: Daemon) -> None:
    """QS-02/QS-06: BandwidthPercentage = weight / (sum of weights + default flow weight)."""
    external(d, mode="Default")
    ok(d.client.patch("/v1/ports/web01-eth0", json={"minimum_bandwidth_weight": 3}))
    status = ok(d.client.get("/v1/switches/ext/qos"))
    assert status["mode"] == "Weight"
    assert status["ports"]["web01-eth0"]["bandwidth_percentage"] == 75.0
    assert status["default_flow"]["bandwidth_percentage"] == 25.0


def test_team_member_link_speed(d: Daemon) -> None:
    ok(d.client.post("/v1/teams", json={"name": "t1", "members": ["eth1", "eth2"]}), 201)
    r = d.client.post(
        "/v1/switches", json={"name": "ext", "type": "External", "net_adapter": "t1", "link_speed": G}
    )
    assert r.status_code == 400 and "member_link_speed" in errors(r)["link_speed"]
    ok(
        d.client.post(
            "/v1/switches",
            json={
                "name": "ext",
                "type": "External",
                "net_adapter": "t1",
                "minimum_bandwidth_mode": "Absolute",
            },
        ),
        201,
    )
    assert ok(d.client.patch("/v1/teams/t1", json={"member_link_speed": G}))["member_link_speed"] == G
    assert ok(d.client.get("/v1/switches/ext/qos"))["capacity"] == 2 * G


def test_status_comes_from_the_engine_when_it_has_it(tmp_path: Path) -> None:
    d = Daemon(tmp_path / "c.db")
    try:
        d.engine = QosEngine()
        d.service._engine = d.engine  # the service was built with the plain fake
        d.client = TestClient(create_app(d.service))
        external(d, mode="Default")
        status = ok(d.client.get("/v1/switches/ext/qos"))
        assert status["running"] is True
        assert status["ports"]["web01-eth0"]["rate_bps"] == 5 * M
        assert d.client.get("/v1/switches/nope/qos").status_code == 404
    finally:
        d.store.close()


def test_qos_policies_crud(d: Daemon) -> None:
    """QS-07/QS-08: New/Get/Set/Remove-NetQosPolicy; names with spaces; templates alone."""
    body = {
        "name": "Live Migration",
        "template": "LiveMigration",
        "min_bandwidth_weight": 30,
        "priority_8021": 5,
    }
    created = ok(d.client.post("/v1/qos/policies", json=body), 201)
    assert created["precedence"] == 127
    assert d.client.post("/v1/qos/policies", json=body).status_code == 409
    assert [q["name"] for q in ok(d.client.get("/v1/qos/policies"))] == ["Live Migration"]
    assert ok(d.client.get("/v1/qos/policies/Live%20Migration"))["template"] == "LiveMigration"
    changed = ok(
        d.client.patch("/v1/qos/policies/Live%20Migration", json={"min_bandwidth_weight": 40, "dscp": 10})
    )
    assert (changed["min_bandwidth_weight"], changed["dscp"]) == (40, 10)
    r = d.client.patch("/v1/qos/policies/Live%20Migration", json={"ip_dst_port": 80})
    assert r.status_code == 400 and "must be used alone" in next(iter(errors(r).values()))
    r = d.client.patch("/v1/qos/policies/Live%20Migration", json={"dscp": 64})
    assert "dscp" in errors(r)
    r = d.client.post("/v1/qos/policies", json={"name": "x", "ip_dst_port": 80})
    assert r.status_code == 400
    ok(d.client.delete("/v1/qos/policies/Live%20Migration"), 204)
    assert d.client.get("/v1/qos/policies/Live%20Migration").status_code == 404
    assert [h["summary"] for h in ok(d.client.get("/v1/history"))][:2] == [
        "remove QoS policy Live Migration",
        "set QoS policy Live Migration: dscp, min_bandwidth_weight",
    ]


def test_traffic_classes(d: Daemon) -> None:
    """QS-09: [Default] owns what no class claims; at most 99 % for created classes; priorities unique."""
    classes = ok(d.client.get("/v1/qos/traffic-classes"))
    assert classes == [
        {
            "name": "[Default]",
            "priorities": list(range(8)),
            "algorithm": "ETS",
            "bandwidth_percentage": 100,
            "default": True,
        }
    ]
    smb = ok(
        d.client.post(
            "/v1/qos/traffic-classes", json={"name": "SMB", "priorities": [3], "bandwidth_percentage": 60}
        ),
        201,
    )
    assert smb["default"] is False
    r = d.client.post(
        "/v1/qos/traffic-classes", json={"name": "LM", "priorities": [3, 5], "bandwidth_percentage": 10}
    )
    assert "priority 3 already belongs to class 'SMB'" in errors(r)["priorities"]
    r = d.client.post(
        "/v1/qos/traffic-classes", json={"name": "LM", "priorities": [5], "bandwidth_percentage": 40}
    )
    assert "at most 99 %" in errors(r)["bandwidth_percentage"]
    ok(
        d.client.post(
            "/v1/qos/traffic-classes", json={"name": "LM", "priorities": [5], "algorithm": "Strict"}
        ),
        201,
    )
    default = ok(d.client.get("/v1/qos/traffic-classes/[Default]"))
    assert (default["priorities"], default["bandwidth_percentage"]) == ([0, 1, 2, 4, 6, 7], 40)
    assert ok(d.client.patch("/v1/qos/traffic-classes/SMB", json={"priorities": [3, 4]}))["priorities"] == [
        3,
        4,
    ]
    r = d.client.patch("/v1/qos/traffic-classes/SMB", json={"bandwidth_percentage": 100})
    assert "bandwidth_percentage" in errors(r)
    assert d.client.delete("/v1/qos/traffic-classes/[Default]").status_code == 409
    ok(d.client.delete("/v1/qos/traffic-classes/SMB"), 204)
    assert d.client.get("/v1/qos/traffic-classes/SMB").status_code == 404
    assert ok(d.client.get("/v1/qos/dcb"))["traffic_classes"][0]["bandwidth_percentage"] == 100


def test_pfc_dcbx_and_adapters_persist(d: Daemon) -> None:
    """QS-09/QS-10: PFC priorities, willing (default true), Enable-NetAdapterQos; all survive a restart."""
    external(d)
    dcb = ok(d.client.get("/v1/qos/dcb"))
    assert (dcb["willing"], dcb["flow_control_priorities"], dcb["adapters"]) == (True, [], [])
    dcb = ok(d.client.patch("/v1/qos/dcb", json={"willing": False, "flow_control_priorities": [3]}))
    assert (dcb["willing"], dcb["flow_control_priorities"]) == (False, [3])
    r = d.client.patch("/v1/qos/dcb", json={"flow_control_priorities": [3, 8]})
    assert r.status_code == 400 and "flow_control_priorities[1]" in errors(r)
    assert ok(d.client.put("/v1/qos/adapters/eth1"))["enabled"] is True
    assert ok(d.client.put("/v1/qos/adapters/eth1"))["enabled"] is True  # idempotent
    assert d.client.put("/v1/qos/adapters/web01").status_code == 404
    adapters = ok(d.client.get("/v1/qos/adapters"))
    assert adapters == [
        {"name": "eth1", "kind": "interface", "port": "ext-uplink", "switch": "ext", "enabled": True}
    ]
    assert ok(d.client.get("/v1/switches/ext/qos"))["dcb"] == {"enabled": True, "operational": True}
    d.restart()
    dcb = ok(d.client.get("/v1/qos/dcb"))
    assert (dcb["willing"], dcb["flow_control_priorities"], dcb["adapters"]) == (False, [3], ["eth1"])
    assert ok(d.client.delete("/v1/qos/adapters/eth1"))["enabled"] is False
    assert ok(d.client.get("/v1/qos/dcb"))["adapters"] == []


def test_a_switch_goes_with_dcb_enabled_on_its_nic_and_the_nic_keeps_it(d: Daemon) -> None:
    """DCB is the NIC's setting (Enable-NetAdapterQos): removing the switch that uses the NIC works, and the
    NIC stays DCB-enabled for the next switch on it, as on Windows."""
    external(d)
    ok(d.client.put("/v1/qos/adapters/eth1"))
    assert d.client.delete("/v1/switches/ext").status_code == 204
    assert "eth1" in ok(d.client.get("/v1/qos/dcb"))["adapters"]


# ---------------------------------------------------------------- the CLI on these routes


@pytest.fixture
def cli(d: Daemon, capsys: pytest.CaptureFixture[str]) -> Cli:
    return Cli(d, capsys)


def test_verbs_set_bandwidth_and_show_it(cli: Cli, d: Daemon) -> None:
    """``switch add --link-speed --min-bandwidth-mode``, ``port set --min-absolute --max-bandwidth``, ``qos show``."""
    cli.ok(
        "switch", "add", "ext", "--uplink", "eth1", "--link-speed", "1G", "--min-bandwidth-mode", "absolute"
    )
    cli.ok("vm", "add", "web01", "--switch", "ext")
    cli.ok("port", "set", "web01-eth0", "--min-absolute", "300M", "--max-bandwidth", "500M")
    port = cli.ok("port", "show", "web01-eth0", "--json").json()
    assert (port["minimum_bandwidth_absolute"], port["maximum_bandwidth"]) == (3 * 10**8, 5 * 10**8)
    res = cli("port", "set", "web01-eth0", "--min-absolute", "950M")
    assert res.rc == 1 and "1 Gbit/s capacity, 100 Mbit/s reserved, 950 Mbit/s requested" in res.err
    res = cli("port", "set", "web01-eth0", "--max-bandwidth", "100MB")
    assert res.rc == 2 and "bytes are not accepted" in res.err
    text = cli.ok("qos", "show", "ext").out
    assert "capacity:" in text and "1 Gbit/s" in text and "400 Mbit/s" in text  # 100 default + 300
    assert "min 300 Mbit/s, max 500 Mbit/s" in text
    assert cli.ok("qos", "show", "--json").json()[0]["reservation"] == 4 * 10**8


def test_cmdlets_set_bandwidth_and_get_vmswitch_fl(cli: Cli, d: Daemon) -> None:
    cli.ok("New-VMSwitch", "ext", "-NetAdapterName", "eth1", "-MinimumBandwidthMode", "Weight")
    cli.ok("New-VM", "web01", "-SwitchName", "ext")
    cli.ok(
        "Set-VMNetworkAdapter", "-VMName", "web01", "-MinimumBandwidthWeight", "3", "-MaximumBandwidth", "1G"
    )
    cli.ok("Set-VMSwitch", "ext", "-DefaultFlowMinimumBandwidthWeight", "1")
    out = cli.ok("Get-VMSwitch", "ext", "|", "fl").out
    assert "BandwidthReservationMode            : Weight" in out
    assert "BandwidthPercentage                 : 25" in out
    adapters = cli.ok("--json", "Get-VMNetworkAdapter", "-VMName", "web01").json()
    assert (adapters[0]["MaximumBandwidth"], adapters[0]["BandwidthPercentage"]) == (10**9, 75.0)
    res = cli("Set-VMSwitch", "ext", "-DefaultFlowMinimumBandwidthAbsolute", "10M")
    assert res.rc == 1 and "default_flow_minimum_bandwidth_absolute" in res.err


def test_netqos_cmdlets_and_verbs(cli: Cli, d: Daemon) -> None:
    """QS-07..10 through the front ends: policies, classes, PFC, DCBX, adapters."""
    cli.ok(
        "New-NetQosPolicy", "SMB", "-SMB", "-MinBandwidthWeightAction", "50", "-PriorityValue8021Action", "3"
    )
    cli.ok("qos", "policy", "add", "web", "--protocol", "tcp", "--dst-port", "80", "--throttle", "100M")
    out = cli.ok("Get-NetQosPolicy").out
    assert "Template           : SMB" in out and "ThrottleRate   : 100000000" in out
    assert [r.split()[0] for r in cli.ok("qos", "policy", "list").out.splitlines()[1:]] == ["SMB", "web"]
    cli.ok("Set-NetQosPolicy", "web", "-DSCPAction", "46")
    assert d.service.qos_policy("web").dscp == 46
    cli.ok("Remove-NetQosPolicy", "web")
    cli.ok("qos", "policy", "del", "SMB")
    assert d.service.qos_policies() == []

    cli.ok(
        "New-NetQosTrafficClass", "SMB", "-Priority", "3", "-Algorithm", "ETS", "-BandwidthPercentage", "60"
    )
    cli.ok("qos", "class", "add", "LM", "--priority", "5", "--algorithm", "strict")
    table = cli.ok("Get-NetQosTrafficClass").out
    assert "[Default] ETS       40" in table
    cli.ok("Enable-NetQosFlowControl", "-Priority", "3")
    cli.ok("qos", "pfc", "on", "5")
    assert d.service.dcb().flow_control_priorities == [3, 5]
    cli.ok("qos", "pfc", "off", "5")
    assert "True" in [r.split()[1] for r in cli.ok("Get-NetQosFlowControl", "3").out.splitlines()[2:]]
    cli.ok("Set-NetQosDcbxSetting", "-Willing", "$false")
    assert "Willing   : False" in cli.ok("Get-NetQosDcbxSetting").out
    cli.ok("qos", "dcbx", "--willing")
    assert d.service.dcb().willing is True
    cli.ok("switch", "add", "ext", "--uplink", "eth1")
    cli.ok("Enable-NetAdapterQos", "eth1")
    assert d.service.dcb().adapters == ["eth1"]
    assert "eth1" in cli.ok("Get-NetAdapterQos").out
    cli.ok("qos", "adapter", "disable", "eth1")
    assert d.service.dcb().adapters == []
    res = cli("Enable-NetAdapterQos", "nope")
    assert res.rc == 1 and "neither" in res.err
    cli.ok("Remove-NetQosTrafficClass", "SMB")
    cli.ok("qos", "class", "del", "LM")
    assert [c["name"] for c in d.service.traffic_classes()] == ["[Default]"]
