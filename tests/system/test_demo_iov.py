"""The demo's SR-IOV and live-migration scene (lab/demo_iov.py) on its own two-host lab: a VM's iperf3 flow on the
software path and then on a VF (throughput, the daemon's CPU, the switch's counters flat on the VF), then a live
migration to hostB under 1 ms pings with the blackout printed. It must pass and leave nothing behind."""

from __future__ import annotations

import io
import re
import shutil
import subprocess

import pytest
from rich.console import Console

from pyvswitch.lab.demo_iov import MAX_BLACKOUT_MS, IovScene
from pyvswitch.lab.hosts import list_labs, registry_path
from pyvswitch.testing.netns import unique
from tests.system.conftest import run_scene, scene_console

pytestmark = [
    pytest.mark.system,
    pytest.mark.skipif(shutil.which("iperf3") is None, reason="iperf3 is not installed"),
    pytest.mark.skipif(shutil.which("tc") is None, reason="tc is not installed"),
]


def netns_names() -> set[str]:
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    return {line.split()[0] for line in out.splitlines() if line.strip()}


def test_iov_scene_passes_and_cleans_up() -> None:
    console, out = scene_console()
    scene = IovScene(console, unique("")[-5:])
    checks, good, text = run_scene(scene, out)
    assert good, text
    assert [c.ok for c in checks] == [True] * 5, text

    # The admin's commands, as typed.
    for cmd in (
        "New-VMSwitch -Name ext -NetAdapterName eth1 -AllowManagementOS '$false' -EnableIov '$true'",
        "Enable-NetAdapterSriov -Name eth1 -NumVFs",
        f"Set-VMNetworkAdapter -VMName {scene.vm} -IovWeight 0",
        f"Set-VMNetworkAdapter -VMName {scene.vm} -IovWeight 50",
        f"migrate {scene.vm} --to hostB",
    ):
        assert cmd in text, cmd
    # Throughput and CPU per path; the switch counted (almost) none of the VF run's frames.
    soft = re.search(r"software path: ([\d,]+) Mbit/s, pyvswitchd CPU ([\d.]+) s", text)
    vf = re.search(
        r"VF path: ([\d,]+) Mbit/s, pyvswitchd CPU ([\d.]+) s .* switch counted ([\d,]+) frames", text
    )
    assert soft and vf, text
    assert float(vf[2]) < float(soft[2])
    assert int(vf[3].replace(",", "")) <= 50
    # The blackout, printed with its real figure, and the VF back on the destination.
    gap = re.search(r"longest gap between ping replies ([\d.]+) ms", text)
    assert gap and float(gap[1]) < MAX_BLACKOUT_MS, text
    assert "VF 0 (policies bypassed)" in text.split("--host hostB sriov show", 1)[1]

    # Nothing left: the lab's namespaces and registry, the VM's namespace.
    left = {ns for ns in netns_names() if ns.startswith(scene.lab_name) or ns == scene.vm_ns}
    assert not left, left
    assert scene.lab_name not in list_labs()
    assert not registry_path(scene.lab_name).parent.exists()


def test_iov_scene_cleans_up_after_a_failure_half_way(monkeypatch: pytest.MonkeyPatch) -> None:
    """A step failing after the lab, the IOV switches and the VM exist still leaves nothing behind."""

    def broken(*_: object, **__: object) -> None:
        raise RuntimeError("iperf3 went away")

    monkeypatch.setattr(IovScene, "stream", broken)
    scene = IovScene(Console(file=io.StringIO(), width=200, color_system=None), unique("")[-5:])
    try:
        with pytest.raises(RuntimeError, match="iperf3 went away"):
            scene.run()
    finally:
        scene.cleanup()
    assert scene.lab is not None and scene.lab.record.hosts  # it got as far as the hosts
    left = {ns for ns in netns_names() if ns.startswith(scene.lab_name) or ns == scene.vm_ns}
    assert not left, left
    assert not registry_path(scene.lab_name).parent.exists()
