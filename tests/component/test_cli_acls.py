"""Port ACLs, extended ACLs and switch extensions from the CLI (verbs and cmdlets) against the real REST app.

The engine is test_api's fake, extended here with what the extension cmdlets read: a set of installed
extensions and, per switch, the stack the real engine would build from the switch's settings (kind order
capture -> filter -> forwarding, then configured order, then name; unconfigured ones with their default).
"""

from __future__ import annotations

import shlex
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from pyvswitch.config.schema import SwitchConfig
from pyvswitch.config.store import Store
from pyvswitch.daemon.api import create_app
from pyvswitch.daemon.macpool import MacPool
from pyvswitch.daemon.service import Service
from tests.component.test_api import Daemon, FakeEngine, FakeLab
from tests.component.test_cli import Cli, Result, rows

INSTALLED: list[dict[str, Any]] = [
    {
        "name": "pyvswitch-firewall",
        "kind": "filter",
        "api_version": "1.0",
        "description": "extended ACLs",
        "enabled_by_default": True,
        "distribution": "pyvswitch",
        "problem": None,
    },
    {
        "name": "mon",
        "kind": "capture",
        "api_version": "1.0",
        "description": "",
        "enabled_by_default": False,
        "distribution": "acme-ext",
        "problem": None,
    },
    {
        "name": "tap",
        "kind": "capture",
        "api_version": "1.0",
        "description": "",
        "enabled_by_default": False,
        "distribution": "acme-ext",
        "problem": None,
    },
    {
        "name": "steer",
        "kind": "forwarding",
        "api_version": "1.0",
        "description": "",
        "enabled_by_default": False,
        "distribution": "acme-ext",
        "problem": None,
    },
    {
        "name": "broken",
        "kind": None,
        "api_version": None,
        "description": "",
        "enabled_by_default": False,
        "distribution": "bad-ext",
        "problem": "ImportError: No module named 'bad_ext'",
    },
]
KIND_ORDER = {"capture": 0, "filter": 1, "forwarding": 2}


class StackEngine(FakeEngine):
    """FakeEngine with installed extensions and per-switch stacks in its counters."""

    def installed_extensions(self) -> list[dict[str, object]]:
        return [dict(e) for e in INSTALLED]

    def stack(self, sw: SwitchConfig) -> list[dict[str, object]]:
        configured = {s.name: (i, s.enabled) for i, s in enumerate(sw.extensions)}
        rows_: list[tuple[int, int, str, str, bool]] = []
        for e in INSTALLED:
            if e["kind"] is None:
                continue  # cannot be used: in no stack
            pos, on = configured.get(e["name"], (len(configured), bool(e["enabled_by_default"])))
            rows_.append((KIND_ORDER[e["kind"]], pos, e["name"], e["kind"], on))
        rows_.sort(key=lambda r: (r[0], r[1], r[2]))
        return [
            {
                "name": name,
                "kind": kind,
                "enabled": on,
                "position": i,
                "on_error": "bypass",
                "calls": 7 if on else 0,
                "errors": 0,
                "drops": {},
                "status": {},
            }
            for i, (_, _, name, kind, on) in enumerate(rows_)
        ]

    def counters(self) -> dict[str, object]:
        data = super().counters()
        switches = data["switches"]
        assert isinstance(switches, dict)
        for sw in self.current.switches:
            switches[sw.name]["extensions"] = self.stack(sw)
        return data


class ExtDaemon(Daemon):
    def __init__(self, path: Path) -> None:  # Daemon's, with the StackEngine
        self.path = path
        self.lab = FakeLab()
        self.engine = StackEngine()
        self.store = Store(path)
        self.service = Service(self.store, self.engine, self.lab, MacPool(0x0102))
        self.service.start()
        self.client = TestClient(create_app(self.service))


@pytest.fixture
def d(tmp_path: Path) -> Iterator[Daemon]:
    daemon = ExtDaemon(tmp_path / "config.db")
    yield daemon
    daemon.store.close()


@pytest.fixture
def cli(d: Daemon, capsys: pytest.CaptureFixture[str]) -> Cli:
    return Cli(d, capsys)


def acls(d: Daemon, port: str) -> list[tuple[str, str, str | None, str | None, str | None, str | None]]:
    return [
        (a.action.value, a.direction.value, a.local_ip, a.remote_ip, a.local_mac, a.remote_mac)
        for a in d.service.port(port).acls
    ]


def xacls(d: Daemon, port: str) -> list[tuple[int, str, str]]:
    return [(x.weight, x.direction.value, x.action.value) for x in d.service.port(port).extended_acls]


class Sh:
    """The CLI called with a command line as typed in a shell: ``sh.ok("port acl list web01-eth0")``."""

    def __init__(self, cli: Cli) -> None:
        self.cli = cli

    def __call__(self, line: str) -> Result:
        return self.cli(*shlex.split(line))

    def ok(self, line: str) -> Result:
        return self.cli.ok(*shlex.split(line))


@pytest.fixture
def sh(cli: Cli) -> Sh:
    return Sh(cli)


P = "web01-eth0"


@pytest.fixture
def web01(sh: Sh) -> None:
    sh.ok("switch add sw --type private")
    sh.ok("vm add web01 --switch sw")


# ---------------------------------------------------------------- port acl


def test_port_acl_add_list_del_round_trip(sh: Sh, d: Daemon, web01: None) -> None:
    sh.ok(f"port acl add {P} --action deny --direction both --remote-ip any")
    sh.ok(f"port acl add {P} --action Allow --direction BOTH --remote-ip 192.168.1.0/24")
    sh.ok(f"port acl add {P} --action meter --direction outbound --remote-ip 10.0.0.1")
    res = sh.ok(f"port acl add {P} --action deny --direction inbound --remote-mac 00-15-5D-00-00-09")
    assert rows(res.out) == [
        ["#", "DIRECTION", "ACTION", "LOCAL", "REMOTE"],
        ["0", "Both", "Deny", "-", "ANY"],
        ["1", "Both", "Allow", "-", "192.168.1.0/24"],
        ["2", "Outbound", "Meter", "-", "10.0.0.1/32"],
        ["3", "Inbound", "Deny", "-", "00:15:5d:00:00:09"],
    ]
    assert acls(d, P)[3] == ("Deny", "Inbound", None, None, None, "00:15:5d:00:00:09")

    listed = sh.ok(f"port acl list {P} --json").json()
    assert listed == [a.model_dump(mode="json") for a in d.service.port(P).acls]
    assert rows(sh.ok(f"port acl list {P}").out)[1] == ["0", "Both", "Deny", "-", "ANY"]

    # A selector in another spelling finds the stored form; one direction of a Both entry stays.
    sh.ok(f"port acl del {P} --remote-ip 10.0.0.1")
    sh.ok(f"port acl del {P} --action deny --direction inbound --remote-ip ANY")
    sh.ok(f"port acl del {P} --remote-mac 00:15:5d:00:00:09")
    assert acls(d, P) == [
        ("Deny", "Outbound", None, "ANY", None, None),
        ("Allow", "Both", None, "192.168.1.0/24", None, None),
    ]
    after = sh.ok(f"--json port acl del {P} --index 0").json()
    assert [(a["action"], a["remote_ip"]) for a in after] == [("Allow", "192.168.1.0/24")]

    res = sh(f"port acl del {P} --index 5")
    assert res.rc == 1 and res.err.strip() == f"error: index: port {P} has entries 0-0"
    res = sh(f"port acl del {P} --action deny")
    assert res.rc == 1 and res.err.strip() == f"error: acls: no ACL entry of port {P} matches"
    assert len(acls(d, P)) == 1

    sh.ok(f"port acl del {P} --direction both")
    assert acls(d, P) == []
    assert "has no ACL entries" in sh.ok(f"port acl list {P}").out
    assert sh.ok(f"port acl list {P} --json").json() == []


def test_port_acl_mistakes(sh: Sh, d: Daemon, web01: None) -> None:
    add = f"port acl add {P} --action deny --direction inbound"
    # usage (exit 2): no address, two addresses, a bad choice, del without a selector or with two kinds
    assert sh(add).rc == 2
    res = sh(f"{add} --local-ip 10.0.0.1 --remote-ip 10.0.0.2")
    assert res.rc == 2 and "exactly one of --local-ip" in res.err
    res = sh(f"port acl add {P} --action permit --direction inbound --remote-ip ANY")
    assert res.rc == 2 and "'--action'" in res.err
    assert sh(f"port acl del {P}").rc == 2
    assert sh(f"port acl del {P} --index 0 --action deny").rc == 2
    res = sh(f"port acl del {P} --remote-ip 10.0.0.300")
    assert res.rc == 2 and "Invalid value for '--remote-ip'" in res.err
    # rejected by the daemon (exit 1), which names the entry and field
    res = sh(f"port acl add {P} --action meter --direction inbound --remote-mac ANY")
    assert res.rc == 1 and res.err.strip() == "error: acls[0]: Meter entries must be IP-based"
    res = sh(f"{add} --remote-ip 10.0.0.300")
    assert res.rc == 1 and res.err.startswith("error: acls[0].remote_ip: ")
    res = sh("port acl list nosuch")
    assert res.rc == 1 and res.err.strip() == "error: name: no port 'nosuch'"
    assert acls(d, P) == []


# ---------------------------------------------------------------- port xacl


def test_port_xacl_add_list_del(sh: Sh, d: Daemon, web01: None) -> None:
    sh.ok(f"port xacl add {P} --action deny --direction inbound --weight 1")
    res = sh.ok(
        f"port xacl add {P} --action Allow --direction Inbound --weight 100 --local-port 80 --protocol tcp"
        " --remote-ip 10.0.0.0/8 --stateful --idle-timeout 600 --isolation-id 20"
    )
    table = rows(res.out)
    assert table[0][:4] == ["WEIGHT", "DIRECTION", "ACTION", "LOCAL-IP"]
    # evaluation order: highest weight first
    assert table[1] == [
        "100",
        "Inbound",
        "Allow",
        "any",
        "10.0.0.0/8",
        "80",
        "any",
        "TCP",
        "True",
        "600",
        "20",
        "0",
    ]
    assert table[2] == ["1", "Inbound", "Deny", "any", "any", "any", "any", "any", "False", "3600", "-", "0"]
    x = d.service.port(P).extended_acls[1]
    assert (x.protocol, x.local_port, x.stateful, x.idle_session_timeout_s, x.isolation_id) == (
        "6",
        "80",
        True,
        600,
        20,
    )
    sh.ok(f"port xacl add {P} --action deny --direction outbound --weight 1")
    stored = sh.ok(f"--json port xacl list {P}").json()
    assert [(e["weight"], e["direction"]) for e in stored] == [
        (1, "Inbound"),
        (100, "Inbound"),
        (1, "Outbound"),
    ]

    res = sh(f"port xacl add {P} --action allow --direction inbound --weight 1")
    assert res.rc == 1 and res.err.startswith(f"error: weight: port {P} already has an Inbound")

    sh.ok(f"port xacl del {P} --weight 1 --direction outbound")
    assert xacls(d, P) == [(1, "Inbound", "Deny"), (100, "Inbound", "Allow")]
    res = sh(f"port xacl del {P} --weight 1 --direction outbound")
    assert res.rc == 1 and "has no Outbound extended ACL entry with weight 1" in res.err
    assert sh.ok(f"--json port xacl del {P} --weight 1").json()[0]["weight"] == 100
    assert xacls(d, P) == [(100, "Inbound", "Allow")]


def test_port_xacl_rejected_values_name_the_field(sh: Sh, d: Daemon, web01: None) -> None:
    add = f"port xacl add {P} --action allow --direction inbound --weight 10"
    res = sh(f"{add} --local-port 80-70")
    assert res.rc == 1
    assert res.err.strip() == "error: extended_acls[0].local_port: '80-70': ports are 0-65535, low-high"
    res = sh(f"{add} --remote-port http")
    assert res.rc == 1 and res.err.startswith("error: extended_acls[0].remote_port: ")
    res = sh(f"{add} --protocol sctp")
    assert res.rc == 1 and res.err.startswith("error: extended_acls[0].protocol: ")
    res = sh(f"port xacl add {P} --action deny --direction inbound --weight 3 --stateful")
    assert res.rc == 1 and res.err.strip() == "error: extended_acls[0]: only Allow entries can be stateful"
    res = sh(f"port xacl add {P} --action allow --direction both --weight 3")
    assert res.rc == 2 and "'--direction'" in res.err
    assert sh(f"port xacl add {P} --action allow --direction inbound").rc == 2
    assert xacls(d, P) == []


# ---------------------------------------------------------------- ACL cmdlets


def test_vmnetworkadapteracl_cmdlets(sh: Sh, d: Daemon) -> None:
    sh.ok("New-VMSwitch lab -SwitchType Internal")
    sh.ok("New-VM web01 -SwitchName lab")
    sh.ok("New-VM db01 -SwitchName lab")
    sh.ok("Add-VMNetworkAdapterAcl -VMName web01 -Action Deny -Direction Both -RemoteIPAddress ANY")
    sh.ok(
        "add-vmnetworkadapteracl web01 -action allow -direction both -RemoteIPAddress 192.168.1.0/24, 10.1.0.0/16"
    )
    sh.ok("Add-VMNetworkAdapterAcl db01 -Action Deny -Direction Outbound -LocalMacAddress 00-15-5D-00-0A-01")
    sh.ok(
        "Add-VMNetworkAdapterAcl -ManagementOS -VMNetworkAdapterName lab -Action Meter -Direction Inbound"
        " -LocalIPAddress 10.9.0.1"
    )
    assert acls(d, "web01-eth0") == [
        ("Deny", "Both", None, "ANY", None, None),
        ("Allow", "Both", None, "192.168.1.0/24", None, None),
        ("Allow", "Both", None, "10.1.0.0/16", None, None),
    ]
    assert acls(d, "lab") == [("Meter", "Inbound", "10.9.0.1/32", None, None, None)]

    out = sh.ok("Get-VMNetworkAdapterAcl").out
    assert out.splitlines()[:2] == [
        "VMName Direction Action LocalAddress RemoteAddress",
        "------ --------- ------ ------------ -------------",
    ]
    assert rows(out)[2:] == [
        ["web01", "Both", "Deny", "ANY"],
        ["web01", "Both", "Allow", "192.168.1.0/24"],
        ["web01", "Both", "Allow", "10.1.0.0/16"],
        ["db01", "Outbound", "Deny", "00155D000A01"],
    ]
    assert sh.ok("--json Get-VMNetworkAdapterAcl db01").json() == [
        {
            "VMName": "db01",
            "VMNetworkAdapterName": "eth0",
            "IsManagementOs": False,
            "Direction": "Outbound",
            "Action": "Deny",
            "LocalAddress": "00155D000A01",
            "RemoteAddress": "",
        }
    ]
    mgmt = sh.ok("--json Get-VMNetworkAdapterAcl -ManagementOS").json()
    assert [(o["VMNetworkAdapterName"], o["Action"], o["LocalAddress"]) for o in mgmt] == [
        ("lab", "Meter", "10.9.0.1/32")
    ]

    # Remove: the inbound half of a Both entry, the address spelled differently; then a whole entry.
    sh.ok("Remove-VMNetworkAdapterAcl web01 -Action Deny -Direction Inbound -RemoteIPAddress any")
    sh.ok("Remove-VMNetworkAdapterAcl web01 -Action Allow -Direction Both -RemoteIPAddress 10.1.0.0/16")
    assert acls(d, "web01-eth0") == [
        ("Deny", "Outbound", None, "ANY", None, None),
        ("Allow", "Both", None, "192.168.1.0/24", None, None),
    ]
    res = sh("Remove-VMNetworkAdapterAcl web01 -Action Deny -Direction Inbound -RemoteIPAddress ANY")
    assert res.rc == 1 and "No Inbound Deny ACL entry of VM 'web01' matches" in res.err
    res = sh.ok(
        "Add-VMNetworkAdapterAcl db01 -Action Allow -Direction Inbound -RemoteMacAddress ANY -Passthru"
    )
    assert rows(res.out)[2:] == [
        ["db01", "Outbound", "Deny", "00155D000A01"],
        ["db01", "Inbound", "Allow", "ANY"],
    ]


def test_vmnetworkadapteracl_cmdlet_mistakes(sh: Sh, d: Daemon) -> None:
    sh.ok("New-VMSwitch lab -SwitchType Private")
    sh.ok("New-VM web01 -SwitchName lab")
    add = "Add-VMNetworkAdapterAcl web01 -Action Deny -Direction Inbound"
    res = sh(add)
    assert res.rc == 2 and "Parameter set cannot be resolved" in res.err and "-RemoteIPAddress" in res.err
    res = sh(f"{add} -RemoteIPAddress ANY -LocalIPAddress ANY")
    assert res.rc == 2 and "Parameter set cannot be resolved" in res.err
    res = sh(f"{add} -RemoteIPAddress 10.0.0.300")
    assert res.rc == 2
    assert res.err.startswith(
        "Add-VMNetworkAdapterAcl: Cannot validate argument on parameter 'RemoteIPAddress'."
    )
    res = sh("Add-VMNetworkAdapterAcl web01 -Action Meter -Direction Inbound -RemoteMacAddress ANY")
    assert res.rc == 2 and "Meter entries must be IP-based" in res.err
    res = sh("Add-VMNetworkAdapterAcl web01 -Action Deny -RemoteIPAddress ANY")
    assert res.rc == 2 and "missing mandatory parameters: Direction" in res.err
    res = sh(f"{add} -RemoteIPAddress ANY -Priority 1")
    assert res.rc == 2
    assert res.err.strip() == (
        "Add-VMNetworkAdapterAcl: A parameter cannot be found that matches parameter name 'Priority'."
    )
    res = sh("Add-VMNetworkAdapterAcl web01 -Action Deny -Direction Sideways -RemoteIPAddress ANY")
    assert res.rc == 2 and "Cannot bind parameter 'Direction'" in res.err
    res = sh("Add-VMNetworkAdapterAcl nosuch -Action Deny -Direction Inbound -RemoteIPAddress ANY")
    assert res.rc == 1 and res.err.strip() == "error: vm: no VM 'nosuch'"
    assert acls(d, P) == []


# ---------------------------------------------------------------- extended ACL cmdlets


def test_vmnetworkadapterextendedacl_cmdlets(sh: Sh, d: Daemon) -> None:
    sh.ok("New-VMSwitch lab -SwitchType Private")
    sh.ok("New-VM web01 -SwitchName lab")
    add = "Add-VMNetworkAdapterExtendedAcl web01"
    sh.ok(f"{add} -Action Deny -Direction Inbound -Weight 1")
    sh.ok(
        "Add-VMNetworkAdapterExtendedAcl -VMName web01 -Action Allow -Direction Inbound -Weight 10 -LocalPort 80"
        " -Protocol TCP -Stateful '$true' -IdleSessionTimeout 600 -RemoteIPAddress 10.0.0.0/8"
    )
    sh.ok(
        f"{add} -Action Allow -Direction Outbound -Weight 5 -RemotePort 49152-49182 -Protocol 17 -IsolationID 20"
    )
    assert xacls(d, P) == [(1, "Inbound", "Deny"), (10, "Inbound", "Allow"), (5, "Outbound", "Allow")]

    out = sh.ok("Get-VMNetworkAdapterExtendedAcl").out
    assert out.splitlines()[0].split() == [
        "VMName",
        "Direction",
        "Action",
        "LocalIPAddress",
        "RemoteIPAddress",
        "LocalPort",
        "RemotePort",
        "Protocol",
        "Weight",
        "Stateful",
        "IdleSessionTimeout",
        "Hits",
    ]
    assert rows(out)[2:] == [
        ["web01", "Inbound", "Allow", "ANY", "10.0.0.0/8", "80", "ANY", "TCP", "10", "True", "600", "0"],
        ["web01", "Inbound", "Deny", "ANY", "ANY", "ANY", "ANY", "ANY", "1", "False", "3600", "0"],
        ["web01", "Outbound", "Allow", "ANY", "ANY", "ANY", "49152-49182", "UDP", "5", "False", "3600", "0"],
    ]
    assert sh.ok("--json Get-VMNetworkAdapterExtendedAcl -VMName web01").json()[2] == {
        "VMName": "web01",
        "VMNetworkAdapterName": "eth0",
        "IsManagementOs": False,
        "Direction": "Outbound",
        "Action": "Allow",
        "LocalIPAddress": "ANY",
        "RemoteIPAddress": "ANY",
        "LocalPort": "ANY",
        "RemotePort": "49152-49182",
        "Protocol": "UDP",
        "Weight": 5,
        "Stateful": False,
        "IdleSessionTimeout": 3600,
        "IsolationID": 20,
        "Hits": 0,
    }

    res = sh(f"{add} -Action Deny -Direction Inbound -Weight 10")
    assert res.rc == 1 and "already has an Inbound extended ACL with weight 10" in res.err
    res = sh(f"{add} -Action Allow -Direction Inbound -Weight 2 -LocalPort 90-80")
    assert res.rc == 2
    assert (
        "Cannot validate argument on parameter 'LocalPort'. '90-80': ports are 0-65535, low-high." in res.err
    )
    res = sh(f"{add} -Action Deny -Direction Inbound -Weight 2 -Stateful:true")
    assert res.rc == 2 and "only Allow entries can be stateful" in res.err
    res = sh(f"{add} -Action Allow -Direction Both -Weight 2")
    assert res.rc == 2 and "Cannot bind parameter 'Direction'" in res.err
    res = sh(f"{add} -Action Allow -Direction Inbound -Weight 0")
    assert res.rc == 2 and "minimum allowed range of 1" in res.err

    sh.ok("Remove-VMNetworkAdapterExtendedAcl web01 -Weight 10 -Direction Inbound")
    res = sh("Remove-VMNetworkAdapterExtendedAcl web01 -Weight 10")
    assert res.rc == 1 and "No extended ACL of VM 'web01' has weight 10" in res.err
    assert sh("Remove-VMNetworkAdapterExtendedAcl web01").rc == 2
    res = sh.ok(f"{add} -Action Allow -Direction Outbound -Weight 9 -Passthru")
    assert [r[8] for r in rows(res.out)[2:]] == ["1", "9", "5"]
    assert xacls(d, P) == [(1, "Inbound", "Deny"), (5, "Outbound", "Allow"), (9, "Outbound", "Allow")]


# ---------------------------------------------------------------- extensions


def stack(d: Daemon, switch: str) -> list[tuple[str, bool]]:
    return [(str(r["name"]), bool(r["enabled"])) for r in d.service.switch_extensions(switch)]


def test_get_vmsystemswitchextension(sh: Sh) -> None:
    assert rows(sh.ok("Get-VMSystemSwitchExtension").out) == [
        ["Name", "Vendor", "Version", "ExtensionType"],
        ["----", "------", "-------", "-------------"],
        ["pyvswitch-firewall", "pyvswitch", "1.0", "Filter"],
        ["mon", "acme-ext", "1.0", "Capture"],
        ["tap", "acme-ext", "1.0", "Capture"],
        ["steer", "acme-ext", "1.0", "Forwarding"],
        ["broken", "bad-ext"],
    ]
    assert sh.ok("--json Get-VMSystemSwitchExtension b*").json() == [
        {
            "Name": "broken",
            "Vendor": "bad-ext",
            "Version": "",
            "ExtensionType": "",
            "Description": "",
            "Problem": "ImportError: No module named 'bad_ext'",
        }
    ]
    res = sh("Get-VMSystemSwitchExtension nosuch")
    assert res.rc == 1 and 'unable to find a switch extension with name "nosuch"' in res.err


def test_enable_disable_and_get_vmswitchextension(sh: Sh, d: Daemon) -> None:
    sh.ok("New-VMSwitch sw -SwitchType Private")
    sh.ok("New-VMSwitch other -SwitchType Private")
    assert rows(sh.ok("Get-VMSwitchExtension sw").out) == [
        ["Name", "ExtensionType", "SwitchName", "Enabled", "Running"],
        ["----", "-------------", "----------", "-------", "-------"],
        ["mon", "Capture", "sw", "False", "False"],
        ["tap", "Capture", "sw", "False", "False"],
        ["pyvswitch-firewall", "Filter", "sw", "True", "True"],
        ["steer", "Forwarding", "sw", "False", "False"],
    ]

    sh.ok("Enable-VMSwitchExtension -VMSwitchName sw -Name mon")
    assert stack(d, "sw")[0] == ("mon", True)
    assert stack(d, "other")[0] == ("mon", False)
    assert [(s.name, s.enabled) for s in d.service.switch("sw").extensions] == [("mon", True)]
    sh.ok("disable-vmswitchextension pyvswitch-firewall sw")
    assert ("pyvswitch-firewall", False) in stack(d, "sw")

    assert sh.ok("--json Get-VMSwitchExtension -VMSwitchName sw -Name mon").json() == [
        {
            "Name": "mon",
            "Vendor": "acme-ext",
            "Version": "1.0",
            "ExtensionType": "Capture",
            "SwitchName": "sw",
            "Enabled": True,
            "Running": True,
            "Position": 0,
            "Calls": 7,
            "Errors": 0,
            "Drops": {},
            "Status": {},
            "Problem": "",  # why it does not run, e.g. its constructor raised (issue 11)
        }
    ]
    # No -VMSwitchName: every switch; a list of names; -Passthru shows the result.
    res = sh.ok("Enable-VMSwitchExtension tap, steer -Passthru")
    assert [(r[0], r[2], r[3]) for r in rows(res.out)[2:]] == [
        ("tap", "sw", "True"),
        ("steer", "sw", "True"),
        ("tap", "other", "True"),
        ("steer", "other", "True"),
    ]
    assert [r[0] for r in rows(sh.ok("Get-VMSwitchExtension -Name t*").out)[2:]] == ["tap", "tap"]
    assert len(rows(sh.ok("Get-VMSwitchExtension").out)[2:]) == 8

    res = sh("Enable-VMSwitchExtension nosuch sw")
    assert res.rc == 1 and 'unable to find a switch extension with name "nosuch"' in res.err
    res = sh("Enable-VMSwitchExtension mon -VMSwitchName nosw")
    assert res.rc == 1 and 'unable to find a virtual switch with name "nosw"' in res.err
    res = sh("Get-VMSwitchExtension nosw")
    assert res.rc == 1 and 'unable to find a virtual switch with name "nosw"' in res.err
    res = sh("Enable-VMSwitchExtension -VMSwitchName sw")
    assert res.rc == 2 and "missing mandatory parameters: Name" in res.err
    res = sh("Enable-VMSwitchExtension mon -Bridge sw")
    assert res.rc == 2 and "A parameter cannot be found that matches parameter name 'Bridge'" in res.err
    sh.ok("Disable-VMSwitchExtension mon -Switch sw")  # a prefix of the alias SwitchName, as in PowerShell
    assert stack(d, "sw")[0] == ("mon", False)


def test_set_vmswitch_extensions_orders_the_stack(sh: Sh, d: Daemon) -> None:
    sh.ok("New-VMSwitch sw -SwitchType Private -Notes x")
    sh.ok("Enable-VMSwitchExtension mon sw")
    assert [n for n, _ in stack(d, "sw")] == ["mon", "tap", "pyvswitch-firewall", "steer"]
    sh.ok("Set-VMSwitch -Name sw -Extensions tap, mon -Notes reordered")
    sw = d.service.switch("sw")
    assert sw.notes == "reordered"
    assert [(s.name, s.enabled) for s in sw.extensions] == [("tap", False), ("mon", True)]
    # within the capture kind the order changed; each kept its enabled state
    assert stack(d, "sw") == [("tap", False), ("mon", True), ("pyvswitch-firewall", True), ("steer", False)]
    res = sh.ok("Set-VMSwitch sw -Extensions mon,tap -Passthru")
    assert rows(res.out)[2] == ["sw", "Private"]
    assert [n for n, _ in stack(d, "sw")][:2] == ["mon", "tap"]
    assert "[-Extensions <String>]" in sh.ok("Set-VMSwitch -?").out


def test_extension_verbs_share_the_helpers(sh: Sh, d: Daemon) -> None:
    sh.ok("switch add sw --type private")
    sh.ok("extension enable sw tap mon")
    sh.ok("extension order sw mon tap")
    sh.ok("extension disable sw mon")
    assert [(s.name, s.enabled) for s in d.service.switch("sw").extensions] == [("mon", False), ("tap", True)]
    shown = sh.ok("extension show sw --json").json()
    assert [(r["name"], r["enabled"]) for r in shown][:2] == [("mon", False), ("tap", True)]
    assert sh.ok("--json extension list").json()[0]["name"] == "pyvswitch-firewall"
