"""TCP and latency through pyvswitchd, this tree against an older revision, in one run (``make bench-compare``).

A change to the data path must show it costs nothing where it should not: this checks out ``--old`` into a
temporary git worktree and runs the bench harness's TCP trial (iperf3 between two namespaces through a private
switch, offloads on then off, as ``make bench`` does; then 300 pings' RTT) alternately with each tree's pyvswitchd, ``--reps`` times,
old and new in turn (the order flips every repetition, so drift in the machine's speed falls on both). Each
trial is a child process whose ``PYTHONPATH`` selects the tree, with the same venv, harness and kernel.
Prints the medians and new/old; ``--json`` writes every trial.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from pyvswitch.lab.harness import venv_bin

TRIAL = r"""
import json, sys
from pyvswitch.lab.harness import Harness, PyvswitchForwarder
from pyvswitch.lab.traffic import run_iperf3, sample_latency
seconds = float(sys.argv[1])
out = {}
with Harness() as h:
    fwd = PyvswitchForwarder()
    fwd.start(h)
    try:
        for on in (True, False):
            h.set_offloads(on)
            h.reachable()
            r = run_iperf3(h.h2.netns, h.h1.netns, h.h2.ip, seconds, server_cpu=h.gen_cpu, client_cpu=h.gen_cpu)
            out["offloads on" if on else "offloads off"] = r.gbps
        lat = sample_latency(h.h1.netns, h.h2.ip, count=300, interval_s=0.01, cpu=h.gen_cpu)
        out["RTT p50 ms"], out["RTT p99 ms"] = lat.p50_ms, lat.p99_ms
    finally:
        fwd.stop()
print("RESULT " + json.dumps(out))
"""

NEW_SRC = Path(__file__).resolve().parents[2]  # this tree's src/


def trial(src: Path, seconds: float) -> dict[str, float]:
    env = {**os.environ, "PYTHONPATH": str(src)}
    res = subprocess.run(
        [str(venv_bin() / "python"), "-c", TRIAL, str(seconds)],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    line = next((ln for ln in res.stdout.splitlines() if ln.startswith("RESULT ")), None)
    if res.returncode != 0 or line is None:
        raise RuntimeError(f"trial with {src} failed ({res.returncode}): {res.stderr.strip()[-2000:]}")
    return dict(json.loads(line.removeprefix("RESULT ")))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "--old", required=True, help="the revision to compare against (anything git rev-parse takes)"
    )
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--seconds", type=float, default=5.0)
    p.add_argument("--json", dest="json_path")
    args = p.parse_args(argv)
    repo = NEW_SRC.parent
    rev = subprocess.run(
        ["git", "-C", str(repo), "rev-parse", "--short", args.old], capture_output=True, text=True, check=True
    ).stdout.strip()
    head = subprocess.run(
        ["git", "-C", str(repo), "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True
    ).stdout.strip()
    runs: dict[str, list[dict[str, float]]] = {"old": [], "new": []}
    with tempfile.TemporaryDirectory(prefix="pyvswitch-old-") as tmp:
        old_tree = Path(tmp) / "tree"
        subprocess.run(["git", "-C", str(repo), "worktree", "add", "--detach", str(old_tree), rev], check=True,
                       capture_output=True)  # fmt: skip
        try:
            for rep in range(args.reps):
                order = [("old", old_tree / "src"), ("new", NEW_SRC)]
                for which, src in order if rep % 2 == 0 else reversed(order):
                    runs[which].append(trial(src, args.seconds))
                    print(f"  rep {rep + 1} {which}: {runs[which][-1]}", file=sys.stderr)
        finally:
            subprocess.run(["git", "-C", str(repo), "worktree", "remove", "--force", str(old_tree)],
                           capture_output=True)  # fmt: skip
    print(
        f"TCP Gbit/s and RTT through pyvswitchd (bench harness), medians of {args.reps}, old {rev} vs new {head}"
    )
    for metric in ("offloads on", "offloads off", "RTT p50 ms", "RTT p99 ms"):
        old = statistics.median(r[metric] for r in runs["old"])
        new = statistics.median(r[metric] for r in runs["new"])
        print(f"  {metric:<14} old {old:6.3f}   new {new:6.3f}   new/old {new / old:.2f}")
    if args.json_path:
        with open(args.json_path, "w") as f:
            json.dump({"old": rev, "new": head, "runs": runs}, f, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
