"""What the sFlow agent costs the forwarding, where nothing else moves it (issue 14; reported by
lab/metricsbench.py, whose TCP runs on this 2-CPU machine vary by up to 2x from rep to rep).

The same switch in process on memory devices (the engine's own loop, the flow cache on), 1518-byte frames in
batches of 4, the forwarding CPU time of the thread per frame with the agent sampling 1 in 400 to a real UDP
collector and with the agent disabled; both switches built once and alternated, the fastest of 15 runs of each.

``python -m pyvswitch.testing.samplingbench`` prints the figures as JSON.
"""

from __future__ import annotations

import json
import statistics
import time
from typing import Any

from pyvswitch.builtin.sflow import SflowAgent
from pyvswitch.ext.registry import Registry

SFLOW_RATE = 400


def sampling_cost(frames: int = 50_000, batch: int = 4, reps: int = 15) -> dict[str, Any]:
    """ns per frame through a switch on memory devices, sFlow at 1-in-SFLOW_RATE on and off, alternated. The
    fastest run of each is the cost (what the other processes of a busy 2-CPU machine add only ever slows a run);
    the medians are reported beside it."""
    import socket as socketlib

    from pyvswitch.config.schema import ExtensionSetting, PortConfig, PortKind, SwitchConfig
    from pyvswitch.lab.generator import udp_frame
    from pyvswitch.testing.harness import SwitchHarness

    with socketlib.socket(socketlib.AF_INET, socketlib.SOCK_DGRAM) as collector:
        collector.bind(("127.0.0.1", 0))
        collector.setblocking(False)
        target = f"127.0.0.1:{collector.getsockname()[1]}"
        a, b = "02:00:00:00:00:0a", "02:00:00:00:00:0b"
        ports = [
            PortConfig(name=n, kind=PortKind.VM, vm=n, switch="s", mac=m) for n, m in (("a", a), ("b", b))
        ]
        settings = {"collectors": [target], "sampling_rate": SFLOW_RATE}

        def harness(on: bool) -> SwitchHarness:
            ext = [ExtensionSetting(name="pyvswitch-sflow", enabled=on, settings=settings)]
            return SwitchHarness([SwitchConfig(name="s", extensions=ext)], ports, Registry.of(SflowAgent))

        frame = udp_frame(b, a, 1518)
        times: dict[bool, list[float]] = {False: [], True: []}
        # Built once and alternated: a switch built per run measured its allocations more than its forwarding.
        switches = {False: harness(False), True: harness(True)}
        try:
            for _ in range(reps):
                for on, h in switches.items():
                    src, dst = h.port_device("a"), h.port_device("b")
                    t0 = (
                        time.thread_time()
                    )  # CPU time: what another tenant of the machine takes is not counted
                    for _ in range(frames // batch):
                        for _ in range(batch):
                            src.inject(frame)
                        h.engine.run_once()
                        dst.sent.clear()
                    times[on].append((time.thread_time() - t0) / frames * 1e9)
                    while True:
                        try:
                            collector.recv(65535)
                        except BlockingIOError:
                            break
        finally:
            for h in switches.values():
                h.engine.stop()
    fast_off, fast_on = min(times[False]), min(times[True])
    return {"batch": batch, "frames": frames, "reps": reps, "ns_per_frame_off": round(fast_off),
            "ns_per_frame_sflow": round(fast_on), "sflow_cost": round(fast_on / fast_off - 1, 4),
            "median_ns_per_frame_off": round(statistics.median(times[False])),
            "median_ns_per_frame_sflow": round(statistics.median(times[True]))}  # fmt: skip


if __name__ == "__main__":
    print(json.dumps(sampling_cost()))
