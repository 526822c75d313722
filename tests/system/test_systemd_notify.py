"""pyvswitchd's notify protocol against a stand-in for systemd (issue 15 item 3): READY=1 once serving, then
WATCHDOG=1 keep-alives at half of WATCHDOG_USEC while the forwarding loop progresses; a forwarder frozen with
SIGSTOP stops them, and they come back when it runs again; `pyvswitchd --version`."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from pathlib import Path

from tests.system.conftest import BIN, Host, running_host


def test_keep_alives_stop_while_the_forwarder_is_frozen_and_resume(tmp_path: Path) -> None:
    addr = str(tmp_path / "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(addr)
    sock.settimeout(0.2)
    got: list[tuple[float, str]] = []

    def drain(seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            try:
                got.append((time.monotonic(), sock.recv(256).decode()))
            except TimeoutError:
                pass

    env = {"NOTIFY_SOCKET": addr, "WATCHDOG_USEC": "1000000"}  # keep-alives every 0.5 s
    try:
        (tmp_path / "state").mkdir()
        with running_host(Host(tmp_path / "state", env=env)) as host:
            drain(2.0)
            messages = [m for _, m in got]
            assert "READY=1" in messages and messages.count("WATCHDOG=1") >= 2, messages
            pid = host.json("status")["forwarding"]["forwarder"]["pid"]  # type: ignore[index]
            os.kill(pid, signal.SIGSTOP)
            stopped = time.monotonic()
            try:
                got.clear()
                drain(3.0)
                # One interval's grace: keep-alives sent (or queued) before the freeze was noticed.
                late = [t - stopped for t, m in got if m == "WATCHDOG=1" and t > stopped + 0.75]
                assert not late, got
            finally:
                os.kill(pid, signal.SIGCONT)
            got.clear()
            drain(3.0)
            assert [m for _, m in got].count("WATCHDOG=1") >= 2, got
            # Withheld (once per reason: "has not answered", then perhaps a stale heartbeat), then resumed.
            events = [e["event"] for e in host.json("log", "events", "--event", "watchdog.")]  # type: ignore[index, union-attr]
            assert events and events[0] == "watchdog.withheld" and "watchdog.resumed" in events, events
    finally:
        sock.close()
    version = subprocess.run([str(BIN / "pyvswitchd"), "--version"], capture_output=True, text=True)
    assert version.returncode == 0 and version.stdout.startswith("pyvswitchd ")
