"""Port mirroring between real VMs (PM-01): a monitor VM captures another VM's ping, byte for byte."""

from __future__ import annotations

import httpx
import pytest

from pyvswitch.lab.traffic import Capture
from tests.system.conftest import Host, ping

pytestmark = pytest.mark.system


def set_mirroring(h: Host, port: str, mode: str) -> None:
    with httpx.Client(transport=httpx.HTTPTransport(uds=str(h.socket)), timeout=30) as c:
        c.patch(f"http://pyvswitchd/v1/ports/{port}", json={"port_mirroring": mode}).raise_for_status()


def test_monitor_vm_sees_exact_copies_of_the_source_vms_traffic(host: Host) -> None:
    host.cli("switch", "add", "sw", "--type", "private")
    a = host.vm_add("sw", "10.97.0.1/24")
    host.vm_add("sw", "10.97.0.2/24")
    mon = host.vm_add("sw", "10.97.0.9/24")
    set_mirroring(host, f"{a}-eth0", "Source")
    set_mirroring(host, f"{mon}-eth0", "Destination")
    cap = Capture(mon, "eth0", "icmp")
    try:
        assert ping(a, "10.97.0.2", count=3).returncode == 0
        lines = cap.wait_lines(6)  # 3 requests out of the source, 3 replies into it
    finally:
        cap.stop()
    assert sum("echo request" in ln for ln in lines) == 3 and sum("echo reply" in ln for ln in lines) == 3
    set_mirroring(host, f"{a}-eth0", "None")
    cap = Capture(mon, "eth0", "icmp")
    try:
        assert ping(a, "10.97.0.2", count=2).returncode == 0
        assert ping(mon, "10.97.0.1", count=1).returncode == 0  # the monitor's own ping: 2 frames
        lines = cap.wait_lines(2)
    finally:
        lines = cap.stop()
    assert len(lines) == 2  # nothing mirrored any more
