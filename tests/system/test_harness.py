"""The benchmark harness with the Linux bridge: real TCP and trafgen traffic, and nothing left behind."""

from __future__ import annotations

import os
import subprocess

import pytest

from pyvswitch.lab.harness import Harness, LinuxBridge, tools_missing
from pyvswitch.lab.traffic import run_iperf3, run_trafgen_trial, sample_latency, udp_frame_config

pytestmark = [
    pytest.mark.system,
    pytest.mark.skipif(bool(tools_missing()), reason=f"missing tools: {tools_missing()}"),
]


def _namespaces() -> set[str]:
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    return {line.split()[0] for line in out.splitlines() if line.strip()}


def test_bridge_forwards_tcp_and_frames_then_cleans_up() -> None:
    with Harness() as h:
        assert h.h1 is not None and h.h2 is not None
        created = set(h.namespaces)
        assert len(created) == 3 and created <= _namespaces()
        bridge = LinuxBridge()
        bridge.start(h)
        try:
            tcp = run_iperf3(h.h2.netns, h.h1.netns, h.h2.ip, 1, server_cpu=h.gen_cpu, client_cpu=h.gen_cpu)
            assert tcp.gbps > 0.1

            h.set_offloads(False)
            lat = sample_latency(h.h1.netns, h.h2.ip, count=20, cpu=h.gen_cpu)
            assert lat.samples >= 19 and 0 < lat.p50_ms <= lat.p99_ms

            cfg = udp_frame_config(h.h1.mac, h.h2.mac, h.h1.ip, h.h2.ip, 64)
            trial = run_trafgen_trial(
                h.h1.netns, h.h1.ifname, h.h2.netns, h.h2.ifname, cfg,
                frame_size=64, rate_pps=5000, duration_s=1.0, cpu=h.gen_cpu,
            )  # fmt: skip
            # At 5k frames/s the kernel bridge loses nothing; the harness keeps other traffic off the
            # counters, so offered and delivered agree exactly (a stray frame or two tolerated).
            assert trial.offered >= 4900
            assert abs(trial.delivered - trial.offered) <= 2
            assert trial.loss_pct < 0.1
        finally:
            bridge.stop()
    assert not created & _namespaces(), "harness namespaces left behind"


def test_cleanup_after_error() -> None:
    created: set[str] = set()
    with pytest.raises(RuntimeError, match="boom"), Harness() as h:
        created = set(h.namespaces)
        raise RuntimeError("boom")
    assert created and not created & _namespaces()


@pytest.mark.skipif(os.cpu_count() == 1, reason="pinning plan needs 2 CPUs")
def test_cpu_plan_pins_generator_and_forwarder_apart() -> None:
    from pyvswitch.lab.harness import cpu_plan

    gen, fwd = cpu_plan()
    assert gen is not None and fwd is not None and gen != fwd
