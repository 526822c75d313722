"""Capture and NetEvent sessions through the REST API and the CLI: a real engine on memory devices, a fake lab."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from pyvswitch.config.store import Store
from pyvswitch.daemon.api import create_app
from pyvswitch.daemon.macpool import MacPool
from pyvswitch.daemon.service import Service
from pyvswitch.datapath.memory import MemoryDevice
from pyvswitch.ext.registry import Registry
from pyvswitch.switch.engine import Engine
from pyvswitch.testing.clock import FakeClock
from pyvswitch.testing.frames import BCAST, eth, ipv4, udp
from pyvswitch.testing.pcapng import read_pcapng
from tests.component.test_api import FakeLab
from tests.component.test_cli import Cli


class EngineDaemon:
    """Service and app over a real (not started) engine whose devices are memory devices."""

    def __init__(self, path: Path) -> None:
        self.devices: dict[str, MemoryDevice] = {}
        self.lab = FakeLab()
        self.engine = Engine(clock=FakeClock(), open_device=self._open, registry=Registry({}))
        self.store = Store(path)
        self.service = Service(self.store, self.engine, self.lab, MacPool(0x0102))
        self.service.start()
        self.client = TestClient(create_app(self.service))

    def _open(self, kind: str, ifname: str) -> MemoryDevice:
        dev = self.devices.get(ifname)
        if dev is None or dev.closed:
            dev = self.devices[ifname] = MemoryDevice(ifname)
        return dev

    def port_device(self, port: str) -> MemoryDevice:
        iface = self.service.port(port).interface
        assert iface is not None
        return self.devices[iface]

    def send(self, port: str, frame: bytes, tci: int = -1) -> None:
        self.port_device(port).inject(frame, tci=tci)
        while self.engine.run_once():
            pass

    def ok(self, method: str, path: str, status: int = 200, **kw: Any) -> Any:
        r = self.client.request(method, path, **kw)
        assert r.status_code == status, f"{method} {path} -> {r.status_code}: {r.text}"
        return r.json() if r.content else None

    def errors(self, method: str, path: str, status: int, **kw: Any) -> list[tuple[str, str]]:
        r = self.client.request(method, path, **kw)
        assert r.status_code == status, f"{method} {path} -> {r.status_code}: {r.text}"
        return [(e["field"], e["message"]) for e in r.json()["errors"]]


@pytest.fixture
def d(tmp_path: Path) -> Iterator[EngineDaemon]:
    daemon = EngineDaemon(tmp_path / "config.db")
    daemon.ok(
        "POST",
        "/v1/switches",
        201,
        json={"name": "ext", "type": "External", "net_adapter": "eth1", "allow_management_os": False},
    )
    daemon.ok("POST", "/v1/vms", 201, json={"name": "a", "switch": "ext", "mac": "02:00:00:00:00:0a"})
    daemon.ok("POST", "/v1/vms", 201, json={"name": "b", "switch": "ext", "mac": "02:00:00:00:00:0b"})
    yield daemon
    daemon.engine.stop()
    daemon.store.close()


A, B = "02:00:00:00:00:0a", "02:00:00:00:00:0b"


def ping_like(dst: str, src: str) -> bytes:
    return eth(dst, src, ipv4("10.0.0.1", "10.0.0.2", 1, bytes(8 + 56)))


def test_requests_are_checked_whole_naming_each_field(d: EngineDaemon, tmp_path: Path) -> None:
    body = {
        "path": "relative.pcapng",
        "ports": ["a-eth0", "nope"],
        "ring_files": 3,
        "filter": {"ips": ["10.0.0.1", "bad"], "protocols": ["tcp", "xyz"]},
    }
    assert [f for f, _ in d.errors("POST", "/v1/captures", 400, json=body)] == [
        "path",
        "ports[1]",
        "ring_files",
        "filter.ips[1]",
        "filter.protocols[1]",
    ]
    missing_dir = d.errors("POST", "/v1/captures", 400, json={"path": str(tmp_path / "no" / "c.pcapng")})
    assert missing_dir[0][0] == "path" and "does not exist" in missing_dir[0][1]
    assert d.errors("POST", "/v1/captures", 400, json={"path": str(tmp_path)})[0][0] == "path"
    precious = tmp_path / "notes.txt"
    precious.write_text("not a capture")
    refused = d.errors("POST", "/v1/captures", 400, json={"path": str(precious)})
    assert refused == [("path", "exists; a capture never overwrites a file: remove it or give another path")]
    assert precious.read_text() == "not a capture"
    assert d.errors("POST", "/v1/captures", 400, json={"path": "/dev/null"})[0][0] == "path"
    for field, value in (("direction", "sideways"), ("snaplen", -1), ("max_bytes", 100), ("colour", 1)):
        got = d.errors("POST", "/v1/captures", 400, json={"path": str(tmp_path / "c"), field: value})
        assert got[0][0] == field, got
    assert d.ok("GET", "/v1/captures") == []


def test_start_list_stop_and_the_file(d: EngineDaemon, tmp_path: Path) -> None:
    path = tmp_path / "c.pcapng"
    started = d.ok("POST", "/v1/captures", 201, json={"path": str(path), "ports": ["a-eth0"]})
    assert started["id"] == "1" and started["state"] == "running" and started["snaplen"] == 128
    conflict = d.errors("POST", "/v1/captures", 409, json={"path": str(path)})
    assert conflict[0][0] == "path"
    d.send("a-eth0", ping_like(B, A))
    d.send("b-eth0", ping_like(A, B))
    [listed] = d.ok("GET", "/v1/captures")
    assert (listed["captured"], listed["filtered"], listed["dropped"]) == (2, 0, 0)
    assert listed["interfaces"] == ["ext/a-eth0"]
    final = d.ok("DELETE", "/v1/captures/1")
    assert final["state"] == "stopped" and final["files"] == [str(path)] and final["bytes"] > 0
    assert d.errors("DELETE", "/v1/captures/1", 409)[0][0] == "id"
    assert d.errors("GET", "/v1/captures/9", 404) == [("id", "no capture '9'")]
    cap = read_pcapng(path)
    assert [(r.direction, r.data[:6]) for r in cap.records] == [
        ("in", bytes.fromhex(B.replace(":", ""))),
        ("out", bytes.fromhex(A.replace(":", ""))),
    ]
    assert cap.interfaces[0].description == d.service.port("a-eth0").interface
    assert d.ok("GET", "/v1/captures/1")["state"] == "stopped"


def test_netevent_session_life_cycle(d: EngineDaemon, tmp_path: Path) -> None:
    path = tmp_path / "NetTrace.pcapng"
    base = "/v1/netevent/sessions"
    s = d.ok("POST", base, 201, json={"name": "t1", "path": str(path)})
    assert (s["status"], s["max_file_size_mb"], s["provider"]) == ("NotRunning", 250, None)
    assert (
        d.errors("POST", base, 409, json={"name": "t2", "path": str(path)})[0][0] == "name"
    )  # one at a time
    assert d.errors("POST", f"{base}/t1/start", 409)[0][0] == "name"  # no provider yet
    assert d.errors("POST", f"{base}/t1/provider/vm-switches", 409, json={"name": "ext"})[0][0] == "name"
    bad = d.errors("POST", f"{base}/t1/provider", 400, json={"ip_addresses": ["x"], "capture_type": "Switch"})
    assert bad[0][0] == "ip_addresses[0]"
    p = d.ok(
        "POST", f"{base}/t1/provider", 201, json={"capture_type": "Switch", "vm_capture_direction": "Ingress"}
    )
    assert p["provider"]["truncation_length"] == 128
    assert d.errors("POST", f"{base}/t1/provider", 409, json={})[0][0] == "name"  # one provider
    assert d.errors("POST", f"{base}/t1/provider/vm-switches", 404, json={"name": "nope"})[0][0] == "switch"
    d.ok("POST", f"{base}/t1/provider/vm-network-adapters", json={"name": "a-eth0"})
    running = d.ok("POST", f"{base}/t1/start")
    assert running["status"] == "Running"
    assert running["capture"]["ports"] == ["a-eth0"] and running["capture"]["direction"] == "in"
    # Circular as in Windows: two halves of MaxFileSize, the newest always at exactly -LocalFilePath.
    assert running["capture"]["circular"] and running["capture"]["max_bytes"] == 125 * 1024 * 1024
    assert d.errors("POST", f"{base}/t1/start", 409)[0][0] == "name"
    assert d.errors("POST", f"{base}/t1/provider/vm-switches", 409, json={"name": "ext"})[0][0] == "name"
    [cap] = d.ok("GET", "/v1/captures")
    assert cap["name"] == "t1"
    d.send("a-eth0", ping_like(BCAST, A))
    d.send("b-eth0", ping_like(A, B))  # a's egress: not captured (Ingress only)
    stopped = d.ok("POST", f"{base}/t1/stop")
    assert stopped["status"] == "NotRunning" and stopped["capture"]["captured"] == 1
    assert d.errors("POST", f"{base}/t1/stop", 409)[0][0] == "name"
    assert stopped["capture"]["files"] == [str(path)]  # issue 11: not NetTrace_00001.pcapng
    assert [r.direction for r in read_pcapng(path).records] == ["in"]
    d.ok("DELETE", f"{base}/t1", 204)
    assert d.ok("GET", base) == []
    assert d.errors("GET", f"{base}/t1", 404)[0][0] == "name"


def test_netevent_capture_types_select_ports(d: EngineDaemon, tmp_path: Path) -> None:
    base = "/v1/netevent/sessions"
    d.ok("POST", base, 201, json={"name": "t", "path": str(tmp_path / "x.pcapng"), "max_file_size_mb": 0})
    d.ok("POST", f"{base}/t/provider", 201, json={})  # Physical, the default
    physical = d.ok("POST", f"{base}/t/start")["capture"]
    assert physical["ports"] == ["ext-uplink"] and physical["max_bytes"] is None
    d.ok("POST", f"{base}/t/stop")
    d.ok("DELETE", f"{base}/t/provider")
    d.ok("POST", f"{base}/t/provider", 201, json={"capture_type": "BothPhysicalAndSwitch"})
    assert d.ok("POST", f"{base}/t/start")["capture"]["ports"] == []  # all, ports added later too
    d.ok("POST", f"{base}/t/stop")
    d.ok("DELETE", f"{base}/t/provider")
    d.ok("POST", f"{base}/t/provider", 201, json={"capture_type": "Physical"})
    d.ok("POST", f"{base}/t/provider/vm-network-adapters", json={"name": "a-eth0"})
    none = d.errors("POST", f"{base}/t/start", 400)
    assert none[0][0] == "provider.capture_type" and "selects no port" in none[0][1]
    d.ok("DELETE", f"{base}/t", 204)


# ---------------------------------------------------------------- the CLI


@pytest.fixture
def cli(d: EngineDaemon, capsys: pytest.CaptureFixture[str]) -> Cli:
    return Cli(d, capsys)  # type: ignore[arg-type]


def test_cli_capture_start_list_stop(
    cli: Cli, d: EngineDaemon, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    res = cli.ok(
        "capture", "start", "c.pcapng", "--port", "a-eth0", "--direction", "in", "--snaplen", "64",
        "--max-bytes", "1M", "--ring", "3", "--ethertype", "0x0800", "--ip", "10.0.0.0/24",
        "--protocol", "icmp", "--mac", A,
    )  # fmt: skip
    assert res.out.strip() == "1"
    d.send("a-eth0", ping_like(B, A))
    d.send("a-eth0", eth(B, A, ipv4("10.0.0.1", "10.0.0.2", 17, udp(1, 2))))  # UDP: filtered out
    listing = cli.ok("capture", "list").out
    assert "running" in listing and "a-eth0" in listing
    status = cli.ok("--json", "capture", "show", "1").json()
    assert status["path"] == str(tmp_path / "c.pcapng") and status["max_bytes"] == 1 << 20
    assert status["filter"] == {
        "ethertypes": ["0x0800"],
        "ips": ["10.0.0.0/24"],
        "protocols": [1],
        "macs": [A],
    }
    out = cli.ok("capture", "stop", "1").out
    assert "stopped" in out and "captured:" in out
    final = cli.ok("--json", "capture", "list").json()[0]
    assert (final["captured"], final["filtered"]) == (1, 1)
    assert [len(r.data) for r in read_pcapng(final["files"][0]).records] == [64]
    bad = cli("capture", "start", "x.pcapng", "--ring", "2")
    assert bad.rc == 2 and "--max-bytes" in bad.err
    bad = cli("capture", "start", "x.pcapng", "--ip", "nonsense")
    assert bad.rc == 1 and "filter.ips[0]" in bad.err
    assert cli("capture", "stop", "7").rc == 1


def test_cmdlets_define_start_and_stop_a_session(cli: Cli, d: EngineDaemon, tmp_path: Path) -> None:
    path = tmp_path / "trace.pcapng"
    out = cli.ok("New-NetEventSession", "-Name", "s1", "-LocalFilePath", str(path), "-MaxFileSize", "0").out
    assert "s1" in out and "NotRunning" in out
    again = cli("New-NetEventSession", "s2")
    assert again.rc == 1 and "one NetEvent session at a time" in again.err
    cli.ok(
        "Add-NetEventPacketCaptureProvider", "-SessionName", "s1", "-CaptureType", "Switch",
        "-TruncationLength", "64", "-IpProtocols", "1,", "17", "-EtherType", "0x0800",
        "-VmCaptureDirection", "IngressAndEgress", "-Level", "4",
    )  # fmt: skip
    cli.ok("Add-NetEventVmSwitch", "-Name", "ext")
    cli.ok("Add-NetEventVmNetworkAdapter", "-Name", "eth0", "-VMName", "b")
    ambiguous = cli("Add-NetEventVmNetworkAdapter", "eth0")
    assert ambiguous.rc == 1 and "ambiguous" in ambiguous.err
    cli.ok("Start-NetEventSession", "-Name", "s1")
    d.send("a-eth0", ping_like(B, A))
    d.send("b-eth0", ping_like(A, B))
    sessions = cli.ok("--json", "Get-NetEventSession").json()
    assert sessions[0]["SessionStatus"] == "Running" and sessions[0]["PacketsCaptured"] == 2
    cli.ok("Stop-NetEventSession", "-Name", "s1")
    table = cli.ok("Get-NetEventSession", "s1").out
    assert "NotRunning" in table
    recs = read_pcapng(path).records
    assert [(r.direction, len(r.data)) for r in recs] == [("out", 64), ("in", 64)]
    stop_again = cli("Stop-NetEventSession", "s1")
    assert stop_again.rc == 1 and "not running" in stop_again.err
    cli.ok("Remove-NetEventSession", "-Name", "s1")
    assert cli.ok("Get-NetEventSession").out.strip() == ""
    assert cli("Get-NetEventSession", "s1").rc == 1
