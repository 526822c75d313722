"""The demo's QEMU scene (lab/demo_guest.py) against a real pyvswitchd: every check passes and nothing is left;
where QEMU is missing the scene says so on one line and does nothing."""

from __future__ import annotations

import io
import subprocess

import pytest
from rich.console import Console

from pyvswitch.guest.image import DEFAULT_CACHE_DIR
from pyvswitch.guest.qemu import guests_unavailable
from pyvswitch.lab import demo_guest
from pyvswitch.lab.demo_guest import GuestScene
from pyvswitch.testing.netns import unique
from tests.system.conftest import Host, echoing_cli, run_scene, scene_console

pytestmark = [pytest.mark.system]


@pytest.mark.skipif(guests_unavailable() is not None, reason=str(guests_unavailable()))
@pytest.mark.daemon_args("--guest-image-cache", str(DEFAULT_CACHE_DIR))
def test_guest_scene_boots_execs_pings_and_cleans_up(host: Host) -> None:
    console, out = scene_console()
    cli = echoing_cli(host, console)

    scene = GuestScene(console, cli, host.json, unique("")[-5:])
    checks, good, text = run_scene(scene, out)
    print(text)
    assert good and len(checks) == 5, text
    assert "--kind qemu" in text and "QEMU guest on the switch" in text
    assert host.json("vm", "list") == [] and host.json("switch", "list") == []
    assert subprocess.run(["pgrep", "-f", f"-name {scene.guest}"], capture_output=True).returncode != 0


def test_without_qemu_the_scene_is_skipped_with_the_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    out = io.StringIO()
    monkeypatch.setattr(demo_guest, "guests_unavailable", lambda: "qemu-system-x86_64 is not installed")
    ran: list[tuple[str, ...]] = []

    def cli(*args: str, show: bool = True, check: bool = True) -> subprocess.CompletedProcess[str]:
        ran.append(args)
        return subprocess.CompletedProcess(args, 0, "", "")

    scene = GuestScene(Console(file=out, width=200, color_system=None), cli, lambda *a: {}, "t")
    assert scene.run() == [] and scene.table([]) is True
    scene.cleanup()
    assert ran == [] and "QEMU scene skipped: qemu-system-x86_64 is not installed" in out.getvalue()
