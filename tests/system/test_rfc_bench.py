"""The RFC 2889 runners on real namespaces, at rates far below capacity (correctness, not speed: `make bench`
measures speed): broadcast through pyvswitchd on the four-host star, every frame at every other port and
none back, the evenly paced generator doing what it reports, and nothing left behind."""

from __future__ import annotations

import dataclasses
import shutil
import subprocess

import pytest

from pyvswitch.lab import rfc2889
from pyvswitch.lab.generator import Ceiling, GeneratorProfile
from pyvswitch.lab.harness import StarHarness, StarPyvswitch, tools_missing
from pyvswitch.lab.rfc2544 import QUICK_RFC_PLAN, Context

pytestmark = [
    pytest.mark.system,
    pytest.mark.skipif(bool(tools_missing()), reason=f"missing tools: {tools_missing()}"),
    pytest.mark.skipif(shutil.which("tcpdump") is None, reason="tcpdump missing"),
]


def _namespaces() -> set[str]:
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    return {line.split()[0] for line in out.splitlines() if line.strip()}


def test_broadcast_reaches_every_other_port_of_a_four_port_pyvswitch() -> None:
    # A made-up generator ceiling keeps the trial small: 5,000 frames/s for 0.4 s, then at most one more.
    profile = GeneratorProfile([Ceiling("smooth", 64, 1, 5_000, 5_000, 5_000)])
    plan = dataclasses.replace(QUICK_RFC_PLAN, broadcast_trial_s=0.4, broadcast_max_trials=2)
    with StarHarness(4) as star:
        created = set(star.namespaces)
        fwd = StarPyvswitch()
        fwd.start(star)
        try:
            star.set_offloads(False)
            res = rfc2889.broadcast(Context(star, profile, plan, fwd.name))
        finally:
            fwd.stop()
    assert not created & _namespaces(), "star namespaces left behind"
    first = res["trials"][0]
    assert first["offered"] >= 1_800, first  # the generator sent what it said (2,000 frames)
    assert abs(first["offered_pps"] - 5_000) <= 500, first
    assert res["ports"] == 3 and res["echo_frames"] == 0
    # At 5k frames/s a broadcast reaches all three other ports; one stray frame tolerated per port.
    assert all(got >= first["offered"] - 1 for got in first["delivered_per_port"]), first
    assert res["zero_loss_pps"] > 0 or first["loss_pct"] < 0.1, res
