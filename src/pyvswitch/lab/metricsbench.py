"""What observing the switch costs its data path (issue 14 acceptance): TCP with every offload off (the
forwarding-bound case: the loop is busy 95-99 % of the time) through pyvswitchd plain, with a scrape of /metrics
every second, with ten scrapes a second, and with the sFlow agent sampling 1 in 400 frames to a collector,
alternated rep by rep in one run, beside the Linux bridge in the same harness (lab/harness.py: h1 - fw - h2, the
forwarder on its own CPU, iperf3 and the scraper on the other).

The scraper is a client on the generators' CPU that GETs /metrics over the API socket, as a Prometheus with
``scrape_interval: 1s`` does. The sFlow collector is a process in the forwarder's namespace that reads and counts
the datagrams. Goal for both: a cost of at most 3 % (ratios >= 0.97).

On this 2-CPU machine a TCP rep's throughput varies by ±10 % and more from rep to rep, and drifts from minute to
minute, more than the 3 % to resolve. So:
- each arm is compared with the plain rep of its own round (the arms of a round run back to back, the order
  rotated), and the median of those ratios is the estimate;
- each rep also reads, around the run, the frames the forwarding loop received, its busy time (Engine.busy_s:
  rounds that had frames, so busy-polling is left out) and the forwarder process's CPU time. The loop's busy
  time per frame is its work per frame: every frame's chain, the sampler, the agent's encoding and sends;
- a scrape's cost is measured where it shows: ten scrapes a second cost ten times one (they take a few ms and
  do not overlap), so one a second costs a tenth of that arm's; the 1-a-second arm is reported beside it. And
  with no traffic: the forwarder's CPU per scrape (scraped 10 times a second for 10 s, less 10 s unscraped),
  whose share of a CPU-second is the cost of one scrape a second to the forwarder;
- the sFlow agent is enabled before its rep's meter starts and disabled after it stops: the cost asked is the
  running agent's. A toggle (a reconfiguration of the forwarder) is a one-off, measured apart with no traffic.

`make bench-metrics` also runs testing/samplingbench.py: sFlow's cost per frame in process on memory devices.

``python -m pyvswitch.lab.metricsbench [--reps 12] [--seconds 4] [--json FILE]`` (``make bench-metrics``); root.
Exit status 0 when both goals are met (``goal_met`` in the output).
"""

from __future__ import annotations

import argparse
import json
import platform
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from pyvswitch.lab.bench import with_poller
from pyvswitch.lab.harness import Harness, LinuxBridge, PyvswitchForwarder
from pyvswitch.lab.traffic import run_iperf3
from pyvswitch.testing.netns import process_cpu_s

GOAL = 0.97
SFLOW_RATE = 400
SCRAPE_AMPLIFY = 10.0  # scrapes a second in the arm that measures one scrape's cost under traffic
SFLOW_PORT = 6343
# The collector: counts datagrams and samples (sFlow's NumSamples, bytes 24-27 of an IPv4 agent's datagram)
# until SIGTERM, then prints them.
COLLECTOR = """
import signal, socket, struct, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("127.0.0.1", int(sys.argv[1])))
n = samples = 0
def done(*_):
    print(n, samples, flush=True)
    sys.exit(0)
signal.signal(signal.SIGTERM, done)
print("ready", flush=True)
while True:
    d = s.recv(65535)
    n += 1
    samples += struct.unpack_from(">I", d, 24)[0]
"""


class SflowCollector:
    """A datagram counter in ``netns`` on 127.0.0.1:SFLOW_PORT (the namespace's loopback brought up)."""

    def __init__(self, netns: str) -> None:
        subprocess.run(["ip", "netns", "exec", netns, "ip", "link", "set", "lo", "up"], check=True)
        self.proc = subprocess.Popen(
            ["ip", "netns", "exec", netns, sys.executable, "-c", COLLECTOR, str(SFLOW_PORT)],
            stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        assert self.proc.stdout is not None
        if self.proc.stdout.readline().strip() != "ready":
            raise RuntimeError("the sFlow collector did not start")

    def stop(self) -> tuple[int, int]:
        """(datagrams, samples) received."""
        self.proc.send_signal(signal.SIGTERM)
        out, _ = self.proc.communicate(timeout=10)
        datagrams, samples = (int(x) for x in out.split())
        return datagrams, samples


class Scraper:
    """GET /metrics on the daemon's socket (one kept-open connection, as Prometheus keeps one)."""

    def __init__(self, socket: Path) -> None:
        self.client = httpx.Client(transport=httpx.HTTPTransport(uds=str(socket)), timeout=5)
        self.scrapes = 0
        self.bytes = 0
        self.seconds: list[float] = []

    def __call__(self) -> None:
        t0 = time.perf_counter()
        res = self.client.get("http://pyvswitchd/metrics")
        res.raise_for_status()
        self.seconds.append(time.perf_counter() - t0)
        self.scrapes += 1
        self.bytes = len(res.content)

    def close(self) -> None:
        self.client.close()


@dataclass(frozen=True)
class Rep:
    """One TCP run through the switch: its throughput and what the forwarder process spent on it."""

    gbps: float
    frames: int  # received by the forwarding loop (both directions: data and ACKs)
    cpu_s: float  # the forwarder process's CPU time (every thread)
    busy_s: float = 0.0  # the forwarding loop's time on rounds that had frames (Engine.busy_s): spin left out
    wall_s: float = 0.0

    @property
    def cpu_ns_per_frame(self) -> float:
        return self.cpu_s / self.frames * 1e9 if self.frames else float("nan")

    @property
    def busy_ns_per_frame(self) -> float:
        return self.busy_s / self.frames * 1e9 if self.frames else float("nan")

    @property
    def busy_share(self) -> float:
        """The forwarding loop's busy fraction: well under 1 when the generators, not the forwarder, set the
        pace (its CPU time then holds busy-polling between batches, which is waiting, not work)."""
        return self.busy_s / self.wall_s if self.wall_s else float("nan")


class ForwarderMeter:
    """Reads the forwarder's CPU time, frame count and loop busy time around a run (one counters request
    before, one after: the same two in every arm)."""

    def __init__(self, socket: Path) -> None:
        self.client = httpx.Client(transport=httpx.HTTPTransport(uds=str(socket)), timeout=5)
        res = self.client.get("http://pyvswitchd/v1/health")  # the forwarder process's status, its pid in it
        res.raise_for_status()
        self.pid = int(res.json()["forwarding"]["forwarder"]["pid"])

    def _loop(self) -> tuple[int, float]:
        """(frames received, busy seconds) of the forwarding loop so far."""
        res = self.client.get("http://pyvswitchd/v1/counters")
        res.raise_for_status()
        counters = res.json()
        return int(counters["batches"]["frames"]), float(counters["busy_s"])

    def measure(self, run: Callable[[], float]) -> Rep:
        (frames0, busy0), cpu0, t0 = self._loop(), process_cpu_s(self.pid), time.monotonic()
        gbps = run()
        t1, cpu1, (frames1, busy1) = time.monotonic(), process_cpu_s(self.pid), self._loop()
        return Rep(gbps, frames1 - frames0, cpu1 - cpu0, busy1 - busy0, t1 - t0)

    def close(self) -> None:
        self.client.close()


def scrape_cpu_ms(
    pid: int, scraper: Scraper, cpu: int | None, seconds: float = 10.0, rate_hz: float = 10.0
) -> float:
    """The forwarder's CPU time per scrape, with no traffic: ``seconds`` scraped ``rate_hz`` times a second, less
    ``seconds`` unscraped (its idle polling), over the scrapes made."""
    cpu0 = process_cpu_s(pid)
    time.sleep(seconds)  # the baseline: what the idle forwarder spends in that time
    idle = process_cpu_s(pid) - cpu0
    n0, cpu0 = scraper.scrapes, process_cpu_s(pid)
    with_poller(scraper, rate_hz, lambda: time.sleep(seconds), cpu=cpu)
    scraped = process_cpu_s(pid) - cpu0
    return max(0.0, scraped - idle) / max(1, scraper.scrapes - n0) * 1000


def toggle_cpu_ms(pid: int, toggle: Callable[[bool], None], times: int = 5) -> float:
    """The forwarder's CPU time per enable + disable of an extension, with no traffic: ``times`` pairs, less
    the same wall time untouched (its idle polling)."""
    t0, cpu0 = time.monotonic(), process_cpu_s(pid)
    for _ in range(times):
        toggle(True)
        toggle(False)
    wall, used = time.monotonic() - t0, process_cpu_s(pid) - cpu0
    cpu0 = process_cpu_s(pid)
    time.sleep(wall)
    idle = process_cpu_s(pid) - cpu0
    return max(0.0, used - idle) / times * 1000


def paired(a: list[Rep], b: list[Rep], value: Callable[[Rep], float]) -> float:
    """The median over rounds of ``a``'s value over ``b``'s in the same round (the arms of a round run back to
    back, so a drift of the machine between rounds cancels)."""
    return statistics.median(value(x) / value(y) for x, y in zip(a, b, strict=True))


def bench(reps: int, seconds: float) -> dict[str, Any]:
    out: dict[str, Any] = {"reps": reps, "seconds": seconds}
    with Harness() as h:
        h1, h2 = h.h1, h.h2
        assert h1 is not None and h2 is not None
        cpu = h.gen_cpu

        def tcp() -> float:
            return run_iperf3(h2.netns, h1.netns, h2.ip, seconds, server_cpu=cpu, client_cpu=cpu).gbps

        bridge = LinuxBridge()
        bridge.start(h)
        h.reachable()
        h.set_offloads(False)
        try:
            out["bridge_gbps"] = round(statistics.median(tcp() for _ in range(reps)), 2)
        finally:
            bridge.stop()
        pv = PyvswitchForwarder()
        pv.start(h)
        h.set_offloads(False)
        assert pv.socket is not None
        scraper = Scraper(pv.socket)
        meter = ForwarderMeter(pv.socket)
        collector = SflowCollector(h.fw)
        pv.cli("extension", "set", "sw", "pyvswitch-sflow", f"collectors=127.0.0.1:{SFLOW_PORT}",
               f"sampling_rate={SFLOW_RATE}")  # fmt: skip
        received = (0, 0)
        try:
            out["scrape_forwarder_cpu_ms"] = round(scrape_cpu_ms(meter.pid, scraper, cpu), 2)

            def sflow(on: bool) -> None:
                pv.cli("extension", "enable" if on else "disable", "sw", "pyvswitch-sflow")

            # The sFlow arm's agent is enabled before its meter starts and disabled after it stops: the cost
            # asked is the running agent's, and a reconfiguration's work in the forwarder (a new extension
            # stack, the chains recompiled, the flow caches refilled) is paid once, not every few seconds.
            # Measured inside the rep, as until 013fdb9, the two toggles landed in the sFlow arm's CPU time;
            # what they cost is measured apart, with no traffic.
            out["toggle_forwarder_cpu_ms"] = round(toggle_cpu_ms(meter.pid, sflow), 1)
            # Scraped ten times a second as well: a scrape's cost under traffic is small beside the reps'
            # spread, and ten of them a second show it ten times larger (scrapes take a few ms: they do not
            # overlap), so the cost of one a second is that arm's over ten.
            arms: dict[str, tuple[Callable[[], float], Callable[[bool], None] | None]] = {
                "plain": (tcp, None),
                "scraped": (lambda: with_poller(scraper, 1.0, tcp, cpu=cpu), None),
                "scraped_10hz": (lambda: with_poller(scraper, SCRAPE_AMPLIFY, tcp, cpu=cpu), None),
                "sflow": (tcp, sflow),
            }
            by_arm: dict[str, list[Rep]] = {name: [] for name in arms}
            order = list(arms)
            for rep in range(reps):  # alternated and rotated, so a drift of the machine falls on every arm
                for name in order[rep % len(order) :] + order[: rep % len(order)]:
                    run, toggle = arms[name]
                    if toggle is not None:
                        toggle(True)
                    try:
                        by_arm[name].append(meter.measure(run))
                    finally:
                        if toggle is not None:
                            toggle(False)
        finally:
            meter.close()
            scraper.close()
            received = collector.stop()
            pv.stop()

    def gbps(rep: Rep) -> float:
        return rep.gbps

    def cpu_time(rep: Rep) -> float:
        return rep.cpu_ns_per_frame

    def busy(rep: Rep) -> float:
        return rep.busy_ns_per_frame

    def median(arm: list[Rep], value: Callable[[Rep], float]) -> float:
        return statistics.median(value(r) for r in arm)

    plain = by_arm["plain"]
    others = [k for k in by_arm if k != "plain"]
    paired_throughput = {k: paired(by_arm[k], plain, gbps) for k in others}
    paired_busy = {k: paired(plain, by_arm[k], busy) for k in others}
    out.update(
        pyvswitch_gbps={k: round(median(arm, gbps), 2) for k, arm in by_arm.items()},
        pyvswitch_over_bridge=round(median(plain, gbps) / out["bridge_gbps"], 3)
        if out.get("bridge_gbps")
        else None,
        # Per arm over plain (1.0: no cost at all): throughput (arm's over plain's: lower is a cost), the
        # forwarding loop's busy time per frame and the process's CPU per frame (plain's over the arm's). Each as
        # the ratio of the arms' medians and as the median of the ratios taken round by round (each arm against
        # its round's plain rep, so a drift of the machine between rounds cancels).
        throughput_ratio={k: round(median(by_arm[k], gbps) / median(plain, gbps), 3) for k in others},
        paired_throughput_ratio={k: round(v, 3) for k, v in paired_throughput.items()},
        busy_ratio={k: round(median(plain, busy) / median(by_arm[k], busy), 3) for k in others},
        paired_busy_ratio={k: round(v, 3) for k, v in paired_busy.items()},
        cpu_ratio={k: round(median(plain, cpu_time) / median(by_arm[k], cpu_time), 3) for k in others},
        paired_cpu_ratio={k: round(paired(plain, by_arm[k], cpu_time), 3) for k in others},
        # The forwarding loop's busy fraction per arm: near 1, the forwarder sets the pace.
        busy_share={k: round(median(arm, lambda r: r.busy_share), 3) for k, arm in by_arm.items()},
        busy_ns_per_frame={k: round(median(arm, busy)) for k, arm in by_arm.items()},
        cpu_ns_per_frame={k: round(median(arm, cpu_time)) for k, arm in by_arm.items()},
        # One scrape a second takes this share of the forwarder's CPU (measured with no traffic, above).
        scrape_share_at_1hz=round(out["scrape_forwarder_cpu_ms"] / 1000, 4),
        runs={k: [round(r.gbps, 2) for r in arm] for k, arm in by_arm.items()},
        runs_busy_ns_per_frame={k: [round(busy(r)) for r in arm] for k, arm in by_arm.items()},
        runs_cpu_ns_per_frame={k: [round(cpu_time(r)) for r in arm] for k, arm in by_arm.items()},
        scrapes=scraper.scrapes,
        exposition_bytes=scraper.bytes,
        scrape_ms_median=round(statistics.median(scraper.seconds) * 1000, 1) if scraper.seconds else None,
        sflow_rate=SFLOW_RATE,
        sflow_datagrams=received[0],
        sflow_samples=received[1],
        goal=GOAL,
        date=time.strftime("%Y-%m-%d"),
        uname_r=platform.release(),
    )
    # One scrape a second under traffic, from the ten-a-second arm: a tenth of its cost, round by round.
    amplified = {
        "throughput_ratio": 1 - (1 - paired_throughput["scraped_10hz"]) / SCRAPE_AMPLIFY,
        "busy_ratio": 1 - (1 - paired_busy["scraped_10hz"]) / SCRAPE_AMPLIFY,
    }
    out["scrape_1hz_from_10hz"] = {k: round(v, 4) for k, v in amplified.items()}
    out["goal_met"] = {
        "scrape_1hz": min(*amplified.values(), 1 - out["scrape_share_at_1hz"]) >= GOAL,
        "sflow_1_in_400": min(paired_throughput["sflow"], paired_busy["sflow"]) >= GOAL,
    }
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="metricsbench", description=__doc__.split("\n\n")[0])
    p.add_argument("--reps", type=int, default=12)
    p.add_argument("--seconds", type=float, default=4.0)
    p.add_argument("--json", dest="json_path", default=None)
    args = p.parse_args(argv)
    out = bench(args.reps, args.seconds)
    text = json.dumps(out, indent=2)
    print(text)
    if args.json_path:
        Path(args.json_path).write_text(text + "\n")
    return 0 if all(out["goal_met"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
