"""PS-07's storm limit measured as a rate: a test of the forwarded rate, so it runs in the serial tier
(tests/conftest.py) on a quiet machine; the other port-security tests stay in test_security.py."""

from __future__ import annotations

import json
import time

import pytest

from tests.system.conftest import Host, ns_python
from tests.system.test_security import STORM, counters, two_vms

pytestmark = pytest.mark.system


def test_storm_limit_holds_the_forwarded_rate_within_10_percent(host: Host) -> None:
    """PS-07: three times the limit of broadcast frames for two seconds; what reaches the other VM's port."""
    limit, rate, seconds = 1000, 3000, 2.0
    a, b, macs = two_vms(host)
    host.cli("port", "set", f"{a}-eth0", "--storm-limit", str(limit))
    dst = f"{b}-eth0"
    before = counters(host, "sw")["ports"][dst]["tx_frames"]
    run = json.loads(ns_python(a, STORM.format(src=macs[a], rate=rate, seconds=seconds)))
    time.sleep(0.3)  # frames still in the switch's rings count as forwarded
    sw = counters(host, "sw")
    forwarded = sw["ports"][dst]["tx_frames"] - before
    expected = limit * run["elapsed"]
    assert abs(forwarded - expected) <= 0.1 * expected, (forwarded, run)
    assert sw["drops"]["storm-limit"] >= run["sent"] - forwarded - 0.05 * run["sent"]
    assert run["sent"] / run["elapsed"] > 2 * limit, f"the sender fell short of a storm: {run}"
