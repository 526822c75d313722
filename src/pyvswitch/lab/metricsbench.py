"""What Prometheus scraping costs the data path (issue 14 acceptance): TCP with every offload off (the
forwarding-bound case, where any CPU taken from the forwarder shows) through pyvswitchd, without and with a
scrape of /metrics every second, alternated rep by rep in one run, beside the Linux bridge in the same harness
(lab/harness.py: h1 - fw - h2, the forwarder on its own CPU, iperf3 and the scraper on the other).

The scraper is a client on the generators' CPU that GETs /metrics over the API socket once a second, as a
Prometheus with ``scrape_interval: 1s`` does. Goal: scraped >= 0.97 x unscraped.

``python -m pyvswitch.lab.metricsbench [--reps 5] [--seconds 4] [--json FILE]`` (``make bench-metrics``); root.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from pyvswitch.lab.bench import with_poller
from pyvswitch.lab.harness import Harness, LinuxBridge, PyvswitchForwarder
from pyvswitch.lab.traffic import run_iperf3

GOAL = 0.97


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
        try:
            plain, scraped = [], []
            for _ in range(reps):  # alternated, so a drift of the machine falls on both
                plain.append(tcp())
                scraped.append(with_poller(scraper, 1.0, tcp, cpu=cpu))
        finally:
            scraper.close()
            pv.stop()
    p, s = statistics.median(plain), statistics.median(scraped)
    out.update(
        pyvswitch_gbps=round(p, 2),
        pyvswitch_scraped_gbps=round(s, 2),
        scraped_over_plain=round(s / p, 3) if p else None,
        pyvswitch_over_bridge=round(p / out["bridge_gbps"], 3) if out.get("bridge_gbps") else None,
        runs={"plain": [round(x, 2) for x in plain], "scraped": [round(x, 2) for x in scraped]},
        scrapes=scraper.scrapes,
        exposition_bytes=scraper.bytes,
        scrape_ms_median=round(statistics.median(scraper.seconds) * 1000, 1) if scraper.seconds else None,
        goal=GOAL,
        date=time.strftime("%Y-%m-%d"),
        uname_r=platform.release(),
    )
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="metricsbench", description=__doc__.split("\n\n")[0])
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--seconds", type=float, default=4.0)
    p.add_argument("--json", dest="json_path", default=None)
    args = p.parse_args(argv)
    out = bench(args.reps, args.seconds)
    text = json.dumps(out, indent=2)
    print(text)
    if args.json_path:
        Path(args.json_path).write_text(text + "\n")
    ratio = out.get("scraped_over_plain")
    return 0 if ratio is not None and ratio >= GOAL else 1


if __name__ == "__main__":
    sys.exit(main())
