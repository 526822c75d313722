"""lab/launch.py, which replaced the lab's `sh -c` lines (issue 11): a start time, then exec, argv verbatim."""

from __future__ import annotations

import os
import subprocess
import sys
import time

ENV = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}


def launch(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pyvswitch.lab.launch", *argv],
        capture_output=True,
        text=True,
        timeout=30,
        env=ENV,
    )


def test_starts_the_command_at_the_given_time_with_its_arguments_verbatim() -> None:
    """issue 11: the traffic generator's start delay was `sh -c 'sleep D; exec "$@"'`."""
    at = time.monotonic() + 0.3
    res = launch(
        "--at", f"{at:.6f}", "--",
        sys.executable, "-c", "import sys, time; print(time.monotonic(), sys.argv[1:])", "$(id)", "a;b",
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    started, _, args = res.stdout.partition(" ")
    assert float(started) >= at
    assert args.strip() == "['$(id)', 'a;b']"


def test_exit_status_is_the_commands() -> None:
    assert launch("--", sys.executable, "-c", "raise SystemExit(7)").returncode == 7


def test_no_command_is_a_usage_error() -> None:
    res = launch("--")
    assert res.returncode == 2 and "COMMAND" in res.stderr
