"""Shell completion of object names from a running pyvswitchd (issue 15 item 2)."""

from __future__ import annotations

from pyvswitch.testing.netns import unique
from tests.system.conftest import Host
from tests.unit.test_cli_startup import complete


def test_switch_and_vm_names_complete_from_the_daemon(host: Host) -> None:
    sw = unique("csw")
    host.cli("switch", "add", sw, "--type", "private")
    vm = host.vm_add(sw, "10.65.0.1/24")
    env = {"PYVSWITCH_SOCKET": str(host.socket)}
    assert complete(f"pyvswitch switch show {sw[:3]}", env) == [sw]
    assert vm in complete("pyvswitch vm del ", env)
    assert f"{vm}-eth0" in complete("pyvswitch port show ", env)
    # Cmdlet parameters that take names: the same names.
    assert vm in complete("pyvswitch Set-VMNetworkAdapterVlan -VMName ", env)
    assert complete(f"pyvswitch Remove-VMSwitch -Name {sw[:3]}", env) == [sw]
    assert sw in complete("pyvswitch Connect-VMNetworkAdapter -VMName x -SwitchName ", env)
    # A daemon that is not there: no names, no error.
    assert complete("pyvswitch switch show ", {"PYVSWITCH_SOCKET": "/nonexistent.sock"}) == []
