"""Hitless restart (issue 11, item 5): forwarding goes on while pyvswitchd restarts, after SIGTERM and after
kill -9, because the data path lives in the forwarder process (daemon/forwarder.py) and a new pyvswitchd
re-attaches to it. Pings every 2 ms (fping) and one TCP flow cross five restarts of each kind."""

from __future__ import annotations

import itertools
import json
import shutil
import signal
import statistics
import subprocess
import time
from pathlib import Path

import pytest

from pyvswitch.lab.traffic import GapPinger, iperf3_server
from tests.system.conftest import Host, ping

pytestmark = [
    pytest.mark.system,
    pytest.mark.skipif(shutil.which("iperf3") is None, reason="iperf3 is not installed"),
    pytest.mark.skipif(
        shutil.which("fping") is None, reason="fping is not installed (make setup installs it)"
    ),
]

RESTARTS = 5  # of each kind: the issue asks for the median of 5


def forwarder_pid(host: Host) -> int:
    status = host.json("status")
    assert isinstance(status, dict)
    return int(status["forwarding"]["forwarder"]["pid"])


def longest_gap(replies: list[float], start: float, end: float) -> tuple[float, float]:
    """The longest interval between consecutive replies that overlaps [start, end] (the restart), and when it
    began relative to ``start`` (to tell the daemon's exit from its successor's start)."""
    gaps = [(b - a, a - start) for a, b in itertools.pairwise(replies) if b >= start and a <= end]
    return max(gaps, default=(float("inf"), 0.0))


def test_forwarding_continues_across_sigterm_and_kill9_restarts(host: Host, tmp_path: Path) -> None:
    host.cli("switch", "add", "sw", "--type", "private")
    a = host.vm_add("sw", "10.43.0.1/24")
    b = host.vm_add("sw", "10.43.0.2/24")
    assert ping(a, "10.43.0.2").returncode == 0
    fwd = forwarder_pid(host)
    # The forwarder's scheduling group outweighs the sessions around it (the test's CLI calls, the restarting
    # daemon): without it, half the runs here had 100-1,080 ms gaps (daemon/forwarder._favour_process).
    autogroup = Path(f"/proc/{fwd}/autogroup")
    if autogroup.exists():
        assert autogroup.read_text().split()[-1] == "-10", autogroup.read_text()
    with iperf3_server(b, port=5231):
        # A modest TCP flow (not a saturating one: this measures the restart, not the forwarding CPU's limit).
        tcp = subprocess.Popen(
            ["ip", "netns", "exec", a, "iperf3", "-c", "10.43.0.2", "-p", "5231", "-t", "120", "-b", "20M"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        # Real-time, so that a gap is the switch's and not the pinger's own wait for a CPU while the restarting
        # daemon imports (fping sleeps between requests; iputils ping would spin and starve the forwarder).
        pinger = GapPinger(a, "10.43.0.2", 2, realtime=True)
        windows: list[tuple[str, float, float]] = []
        try:
            time.sleep(0.5)  # traffic established before the first restart
            # The same traffic without a restart, for comparison: what the switch's own gaps are.
            quiet = (time.time(), time.time() + 3.0)
            time.sleep(3.0)
            for kind in ["SIGTERM", "kill -9"] * RESTARTS:
                t0 = time.time()
                host.terminate() if kind == "SIGTERM" else host.kill9()
                host.start()
                windows.append((kind, t0, time.time()))
            time.sleep(0.3)
            tcp_alive = tcp.poll() is None
        finally:
            pings = pinger.stop()
            tcp.send_signal(signal.SIGINT)
            tcp_out, tcp_err = tcp.communicate(timeout=10)
    replies = [t for t, _ in pings.replies]
    gaps: dict[str, list[float]] = {"SIGTERM": [], "kill -9": []}
    for kind, t0, t1 in windows:
        gap, at = longest_gap(replies, t0, t1)
        gaps[kind].append(gap)
        print(f"{kind}: restart took {t1 - t0:.2f} s; longest gap {gap * 1000:.1f} ms, from {at:+.3f} s")
    baseline, _ = longest_gap(replies, *quiet)
    print(f"no restart, same traffic, 3 s: longest gap {baseline * 1000:.1f} ms")
    summary = {
        kind: {"median_ms": round(statistics.median(g) * 1000, 1), "max_ms": round(max(g) * 1000, 1)}
        for kind, g in gaps.items()
    }
    print(f"restart gaps (2 ms pings): {json.dumps(summary)}; {pings.sent} sent, {pings.lost} unanswered")
    # One forwarder across all ten restarts, and the TCP flow alive at the end (a reset would have ended it).
    assert forwarder_pid(host) == fwd
    assert tcp_alive, f"the TCP flow ended during the restarts: {tcp_out[-500:]} {tcp_err[-500:]}"
    # Before the forwarder, each restart stopped forwarding for 1.8 s (kill -9) and 3.9 s (SIGTERM); the issue's
    # target is a median under 100 ms. Every reply came back: a gap is frames held up, none lost.
    for kind, g in gaps.items():
        assert statistics.median(g) < 0.1, f"{kind}: gaps {[round(x * 1000, 1) for x in g]} ms"
    assert pings.lost <= 2, f"{pings.lost} of {pings.sent} pings unanswered"
    assert ping(a, "10.43.0.2").returncode == 0


def test_sigint_stops_the_forwarder_and_a_new_daemon_starts_one(host: Host) -> None:
    """SIGINT (Ctrl-C) means stop: the forwarder goes with the daemon; the next start brings up a new one."""
    host.cli("switch", "add", "sw", "--type", "private")
    a = host.vm_add("sw", "10.44.0.1/24")
    host.vm_add("sw", "10.44.0.2/24")
    first = forwarder_pid(host)
    host.stop()
    assert ping(a, "10.44.0.2", count=1, timeout_s=1).returncode != 0  # nothing forwards any more
    host.start()
    assert forwarder_pid(host) != first
    assert ping(a, "10.44.0.2").returncode == 0
