"""lab/metricsbench.py's round-by-round ratio: each arm's rep against the plain rep of its own round."""

from __future__ import annotations

import pytest

from pyvswitch.lab.metricsbench import Rep, paired


def test_a_drift_between_rounds_cancels_in_the_paired_ratio() -> None:
    # Round 2 ran on a machine twice as slow for both arms: per-arm medians would mix rounds, the pairs do not.
    plain = [Rep(2.0, 1000, 1.0), Rep(1.0, 1000, 2.0), Rep(2.0, 1000, 1.0)]
    arm = [Rep(1.98, 1000, 1.01), Rep(0.99, 1000, 2.02), Rep(1.98, 1000, 1.01)]
    assert paired(plain, arm, lambda r: r.cpu_ns_per_frame) == pytest.approx(1 / 1.01)
    assert paired(arm, plain, lambda r: r.gbps) == pytest.approx(0.99)
