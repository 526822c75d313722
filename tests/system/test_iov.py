"""Issue 6 items 1-2 at system level: a VM with a VF (the emulated NIC switch: tc u32 + mirred) reaches the LAN
with the switch's counters for its port flat, VF-to-VF hairpins in the kernel, VF-to-software goes through the
switch, and VF removal/restore under a running TCP flow resets nothing. Throughput VF vs software vs the Linux
bridge is printed (pytest -s)."""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
import time
from collections.abc import Iterator

import pytest

from pyvswitch.lab.traffic import iperf3_server
from pyvswitch.testing.netns import NetnsPool, unique, wait_for
from tests.system.conftest import Host, ping

pytestmark = [
    pytest.mark.skipif(shutil.which("iperf3") is None, reason="iperf3 is not installed"),
    pytest.mark.skipif(shutil.which("tc") is None, reason="tc is not installed"),
]

LAN_IP = "10.61.0.1"


@pytest.fixture
def iov_lan(host: Host, pool: NetnsPool) -> Iterator[tuple[str, str]]:
    """An IOV External switch 'ext' on a veth uplink into a LAN namespace, SR-IOV enabled with 2 VFs."""
    lan_ns = pool.netns("pvl", ipv6=False)
    up = unique("pvu")
    pool.veth(up, "lan0", b_ns=lan_ns)
    subprocess.run(["ip", "-n", lan_ns, "addr", "add", f"{LAN_IP}/24", "dev", "lan0"], check=True)
    host.cli(
        "New-VMSwitch",
        "-Name",
        "ext",
        "-NetAdapterName",
        up,
        "-AllowManagementOS",
        "$false",
        "-EnableIov",
        "$true",
    )
    host.cli("sriov", "enable", up, "--vfs", "2")
    yield lan_ns, up
    subprocess.run(["tc", "qdisc", "del", "dev", up, "clsact"], capture_output=True)


def port_state(host: Host, port: str) -> dict[str, object]:
    out = host.json("sriov", "port", port)
    assert isinstance(out, dict)
    return out


def wait_path(host: Host, port: str, path: str) -> None:
    wait_for(lambda: port_state(host, port)["path"] == path, timeout_s=10, what=f"{port} on the {path} path")


def port_rx(host: Host, port: str) -> int:
    c = host.json("counters")
    assert isinstance(c, dict)
    return int(c["switches"]["ext"]["ports"][port]["rx_frames"])


def iperf(
    client_ns: str, server_ns: str, server_ip: str, seconds: int = 4, port: int = 5201
) -> dict[str, object]:
    with iperf3_server(server_ns, port, once=True):
        out = subprocess.run(
            [
                "ip",
                "netns",
                "exec",
                client_ns,
                "iperf3",
                "-c",
                server_ip,
                "-p",
                str(port),
                "-t",
                str(seconds),
                "-J",
            ],
            capture_output=True,
            text=True,
            timeout=seconds + 30,
        )
        data: dict[str, object] = json.loads(out.stdout)
        return data


def gbps(result: dict[str, object]) -> float:
    end = result["end"]
    assert isinstance(end, dict), result.get("error")
    return float(end["sum_received"]["bits_per_second"]) / 1e9


def linux_bridge_gbps(pool: NetnsPool, seconds: int) -> float:
    """The same shape (VM veth - forwarder - LAN veth) with the kernel's bridge as the forwarder."""
    a, b, fw = pool.netns("pba", ipv6=False), pool.netns("pbb", ipv6=False), pool.netns("pbf", ipv6=False)
    pool.veth("eth0", "ba", a_ns=a, b_ns=fw)
    pool.veth("eth0", "bb", a_ns=b, b_ns=fw)
    for cmd in (
        ["ip", "-n", fw, "link", "add", "br0", "type", "bridge"],
        ["ip", "-n", fw, "link", "set", "ba", "master", "br0"],
        ["ip", "-n", fw, "link", "set", "bb", "master", "br0"],
        ["ip", "-n", fw, "link", "set", "br0", "up"],
        ["ip", "-n", a, "addr", "add", "10.62.0.2/24", "dev", "eth0"],
        ["ip", "-n", b, "addr", "add", "10.62.0.1/24", "dev", "eth0"],
    ):
        subprocess.run(cmd, check=True)
    wait_for(lambda: ping(a, "10.62.0.1", count=1).returncode == 0, timeout_s=10, what="bridge ping")
    return gbps(iperf(a, b, "10.62.0.1", seconds))


def test_vf_path_bypasses_the_switch_and_measures_against_the_bridge(
    host: Host, iov_lan: tuple[str, str], pool: NetnsPool
) -> None:
    lan_ns, _ = iov_lan
    vf_vm = host.vm_add("ext", "10.61.0.10/24")
    soft_vm = host.vm_add("ext", "10.61.0.11/24")
    vf_port, soft_port = f"{vf_vm}-eth0", f"{soft_vm}-eth0"
    host.cli("Set-VMNetworkAdapter", "-VMName", vf_vm, "-IovWeight", "50")
    wait_path(host, vf_port, "VF")
    assert port_state(host, vf_port)["policies"] == "bypassed"
    assert port_state(host, soft_port)["reason"] == "IovWeightZero"
    adapters = host.json("Get-VMNetworkAdapter", "-VMName", vf_vm)
    assert isinstance(adapters, list) and adapters[0]["IovPath"] == "VF 0 (policies bypassed)", adapters
    assert "sr-iov path: VF 0 (policies bypassed)" in " ".join(
        host.cli("port", "show", vf_port).stdout.split()
    )
    vfs = host.json("Get-NetAdapterSriovVf")
    assert isinstance(vfs, list) and [v["VMName"] for v in vfs] == [vf_vm]

    assert ping(vf_vm, LAN_IP).returncode == 0
    before = port_rx(host, vf_port)
    assert ping(vf_vm, LAN_IP, count=20).returncode == 0
    vf = gbps(iperf(vf_vm, lan_ns, LAN_IP))
    after = port_rx(host, vf_port)
    # ~20 pings and a 4 s TCP flow went by; the switch saw at most a stray ARP or IPv6 multicast of the VM.
    assert after - before < 10, f"the switch read {after - before} frames of a VF port"

    # VF to a software VM: through the switch (its counters move).
    assert ping(vf_vm, "10.61.0.11").returncode == 0
    assert port_rx(host, soft_port) > 0

    soft = gbps(iperf(soft_vm, lan_ns, LAN_IP))
    bridge = linux_bridge_gbps(pool, 4)
    print(f"\nTCP VM -> LAN, same run: VF path {vf:.2f} Gbit/s, software path {soft:.2f}, Linux bridge {bridge:.2f}; "
          f"VF/bridge {vf / bridge:.2f}")  # fmt: skip
    assert vf > 0.5 * bridge  # the 10 % goal is reported, not asserted: this machine is noisy


def test_vf_to_vf_hairpins_in_the_kernel(host: Host, iov_lan: tuple[str, str]) -> None:
    a = host.vm_add("ext", "10.61.0.20/24")
    b = host.vm_add("ext", "10.61.0.21/24")
    for vm in (a, b):
        host.cli("sriov", "weight", f"{vm}-eth0", "10")
        wait_path(host, f"{vm}-eth0", "VF")
    assert ping(a, "10.61.0.21").returncode == 0
    before = port_rx(host, f"{a}-eth0") + port_rx(host, f"{b}-eth0")
    assert ping(a, "10.61.0.21", count=20).returncode == 0
    after = port_rx(host, f"{a}-eth0") + port_rx(host, f"{b}-eth0")
    assert after - before < 10


def test_scarce_vfs_weight_and_reassignment(host: Host, iov_lan: tuple[str, str]) -> None:
    _, up = iov_lan
    host.cli("sriov", "set", up, "--vfs", "1")
    lo = host.vm_add("ext", "10.61.0.30/24")
    hi = host.vm_add("ext", "10.61.0.31/24")
    host.cli("sriov", "weight", f"{lo}-eth0", "10")
    host.cli("sriov", "weight", f"{hi}-eth0", "90")
    wait_path(host, f"{hi}-eth0", "VF")
    assert port_state(host, f"{lo}-eth0")["reason"] == "NoVfAvailable"
    host.cli("sriov", "weight", f"{hi}-eth0", "0")  # freed: the waiting port gets it
    wait_path(host, f"{lo}-eth0", "VF")
    assert ping(lo, LAN_IP).returncode == 0


def test_tagged_port_stays_on_the_switch(host: Host, iov_lan: tuple[str, str]) -> None:
    vm = host.vm_add("ext", "10.61.0.40/24", "--vlan", "access:10")
    host.cli("sriov", "weight", f"{vm}-eth0", "50")
    assert port_state(host, f"{vm}-eth0")["reason"] == "VlanNotSupported"


def test_fallback_and_restore_under_tcp_keep_the_connection(host: Host, iov_lan: tuple[str, str]) -> None:
    lan_ns, _ = iov_lan
    vm = host.vm_add("ext", "10.61.0.50/24")
    port = f"{vm}-eth0"
    host.cli("sriov", "weight", port, "50")
    wait_path(host, port, "VF")
    assert ping(vm, LAN_IP).returncode == 0
    with iperf3_server(lan_ns, 5209, once=True) as srv:
        cli = subprocess.Popen(
            ["ip", "netns", "exec", vm, "iperf3", "-c", LAN_IP, "-p", "5209", "-t", "9", "-J"],
            stdout=subprocess.PIPE,
            text=True,
        )
        time.sleep(1.5)
        host.cli("sriov", "weight", port, "0")  # operator: Set-VMNetworkAdapter -IovWeight 0
        wait_path(host, port, "Software")
        time.sleep(1.5)
        sw_rx = port_rx(host, port)
        host.cli("sriov", "weight", port, "50")
        wait_path(host, port, "VF")
        time.sleep(1)
        host.cli("sriov", "revoke", port, "--by", "test-extension")
        wait_path(host, port, "Software")
        time.sleep(1)
        host.cli("sriov", "restore", port)
        wait_path(host, port, "VF")
        out, _ = cli.communicate(timeout=40)
        srv.wait(timeout=20)
    result = json.loads(out)
    assert "error" not in result, result["error"]
    assert sw_rx > 1000, "the software path did not carry the flow while the VF was gone"
    intervals = [i["sum"]["bits_per_second"] for i in result["intervals"]]
    assert len(intervals) >= 8 and min(intervals) > 0, intervals
    status = host.json("sriov", "show")
    assert isinstance(status, dict)
    assert status["transitions"]["VF->Software"] >= 2
    print(
        f"\nTCP through two VF removals and restores: per-second Gbit/s {[round(x / 1e9, 2) for x in intervals]}"
    )


def test_uplink_carrier_down_falls_back_and_returns(host: Host, iov_lan: tuple[str, str]) -> None:
    lan_ns, _ = iov_lan
    vm = host.vm_add("ext", "10.61.0.60/24")
    port = f"{vm}-eth0"
    host.cli("sriov", "weight", port, "50")
    wait_path(host, port, "VF")
    subprocess.run(["ip", "-n", lan_ns, "link", "set", "lan0", "down"], check=True)  # the cable is pulled
    wait_for(lambda: port_state(host, port)["reason"] == "UplinkDown", timeout_s=10, what="UplinkDown")
    subprocess.run(["ip", "-n", lan_ns, "link", "set", "lan0", "up"], check=True)
    wait_path(host, port, "VF")
    assert ping(vm, LAN_IP).returncode == 0


def tc_filters(dev: str) -> str:
    return subprocess.run(
        ["tc", "filter", "show", "dev", dev, "ingress"], capture_output=True, text=True
    ).stdout.strip()


def test_sriov_enablement_survives_kill9_and_can_be_disabled(host: Host, iov_lan: tuple[str, str]) -> None:
    """issue 11: after a restart the VM showed `Software (AdapterSriovDisabled)` and `sriov disable` said SR-IOV
    was not enabled: Enable-NetAdapterSriov was not stored."""
    _, up = iov_lan
    vm = host.vm_add("ext", "10.61.0.70/24")
    port = f"{vm}-eth0"
    host.cli("sriov", "weight", port, "50")
    wait_path(host, port, "VF")
    before = port_state(host, port)
    host.kill9()
    host.start()
    wait_path(host, port, "VF")
    after = port_state(host, port)
    assert (after["path"], after["vf"], after["reason"]) == (before["path"], before["vf"], before["reason"])
    assert ping(vm, LAN_IP).returncode == 0
    host.cli("sriov", "disable", up)
    wait_path(host, port, "Software")
    assert port_state(host, port)["reason"] == "AdapterSriovDisabled"
    assert ping(vm, LAN_IP).returncode == 0


def test_vf_filters_left_by_a_crash_are_cleared_at_start(host: Host, iov_lan: tuple[str, str]) -> None:
    """issue 11: tc filters are owned objects too. The daemon dies after storing that a VF port goes back to
    software but before taking its tc filters away; the next start must clear them (else the port's frames
    keep bypassing the switch and its policies)."""
    vm = host.vm_add("ext", "10.61.0.71/24")
    port = f"{vm}-eth0"
    host.cli("sriov", "weight", port, "50")
    wait_path(host, port, "VF")
    iface = str(host.json("port", "show", port)["interface"])  # type: ignore[index]
    assert tc_filters(iface)
    host.kill9()
    # What a crash between the save and the tc change leaves: the store says software, the kernel VF.
    conn = sqlite3.connect(host.state_dir / "config.db")
    conn.execute("UPDATE port SET doc = json_set(doc, '$.iov_weight', 0) WHERE name = ?", (port,))
    conn.commit()
    conn.close()
    host.start()
    wait_for(lambda: port_state(host, port)["path"] == "Software", timeout_s=10, what="software path")
    wait_for(lambda: not tc_filters(iface), timeout_s=10, what=f"tc filters on {iface} cleared")
    assert ping(vm, LAN_IP).returncode == 0
    assert port_rx(host, port) > 0  # through the switch again
