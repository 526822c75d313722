"""When the forwarding thread busy-polls (switch/runner.py SpinPolicy, ``pyvswitchd --busy-poll``): 1 ms pings
through the switch leave the forwarder's CPU nearly idle by default, where spinning after every frame (the
behaviour before 2026-12-07, now ``--busy-poll always``) held a whole CPU for as long as the pings ran and
starved the control plane on a 2-vCPU host (issue 13's cluster migration blackout)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from pyvswitch.cli.client import Client
from pyvswitch.lab.traffic import GapPinger
from pyvswitch.testing.netns import process_cpu_s, wait_for
from tests.system.conftest import Host, ping

pytestmark = pytest.mark.system

PINGS_S = 2.0


def forwarder_cpu_s(state_dir: Path) -> float:
    """User + system CPU time of the host's forwarder process (its pid is in its lock file)."""
    return process_cpu_s(int((state_dir / "forwarder.lock").read_text().split()[0]))


def cpu_share_under_pings(h: Host) -> float:
    """The forwarder's CPU time over the wall time of PINGS_S of 1 ms pings between two VMs."""
    h.cli("switch", "add", "bp", "--type", "private")
    a, _b = h.vm_add("bp", "10.94.0.1/24"), h.vm_add("bp", "10.94.0.2/24")
    # ARP and learning settled before the measured pings.
    wait_for(lambda: ping(h.netns_of(a), "10.94.0.2", count=1).returncode == 0, what="a first reply")
    with GapPinger(h.netns_of(a), "10.94.0.2", 1) as pinger:
        cpu0, t0 = forwarder_cpu_s(h.state_dir), time.monotonic()
        time.sleep(PINGS_S)
        share = (forwarder_cpu_s(h.state_dir) - cpu0) / (time.monotonic() - t0)
        log = pinger.stop()
    assert len(log.replies) > 1000, f"the pings did not flow: {len(log.replies)} replies"
    return share


def test_sparse_traffic_leaves_the_forwarders_cpu_alone(host: Host) -> None:
    with Client(str(host.socket)) as api:
        assert api.health()["forwarding"]["busy_poll"] == "dense"
    share = cpu_share_under_pings(host)
    assert share < 0.3, f"the forwarder used {share:.0%} of a CPU for 1 ms pings"


@pytest.mark.daemon_args("--busy-poll", "always")
def test_busy_poll_always_spins_between_sparse_frames(host: Host) -> None:
    with Client(str(host.socket)) as api:
        assert api.health()["forwarding"]["busy_poll"] == "always"
    share = cpu_share_under_pings(host)
    assert share > 0.4, f"the forwarder used only {share:.0%} of a CPU: it did not spin"
