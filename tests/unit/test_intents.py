"""The migration intent log (issue 11 item 4): records survive as whole files, bad ones do not stop a daemon."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from pyvswitch.config.intents import Intent, IntentLog, Phase, Role
from pyvswitch.daemon.faults import EXIT_CODE

ID = "0123456789abcdef0123456789abcdef"


def intent(phase: Phase = Phase.PREPARING) -> Intent:
    return Intent(
        ID, Role.SOURCE, phase, vm={"name": "web01"}, ports=[{"interface": "pv01020304"}], peer="hostB"
    )


def test_put_get_all_drop(tmp_path: Path) -> None:
    log = IntentLog(tmp_path / "migrations")
    log.put(intent())
    stored = log.put(intent().at(Phase.HANDED_OVER, state={"web01-eth0": {"fw": "eA=="}}))
    assert log.get(ID) == stored and stored.phase is Phase.HANDED_OVER and stored.updated > 0
    assert [i.id for i in log.all()] == [ID] and stored.interfaces == ["pv01020304"]
    assert not list((tmp_path / "migrations").glob("*.tmp"))  # renamed into place, nothing half-written
    assert os.stat(tmp_path / "migrations" / f"{ID}.json").st_mode & 0o777 == 0o600
    log.drop(ID)
    assert log.get(ID) is None and log.all() == []


def test_unreadable_record_is_moved_aside(tmp_path: Path) -> None:
    log = IntentLog(tmp_path)
    (tmp_path / f"{'f' * 32}.json").write_text("{not json")
    log.put(intent())
    assert [i.id for i in log.all()] == [ID]
    assert (tmp_path / f"{'f' * 32}.json.bad").exists()


def test_ids_from_the_other_host_are_never_paths(tmp_path: Path) -> None:
    log = IntentLog(tmp_path)
    assert log.get("../../etc/passwd") is None
    with pytest.raises(ValueError):
        log.put(Intent("../x", Role.DESTINATION, Phase.PREPARED, vm={}, ports=[]))


def test_fault_hook_exits_only_at_the_named_point() -> None:
    code = "from pyvswitch.daemon.faults import fault; fault('migration:source:moved'); fault('x:y')"
    env = {**os.environ, "PYVSWITCH_FAULT": "x:y"}
    assert subprocess.run([sys.executable, "-c", code], env=env).returncode == EXIT_CODE
    env["PYVSWITCH_FAULT"] = "other"
    assert subprocess.run([sys.executable, "-c", code], env=env).returncode == 0
