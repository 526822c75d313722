"""The demo's cluster scene (lab/demo_cluster.py) on its own 3-host cluster lab: a virtual subnet across the hosts
(full mesh, ARP answered by the local tunnels, none crossing), a second subnet with the same addresses kept apart, routing between two subnets of a routing domain,
a live migration under 1 ms pings from the third host with the record following the VM, and a killed host whose
records expire with its 5 s lease while the others stop sending to it. Every check must pass, the table must say
what happened, and nothing may be left: namespaces, the lab's registry and state, etcd members, links."""

from __future__ import annotations

import io
import re
import subprocess
import time

import pytest
from rich.console import Console

from pyvswitch.lab.demo_cluster import (
    EXPIRY_SLACK_S,
    LEASE_TTL_S,
    MAX_BLACKOUT_MS,
    ClusterScene,
    cluster_unavailable,
)
from pyvswitch.lab.etcd import etcd_pids
from pyvswitch.lab.hosts import list_labs, registry_path
from pyvswitch.testing.netns import unique
from tests.system.conftest import run_scene, scene_console

pytestmark = [
    pytest.mark.system,
    pytest.mark.skipif(cluster_unavailable() is not None, reason=str(cluster_unavailable())),
]


def netns_names() -> set[str]:
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    return {line.split()[0] for line in out.splitlines() if line.strip()}


def etcd_processes(lab_name: str) -> list[int]:
    """etcd members of this lab still running (their data directories are under the lab's directory)."""
    return etcd_pids(lab_name)


def assert_nothing_left(scene: ClusterScene) -> None:
    left = {ns for ns in netns_names() if ns.startswith(scene.lab_name) or ns in scene.names.values()}
    assert not left, left
    assert scene.lab_name not in list_labs()
    assert not registry_path(scene.lab_name).parent.exists()
    assert not etcd_processes(scene.lab_name)
    # Every link of the lab lives in its namespaces; none may be left in this one.
    links = subprocess.run(["ip", "-br", "link"], capture_output=True, text=True).stdout
    names = {ln.split()[0].split("@")[0] for ln in links.splitlines() if ln.strip()}
    assert not {n for n in names if n.startswith(("p-host", "to-host", "pa0"))}, names


def test_cluster_scene_passes_and_cleans_up() -> None:
    console, out = scene_console()
    scene = ClusterScene(console, unique("")[-5:])
    started = time.monotonic()
    checks, good, text = run_scene(scene, out)
    took = time.monotonic() - started
    print(text)
    print(f"the scene took {took:.0f} s")
    assert good, text
    assert [c.ok for c in checks] == [True] * 9, text
    assert took < 150, f"the scene took {took:.0f} s"

    # The admin's commands, as typed.
    blue1 = scene.names["blue1"]
    for cmd in (
        f"lab up --hosts 3 --cluster --lease-ttl {LEASE_TTL_S} --name {scene.lab_name}",
        f"port set {blue1}-eth0 --virtual-subnet-id 5001",
        f"port set {scene.names['red1']}-eth0 --virtual-subnet-id 6001",
        "$ pyvswitch --host hostA vnet records",
        "$ pyvswitch --host hostB vnet status",
        f"$ pyvswitch --host hostA migrate {blue1} --to hostB",
        "$ kill -9 ",
    ):
        assert cmd in text, cmd
    # The records, before the move and after, and without hostC at the end.
    assert re.search(
        rf"5001\s+10\.50\.0\.3\s+\S+\s+10\.91\.0\.3\s+hostC\s+{scene.names['blue3']}-eth0", text
    ), text
    assert "before the move: 10.50.0.1 is on hostA (10.91.0.1)" in text
    assert "after the move: 10.50.0.1 is on hostB (10.91.0.2)" in text
    final = text.split("went with its lease", 1)[1].split("pyvswitch demo — cluster", 1)[0]
    assert "hostC" not in final.split("vnet hosts", 1)[1].split("vxlan0", 1)[0]
    assert "10.91.0.3" not in final.split("vnet records", 1)[1].split("vnet hosts", 1)[0]

    # The table: what was expected and what happened, step by step.
    row = r"\s*│\s*"
    assert re.search(rf"full mesh, blue \(VSID 5001\), 3 hosts{row}6/6 pairs reach{row}6/6 pairs", text), text
    arp = re.search(
        rf"ARP answered by the local tunnel{row}.*{row}(\d+) answered .*; 0 ARP requests in (\d+) datagrams",
        text,
    )
    assert arp and int(arp[1]) >= 6 and int(arp[2]) > 0, text
    assert re.search(
        rf"red1 → 10\.50\.0\.3 \(red3, hostC\){row}reach red3, not blue3{row}\d+/\d+ replies, from", text
    )
    assert re.search(
        rf"red1 → 10\.50\.0\.2 \(only in blue\){row}blocked: other subnet{row}.*fails, as expected", text
    )
    assert re.search(
        rf"web1 \(hostA\) → db3 \(hostC\), VSID 5003 → 5004{row}routed: replies at TTL 63{row}3/3", text
    )
    assert "New-NetVirtualizationCustomerRoute -RoutingDomainID" in text
    gap = re.search(r"longest gap ([\d.]+) ms, (\d+) lost", text)
    assert gap and float(gap[1]) < MAX_BLACKOUT_MS, text
    assert re.search(
        rf"blue1's record follows it{row}hostA → hostB.*{row}hostA \(10\.91\.0\.1\) → hostB \(10\.91\.0\.2\)",
        text,
    )
    expiry = re.search(r"hostA after ([\d.]+) s, hostB after ([\d.]+) s; 0 left in etcd", text)
    assert expiry and max(float(expiry[1]), float(expiry[2])) <= LEASE_TTL_S + EXPIRY_SLACK_S, text
    sent = re.search(
        r"hostA: (\d+) sent until [\d.]+ s, 0 after; hostB: (\d+) sent until [\d.]+ s, 0 after", text
    )
    assert sent and int(sent[1]) > 0 and int(sent[2]) > 0, (
        text
    )  # they did send to hostC, until its records went
    assert re.search(r"hostA vxlan0: peers \[\], \d+ frame", text) and re.search(
        r"hostB vxlan0: peers \[\]", text
    )

    assert_nothing_left(scene)


def test_cluster_scene_cleans_up_after_a_failure_half_way(monkeypatch: pytest.MonkeyPatch) -> None:
    """A step failing once the lab, etcd and the VMs exist still leaves nothing behind."""

    def broken(*_: object, **__: object) -> None:
        raise RuntimeError("the provider network went away")

    monkeypatch.setattr(ClusterScene, "mesh", broken)
    scene = ClusterScene(Console(file=io.StringIO(), width=200, color_system=None), unique("")[-5:])
    try:
        with pytest.raises(RuntimeError, match="provider network went away"):
            scene.run()
        assert scene.lab is not None and len(scene.lab.record.hosts) == 3  # it got as far as the hosts
        assert etcd_processes(scene.lab_name)  # and etcd ran
    finally:
        scene.cleanup()
    assert_nothing_left(scene)
