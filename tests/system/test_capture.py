"""Capture sessions through the real daemon and CLI, read back by tshark (TR-01..03).

Real pings between VMs (56 bytes, and 1600 bytes, which leave as a 1514-byte fragment plus the rest), an ARP
exchange tagged VLAN 10 with a LAN namespace behind an External switch's uplink, then tshark must read the file
without a complaint and show the interface names, the truncation to 128 bytes with the original length, and the
VLAN id where the wire carried one.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from pyvswitch.testing.netns import NetnsPool, unique
from tests.system.conftest import SNIFF_AND_SEND, Host, ns_python, ping

pytestmark = [
    pytest.mark.system,
    pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark is not installed"),
]

ROOT_WARNING = re.compile(r'^Running as user "root" and group "root"\. This could be dangerous\.$')
FIELDS = ("frame.interface_name", "vlan.id", "frame.cap_len", "frame.len", "icmp.type")


def tshark_rows(path: Path) -> list[dict[str, str]]:
    args = ["tshark", "-r", str(path), "-T", "fields", "-E", "occurrence=f"]
    for f in FIELDS:
        args += ["-e", f]
    res = subprocess.run(args, capture_output=True, text=True, timeout=60)
    complaints = [ln for ln in res.stderr.splitlines() if ln.strip() and not ROOT_WARNING.match(ln)]
    assert res.returncode == 0, f"tshark -> {res.returncode}: {res.stderr}"
    assert not complaints, f"tshark complained about {path}: {complaints}"
    rows = []
    for line in res.stdout.splitlines():
        values = line.split("\t") + [""] * len(FIELDS)
        rows.append(dict(zip(FIELDS, values, strict=False)))
    return rows


def add_vm(host: Host, switch: str, ip: str, *extra: str) -> str:
    name = unique("pvk")
    host.vms.append(name)
    host.cli("vm", "add", name, "--switch", switch, "--ip", ip, *extra)
    return name


def test_capture_vm_port_and_uplink_read_by_tshark(host: Host, pool: NetnsPool, tmp_path: Path) -> None:
    lan_ns = pool.netns("pvk", ipv6=False)  # a quiet LAN: whatever arrives on the uplink is our tagged ARP
    up = unique("pvk")
    pool.veth(up, "lan0", b_ns=lan_ns)
    host.cli("switch", "add", "cap", "--uplink", up, "--no-management-os")
    a = add_vm(host, "cap", "10.91.0.1/24", "--vlan", "access:10")
    b = add_vm(host, "cap", "10.91.0.2/24", "--vlan", "access:10")
    path = tmp_path / "vm.pcapng"
    started = host.cli("capture", "start", str(path), "--port", f"{a}-eth0", "--port", "cap-uplink")
    capture_id = started.stdout.strip()
    assert capture_id.isdigit(), started.stdout

    for size in (56, 1600):
        res = ping(a, "10.91.0.2", size=size, count=2)
        assert res.returncode == 0 and " 0% packet loss" in res.stdout, res.stdout + res.stderr
    # From the LAN, tagged VLAN 10: an ARP request for a, whose reply leaves the uplink tagged 10 again.
    code = SNIFF_AND_SEND.format(
        iface="lan0", vids=[10], src="02:00:00:91:00:01", psrc="10.91.0.99", pdst="10.91.0.1", wait=1.0
    )
    replies = json.loads(ns_python(lan_ns, code))
    assert [r["vlan"] for r in replies] == [10]

    listed = host.json("capture", "list")
    assert isinstance(listed, list) and listed[0]["state"] == "running" and listed[0]["captured"] > 0
    final = host.json("capture", "stop", capture_id)
    assert isinstance(final, dict)
    assert final["state"] == "stopped" and final["dropped"] == 0 and final["files"] == [str(path)]

    rows = tshark_rows(path)
    assert len(rows) == final["captured"]
    vm_if, up_if = f"cap/{a}-eth0", "cap/cap-uplink"
    assert {r["frame.interface_name"] for r in rows} == {vm_if, up_if}
    vm_rows = [r for r in rows if r["frame.interface_name"] == vm_if]
    up_rows = [r for r in rows if r["frame.interface_name"] == up_if]
    # 56-byte pings: whole frames (98 bytes < 128), echo requests (8) and replies (0), untagged on the VM port.
    small = [r for r in vm_rows if r["frame.len"] == "98"]
    assert {r["icmp.type"] for r in small} == {"8", "0"} and len(small) == 4
    assert all(r["frame.cap_len"] == "98" for r in small)
    # 1600-byte pings: the first fragment is 1514 bytes on the wire, 128 of them captured.
    big = [r for r in vm_rows if r["frame.len"] == "1514"]
    assert len(big) == 4 and all(r["frame.cap_len"] == "128" for r in big)
    assert all(int(r["frame.cap_len"]) <= 128 for r in rows)
    assert not any(r["vlan.id"] for r in vm_rows)  # an access port's wire is untagged
    # The uplink's wire carries the VLAN: the tagged request in, the tagged reply out (and a's own broadcasts).
    assert up_rows and all(r["vlan.id"] == "10" for r in up_rows), up_rows
    assert b


def test_netevent_cmdlets_capture_a_vm_adapter(host: Host, tmp_path: Path) -> None:
    host.cli("switch", "add", "nev", "--type", "private")
    a = add_vm(host, "nev", "10.92.0.1/24")
    add_vm(host, "nev", "10.92.0.2/24")
    path = tmp_path / "trace.pcapng"
    session = unique("pvk")
    host.cli("New-NetEventSession", "-Name", session, "-LocalFilePath", str(path), "-MaxFileSize", "0")
    host.cli(
        "Add-NetEventPacketCaptureProvider",
        "-SessionName",
        session,
        "-CaptureType",
        "Switch",
        "-TruncationLength",
        "128",
        "-IpProtocols",
        "1",
    )
    host.cli("Add-NetEventVmNetworkAdapter", "-Name", "eth0", "-VMName", a)
    host.cli("Start-NetEventSession", "-Name", session)
    running = host.json("Get-NetEventSession", "-Name", session)
    assert isinstance(running, list) and running[0]["SessionStatus"] == "Running"
    for size in (56, 1600):
        res = ping(a, "10.92.0.2", size=size, count=2)
        assert res.returncode == 0, res.stdout + res.stderr
    host.cli("Stop-NetEventSession", "-Name", session)
    stopped = host.json("Get-NetEventSession", session)
    assert isinstance(stopped, list) and stopped[0]["SessionStatus"] == "NotRunning"
    assert stopped[0]["PacketsCaptured"] > 0 and stopped[0]["Files"] == [str(path)]
    rows = tshark_rows(path)
    assert {r["frame.interface_name"] for r in rows} == {f"nev/{a}-eth0"}
    assert len(rows) == stopped[0]["PacketsCaptured"]  # ARP filtered out by -IpProtocols 1 (ICMP)
    assert {r["icmp.type"] for r in rows if r["frame.len"] == "98"} == {"8", "0"}
    big = [r for r in rows if r["frame.len"] == "1514"]
    assert len(big) == 4 and all(r["frame.cap_len"] == "128" for r in big)
    host.cli("Remove-NetEventSession", "-Name", session)
    assert host.cli("Get-NetEventSession").stdout.strip() == ""
