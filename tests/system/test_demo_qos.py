"""The demo's QoS scene (lab/demo_qos.py) against a real pyvswitchd: weights 1:2:5 on a 1 Gbit/s uplink, the
weight-5 VM stopping, a capped VM; every check must pass, the printed table must show the configured and
measured shares side by side, and the scene must leave nothing behind."""

from __future__ import annotations

import re
import subprocess
import time

import pytest

from pyvswitch.lab.demo_qos import SWITCH, QosScene
from pyvswitch.testing.netns import unique
from tests.system.conftest import Host, echoing_cli, scene_console

pytestmark = [pytest.mark.system]


def test_qos_scene_measures_the_shares_and_cleans_up(host: Host) -> None:
    console, out = scene_console()
    cli = echoing_cli(host, console)

    scene = QosScene(console, cli, host.json, unique("")[-5:])
    started = time.monotonic()
    try:
        checks = scene.run()
        good = scene.table(checks)
    finally:
        scene.cleanup()
    took = time.monotonic() - started
    text = out.getvalue()
    print(text)
    assert good, text
    assert len(checks) == 3 + 1 + 2 + 1 + 1, text  # 3 shares + link, 2 shares + link, the cap
    assert took < 40, f"the scene took {took:.0f} s"

    # The table: configured weight, expected share, measured share for each VM in each phase.
    assert re.search(r"all three: gold\s*│\s*weight 5\s*│\s*62\.5%\s*│\s*6\d\.\d% \(\d+ Mbit/s\)", text), text
    assert re.search(r"gold stopped: silver\s*│\s*weight 2\s*│\s*66\.7%", text), text
    assert re.search(r"capped\s*│\s*MaximumBandwidth 100M\s*│\s*100 Mbit/s\s*│\s*\d+\.\d Mbit/s", text), text
    assert f"$ pyvswitch qos show {SWITCH}" in text

    # Nothing left: the VMs' namespaces, the LAN's, the uplink, the switch.
    netns = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert scene.lan.ns not in netns
    assert not any(ns in netns for ns in scene.netns.values())
    links = subprocess.run(["ip", "-br", "link"], capture_output=True, text=True).stdout
    assert scene.lan.uplink not in links
    assert host.json("switch", "list") == []


def test_a_share_off_by_more_than_10_percent_fails_the_scene() -> None:
    from pyvswitch.lab.demo_qos import share_check

    assert share_check("x", "weight 5", 0.625, 0.60, 600).ok
    assert not share_check("x", "weight 5", 0.625, 0.55, 550).ok
    assert not share_check("x", "weight 1", 0.125, 0.14, 140).ok
