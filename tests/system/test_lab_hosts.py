"""Lab hosts (issue 6 item 3): several pyvswitchd in namespaces on one LAN bridge, built and removed in one command."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pyvswitch.lab.hosts import Lab, LabError, lab_root, lookup_host
from pyvswitch.testing.netns import unique
from tests.system.conftest import ping

pytestmark = [pytest.mark.system, pytest.mark.skipif(os.geteuid() != 0, reason="needs root (namespaces)")]

BIN = Path(sys.executable).parent


def pyvswitch(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    res = subprocess.run([str(BIN / "pyvswitch"), *args], capture_output=True, text=True, timeout=180)
    if check and res.returncode != 0:
        raise AssertionError(f"pyvswitch {' '.join(args)} -> {res.returncode}\n{res.stdout}\n{res.stderr}")
    return res


def namespaces() -> set[str]:
    out = subprocess.run(["ip", "-j", "netns", "list"], capture_output=True, text=True).stdout
    return {e["name"] for e in json.loads(out or "[]")}


def root_links() -> set[str]:
    out = subprocess.run(["ip", "-j", "link", "show"], capture_output=True, text=True).stdout
    return {e["ifname"] for e in json.loads(out)}


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def test_lab_up_two_hosts_vms_ping_across_the_lan_and_down_leaves_nothing() -> None:
    name = unique("lab")
    vm_a, vm_b = unique("vm"), unique("vm")
    try:
        pyvswitch("lab", "up", "--hosts", "2", "--name", name)
        st = json.loads(pyvswitch("--json", "lab", "status", "--name", name).stdout)
        assert set(st["hosts"]) == {"hostA", "hostB"}
        pids = [h["pid"] for h in st["hosts"].values()]
        for h in st["hosts"].values():
            assert h["running"] and h["switches"] == 1 and h["vms"] == 0
            assert h["netns"] == f"{name}-{h['name']}"
        assert st["hosts"]["hostA"]["host_id"] != st["hosts"]["hostB"]["host_id"]  # distinct MAC pools

        # The same External switch name on both hosts, on the uplink, without a management-OS vNIC.
        for host in ("hostA", "hostB"):
            (sw,) = json.loads(pyvswitch("--host", f"{name}/{host}", "--json", "switch", "list").stdout)
            assert (sw["name"], sw["net_adapter"], sw["allow_management_os"]) == ("ext", "eth1", False)

        pyvswitch("--host", f"{name}/hostA", "vm", "add", vm_a, "--switch", "ext", "--ip", "10.90.0.10/24")
        pyvswitch("--host", f"{name}/hostB", "vm", "add", vm_b, "--switch", "ext", "--ip", "10.90.0.11/24")
        # The VM's eth0 is in its own namespace (visible from here), its peer in the host's namespace.
        assert {vm_a, vm_b} <= namespaces()
        port = json.loads(
            pyvswitch("--host", f"{name}/hostA", "--json", "port", "show", f"{vm_a}-eth0").stdout
        )
        host_links = pyvswitch("lab", "exec", "--name", name, "hostA", "--", "ip", "-br", "link").stdout
        assert port["interface"] in host_links and port["interface"] not in root_links()

        for src, dst in (
            (vm_a, "10.90.0.11"),
            (vm_b, "10.90.0.10"),
            (vm_a, "10.90.0.100"),
            (vm_b, "10.90.0.100"),
        ):
            res = ping(src, dst)
            assert res.returncode == 0, f"{src} -> {dst}: {res.stdout}{res.stderr}"
        # And from the LAN host, through `lab exec lan`.
        res = pyvswitch(
            "lab", "exec", "--name", name, "lan", "--", "ping", "-c2", "-i0.2", "-W2", "10.90.0.10"
        )
        assert " 0% packet loss" in res.stdout

        text = pyvswitch("lab", "status", "--name", name).stdout
        assert "hostA" in text and "hostB" in text and "DOWN" not in text
    finally:
        pyvswitch("lab", "down", "--name", name, check=False)

    assert not {n for n in namespaces() if n.startswith(name) or n in (vm_a, vm_b)}
    # Every link the lab made lived in its namespaces; none may be left here (other sessions' links may
    # come and go, so the test looks for its own: the VM ports' switch-side ends and the LAN ports).
    assert not root_links() & {port["interface"], "to-hostA", "to-hostB", "to-peer"}
    assert not any(alive(p) for p in pids)
    assert not (lab_root() / name).exists()


def test_down_after_a_daemon_crash_removes_its_vms_too() -> None:
    lab = Lab(unique("lab"))
    vm = unique("vm")
    try:
        lab.up(["h1", "h2"])
        lab.host("h1").vm_add(vm, "10.90.0.20/24")
        pid = lab.record.hosts["h1"].pid
        assert pid is not None
        os.kill(pid, 9)
        # A fresh process sees the crashed lab through its registry only.
        st = Lab.open(lab.name).status()
        assert not st["hosts"]["h1"]["running"] and st["hosts"]["h2"]["running"]
    finally:
        problems = Lab.open(lab.name).down()
    assert problems == []
    assert not {n for n in namespaces() if n.startswith(lab.name) or n == vm}
    assert not (lab_root() / lab.name).exists()


def test_up_is_idempotent_and_restarts_a_dead_daemon() -> None:
    with Lab.running(hosts=1, name=unique("lab")) as lab:
        first = lab.record.hosts["hostA"]
        lab.up(1)  # nothing to do
        assert lab.record.hosts["hostA"].pid == first.pid
        assert first.pid is not None
        os.kill(first.pid, 9)
        lab.up(1)  # the daemon comes back on the same state; the switch is not doubled
        again = lab.record.hosts["hostA"]
        assert again.pid != first.pid
        assert [s["name"] for s in lab.host("hostA").json("switch", "list")] == ["ext"]


def test_two_hosts_fixture_and_lookup(two_hosts: Lab) -> None:
    a, b = two_hosts.host("hostA"), two_hosts.host("hostB")
    rec = lookup_host(f"{two_hosts.name}/hostB")
    assert (rec.socket, rec.netns) == (b.socket, b.netns)
    # Each daemon knows its lab and name, so lookup_host("hostB") inside it resolves within its own lab.
    environ = Path(f"/proc/{a.record.pid}/environ").read_bytes().split(b"\0")
    assert f"PYVSWITCH_LAB={two_hosts.name}".encode() in environ
    assert b"PYVSWITCH_LAB_HOST=hostA" in environ
    assert lookup_host("hostA", lab=two_hosts.name).netns == a.netns
    with pytest.raises(LabError):
        lookup_host(f"{two_hosts.name}/nohost")
    ns_a = a.vm_add(unique("vm"), "10.90.0.30/24")
    b.vm_add(unique("vm"), "10.90.0.31/24")
    assert ping(ns_a, "10.90.0.31").returncode == 0
    assert ping(two_hosts.lan_host_netns, "10.90.0.30").returncode == 0
    assert a.exec("ip", "-br", "addr", "show", "eth1").stdout.startswith("eth1")
