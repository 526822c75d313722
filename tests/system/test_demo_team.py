"""The demo's teaming scene (lab/demo_team.py) against a real pyvswitchd: with Open vSwitch as the physical switch
(LACP) and with a Linux bridge (SwitchIndependent, the fallback when OVS is not installed). Each run pulls a
member's cable mid-stream, measures the gap, plugs it back in, and must leave nothing behind."""

from __future__ import annotations

import re
import subprocess

import pytest

from pyvswitch.lab.demo_team import TEAM, TeamScene
from pyvswitch.testing import ovs as ovs_peer
from pyvswitch.testing.netns import unique
from tests.system.conftest import Host, echoing_cli, run_scene, scene_console

pytestmark = [pytest.mark.system]


@pytest.mark.parametrize(
    "use_ovs",
    [
        pytest.param(
            True, id="lacp-ovs", marks=pytest.mark.skipif(not ovs_peer.available(), reason="no OVS")
        ),
        pytest.param(False, id="switchindependent-bridge"),
    ],
)
def test_team_scene_fails_over_re_aggregates_and_cleans_up(host: Host, use_ovs: bool) -> None:
    console, out = scene_console()
    cli = echoing_cli(host, console)

    scene = TeamScene(console, cli, host.json, unique("")[-5:], use_ovs=use_ovs)
    sw = scene.switch
    checks, good, text = run_scene(scene, out)
    assert good, text
    assert [c.ok for c in checks] == [True, True, True, True], text

    # Before, after the cut and after the return: the team as `pyvswitch team show` prints it.
    shows = text.split(f"$ pyvswitch team show {TEAM}")[1:]
    assert len(shows) == 3, text
    assert shows[0].count(": up active") == 2
    assert re.search(r"member: pvdtm\S+: down inactive", shows[1]), shows[1]
    assert "failovers: 0" not in shows[1]
    assert shows[2].count(": up active") == 2
    if use_ovs:
        full = "activity,timeout,aggregation,synchronization,collecting,distributing"
        assert shows[0].count(f"partner state: {full}") == 2, shows[0]
        view = re.search(r"ovs-appctl lacp/show bond0: (.*)", shows[1])
        assert view and view[1].count("current attached") == 1, shows[1]  # OVS took the cut member out
    m = re.search(r"gap (\d+\.\d) ms, ([\d,]+) of ([\d,]+) lost", text)
    assert m and float(m[1]) <= 500, text
    assert "ip link set eth" in text and " down" in text and " up" in text

    # Nothing left: the switch's namespace, the VM's, the cables.
    assert sw.ns not in subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert scene.vm_ns not in subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    links = subprocess.run(["ip", "-br", "link"], capture_output=True, text=True).stdout
    assert not any(member in links for member in sw.members)
    assert host.json("team", "list") == []
