"""Issue 11 (security, item 1): names refused at the REST API and the CLI/cmdlets, each error naming its field;
nothing reaches the (fake) lab."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.component.test_api import Daemon, errors
from tests.component.test_cli import Cli


@pytest.fixture
def d(tmp_path: Path) -> Iterator[Daemon]:
    daemon = Daemon(tmp_path / "config.db")
    yield daemon
    daemon.store.close()


@pytest.mark.parametrize("netns", ["/etc", "../..", "a\nb", "-h", "x" * 300])
def test_vm_netns_refused_by_the_api(d: Daemon, netns: str) -> None:
    """issue 11: `/etc`, `../..`, a newline, `-h` and 300 characters were accepted as a VM's netns."""
    r = d.client.post("/v1/vms", json={"name": "v", "netns": netns, "adapter": False})
    assert r.status_code == 400
    assert [f for f, _ in errors(r)] == ["netns"]
    assert d.lab.netns == set()
    assert d.client.get("/v1/vms").json() == []


def test_peer_interface_with_shell_text_refused_by_the_api(d: Daemon) -> None:
    """issue 11: a VM adapter whose peer_interface was `touch${IFS}Q` in backticks ran as root."""
    d.client.post("/v1/vms", json={"name": "v", "adapter": False})
    r = d.client.post(
        "/v1/ports", json={"name": "v-eth0", "kind": "vm", "vm": "v", "peer_interface": "`touch${IFS}Q`"}
    )
    assert r.status_code == 400
    assert [f for f, _ in errors(r)] == ["peer_interface"]
    assert d.lab.links == {}


def test_accented_15_character_name_is_30_bytes(d: Daemon) -> None:
    """issue 11: 15 accented characters passed the 15-byte IFNAMSIZ limit."""
    d.client.post("/v1/vms", json={"name": "v", "adapter": False})
    r = d.client.post(
        "/v1/ports", json={"name": "v-eth0", "kind": "vm", "vm": "v", "peer_interface": "\u00e9" * 15}
    )
    assert r.status_code == 400
    assert [f for f, _ in errors(r)] == ["peer_interface"]
    assert d.lab.links == {}


def test_team_member_and_nic_names_refused(d: Daemon) -> None:
    r = d.client.post("/v1/teams", json={"name": "t1", "members": ["eth1", "$(id)"]})
    assert r.status_code == 400 and errors(r)[0][0].startswith("members")
    assert d.client.post("/v1/teams", json={"name": "t1", "members": ["eth1"]}).status_code == 201
    r = d.client.post("/v1/teams/t1/members", json={"name": "e|x"})
    assert r.status_code == 400, r.text
    r = d.client.post("/v1/teams/t1/nics", json={"name": "..", "vlan_id": 5})
    assert r.status_code == 400, r.text


def test_cli_and_cmdlets_refuse_names(d: Daemon, capsys: pytest.CaptureFixture[str]) -> None:
    """issue 11: `vm add --netns` and the cmdlets' names (-NetAdapterName, team members) go through the same
    check."""
    cli = Cli(d, capsys)
    res = cli("vm", "add", "v", "--netns", "../..")
    assert res.rc != 0 and "netns" in res.err
    res = cli("New-VMSwitch", "x", "-NetAdapterName", "eth1;reboot")
    assert res.rc != 0 and "net_adapter" in res.err.replace("NetAdapterName", "net_adapter")
    res = cli("New-NetLbfoTeam", "-Name", "t2", "-TeamMembers", "eth1,`id`")
    assert res.rc != 0
    assert d.lab.netns == set()
