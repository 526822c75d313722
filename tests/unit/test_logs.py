"""The daemon's logs (daemon/logs.py, issue 14 item 5): JSON lines with an event's fields at the top level,
rate limiting per event and key with a count of what was suppressed, the level set at run time, and the
newest events of both processes read back."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from pyvswitch.daemon import logs
from pyvswitch.testing.clock import FakeClock


@pytest.fixture
def restore_root() -> Iterator[None]:
    """The root logger as it was, after the test; during it, pyvswitch's own logger has no level of its own, as in
    the daemon (a level another test of this process set there would override the root's)."""
    root, ours = logging.getLogger(), logging.getLogger("pyvswitch")
    handlers, level, our_level = list(root.handlers), root.level, ours.level
    ours.setLevel(logging.NOTSET)
    yield
    ours.setLevel(our_level)
    for h in list(root.handlers):
        root.removeHandler(h)
        h.close()
    for h in handlers:
        root.addHandler(h)
    root.setLevel(level)
    logs._handlers.clear()
    logs._file.clear()


def record(msg: str, event: str | None = None, **fields: object) -> logging.LogRecord:
    rec = logging.LogRecord("pyvswitch.switch.team", logging.WARNING, __file__, 1, msg, (), None)
    if event is not None:
        rec.event = event
        rec.fields = fields
    return rec


def test_json_lines_carry_the_events_fields() -> None:
    line = logs.JsonFormatter("forwarder").format(
        record(
            "team t1 member eth1: Failed",
            "team.member",
            team="t1",
            member="eth1",
            reason="LacpNegotiationIssue",
        )
    )
    row = json.loads(line)
    assert (
        row["event"] == "team.member" and row["reason"] == "LacpNegotiationIssue" and row["member"] == "eth1"
    )
    assert row["level"] == "warning" and row["process"] == "forwarder" and row["ts"].endswith("+00:00")
    assert row["message"] == "team t1 member eth1: Failed"


def test_a_flood_of_one_event_is_cut_and_the_next_line_says_how_much() -> None:
    clock = FakeClock()
    limit = logs.RateLimit(burst=3, window_s=10.0, clock=clock.now)
    flaps = [record("flap", "team.member", key="t1/eth1") for _ in range(10)]
    assert [limit.filter(r) for r in flaps] == [True] * 3 + [False] * 7
    assert limit.filter(record("other port", "team.member", key="t1/eth2"))  # another key: its own budget
    clock.advance(11)
    again = record("flap", "team.member", key="t1/eth1")
    assert limit.filter(again) and again.suppressed == 7
    out = logs.TextFormatter("pyvswitchd").format(again)
    assert out.endswith("(7 similar suppressed)")
    assert json.loads(logs.JsonFormatter("pyvswitchd").format(again))["suppressed"] == 7


def test_level_at_run_time_and_events_read_back(tmp_path: Path, restore_root: None) -> None:
    logs.setup("pyvswitchd", "info", tmp_path, stream=io.StringIO())
    log = logging.getLogger("pyvswitch.test")
    log.debug("not yet")
    assert logs.set_level("DEBUG") == "debug" and logs.level() == "debug"
    log.debug("now", extra={"event": "test.debug", "fields": {"key": "x"}})
    log.info(
        "a migration step",
        extra={"event": "migration.phase", "fields": {"vm": "web01", "phase": "committed"}},
    )
    with pytest.raises(ValueError, match="not a log level: debug, info, warning, error"):
        logs.set_level("verbose")
    rows = logs.read_events(tmp_path, limit=10)
    assert [r["message"] for r in rows] == ["now", "a migration step"]
    assert [r["vm"] for r in logs.read_events(tmp_path, event="migration.")] == ["web01"]
    logs.reopen()  # SIGHUP: the file again, the level kept
    log.debug("after reopen")
    assert logs.read_events(tmp_path, limit=1)[0]["message"] == "after reopen"
    assert (tmp_path / "log" / "pyvswitchd.jsonl").exists()
