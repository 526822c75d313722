"""How much each fuzz test does: bounded in ``make test`` (about 60 s for the whole suite on 2 CPUs, the three
files running side by side under xdist), the long run with ``PYVSWITCH_FUZZ=long`` (``make fuzz``).

``PYVSWITCH_FUZZ_SEED`` picks the seed (default 0 in ``make test`` so a failure reproduces; ``make fuzz`` draws one
and prints it), ``PYVSWITCH_FUZZ_REPORT`` names a JSON file each test adds its figures to.
"""

from __future__ import annotations

import json
import os
import random
from pathlib import Path

LONG = os.environ.get("PYVSWITCH_FUZZ") == "long"

FRAMES = 1_000_000 if LONG else 150_000
FRAMES_DEADLINE_S = None if LONG else 15.0
API_REQUESTS = 10_000 if LONG else 600
API_DEADLINE_S = None if LONG else 25.0
GRAMMAR_EXAMPLES = 20_000 if LONG else 800


def seed() -> int:
    text = os.environ.get("PYVSWITCH_FUZZ_SEED")
    return int(text) if text else (random.SystemRandom().randrange(2**32) if LONG else 0)


def report(section: str, figures: dict[str, object]) -> None:
    """Add ``figures`` under ``section`` to the report file, if one is asked for."""
    path = os.environ.get("PYVSWITCH_FUZZ_REPORT")
    if not path:
        return
    p = Path(path)
    data = json.loads(p.read_text()) if p.exists() else {}
    data[section] = figures
    p.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
