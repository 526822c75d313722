"""The daemon's logs through a real pyvswitchd (issue 14 item 5): both processes write JSON lines under
STATE_DIR/log; `pyvswitch log level` changes the level of the daemon and of its forwarder at run time;
`pyvswitch log events` reads them back; SIGHUP reopens the files and stops nothing."""

from __future__ import annotations

import json
import signal

from pyvswitch.testing.netns import wait_for
from tests.system.conftest import Host


def test_log_level_at_run_time_for_both_processes_and_events_read_back(host: Host) -> None:
    assert "log level info" in host.cli("log", "level").stdout
    out = host.json("log", "level", "debug")
    assert out["level"] == "debug"  # type: ignore[index]
    forwarder = host.json("status")["forwarding"]["forwarder"]  # type: ignore[index]
    assert forwarder["log_level"] == "debug"  # the forwarder process too, through its link
    bad = host.cli("log", "level", "loud", check=False)
    assert bad.returncode == 2 and "loud" in bad.stderr
    # Both processes' JSON lines, each a JSON object with its process.
    files = sorted(p.name for p in (host.state_dir / "log").glob("*.jsonl"))
    assert files == ["forwarder.jsonl", "pyvswitchd.jsonl"]
    for name in files:
        rows = [json.loads(line) for line in (host.state_dir / "log" / name).read_text().splitlines()]
        assert rows and all(r["process"] == name.split(".")[0] for r in rows)
    # SIGHUP: the files reopened, the daemon still serving, the level kept.
    assert host.proc is not None
    host.proc.send_signal(signal.SIGHUP)
    wait_for(
        lambda: host.json("log", "events", "--event", "log.reopened"), timeout_s=10, what="the reopen event"
    )
    assert host.proc.poll() is None and host.json("log", "level")["level"] == "debug"  # type: ignore[index]
    text = host.cli("log", "events", "--last", "50").stdout
    assert "[log.reopened]" in text and " pyvswitchd" in text and " forwarder" in text
    host.cli("log", "level", "info")
