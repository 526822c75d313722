"""pyvswitchd under systemd (daemon/systemd.py, issue 15 item 3): keep-alives only while the forwarding loop
progresses, the watchdog asked for us or not, and a unit systemd accepts."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from pyvswitch.daemon.systemd import Watchdog, install, progressing, unit_text, watchdog_interval


def test_keep_alives_follow_the_forwarding_loop_not_a_timer() -> None:
    sent: list[str] = []
    health = {"state": "ok", "heartbeat_age_s": 0.01}
    dog = Watchdog(lambda: health, 5.0, send=lambda m: sent.append(m) is None)
    assert dog.beat() and sent == ["WATCHDOG=1"]
    health["heartbeat_age_s"] = 7.5  # the loop wedged for longer than the interval
    assert not dog.beat() and sent == ["WATCHDOG=1"] and dog.withheld == 1
    health["heartbeat_age_s"] = 0.02
    assert dog.beat() and sent == ["WATCHDOG=1", "WATCHDOG=1"]

    def unreachable() -> dict[str, object]:
        raise TimeoutError("no answer from the forwarder")

    assert not Watchdog(unreachable, 5.0, send=lambda m: True).beat()
    assert progressing({"heartbeat_age_s": None}, 5.0) == "the forwarding loop is not running"


def test_the_watchdog_is_ours_only_when_systemd_asks_it_of_this_process() -> None:
    import os

    assert watchdog_interval({}) is None
    assert watchdog_interval({"WATCHDOG_USEC": "10000000"}) == 5.0
    assert watchdog_interval({"WATCHDOG_USEC": "10000000", "WATCHDOG_PID": str(os.getpid())}) == 5.0
    assert watchdog_interval({"WATCHDOG_USEC": "10000000", "WATCHDOG_PID": "1"}) is None


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze")
def test_the_unit_is_one_systemd_accepts(tmp_path: Path) -> None:
    exe = shutil.which("true") or "/bin/true"
    done = install(exe, tmp_path)
    unit = Path(done["unit"])
    assert unit == tmp_path / "etc/systemd/system/pyvswitchd.service" and not done["enabled"]
    text = unit.read_text()
    assert text == unit_text(exe)
    for line in ("Type=notify", "WatchdogSec=10", "KillMode=process", "StateDirectory=pyvswitch",
                 "RuntimeDirectory=pyvswitch", "ExecReload=/bin/kill -HUP $MAINPID"):  # fmt: skip
        assert line in text
    res = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
