"""The daemon's provisioning on real namespaces and veths: creation, idempotence, convergence, deletion without errors."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator

import pytest

from pyvswitch.daemon import provision as lab
from pyvswitch.testing.netns import sh, unique

pytestmark = pytest.mark.system


@pytest.fixture
def names() -> Iterator[dict[str, list[str]]]:
    """Names the test makes; all removed afterwards, pass or fail."""
    made: dict[str, list[str]] = {"netns": [], "links": []}
    try:
        yield made
    finally:
        for link in made["links"]:
            subprocess.run(["ip", "link", "del", link], capture_output=True)
        for ns in made["netns"]:
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)


def addrs(ifname: str, netns: str | None = None) -> set[str]:
    out = sh("ip", "-o", "addr", "show", "dev", ifname, "scope", "global", netns=netns)
    return {line.split()[3] for line in out.splitlines()}


def mac_of(ifname: str, netns: str | None = None) -> str:
    return sh("cat", f"/sys/class/net/{ifname}/address", netns=netns).strip()


def test_vm_nic_created_idempotent_and_converges(names: dict[str, list[str]]) -> None:
    ns, host_if = unique("pvtn"), unique("pvti")
    names["netns"].append(ns)
    names["links"].append(host_if)
    lab.create_vm_nic(ns, host_if, "eth0", "02:15:5d:00:00:01", ["10.77.0.1/24"])
    assert lab.netns_exists(ns)
    assert lab.link_exists(host_if)
    assert lab.link_exists("eth0", netns=ns)
    assert mac_of("eth0", ns) == "02:15:5d:00:00:01"
    assert addrs("eth0", ns) == {"10.77.0.1/24"}
    assert "state UP" in sh("ip", "link", "show", "dev", host_if) or "LOWER_UP" in sh(
        "ip", "link", "show", host_if
    )
    idx = sh("cat", f"/sys/class/net/{host_if}/ifindex").strip()

    # the same call again changes nothing (same veth, same index)
    lab.create_vm_nic(ns, host_if, "eth0", "02:15:5d:00:00:01", ["10.77.0.1/24"])
    assert sh("cat", f"/sys/class/net/{host_if}/ifindex").strip() == idx

    # different MAC and addresses converge in place
    lab.create_vm_nic(ns, host_if, "eth0", "02:15:5d:00:00:02", ["10.77.0.2/24", "fd00::2/64"])
    assert sh("cat", f"/sys/class/net/{host_if}/ifindex").strip() == idx
    assert mac_of("eth0", ns) == "02:15:5d:00:00:02"
    assert addrs("eth0", ns) == {"10.77.0.2/24", "fd00::2/64"}

    # a second adapter in the same VM
    host2 = unique("pvti")
    names["links"].append(host2)
    lab.create_vm_nic(ns, host2, "eth1", "02:15:5d:00:00:03", [])
    assert lab.link_exists("eth1", netns=ns)

    # the switch side keeps kernel default offloads
    feats = (
        sh("ethtool", "-k", host_if)
        if subprocess.run(["which", "ethtool"], capture_output=True).returncode == 0
        else ""
    )
    if feats:
        assert "tcp-segmentation-offload: on" in feats

    lab.delete_netns(ns)
    assert not lab.netns_exists(ns)
    # the host ends went with the namespace, synchronously
    assert not lab.link_exists(host_if)
    assert not lab.link_exists(host2)
    lab.delete_netns(ns)  # absent: no error


def test_vm_nic_replaces_half_present_pair(names: dict[str, list[str]]) -> None:
    ns, host_if = unique("pvtn"), unique("pvti")
    names["netns"].append(ns)
    names["links"].append(host_if)
    lab.ensure_netns(ns)
    # a stray eth0 in the VM that is not our veth's peer
    sh("ip", "link", "add", "eth0", "type", "veth", "peer", "name", "stray0", netns=ns)
    lab.create_vm_nic(ns, host_if, "eth0", "02:15:5d:00:00:04", [])
    assert not lab.link_exists("stray0", netns=ns)  # the stray pair was replaced
    assert lab.link_exists(host_if)
    assert mac_of("eth0", ns) == "02:15:5d:00:00:04"
    lab.delete_netns(ns)


def test_host_vnic(names: dict[str, list[str]]) -> None:
    host_if, sw_if = unique("pvth"), unique("pvts")
    names["links"] += [sw_if, host_if]
    lab.create_host_vnic(host_if, sw_if, "02:15:5d:00:00:05", ["10.78.0.1/24"])
    assert lab.link_exists(host_if) and lab.link_exists(sw_if)
    assert mac_of(host_if) == "02:15:5d:00:00:05"
    assert addrs(host_if) == {"10.78.0.1/24"}
    lab.create_host_vnic(host_if, sw_if, "02:15:5d:00:00:05", [])
    assert addrs(host_if) == set()
    assert lab.link_mac(host_if) == "02:15:5d:00:00:05"
    lab.delete_link(sw_if)
    assert not lab.link_exists(host_if) and not lab.link_exists(sw_if)
    lab.delete_link(sw_if)  # absent: no error
    assert lab.link_mac(sw_if) is None


def test_ensure_netns_is_idempotent(names: dict[str, list[str]]) -> None:
    ns = unique("pvtn")
    names["netns"].append(ns)
    assert not lab.netns_exists(ns)
    lab.ensure_netns(ns)
    lab.ensure_netns(ns)
    assert lab.netns_exists(ns)
    assert "UP" in sh("ip", "link", "show", "lo", netns=ns)
    lab.delete_netns(ns)
    assert not lab.netns_exists(ns)
