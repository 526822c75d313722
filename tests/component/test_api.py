"""The REST API over the Service with a fake engine and a fake lab: routes, error bodies, rollback, restart."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from pyvswitch.config.schema import HostConfig, PortKind
from pyvswitch.config.store import Store
from pyvswitch.daemon.api import create_app
from pyvswitch.daemon.macpool import MacPool
from pyvswitch.daemon.service import Service
from pyvswitch.errors import DeviceError


class FakeEngine:
    """Records apply() calls; raises DeviceError for interfaces listed in ``broken``."""

    def __init__(self) -> None:
        self.applied: list[HostConfig] = []
        self.broken: set[str] = set()

    @property
    def current(self) -> HostConfig:
        return self.applied[-1] if self.applied else HostConfig()

    def apply(self, cfg: HostConfig) -> None:
        for p in cfg.ports:
            if p.switch is not None:
                assert p.interface, f"port {p.name} has no interface"
                assert p.mac or p.kind not in (PortKind.VM, PortKind.HOST), f"port {p.name} has no MAC"
                if p.interface in self.broken:
                    msg = f"cannot open afpacket device on interface {p.interface!r}"
                    raise DeviceError(msg, interface=p.interface)
        self.applied.append(cfg)

    def counters(self) -> dict[str, object]:
        return {"switches": {s.name: {"ports": {}, "drops": {}} for s in self.current.switches}}

    def health(self) -> dict[str, object]:
        return {"state": "ok", "problems": []}

    def fdb(self, switch: str) -> list[dict[str, object]]:
        return [{"mac": "02:00:00:00:00:01", "vlan": 1, "port": "x", "age_s": 1.0, "static": False}]

    def installed_extensions(self) -> list[dict[str, object]]:
        return [{"name": "sample", "kind": "capture"}]

    def team_status(self, name: str) -> dict[str, object] | None:
        return None


class FakeLab:
    """Namespaces and links as sets; ``existing`` stands for interfaces of the host (NICs)."""

    def __init__(self) -> None:
        self.netns: set[str] = set()
        self.links: dict[str, dict[str, Any]] = {}
        self.existing: set[str] = {"eth1", "eth2"}
        self.calls: list[tuple[str, ...]] = []

    def create_vm_nic(self, netns: str, host_if: str, vm_if: str, mac: str, ips: list[str]) -> None:
        self.calls.append(("vm_nic", host_if))
        self.netns.add(netns)
        self.links[host_if] = {"netns": netns, "peer": vm_if, "mac": mac, "ips": list(ips)}

    def create_host_vnic(self, host_if: str, switch_if: str, mac: str, ips: list[str]) -> None:
        self.calls.append(("host_vnic", switch_if))
        self.links[switch_if] = {"netns": None, "peer": host_if, "mac": mac, "ips": list(ips)}

    def create_guest_tap(self, host_if: str) -> None:
        self.calls.append(("guest_tap", host_if))
        self.links[host_if] = {"netns": None, "peer": None, "tap": True}

    def delete_link(self, ifname: str) -> None:
        self.calls.append(("delete_link", ifname))
        self.links.pop(ifname, None)

    def delete_netns(self, name: str) -> None:
        self.calls.append(("delete_netns", name))
        self.netns.discard(name)
        for k in [k for k, v in self.links.items() if v["netns"] == name]:
            del self.links[k]

    def link_exists(self, ifname: str) -> bool:
        return ifname in self.links or ifname in self.existing

    def link_mac(self, ifname: str) -> str | None:
        return (
            f"00:11:22:33:44:{sorted(self.existing).index(ifname):02x}" if ifname in self.existing else None
        )

    def netns_exists(self, name: str) -> bool:
        return name in self.netns

    def ensure_netns(self, name: str) -> None:
        self.netns.add(name)


class Daemon:
    """A service + app on a store file; ``restart`` simulates kill -9 and a new daemon on the same state."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.lab = FakeLab()
        self.engine = FakeEngine()
        self.store = Store(path)
        self.service = Service(self.store, self.engine, self.lab, MacPool(0x0102))
        self.service.start()
        self.client = TestClient(create_app(self.service))

    def restart(self, lab: FakeLab | None = None) -> None:
        # No clean shutdown: the old store connection is simply abandoned, as after kill -9.
        self.lab = lab or self.lab
        self.engine = FakeEngine()
        self.store = Store(self.path)
        self.service = Service(self.store, self.engine, self.lab, MacPool(0x0102))
        self.service.start()
        self.client = TestClient(create_app(self.service))


@pytest.fixture
def d(tmp_path: Path) -> Iterator[Daemon]:
    daemon = Daemon(tmp_path / "config.db")
    yield daemon
    daemon.store.close()


def errors(resp: Any) -> list[tuple[str, str]]:
    return [(e["field"], e["message"]) for e in resp.json()["errors"]]


def test_health_and_openapi(d: Daemon) -> None:
    r = d.client.get("/v1/health")
    assert r.status_code == 200
    assert r.json()["status"] == "ok"
    spec = d.client.get("/openapi.json").json()
    assert "/v1/switches" in spec["paths"] and "/v1/ports/{name}" in spec["paths"]


def test_internal_switch_gets_host_vnic(d: Daemon) -> None:
    """SW-01, SW-02: an Internal switch always has a host vNIC."""
    r = d.client.post("/v1/switches", json={"name": "sw1", "type": "Internal"})
    assert r.status_code == 201, r.text
    assert r.json()["ports"] == ["sw1"]
    port = d.client.get("/v1/ports/sw1").json()
    assert port["kind"] == "host"
    assert port["interface"].startswith("pv") and len(port["interface"]) <= 15
    assert port["peer_interface"].startswith("pvh")
    assert port["mac"].startswith("02:15:5d:01:02:")
    assert port["interface"] in d.lab.links
    assert d.engine.current.switches[0].name == "sw1"


def test_private_switch_has_no_host_vnic(d: Daemon) -> None:
    r = d.client.post("/v1/switches", json={"name": "p"})
    assert r.status_code == 201
    assert r.json()["type"] == "Private" and r.json()["ports"] == []


def test_external_switch_uplink_and_management_os(d: Daemon) -> None:
    """SW-02: AllowManagementOS creates and removes the host vNIC of an External switch."""
    r = d.client.post("/v1/switches", json={"name": "ext", "type": "External", "net_adapter": "eth1"})
    assert r.status_code == 201, r.text
    assert sorted(r.json()["ports"]) == ["ext", "ext-uplink"]
    up = d.client.get("/v1/ports/ext-uplink").json()
    assert up["kind"] == "uplink" and up["interface"] == "eth1" and up["mac"] is None  # learned, not assigned
    r = d.client.patch("/v1/switches/ext", json={"allow_management_os": False})
    assert r.json()["ports"] == ["ext-uplink"]
    r = d.client.post(
        "/v1/switches",
        json={"name": "ext2", "type": "External", "net_adapter": "eth2", "allow_management_os": False},
    )
    assert r.json()["ports"] == ["ext2-uplink"]


def test_external_switch_needs_existing_adapter(d: Daemon) -> None:
    r = d.client.post("/v1/switches", json={"name": "ext", "type": "External", "net_adapter": "nosuch0"})
    assert r.status_code == 400
    assert errors(r) == [("net_adapter", "no interface 'nosuch0' on this host")]
    assert d.client.get("/v1/switches").json() == []


def test_switch_type_conversions(d: Daemon) -> None:
    """SW-03: switch type conversion."""
    d.client.post("/v1/switches", json={"name": "s", "type": "Internal"})
    r = d.client.patch("/v1/switches/s", json={"net_adapter": "eth1"})
    assert r.status_code == 200, r.text
    assert r.json()["type"] == "External" and sorted(r.json()["ports"]) == ["s", "s-uplink"]
    r = d.client.patch("/v1/switches/s", json={"type": "Private"})
    assert r.status_code == 200, r.text
    assert r.json()["net_adapter"] is None and r.json()["ports"] == []
    r = d.client.patch("/v1/switches/s", json={"name": "t"})
    assert r.status_code == 400 and errors(r)[0][0] == "name"


def test_duplicate_switch_is_409(d: Daemon) -> None:
    d.client.post("/v1/switches", json={"name": "s"})
    r = d.client.post("/v1/switches", json={"name": "s"})
    assert r.status_code == 409
    assert errors(r)[0][0] == "name"


def test_body_validation_errors_are_400_with_paths(d: Daemon) -> None:
    r = d.client.post("/v1/switches", json={"name": "s", "tpye": "Internal"})
    assert r.status_code == 400
    assert errors(r)[0][0] == "tpye"
    r = d.client.post("/v1/vms", json={"name": "v", "vlan": {"mode": "Access", "access_vlan_id": 5000}})
    assert r.status_code == 400
    assert errors(r)[0][0] == "vlan.access_vlan_id"
    r = d.client.post("/v1/switches", json={"name": "s", "type": "External"})
    assert r.status_code == 400
    assert "net_adapter" in errors(r)[0][1]


def test_not_found_is_404_naming_field(d: Daemon) -> None:
    r = d.client.get("/v1/switches/x")
    assert r.status_code == 404
    assert errors(r) == [("name", "no switch 'x'")]
    assert d.client.get("/v1/fdb/x").status_code == 404
    r = d.client.get("/v1/ports", params={"switch": "x"})
    assert r.status_code == 404 and errors(r)[0][0] == "switch"


def test_vm_lifecycle(d: Daemon) -> None:
    d.client.post("/v1/switches", json={"name": "sw", "type": "Private"})
    r = d.client.post(
        "/v1/vms",
        json={
            "name": "vm1",
            "switch": "sw",
            "ip": ["10.0.0.1/24"],
            "vlan": {"mode": "Access", "access_vlan_id": 10},
        },
    )
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["netns"] == "vm1"
    (port,) = body["ports"]
    assert port["name"] == "vm1-eth0" and port["peer_interface"] == "eth0"
    assert port["vlan"]["access_vlan_id"] == 10
    assert d.lab.links[port["interface"]] == {
        "netns": "vm1",
        "peer": "eth0",
        "mac": port["mac"],
        "ips": ["10.0.0.1/24"],
    }
    # a second adapter becomes eth1
    r = d.client.post("/v1/ports", json={"name": "vm1-nic2", "kind": "vm", "vm": "vm1", "switch": "sw"})
    assert r.status_code == 201, r.text
    assert r.json()["peer_interface"] == "eth1"
    assert r.json()["mac"] != port["mac"]
    assert [p["name"] for p in d.client.get("/v1/ports", params={"vm": "vm1"}).json()] == [
        "vm1-eth0",
        "vm1-nic2",
    ]
    r = d.client.delete("/v1/vms/vm1")
    assert r.status_code == 204
    assert "vm1" not in d.lab.netns
    assert d.lab.links == {}
    assert d.client.get("/v1/ports").json() == []


def test_vm_without_adapter(d: Daemon) -> None:
    r = d.client.post("/v1/vms", json={"name": "v", "netns": "custom", "adapter": False})
    assert r.status_code == 201
    assert r.json() == {"name": "v", "kind": "namespace", "netns": "custom", "ports": []}
    assert "custom" in d.lab.netns
    r = d.client.post("/v1/vms", json={"name": "w", "adapter": False, "switch": "x"})
    assert r.status_code == 400 and errors(r)[0][0] == "switch"


def test_port_patch_connect_disconnect_vlan_ip(d: Daemon) -> None:
    d.client.post("/v1/switches", json={"name": "sw"})
    d.client.post("/v1/vms", json={"name": "v"})
    r = d.client.patch(
        "/v1/ports/v-eth0",
        json={"switch": "sw", "vlan": {"mode": "Trunk", "allowed_vlan_ids": "1-10", "native_vlan_id": 1}},
    )
    assert r.status_code == 200, r.text
    assert r.json()["switch"] == "sw" and r.json()["vlan"]["allowed_vlan_ids"] == list(range(1, 11))
    r = d.client.patch("/v1/ports/v-eth0", json={"ip": ["10.1.1.1/24"]})
    assert d.lab.links[r.json()["interface"]]["ips"] == ["10.1.1.1/24"]
    r = d.client.patch("/v1/ports/v-eth0", json={"switch": None})
    assert r.json()["switch"] is None and r.json()["vlan"]["mode"] == "Trunk"
    r = d.client.patch("/v1/ports/v-eth0", json={"switch": "nope"})
    assert r.status_code == 400 and errors(r) == [("switch", "no switch 'nope'")]
    r = d.client.patch("/v1/ports/v-eth0", json={"vlan": None})
    assert r.status_code == 400 and errors(r)[0][0] == "vlan"


def test_interface_port_must_exist_and_no_ip(d: Daemon) -> None:
    d.client.post("/v1/switches", json={"name": "sw"})
    r = d.client.post(
        "/v1/ports", json={"name": "p", "kind": "interface", "interface": "nosuch", "switch": "sw"}
    )
    assert r.status_code == 400 and errors(r) == [("interface", "no interface 'nosuch' on this host")]
    r = d.client.post(
        "/v1/ports", json={"name": "p", "kind": "interface", "interface": "eth2", "switch": "sw"}
    )
    assert r.status_code == 201, r.text
    r = d.client.post("/v1/ports", json={"name": "u", "kind": "uplink", "interface": "eth1", "switch": "sw"})
    assert r.status_code == 400 and errors(r)[0][0] == "kind"


def test_invalid_request_rejected_whole_with_every_field(d: Daemon) -> None:
    d.client.post("/v1/switches", json={"name": "sw"})
    before = d.client.get("/v1/config").json()
    applies = len(d.engine.applied)
    r = d.client.put(
        "/v1/config",
        json={
            "switches": [{"name": "sw"}, {"name": "sw"}],
            "vms": [],
            "ports": [{"name": "a", "kind": "vm", "vm": "ghost", "switch": "nope"}],
        },
    )
    assert r.status_code == 400
    assert {f for f, _ in errors(r)} == {"switches[1].name", "ports[0].vm", "ports[0].switch"}
    assert d.client.get("/v1/config").json() == before
    assert len(d.engine.applied) == applies
    assert d.store.load().model_dump(mode="json") == before


def test_engine_failure_leaves_store_and_namespaces_unchanged(d: Daemon) -> None:
    d.client.post("/v1/switches", json={"name": "sw"})
    d.client.post("/v1/vms", json={"name": "keep", "switch": "sw"})
    before_cfg = d.store.load()
    before_links = dict(d.lab.links)
    before_ns = set(d.lab.netns)
    hist = len(d.store.history())

    def broken_apply(cfg: HostConfig) -> None:
        raise DeviceError("cannot open afpacket device on interface 'pvdeadbeef'", interface="pvdeadbeef")

    d.engine.apply = broken_apply  # type: ignore[method-assign]
    r = d.client.post("/v1/vms", json={"name": "new", "switch": "sw"})
    assert r.status_code == 400
    assert d.store.load() == before_cfg
    assert len(d.store.history()) == hist
    assert d.lab.links == before_links
    assert d.lab.netns == before_ns
    assert ("delete_netns", "new") in d.lab.calls  # the namespace it made was removed again
    assert d.client.get("/v1/vms").json()[0]["name"] == "keep"
    assert [v["name"] for v in d.client.get("/v1/vms").json()] == ["keep"]


def test_store_failure_rolls_back_engine_and_lab(d: Daemon) -> None:
    d.client.post("/v1/switches", json={"name": "sw"})
    good = d.engine.current

    def broken_save(cfg: HostConfig, summary: str) -> dict[str, dict[str, list[str]]]:
        raise OSError("disk full")

    d.store.save = broken_save  # type: ignore[method-assign, assignment]
    with pytest.raises(OSError):
        d.service.add_vm("v", port_fields={"switch": "sw"})
    assert d.engine.current == good
    assert d.lab.links == {} and d.lab.netns == set()
    assert d.service.config.vms == []


def test_restart_restores_everything(d: Daemon) -> None:
    c = d.client
    assert c.post("/v1/switches", json={"name": "int", "type": "Internal"}).status_code == 201
    assert (
        c.post("/v1/switches", json={"name": "ext", "type": "External", "net_adapter": "eth1"}).status_code
        == 201
    )
    assert c.post("/v1/switches", json={"name": "priv"}).status_code == 201
    c.post("/v1/vms", json={"name": "a", "switch": "priv", "ip": ["10.0.0.1/24"], "mac": "02:aa:00:00:00:01"})
    c.post("/v1/vms", json={"name": "b", "switch": "int", "vlan": {"mode": "Access", "access_vlan_id": 20}})
    c.post(
        "/v1/ports",
        json={
            "name": "b-nic2",
            "kind": "vm",
            "vm": "b",
            "switch": "ext",
            "vlan": {"mode": "Isolated", "primary_vlan_id": 100, "secondary_vlan_id": 101},
        },
    )
    c.post("/v1/vms", json={"name": "c", "switch": "priv"})
    c.patch("/v1/ports/c-eth0", json={"switch": None})
    before = c.get("/v1/config").json()
    links_before = dict(d.lab.links)

    # kill -9; a reboot loses every namespace and veth, but the store survives
    d.restart(lab=FakeLab())
    assert d.client.get("/v1/config").json() == before
    assert d.engine.applied[-1] == d.service.config
    assert d.lab.links == links_before
    assert d.lab.netns == {"a", "b", "c"}
    port_b2 = d.client.get("/v1/ports/b-nic2").json()
    assert port_b2["vlan"]["mode"] == "Isolated" and port_b2["switch"] == "ext"
    assert d.client.get("/v1/ports/c-eth0").json()["switch"] is None


def test_startup_with_missing_nic_degrades_instead_of_failing(d: Daemon) -> None:
    d.client.post("/v1/switches", json={"name": "ext", "type": "External", "net_adapter": "eth1"})
    d.client.post("/v1/vms", json={"name": "v", "switch": "ext"})
    lab = FakeLab()
    lab.existing = set()
    d.restart(lab=lab)
    health = d.client.get("/v1/health").json()
    assert set(health["degraded"]) == {"ext-uplink"}
    applied = {p.name: p.switch for p in d.engine.applied[-1].ports}
    assert applied["ext-uplink"] is None and applied["v-eth0"] == "ext"
    # the desired state is untouched
    assert d.client.get("/v1/ports/ext-uplink").json()["switch"] == "ext"


def test_startup_engine_device_error_degrades_the_port(tmp_path: Path) -> None:
    d = Daemon(tmp_path / "c.db")
    d.client.post("/v1/switches", json={"name": "sw"})
    d.client.post("/v1/ports", json={"name": "t", "kind": "tap", "interface": "tap7", "switch": "sw"})
    d.client.post("/v1/vms", json={"name": "v", "switch": "sw"})
    lab = d.lab
    d.store.close()
    d.lab = lab
    engine_broken = FakeEngine()
    engine_broken.broken = {"tap7"}
    d.engine = engine_broken
    d.store = Store(d.path)
    d.service = Service(d.store, d.engine, lab, MacPool(0x0102))
    d.service.start()
    assert set(d.service.degraded()) == {"t"}
    assert {p.name: p.switch for p in d.engine.applied[-1].ports}["t"] is None
    d.store.close()


def test_delete_switch_disconnects_vm_ports_and_removes_host_ports(d: Daemon) -> None:
    d.client.post("/v1/switches", json={"name": "sw", "type": "Internal"})
    d.client.post("/v1/vms", json={"name": "v", "switch": "sw"})
    host_if = d.client.get("/v1/ports/sw").json()["interface"]
    assert d.client.delete("/v1/switches/sw").status_code == 204
    assert d.client.get("/v1/ports/v-eth0").json()["switch"] is None
    assert d.client.get("/v1/ports/sw").status_code == 404
    assert host_if not in d.lab.links


def test_uplink_cannot_be_deleted_directly(d: Daemon) -> None:
    d.client.post("/v1/switches", json={"name": "e", "type": "External", "net_adapter": "eth1"})
    r = d.client.delete("/v1/ports/e-uplink")
    assert r.status_code == 409


def test_fdb_counters_history(d: Daemon) -> None:
    d.client.post("/v1/switches", json={"name": "sw"})
    assert d.client.get("/v1/fdb/sw").json()[0]["mac"] == "02:00:00:00:00:01"
    assert d.client.get("/v1/counters").json() == {"switches": {"sw": {"ports": {}, "drops": {}}}}
    assert d.client.get("/v1/counters", params={"switch": "sw"}).json() == {
        "switches": {"sw": {"ports": {}, "drops": {}}}
    }
    assert d.client.get("/v1/counters", params={"switch": "x"}).status_code == 404
    hist = d.client.get("/v1/history").json()
    assert hist[0]["summary"] == "add switch sw (Private)"


def test_host_port_kind_via_ports(d: Daemon) -> None:
    """SW-05: more host vNICs on one switch, each a full port."""
    d.client.post("/v1/switches", json={"name": "sw", "type": "Internal"})
    r = d.client.post(
        "/v1/ports", json={"name": "mgmt2", "kind": "host", "switch": "sw", "ip": ["192.0.2.1/24"]}
    )
    assert r.status_code == 201, r.text
    assert r.json()["kind"] == PortKind.HOST.value
    assert d.lab.links[r.json()["interface"]]["ips"] == ["192.0.2.1/24"]


def test_metrics_on_the_api_socket_time_requests_by_route_template(d: Daemon) -> None:
    """Issue 14 item 1: /metrics answers the Prometheus text format; the API's latency histogram has one series
    per route template (two ports' requests are one series), and a path nothing serves is "unmatched"."""
    assert d.client.post("/v1/switches", json={"name": "s1", "type": "Private"}).status_code == 201
    for name in ("a", "b"):
        d.client.get(f"/v1/switches/{name}")
    d.client.get("/v1/nothing-here")
    r = d.client.get("/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    text = r.text
    assert (
        'pyvswitch_api_request_duration_seconds_count{method="GET",route="/v1/switches/{name}"} 2.0' in text
    )
    assert 'pyvswitch_api_request_duration_seconds_count{method="POST",route="/v1/switches"} 1.0' in text
    assert 'route="unmatched"' in text and "/v1/nothing-here" not in text
    assert 'pyvswitch_build_info{version="' in text
    assert "/metrics" not in d.client.get("/openapi.json").json()["paths"]  # not part of the REST contract


def test_the_dashboard_app_needs_its_token_and_renders_the_topology(d: Daemon) -> None:
    """Issue 14 item 2 (the page in Chromium: tests/system/test_dashboard.py): the token, once in the URL, then
    a cookie; the page lists the switches; /snapshot is JSON the page draws."""
    assert d.client.post("/v1/switches", json={"name": "s1", "type": "Private"}).status_code == 201
    dash = d.client.app.state.dashboard  # type: ignore[attr-defined]
    page = TestClient(dash.app())
    assert page.get("/").status_code == 403 and page.get("/snapshot").status_code == 403
    first = page.get("/", params={"token": dash.token})
    assert first.status_code == 200 and "s1 (Private)" in first.text and "<script>" in first.text
    snap = page.get("/snapshot")  # the cookie now
    assert snap.status_code == 200 and set(snap.json()) >= {"ports", "qos", "teams", "events", "health"}
    assert "cdn." not in first.text
    docs = d.client.get("/docs")
    assert docs.status_code == 200 and "/docs-static/swagger-ui-bundle.js" in docs.text
