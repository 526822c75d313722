"""A Hyper-V admin's script, verbatim cmdlets, against the real daemon, checked with real traffic.

SW-01 (Private switch), VL-01/VL-02 (access VLANs isolate), Connect/Disconnect-VMNetworkAdapter.
"""

from __future__ import annotations

import pytest

from pyvswitch.testing.netns import sh, unique
from tests.system.conftest import Host, ping

pytestmark = pytest.mark.system


def test_cmdlet_script_builds_vms_and_vlans_that_really_isolate(host: Host) -> None:
    sw, a, b = unique("pvc"), unique("pvs"), unique("pvs")
    host.vms += [a, b]
    host.cli("New-VMSwitch", "-Name", sw, "-SwitchType", "Private")
    for vm, ip in ((a, "10.71.0.1/24"), (b, "10.71.0.2/24")):
        host.cli("new-vm", "-name", vm, "-switchname", sw)  # case-insensitive, as in PowerShell
        # The guest OS configures its own address, as in a real VM.
        sh("ip", "addr", "add", ip, "dev", "eth0", netns=host.netns_of(vm))
    na = host.netns_of(a)
    assert ping(na, "10.71.0.2").returncode == 0

    host.cli("Set-VMNetworkAdapterVlan", "-VMName", a, "-Access", "-VlanId", "10")
    assert ping(na, "10.71.0.2", count=2, timeout_s=1).returncode != 0  # VLAN 10 vs untagged
    host.cli("Set-VMNetworkAdapterVlan", "-VMName", b, "-Access", "-VlanId", "10")
    assert ping(na, "10.71.0.2").returncode == 0
    table = host.cli("Get-VMNetworkAdapterVlan").stdout
    rows = [ln.split() for ln in table.splitlines() if ln.startswith((a, b))]
    assert sorted((r[0], r[2], r[3]) for r in rows) == sorted([(a, "Access", "10"), (b, "Access", "10")])

    host.cli("Disconnect-VMNetworkAdapter", "-VMName", b)
    assert ping(na, "10.71.0.2", count=2, timeout_s=1).returncode != 0
    host.cli("Connect-VMNetworkAdapter", "-VMName", b, "-SwitchName", sw)
    assert ping(na, "10.71.0.2").returncode == 0

    bad = host.cli("Get-VMSwitch", "-Nmae", sw, check=False)
    assert bad.returncode == 2 and "Nmae" in bad.stderr
    host.cli("Remove-VM", "-Name", a, "-Force")
    host.cli("Remove-VMSwitch", "-Name", sw, "-Force")
    assert sw not in host.cli("Get-VMSwitch").stdout
