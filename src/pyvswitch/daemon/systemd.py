"""pyvswitchd under systemd (issue 15 item 3): the notify protocol (READY, STOPPING, and WATCHDOG keep-alives that
follow the forwarding loop's progress, not a timer), and the unit file ``pyvswitchd --install-service`` (``make install``) writes.

The watchdog: with ``WatchdogSec=`` in the unit, systemd sets ``WATCHDOG_USEC`` and expects ``WATCHDOG=1`` more
often than that. pyvswitchd sends it every half interval only while the data path is progressing: the forwarder
answers, and its forwarding loop completed a pass recently (``heartbeat_age_s`` in its health, well below the
interval). A wedged loop, or a forwarder that does not answer, withholds the keep-alive (logged once as an event,
``watchdog.withheld``) and systemd restarts the service after ``WatchdogSec``. A loop that comes back resumes it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

UNIT_NAME = "pyvswitchd.service"
WATCHDOG_SEC = 10

UNIT = """\
# pyvswitchd: the pyvswitch daemon (written by `pyvswitchd --install-service`, `make install`).
[Unit]
Description=pyvswitch virtual switch daemon
After=network-pre.target
Wants=network-pre.target

[Service]
# READY=1 once serving; WATCHDOG=1 only while the forwarding loop progresses (pyvswitch.daemon.systemd).
Type=notify
NotifyAccess=main
WatchdogSec={watchdog}
ExecStart={pyvswitchd} --state-dir /var/lib/pyvswitch --socket /run/pyvswitch/pyvswitchd.sock
# Reopen the log files (logrotate) without stopping anything.
ExecReload=/bin/kill -HUP $MAINPID
# The forwarder process outlives a restart of pyvswitchd (hitless restart): only the main process is signalled.
KillMode=process
Restart=on-failure
RestartSec=1
StateDirectory=pyvswitch
StateDirectoryMode=0700
RuntimeDirectory=pyvswitch
RuntimeDirectoryPreserve=yes
LimitMEMLOCK=infinity

[Install]
WantedBy=multi-user.target
"""


def unit_text(pyvswitchd: str) -> str:
    return UNIT.format(pyvswitchd=pyvswitchd, watchdog=WATCHDOG_SEC)


def notify(message: str, env: Mapping[str, str] | None = None) -> bool:
    """Send ``message`` to ``$NOTIFY_SOCKET`` (abstract when it starts with @); False when there is none."""
    addr = (env or os.environ).get("NOTIFY_SOCKET")
    if not addr:
        return False
    if addr.startswith("@"):
        addr = "\0" + addr[1:]
    with contextlib.suppress(OSError), socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
        s.sendto(message.encode(), addr)
        return True
    return False


def watchdog_interval(env: Mapping[str, str] | None = None) -> float | None:
    """Seconds between keep-alives (half of ``WATCHDOG_USEC``), or None when no watchdog is asked for us."""
    env = env if env is not None else os.environ
    usec, pid = env.get("WATCHDOG_USEC"), env.get("WATCHDOG_PID")
    if not usec or not usec.isdigit() or int(usec) == 0:
        return None
    if pid and pid.isdigit() and int(pid) != os.getpid():
        return None  # meant for another process of the service
    return int(usec) / 2e6


def progressing(health: Mapping[str, Any], interval_s: float) -> str | None:
    """None when the data path progresses, else why not (for the log)."""
    age = health.get("heartbeat_age_s")
    if not isinstance(age, int | float):
        return "the forwarding loop is not running"
    if age > interval_s:
        return f"the forwarding loop has not completed a pass for {age:.1f} s"
    return None


class Watchdog:
    """The keep-alive thread: every ``interval_s``, WATCHDOG=1 if ``health()`` says the loop progresses."""

    def __init__(
        self, health: Callable[[], Mapping[str, Any]], interval_s: float, send: Callable[[str], bool] = notify
    ) -> None:
        self.health = health
        self.interval_s = interval_s
        self.send = send
        self.sent = 0
        self.withheld = 0
        self._why: str | None = None
        self._pending: Future[Mapping[str, Any]] | None = None  # a health call that has not answered yet
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="pyvswitch-watchdog-health")
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="pyvswitch-watchdog", daemon=True)

    def start(self) -> Watchdog:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._pool.shutdown(wait=False, cancel_futures=True)

    def beat(self) -> bool:
        """One check: the keep-alive sent, or withheld (and why, logged when it changes)."""
        # The health call goes to the forwarder: one that is frozen never answers, so it is waited for at most
        # one interval (and not asked again while it has not answered).
        if self._pending is None or self._pending.done():
            self._pending = self._pool.submit(self.health)
        try:
            why = progressing(self._pending.result(timeout=self.interval_s), self.interval_s)
        except FutureTimeout:
            why = f"the forwarder has not answered for {self.interval_s:.1f} s"
        except Exception as exc:  # it answered with an error: nothing to vouch for
            why = f"the forwarder does not answer: {exc}"
        if why is None:
            if self._why is not None:
                log.warning("watchdog: forwarding progresses again; keep-alives resume",
                            extra={"event": "watchdog.resumed", "fields": {"key": "watchdog"}})  # fmt: skip
            self._why = None
            self.sent += 1
            return self.send("WATCHDOG=1")
        if why != self._why:
            log.error("watchdog: keep-alive withheld: %s", why,
                      extra={"event": "watchdog.withheld", "fields": {"key": "watchdog", "reason": why}})  # fmt: skip
        self._why = why
        self.withheld += 1
        return False

    def _run(self) -> None:
        while not self._stop.is_set():
            started = time.monotonic()
            self.beat()
            self._stop.wait(max(0.0, self.interval_s - (time.monotonic() - started)))


def install(pyvswitchd: str, root: Path = Path("/"), enable: bool = True) -> dict[str, Any]:
    """Write the unit to ``root``/etc/systemd/system; with systemd running (and ``root`` /), reload it and
    enable the service. Returns what was done."""
    target = root / "etc" / "systemd" / "system" / UNIT_NAME
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(unit_text(pyvswitchd))
    done: dict[str, Any] = {"unit": str(target), "exec_start": pyvswitchd, "enabled": False}
    if enable and root == Path("/") and Path("/run/systemd/system").is_dir():  # systemd is the init
        import subprocess

        subprocess.run(["systemctl", "daemon-reload"], check=True)
        subprocess.run(["systemctl", "enable", UNIT_NAME], check=True)
        done["enabled"] = True
    return done
