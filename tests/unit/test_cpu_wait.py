"""cpu_wait reads the kernel's run-queue delay of the calling thread (what the extension budget subtracts): pinned
to one CPU with two CPU hogs, the thread runs about a third of the time and waits the rest, so the wait it
reports is most of the wall time (its CPU time, schedstat's other field, would be about a third)."""

from __future__ import annotations

import os
import subprocess
import time

from pyvswitch.clock import cpu_wait


def test_cpu_wait_is_the_time_spent_runnable_behind_other_tasks() -> None:
    affinity = os.sched_getaffinity(0)
    cpu = min(affinity)
    os.sched_setaffinity(0, {cpu})
    hogs = [
        subprocess.Popen(["taskset", "-c", str(cpu), "sh", "-c", "while :; do :; done"]) for _ in range(2)
    ]
    try:
        start, waited = time.monotonic(), cpu_wait()
        while time.monotonic() - start < 0.3:
            pass
        wall, waited = time.monotonic() - start, cpu_wait() - waited
    finally:
        for hog in hogs:
            hog.kill()
            hog.wait()
        os.sched_setaffinity(0, affinity)
    assert 0.5 * wall <= waited <= wall, f"waited {waited:.3f} s of {wall:.3f} s behind two hogs on one CPU"
