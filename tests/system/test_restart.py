"""kill -9 and restart: every switch, port, VLAN setting and VM attachment comes back, and traffic flows."""

from __future__ import annotations

import pytest

from tests.system.conftest import Host, ping

pytestmark = pytest.mark.system


def test_kill9_restart_restores_config_and_traffic(host: Host) -> None:
    host.cli("switch", "add", "sw", "--type", "private")
    a = host.vm_add("sw", "10.41.0.1/24", "--vlan", "access:7")
    host.vm_add("sw", "10.41.0.2/24", "--vlan", "access:7")
    c = host.vm_add("sw", "10.41.0.3/24", "--vlan", "access:8")
    assert ping(a, "10.41.0.2").returncode == 0
    before = host.json("show")
    host.kill9()
    host.start()
    assert host.json("show") == before
    assert ping(a, "10.41.0.2").returncode == 0
    assert ping(c, "10.41.0.2", count=2, timeout_s=1).returncode != 0  # the VLAN setting came back too
