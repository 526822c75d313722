"""Receive steering on real VMs: guests' receive processing leaves the forwarding CPU when it saturates."""

from __future__ import annotations

import os
import subprocess

import pytest

from pyvswitch.testing.netns import sh, wait_for
from tests.system.conftest import Host

pytestmark = [
    pytest.mark.system,
    pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs two CPUs"),
]
FWD = str(max(os.sched_getaffinity(0)))
OTHERS = sum(1 << c for c in os.sched_getaffinity(0) if c != int(FWD))
OFF = ("tso", "off", "gso", "off", "gro", "off", "tx", "off", "rx", "off", "sg", "off")


def rps(vm: str) -> int:
    return int(sh("cat", "/sys/class/net/eth0/queues/rx-0/rps_cpus", netns=vm).strip().replace(",", ""), 16)


@pytest.mark.daemon_args("--forwarding-cpu", FWD, "--receive-steering", "on")
def test_steering_on_applies_to_new_vms(host: Host) -> None:
    host.cli("switch", "add", "sw", "--type", "private")
    vm = host.vm_add("sw", "10.61.0.1/24")
    assert rps(vm) == OTHERS


@pytest.mark.daemon_args("--forwarding-cpu", FWD)
def test_auto_steering_follows_forwarding_load(host: Host) -> None:
    """Small-frame TCP saturates the forwarding CPU: steering turns on; when traffic stops it turns off."""
    host.cli("switch", "add", "sw", "--type", "private")
    a = host.vm_add("sw", "10.62.0.1/24")
    b = host.vm_add("sw", "10.62.0.2/24")
    assert rps(a) == 0 and rps(b) == 0
    for vm in (a, b):
        sh("ethtool", "-K", "eth0", *OFF, netns=vm)
    for port in host.json("port", "list"):  # type: ignore[union-attr]
        sh("ethtool", "-K", port["interface"], *OFF)
    srv = subprocess.Popen(["ip", "netns", "exec", b, "iperf3", "-s"], stdout=subprocess.DEVNULL)
    cli = None
    try:
        wait_for(lambda: "5201" in sh("ss", "-ltn", netns=b), what="iperf3 server")
        cli = subprocess.Popen(
            ["ip", "netns", "exec", a, "iperf3", "-c", "10.62.0.2", "-t", "30"], stdout=subprocess.DEVNULL
        )
        wait_for(lambda: rps(b) == OTHERS, timeout_s=20, interval_s=0.5, what="steering on under load")
    finally:
        for p in (cli, srv):
            if p is not None:
                p.kill()
                p.wait()
    wait_for(lambda: rps(b) == 0, timeout_s=20, interval_s=0.5, what="steering off when idle")
