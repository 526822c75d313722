"""How much each fuzz test does: bounded in ``make test`` (the whole directory in about a minute of test time on
2 CPUs, the three files side by side under xdist; the frame fuzz's deadline keeps a slow machine inside it, the
API fuzz counts requests instead), the long run with ``PYVSWITCH_FUZZ=long`` (``make fuzz``).

``PYVSWITCH_FUZZ_SEED`` picks the seed (default 0 in ``make test`` so a failure reproduces; ``make fuzz`` draws one
and prints it), ``PYVSWITCH_FUZZ_REPORT`` names a JSON file each test adds its figures to.
"""

from __future__ import annotations

import fcntl
import json
import os
import random
import time
from pathlib import Path

LONG = os.environ.get("PYVSWITCH_FUZZ") == "long"

FRAMES = 1_000_000 if LONG else 100_000
FRAMES_DEADLINE_S = None if LONG else 8.0
# A count, not a time: beside the system tests on a fresh clone, 18 s gave 125 and then 10 requests (a case takes
# hypothesis ~0.1-3 s to draw under that load). The deadline is only a bound on a stuck run.
API_REQUESTS = 10_000 if LONG else 120
API_DEADLINE_S = None if LONG else 240.0
GRAMMAR_EXAMPLES = 20_000 if LONG else 250  # each grammar property
CMDLET_LINES = 10_000 if LONG else 300  # whole cmdlet lines against a daemon


def seed() -> int:
    text = os.environ.get("PYVSWITCH_FUZZ_SEED")
    return int(text) if text else (random.SystemRandom().randrange(2**32) if LONG else 0)


def report(section: str, figures: dict[str, object]) -> None:
    """Add ``figures`` under ``section`` to the report file, if one is asked for."""
    path = os.environ.get("PYVSWITCH_FUZZ_REPORT")
    if not path:
        return
    p = Path(path)
    # The fuzz files run in parallel (xdist workers): one writer at a time.
    with open(p.with_name(p.name + ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        data = json.loads(p.read_text()) if p.exists() and p.stat().st_size else {}
        data.setdefault(
            "run",
            {"date": time.strftime("%Y-%m-%d %H:%M:%S %z"), "kernel": os.uname().release, "long": LONG},
        )
        data[section] = figures
        p.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
