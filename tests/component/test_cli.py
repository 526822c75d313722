"""The pyvswitch CLI against the real REST app (fake engine and lab, no namespaces), bridged in-process.

The CLI's httpx client gets a MockTransport that hands each request to FastAPI's TestClient, so requests go
through the real routes, validation and error handlers; only the unix socket is left out. The exit-3 tests
use the real unix-socket transport against a path with no daemon.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from pyvswitch.cli.main import main
from tests.component.test_api import Daemon


def bridge(d: Daemon) -> httpx.MockTransport:
    def handle(request: httpx.Request) -> httpx.Response:
        request.read()
        # d.client is looked up per request: Daemon.restart() replaces it.
        resp = d.client.request(
            request.method,
            request.url.raw_path.decode(),
            content=request.content,
            headers={"content-type": request.headers.get("content-type", "application/json")},
        )
        return httpx.Response(
            resp.status_code,
            headers={"content-type": resp.headers.get("content-type", "application/json")},
            content=resp.content,
        )

    return httpx.MockTransport(handle)


@dataclass
class Result:
    rc: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)


class Cli:
    def __init__(self, d: Daemon, capsys: pytest.CaptureFixture[str]) -> None:
        self.d = d
        self.capsys = capsys
        self.transport = bridge(d)

    def __call__(self, *argv: str) -> Result:
        self.capsys.readouterr()
        rc = main(list(argv), transport=self.transport)
        out, err = self.capsys.readouterr()
        return Result(rc, out, err)

    def ok(self, *argv: str) -> Result:
        res = self(*argv)
        assert res.rc == 0, f"pyvswitch {' '.join(argv)} -> {res.rc}\n{res.out}\n{res.err}"
        return res


@pytest.fixture
def d(tmp_path: Path) -> Iterator[Daemon]:
    daemon = Daemon(tmp_path / "config.db")
    yield daemon
    daemon.store.close()


@pytest.fixture
def cli(d: Daemon, capsys: pytest.CaptureFixture[str]) -> Cli:
    return Cli(d, capsys)


def rows(text: str) -> list[list[str]]:
    return [ln.split() for ln in text.strip().splitlines()]


# ---------------------------------------------------------------- verbs


def test_switch_add_list_show_del(cli: Cli, d: Daemon) -> None:
    res = cli.ok("switch", "add", "sw", "--type", "private")
    assert "Private" in res.out
    cli.ok("switch", "add", "int", "--type", "Internal")
    res = cli.ok("switch", "add", "ext", "--uplink", "eth1", "--no-management-os", "--flood-unknown")
    assert "External" in res.out and "eth1" in res.out

    listed = cli.ok("--json", "switch", "list").json()
    assert [(s["name"], s["type"]) for s in listed] == [
        ("sw", "Private"),
        ("int", "Internal"),
        ("ext", "External"),
    ]
    ext = next(s for s in listed if s["name"] == "ext")
    assert ext["allow_management_os"] is False and ext["flood_unknown_unicast"] is True
    assert ext["ports"] == ["ext-uplink"]
    assert next(s for s in listed if s["name"] == "int")["ports"] == ["int"]

    table = rows(cli.ok("switch", "list").out)
    assert table[0][:3] == ["NAME", "TYPE", "UPLINK"]
    assert [r[0] for r in table[1:]] == ["sw", "int", "ext"]

    assert cli.ok("switch", "show", "ext", "--json").json() == ext
    assert "External" in cli.ok("switch", "show", "ext").out

    cli.ok("switch", "del", "ext")
    assert [s.name for s in d.service.config.switches] == ["sw", "int"]
    res = cli("switch", "show", "ext")
    assert res.rc == 1 and res.err.strip() == "error: name: no switch 'ext'"


def test_switch_add_option_conflicts_are_usage_errors(cli: Cli, d: Daemon) -> None:
    for argv in (
        ("switch", "add", "x", "--type", "external"),
        ("switch", "add", "x", "--type", "internal", "--uplink", "eth1"),
        ("switch", "add", "x", "--type", "internal", "--no-management-os"),
        ("switch", "add", "x", "--type", "bogus"),
    ):
        res = cli(*argv)
        assert res.rc == 2, argv
        assert "--type" in res.err or "--no-management-os" in res.err
    assert d.service.config.switches == []


def test_vm_add_show_list_del(cli: Cli, d: Daemon) -> None:
    cli.ok("switch", "add", "ext", "--uplink", "eth1", "--no-management-os")
    cli.ok("vm", "add", "web01", "--switch", "ext", "--ip", "10.0.0.11/24", "--vlan", "access:10")
    cli.ok("vm", "add", "db01", "--switch", "ext", "--ip", "10.0.0.21/24", "--ip", "fd00::21/64")
    cli.ok("vm", "add", "bare", "--netns", "custom", "--no-adapter")

    vm = cli.ok("--json", "vm", "show", "web01").json()
    assert vm["netns"] == "web01"
    (port,) = vm["ports"]
    assert port["name"] == "web01-eth0" and port["switch"] == "ext"
    assert port["vlan"]["mode"] == "Access" and port["vlan"]["access_vlan_id"] == 10
    assert d.lab.links[port["interface"]]["ips"] == ["10.0.0.11/24"]
    assert "web01" in d.lab.netns

    bare = cli.ok("vm", "show", "bare", "--json").json()
    assert bare["name"] == "bare" and bare["kind"] == "namespace" and bare["netns"] == "custom"
    assert bare["ports"] == [] and "state" not in bare  # a state is a QEMU guest's
    assert [v["name"] for v in cli.ok("--json", "vm", "list").json()] == ["web01", "db01", "bare"]
    out = cli.ok("vm", "list").out
    assert "access:10" in out and "10.0.0.21/24, fd00::21/64" in out

    cli.ok("vm", "del", "web01")
    assert "web01" not in d.lab.netns
    assert cli("vm", "show", "web01").rc == 1


def test_vm_add_no_adapter_with_adapter_options_is_usage_error(cli: Cli, d: Daemon) -> None:
    res = cli("vm", "add", "v", "--no-adapter", "--switch", "x")
    assert res.rc == 2 and "--no-adapter" in res.err
    assert d.service.config.vms == []


def test_rejected_request_prints_field_and_exits_1(cli: Cli, d: Daemon) -> None:
    cli.ok("switch", "add", "sw", "--type", "private")
    res = cli("vm", "add", "v", "--switch", "nope")
    assert res.rc == 1
    assert res.err.strip() == "error: switch: no switch 'nope'"
    res = cli("vm", "add", "v", "--ip", "10.0.0.300/24")
    assert res.rc == 1 and res.err.startswith("error: ip")
    res = cli("switch", "add", "ext", "--uplink", "nosuch0")
    assert res.rc == 1
    assert res.err.strip() == "error: net_adapter: no interface 'nosuch0' on this host"
    res = cli("switch", "add", "sw")
    assert res.rc == 1 and res.err.strip() == "error: name: switch 'sw' already exists"
    assert d.service.config.vms == []


def test_bad_vlan_spec_is_usage_error_naming_the_option(cli: Cli, d: Daemon) -> None:
    res = cli("vm", "add", "v", "--vlan", "access:5000")
    assert res.rc == 2
    assert "Invalid value for '--vlan'" in res.err and "outside 1-4094" in res.err
    assert d.service.config.vms == []


def test_port_add_set_show_list_del(cli: Cli, d: Daemon) -> None:
    cli.ok("switch", "add", "sw", "--type", "private")
    cli.ok("switch", "add", "other", "--type", "private")
    cli.ok("vm", "add", "v", "--switch", "sw")
    cli.ok("port", "add", "p1", "--interface", "eth2", "--switch", "sw", "--vlan", "trunk:5-7:native=5")
    p1 = cli.ok("--json", "port", "show", "p1").json()
    assert p1["kind"] == "interface" and p1["interface"] == "eth2"
    assert p1["vlan"]["allowed_vlan_ids"] == [5, 6, 7] and p1["vlan"]["native_vlan_id"] == 5

    res = cli.ok("port", "set", "v-eth0", "--vlan", "isolated:100:101")
    assert "isolated:100:101" in res.out
    port = d.service.port("v-eth0")
    assert port.vlan.mode == "Isolated" and port.vlan.secondary_vlan_id == 101

    cli.ok("port", "set", "v-eth0", "--vlan", "trunk:1-100,200:native=1", "--switch", "other")
    port = d.service.port("v-eth0")
    assert port.switch == "other" and port.vlan.allowed_vlan_ids == [*range(1, 101), 200]
    assert port.vlan.native_vlan_id == 1

    body = cli.ok("port", "set", "v-eth0", "--disconnect", "--json").json()
    assert body["switch"] is None and body["vlan"]["mode"] == "Trunk"

    assert cli("port", "set", "v-eth0").rc == 2
    assert cli("port", "set", "v-eth0", "--switch", "sw", "--disconnect").rc == 2
    assert cli("port", "add", "p2", "--switch", "sw").rc == 2
    assert cli("port", "add", "p2", "--interface", "eth2", "--tap", "t0", "--switch", "sw").rc == 2

    names = [p["name"] for p in cli.ok("--json", "port", "list", "--switch", "sw").json()]
    assert names == ["p1"]
    assert [p["name"] for p in cli.ok("--json", "port", "list", "--vm", "v").json()] == ["v-eth0"]
    assert "p1" in cli.ok("port", "list").out

    cli.ok("port", "del", "p1")
    assert cli("port", "show", "p1").rc == 1


def test_fdb_counters_and_show(cli: Cli, d: Daemon) -> None:
    cli.ok("switch", "add", "sw", "--type", "internal")
    fdb = cli.ok("--json", "fdb", "show", "sw").json()
    assert fdb[0]["mac"] == "02:00:00:00:00:01"
    assert "02:00:00:00:00:01" in cli.ok("fdb", "show", "sw").out
    assert cli("fdb", "show", "nope").rc == 1
    assert cli.ok("--json", "counters", "--switch", "sw").json() == {
        "switches": {"sw": {"ports": {}, "drops": {}}}
    }
    assert "switch sw" in cli.ok("counters").out

    first = cli.ok("--json", "show").out
    second = cli.ok("show", "--json").out
    assert first == second
    assert json.loads(first) == d.client.get("/v1/config").json()
    human = cli.ok("show").out
    assert "Switches" in human and "Ports" in human
    assert cli.ok("--json", "show", "switch", "sw").json()["name"] == "sw"
    assert cli("show", "switch").rc == 2


def test_callers_invocations_work_as_written(cli: Cli, d: Daemon) -> None:
    """Every argument list the lab harness, the demo and the system tests pass, in their order."""
    assert cli.ok("--json", "switch", "list").json() == []
    cli.ok("switch", "add", "sw", "--type", "private")
    cli.ok("port", "add", "p1", "--interface", "eth1", "--switch", "sw")
    cli.ok("port", "add", "p2", "--interface", "eth2", "--switch", "sw")
    cli.ok("switch", "add", "int", "--type", "internal")
    cli.ok("vm", "add", "web01-ab", "--switch", "sw", "--ip", "10.10.0.11/24", "--vlan", "access:10")
    cli.ok("vm", "add", "t1", "--switch", "sw", "--ip", "10.34.0.5/24", "--vlan", "trunk:30-31:native=1")
    cli.ok("vm", "add", "i1", "--switch", "sw", "--ip", "10.35.0.1/24", "--vlan", "isolated:100:101")
    cli.ok("vm", "add", "pr", "--switch", "sw", "--ip", "10.35.0.254/24", "--vlan", "promiscuous:100:101")
    assert cli.ok("--json", "vm", "show", "web01-ab").json()["netns"] == "web01-ab"
    assert cli.ok("--json", "port", "show", "int").json()["peer_interface"].startswith("pvh")
    cli.ok("switch", "list")
    cli.ok("vm", "list")
    assert "web01-ab" in cli.ok("Get-VMNetworkAdapterVlan").out
    for vm in cli.ok("--json", "vm", "list").json():
        cli.ok("vm", "del", vm["name"])
    for sw in cli.ok("--json", "switch", "list").json():
        cli.ok("switch", "del", sw["name"])
    assert d.service.config.switches == [] and d.service.config.vms == []


def test_vm_exec_replaces_the_process_with_ip_netns_exec(
    cli: Cli, d: Daemon, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[tuple[str, list[str]]] = []

    def fake_execvp(file: str, args: list[str]) -> None:
        calls.append((file, list(args)))

    monkeypatch.setattr("os.execvp", fake_execvp)
    cli.ok("vm", "add", "v", "--netns", "nsv", "--no-adapter")
    cli.ok("vm", "exec", "v", "--", "ping", "-c", "1", "10.0.0.1")
    cli.ok("vm", "exec", "v", "ip", "-br", "addr")
    assert calls == [
        ("ip", ["ip", "netns", "exec", "nsv", "ping", "-c", "1", "10.0.0.1"]),
        ("ip", ["ip", "netns", "exec", "nsv", "ip", "-br", "addr"]),
    ]
    assert cli("vm", "exec", "v").rc == 2
    assert cli("vm", "exec", "nope", "--", "true").rc == 1


def test_demo_and_bench_exit_with_their_return_code(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[tuple[object, ...]] = []

    def fake_demo(keep: bool) -> int:
        seen.append(("demo", keep))
        return 7

    def fake_bench(json_path: str | None, quick: bool) -> int:
        seen.append(("bench", json_path, quick))
        return 2

    monkeypatch.setattr("pyvswitch.lab.demo.run_demo", fake_demo)
    monkeypatch.setattr("pyvswitch.lab.bench.run_bench", fake_bench)
    assert main(["demo", "--keep"]) == 7
    assert main(["demo"]) == 7
    assert main(["bench", "--json", "bench.json", "--quick"]) == 2
    assert seen == [("demo", True), ("demo", False), ("bench", "bench.json", True)]


# ---------------------------------------------------------------- cmdlets


def test_new_and_get_vmswitch(cli: Cli, d: Daemon) -> None:
    res = cli.ok("New-VMSwitch", "-Name", "lab", "-SwitchType", "Private")
    assert rows(res.out) == [
        ["Name", "SwitchType", "NetAdapterInterfaceDescription"],
        ["----", "----------", "------------------------------"],
        ["lab", "Private"],
    ]
    cli.ok("new-vmswitch", "ext", "-NetAdapterName", "eth1", "-AllowManagementOS", "$false")
    cli.ok("New-VMSwitch", "int", "-SwitchType", "internal")
    sw = d.service.switch("ext")
    assert sw.type == "External" and sw.net_adapter == "eth1" and sw.allow_management_os is False
    assert [p.name for p in d.service.ports(switch="ext")] == ["ext-uplink"]
    assert [p.name for p in d.service.ports(switch="int")] == ["int"]

    table = rows(cli.ok("Get-VMSwitch").out)
    assert table[2:] == [["lab", "Private"], ["ext", "External", "eth1"], ["int", "Internal"]]
    assert rows(cli.ok("Get-VMSwitch", "E*").out)[2:] == [["ext", "External", "eth1"]]
    assert rows(cli.ok("Get-VMSwitch", "-SwitchType", "Internal").out)[2:] == [["int", "Internal"]]
    objs = cli.ok("--json", "Get-VMSwitch", "-Name", "ext").json()
    assert objs == [
        {
            "Name": "ext",
            "SwitchType": "External",
            "NetAdapterInterfaceDescription": "eth1",
            "AllowManagementOS": False,
            "Notes": "",
            # QoS (QS-06): Default mode is Weight; no link speed configured, so the capacity is unbounded.
            "BandwidthReservationMode": "Weight",
            "DefaultFlowMinimumBandwidthWeight": 1,
            "DefaultFlowMinimumBandwidthAbsolute": 0,
            "BandwidthPercentage": 100.0,
            "Capacity": 0,
            "Reservation": 0,
        }
    ]
    res = cli("Get-VMSwitch", "nope")
    assert res.rc == 1 and 'unable to find a virtual switch with name "nope"' in res.err
    # issue 15: Select-Object and Format-Table, as one quoted word or after the pipe as words.
    picked = cli.ok(
        "--json", "Get-VMSwitch", "-Name", "ext", "| Select-Object -Property name,Capacity"
    ).json()
    assert picked == [{"Name": "ext", "Capacity": 0}]
    assert rows(cli.ok("Get-VMSwitch", "|", "ft", "Name,Notes,AllowManagementOS").out)[0] == [
        "Name", "Notes", "AllowManagementOS",
    ]  # fmt: skip
    assert "Capacity : 0" in cli.ok("Get-VMSwitch", "ext", "| select Name,Capacity | fl").out
    res = cli("Get-VMSwitch", "| select Nope")
    assert res.rc == 2 and "no property Nope" in res.err

    res = cli("New-VMSwitch", "-Name", "x")
    assert res.rc == 2 and "Parameter set cannot be resolved" in res.err
    res = cli("New-VMSwitch", "x", "-NetAdapterName", "eth2", "-SwitchType", "Internal")
    assert res.rc == 2


def test_set_and_remove_vmswitch(cli: Cli, d: Daemon) -> None:
    cli.ok("New-VMSwitch", "s", "-SwitchType", "Private")
    cli.ok("Set-VMSwitch", "s", "-NetAdapterName", "eth1")
    sw = d.service.switch("s")
    # Hyper-V: binding an adapter shares it with the management OS unless told otherwise.
    assert sw.type == "External" and sw.allow_management_os is True
    assert sorted(p.name for p in d.service.ports(switch="s")) == ["s", "s-uplink"]
    cli.ok("Set-VMSwitch", "-Name", "s", "-AllowManagementOS:$false")
    assert [p.name for p in d.service.ports(switch="s")] == ["s-uplink"]
    res = cli.ok("Set-VMSwitch", "s", "-SwitchType", "Internal", "-Passthru")
    assert rows(res.out)[2:] == [["s", "Internal"]]
    cli.ok("Remove-VMSwitch", "s", "-Force")
    assert d.service.config.switches == []


def test_vm_and_adapter_cmdlets(cli: Cli, d: Daemon) -> None:
    cli.ok("New-VMSwitch", "lab", "-SwitchType", "Private")
    cli.ok("New-VMSwitch", "int", "-SwitchType", "Internal")
    cli.ok("New-VM", "web01", "-SwitchName", "lab")
    cli.ok("Add-VMNetworkAdapter", "-VMName", "web01", "-StaticMacAddress", "00-15-5D-00-0A-01")
    cli.ok("Add-VMNetworkAdapter", "web01", "-Name", "backup", "-SwitchName", "int")
    assert [p.name for p in d.service.ports(vm="web01")] == ["web01-eth0", "web01-eth1", "web01-backup"]
    assert d.service.port("web01-eth1").mac == "00:15:5d:00:0a:01"

    table = rows(cli.ok("Get-VMNetworkAdapter", "web01").out)
    assert table[0] == ["Name", "VMName", "SwitchName", "MacAddress", "Status", "IPAddresses"]
    assert table[3] == ["eth1", "web01", "00155D000A01", "{Ok}", "{}"]
    objs = cli.ok("--json", "Get-VMNetworkAdapter", "-VMName", "web01", "-Name", "eth*").json()
    assert [(o["Name"], o["SwitchName"]) for o in objs] == [("eth0", "lab"), ("eth1", "")]

    cli.ok("Connect-VMNetworkAdapter", "-VMName", "web01", "-Name", "eth1", "-SwitchName", "lab")
    assert d.service.port("web01-eth1").switch == "lab"
    cli.ok("Disconnect-VMNetworkAdapter", "web01")
    assert {p.switch for p in d.service.ports(vm="web01")} == {None}
    res = cli("Connect-VMNetworkAdapter", "web01", "nosuch", "lab")
    assert res.rc == 1 and "network adapter named 'nosuch'" in res.err

    cli.ok("Add-VMNetworkAdapter", "-ManagementOS", "-Name", "storage", "-SwitchName", "int")
    mgmt = cli.ok("--json", "Get-VMNetworkAdapter", "-ManagementOS").json()
    assert sorted(o["Name"] for o in mgmt) == ["int", "storage"]
    assert all(o["IsManagementOs"] for o in mgmt)
    assert cli("Add-VMNetworkAdapter", "-ManagementOS", "-SwitchName", "int").rc == 2
    assert cli("Get-VMNetworkAdapter").rc == 2
    assert cli("Get-VMNetworkAdapter", "web01", "-ManagementOS").rc == 2

    cli.ok("Remove-VMNetworkAdapter", "web01", "backup")
    assert [p.name for p in d.service.ports(vm="web01")] == ["web01-eth0", "web01-eth1"]
    assert [o["Name"] for o in cli.ok("--json", "Get-VM").json()] == ["web01"]
    cli.ok("Remove-VM", "web01", "-Force")
    assert d.service.config.vms == [] and "web01" not in d.lab.netns


def test_set_and_get_vmnetworkadaptervlan(cli: Cli, d: Daemon) -> None:
    cli.ok("switch", "add", "sw", "--type", "private")
    cli.ok("vm", "add", "web01", "--switch", "sw")
    cli.ok("vm", "add", "db01", "--switch", "sw")

    cli.ok("Set-VMNetworkAdapterVlan", "-VMName", "web01", "-Access", "-VlanId", "10")
    vlan = d.service.port("web01-eth0").vlan
    assert vlan.mode == "Access" and vlan.access_vlan_id == 10

    cli.ok(
        "set-vmnetworkadaptervlan",
        "-vmname",
        "db01",
        "-VMNetworkAdapterName",
        "eth0",
        "-Trunk",
        "-AllowedVlanIdList",
        "1-100,",
        "200",
        "-NativeVlanId",
        "1",
    )
    vlan = d.service.port("db01-eth0").vlan
    assert vlan.mode == "Trunk" and vlan.allowed_vlan_ids == [*range(1, 101), 200]
    assert vlan.native_vlan_id == 1

    table = rows(cli.ok("Get-VMNetworkAdapterVlan").out)
    assert table[0] == ["VMName", "VMNetworkAdapterName", "Mode", "VlanList"]
    assert table[2] == ["web01", "eth0", "Access", "10"]
    assert table[3][:4] == ["db01", "eth0", "Trunk", "1-100,200"]
    objs = cli.ok("--json", "Get-VMNetworkAdapterVlan", "db01").json()
    assert objs == [
        {
            "VMName": "db01",
            "VMNetworkAdapterName": "eth0",
            "OperationMode": "Trunk",
            "AccessVlanId": 0,
            "NativeVlanId": 1,
            "AllowedVlanIdList": "1-100,200",
            "PrivateVlanMode": "",
            "PrimaryVlanId": 0,
            "SecondaryVlanId": 0,
            "SecondaryVlanIdList": "",
        }
    ]

    res = cli.ok(
        "Set-VMNetworkAdapterVlan",
        "web01",
        "-Promiscuous",
        "-PrimaryVlanId",
        "100",
        "-SecondaryVlanIdList",
        "101-102",
        "-Passthru",
    )
    assert "Promiscuous" in res.out
    assert d.service.port("web01-eth0").vlan.secondary_vlan_ids == [101, 102]
    cli.ok("Set-VMNetworkAdapterVlan", "web01", "-Untagged")
    assert d.service.port("web01-eth0").vlan.mode == "Untagged"

    res = cli("Set-VMNetworkAdapterVlan", "web01", "-Access")
    assert res.rc == 2 and "missing mandatory parameters: VlanId" in res.err
    res = cli("Set-VMNetworkAdapterVlan", "nosuchvm", "-Untagged")
    assert res.rc == 1 and res.err.strip() == "error: vm: no VM 'nosuchvm'"


def test_unknown_cmdlet_parameter_exits_2(cli: Cli, d: Daemon) -> None:
    res = cli("New-VMSwitch", "-Name", "x", "-SwitchType", "Private", "-Foo", "bar")
    assert res.rc == 2
    assert res.err.strip() == "New-VMSwitch: A parameter cannot be found that matches parameter name 'Foo'."
    assert d.service.config.switches == []
    res = cli("Rename-VMSwitch", "x")
    assert res.rc == 2 and "not recognized" in res.err


def test_cmdlet_help(cli: Cli) -> None:
    res = cli.ok("Set-VMNetworkAdapterVlan", "-?")
    assert "Set-VMNetworkAdapterVlan [[-VMName] <String>]" in res.out


def test_global_options_before_a_cmdlet(cli: Cli, d: Daemon) -> None:
    cli.ok("--socket", "/ignored/with/a/transport", "New-VMSwitch", "lab", "-SwitchType", "Private")
    objs = cli.ok("--socket", "/x", "--json", "Get-VMSwitch").json()
    assert [o["Name"] for o in objs] == ["lab"]
    # A whole PowerShell line in one argument.
    cli.ok("Set-VMSwitch lab -Notes 'from a pasted line'")
    assert d.service.switch("lab").notes == "from a pasted line"


# ---------------------------------------------------------------- daemon not reachable


def run_real(argv: list[str], capsys: pytest.CaptureFixture[str]) -> Result:
    capsys.readouterr()
    rc = main(argv)
    out, err = capsys.readouterr()
    return Result(rc, out, err)


def test_daemon_not_running_exits_3(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "nothing.sock"
    res = run_real(["--socket", str(path), "switch", "list"], capsys)
    assert res.rc == 3
    assert res.err.strip() == f"pyvswitchd is not running (no socket at {path}); start it with `pyvswitchd`"
    res = run_real(["--socket", str(path), "--json", "vm", "show", "web01"], capsys)
    assert res.rc == 3
    res = run_real(["--socket", str(path), "Get-VMSwitch"], capsys)
    assert res.rc == 3 and f"no socket at {path}" in res.err


def test_cmdlets_and_verbs_honour_pyvswitch_socket(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "from-env.sock"
    monkeypatch.setenv("PYVSWITCH_SOCKET", str(path))
    for argv in (["Get-VMNetworkAdapterVlan"], ["switch", "list"]):
        res = run_real(argv, capsys)
        assert res.rc == 3 and f"no socket at {path}" in res.err, argv


def test_stale_socket_exits_3(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # A socket file nobody listens on, as a killed daemon leaves it: connect() is refused.
    path = tmp_path / "stale.sock"
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.bind(str(path))
        res = run_real(["--socket", str(path), "switch", "list"], capsys)
    finally:
        s.close()
    assert res.rc == 3 and "pyvswitchd is not running" in res.err


# ---------------------------------------------------------------- config export / diff / import, history


def test_config_export_diff_import_round_trip_and_history(cli: Cli, tmp_path: Path) -> None:
    """issue 15: an export imported back changes nothing; a changed file's diff names each object and field; a
    dry run changes nothing; an import applies in one transaction; a bad file is refused whole, field named."""
    cli.ok("switch", "add", "sw1", "--type", "private")
    cli.ok("vm", "add", "web", "--switch", "sw1", "--ip", "10.0.0.10/24")
    path = tmp_path / "host.json"
    cli.ok("config", "export", str(path))
    assert cli("config", "diff", str(path)).rc == 0  # nothing to change
    doc = json.loads(path.read_text())
    doc["switches"].append({"name": "sw2", "type": "Private"})
    doc["switches"][0]["mac_aging_s"] = 60
    doc["vms"] = []
    doc["ports"] = [p for p in doc["ports"] if p.get("vm") != "web"]
    path.write_text(json.dumps(doc))
    res = cli("config", "diff", str(path))
    assert res.rc == 1
    assert (
        "+ switches sw2" in res.out
        and "~ switches sw1: mac_aging_s 300.0 -> 60.0" in res.out
        and "- vms web" in res.out
    )
    changes = cli("config", "diff", str(path), "--json").json()
    assert {(c["op"], c["kind"], c["name"]) for c in changes} >= {
        ("add", "switches", "sw2"),
        ("remove", "vms", "web"),
    }
    cli.ok("config", "import", str(path), "--dry-run")
    assert [s["name"] for s in cli.ok("--json", "switch", "list").json()] == ["sw1"]
    out = cli.ok("--json", "config", "import", str(path)).json()
    assert out["applied"] is True
    assert sorted(s["name"] for s in cli.ok("--json", "switch", "list").json()) == ["sw1", "sw2"]
    assert cli.ok("--json", "vm", "list").json() == []
    assert cli("config", "diff", str(path)).rc == 0
    history = cli.ok("--json", "history", "--limit", "5").json()
    assert history[0]["summary"] == "replace configuration" and len(history) >= 3
    assert "replace configuration" in cli.ok("history").out
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({**doc, "switches": [{"name": "sw3", "mac_aging_s": -1}]}))
    res = cli("config", "import", str(bad))
    assert res.rc == 1 and "switches.0.mac_aging_s" in res.err
    assert sorted(s["name"] for s in cli.ok("--json", "switch", "list").json()) == ["sw1", "sw2"]
    # Valid by the schema, refused by the daemon's cross-object checks: --dry-run says so (the daemon's dry run).
    orphan = tmp_path / "orphan.json"
    cfg = cli.ok("config", "export").json()
    cfg["ports"] = [*cfg["ports"], {"name": "lost", "kind": "vm", "vm": "nobody", "switch": "nowhere"}]
    orphan.write_text(json.dumps(cfg))
    res = cli("config", "import", str(orphan), "--dry-run")
    assert res.rc == 1 and "nowhere" in res.err, res
    assert sorted(s["name"] for s in cli.ok("--json", "switch", "list").json()) == ["sw1", "sw2"]


def test_did_you_mean_for_verbs_cmdlets_and_object_names(cli: Cli) -> None:
    """issue 15: a mistyped verb, cmdlet or object name gets the close ones suggested."""
    res = cli("swich", "list")
    assert res.rc == 2 and "Did you mean 'switch'?" in res.err
    res = cli("Get-VMSwich")
    assert res.rc == 2 and "Did you mean Get-VMSwitch" in res.err
    cli.ok("switch", "add", "ext-lan", "--type", "private")
    res = cli("switch", "show", "ext-lna")
    assert res.rc == 1 and "no switch 'ext-lna'; did you mean 'ext-lan'?" in res.err


def test_may_exist_and_if_exists(cli: Cli) -> None:
    """issue 15: --may-exist on add and --if-exists on del make scripts idempotent (ovs-vsctl's flags)."""
    cli.ok("switch", "add", "sw1", "--type", "private")
    assert cli("switch", "add", "sw1", "--type", "private").rc == 1  # without the flag: the conflict
    again = cli.ok("--json", "switch", "add", "sw1", "--type", "private", "--may-exist").json()
    assert again["name"] == "sw1"
    assert len(cli.ok("--json", "switch", "list").json()) == 1
    cli.ok("switch", "del", "sw1")
    assert cli("switch", "del", "sw1").rc == 1
    out = cli.ok("--json", "switch", "del", "sw1", "--if-exists").json()
    assert out == {"removed": "switch", "name": "sw1", "existed": False}
    assert "nothing to remove" in cli.ok("vm", "del", "nope", "--if-exists").out
