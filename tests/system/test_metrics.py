"""Prometheus metrics through a real Prometheus (issue 14 item 1): pyvswitchd --metrics-listen serves /metrics on
a TCP address, Debian's prometheus scrapes it every second, and the per-port counters it stores move under
traffic; the API socket serves the same exposition; names and types follow Prometheus' conventions."""

from __future__ import annotations

import re
import shutil
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from pyvswitch.testing.netns import unique, wait_for
from tests.system.conftest import Host, running_host

PROMETHEUS = shutil.which("prometheus")
pytestmark = pytest.mark.skipif(
    PROMETHEUS is None, reason="Debian's prometheus is not installed (make setup)"
)

NAME = re.compile(r"^pyvswitch_[a-z][a-z0-9_]*$")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def metered(tmp_path: Path) -> Iterator[tuple[Host, int]]:
    port = free_port()
    with running_host(Host(tmp_path, "--metrics-listen", f"127.0.0.1:{port}")) as h:
        yield h, port


@pytest.fixture
def prometheus(metered: tuple[Host, int], tmp_path: Path) -> Iterator[str]:
    """A Prometheus scraping the daemon every second; yields its API base URL."""
    _, target = metered
    web = free_port()
    cfg = tmp_path / "prometheus.yml"
    cfg.write_text(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
        f"scrape_configs:\n  - job_name: pyvswitch\n    static_configs:\n      - targets: ['127.0.0.1:{target}']\n"
    )
    log = open(tmp_path / "prometheus.log", "wb")  # noqa: SIM115 - closed below, after the process
    proc = subprocess.Popen(
        [str(PROMETHEUS), f"--config.file={cfg}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
         f"--web.listen-address=127.0.0.1:{web}"],
        stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        yield f"http://127.0.0.1:{web}"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def query(base: str, promql: str) -> list[dict[str, Any]]:
    try:
        res = httpx.get(f"{base}/api/v1/query", params={"query": promql}, timeout=5).json()
    except (httpx.HTTPError, ValueError):
        return []
    return list(res.get("data", {}).get("result", [])) if res.get("status") == "success" else []


def value(base: str, promql: str) -> float | None:
    res = query(base, promql)
    return float(res[0]["value"][1]) if res else None


def test_prometheus_scrapes_per_port_counters_that_move_under_traffic(
    metered: tuple[Host, int], prometheus: str
) -> None:
    host, port = metered
    sw = unique("msw")
    host.cli("switch", "add", sw, "--type", "private")
    a = host.vm_add(sw, "10.61.0.1/24")
    b = host.vm_add(sw, "10.61.0.2/24")
    wait_for(lambda: value(prometheus, 'up{job="pyvswitch"}') == 1.0, timeout_s=30, what="the target up")
    series = f'pyvswitch_port_rx_frames_total{{switch="{sw}",port="{a}-eth0"}}'
    wait_for(lambda: value(prometheus, series) is not None, timeout_s=15, what=f"{series} scraped")
    before = value(prometheus, series)
    assert before is not None
    subprocess.run(["ip", "netns", "exec", a, "ping", "-c", "20", "-i", "0.02", "10.61.0.2"],
                   check=True, capture_output=True)  # fmt: skip
    wait_for(
        lambda: (value(prometheus, series) or 0) >= before + 20,
        timeout_s=15,
        what="the counter moved by the pings",
    )
    tx = value(prometheus, f'pyvswitch_port_tx_frames_total{{switch="{sw}",port="{b}-eth0"}}')
    assert tx is not None and tx >= 20
    assert (
        value(prometheus, f'pyvswitch_port_rx_bytes_total{{switch="{sw}",port="{a}-eth0"}}') or 0
    ) >= 20 * 98
    assert value(prometheus, "pyvswitch_forwarding_healthy") == 1.0
    assert (value(prometheus, f'pyvswitch_fdb_entries{{switch="{sw}",kind="static"}}') or 0) >= 2
    # The batch histogram and the API's latency are histograms Prometheus can take quantiles of.
    assert (value(prometheus, "pyvswitch_forwarding_batch_frames_count") or 0) > 0
    assert query(
        prometheus, "histogram_quantile(0.9, sum by (le) (pyvswitch_api_request_duration_seconds_bucket))"
    )
    # Every name is ours and conventional; counters end in _total (Prometheus' metadata of the target).
    meta = httpx.get(f"{prometheus}/api/v1/targets/metadata", params={"match_target": '{job="pyvswitch"}'},
                     timeout=5).json()["data"]  # fmt: skip
    types = {m["metric"]: m["type"] for m in meta if m["metric"].startswith("pyvswitch_")}
    assert {"pyvswitch_port_rx_frames", "pyvswitch_drops", "pyvswitch_forwarding_busy_seconds"} <= set(types)
    names = set(httpx.get(f"{prometheus}/api/v1/label/__name__/values", timeout=5).json()["data"])
    ours = {n for n in names if n.startswith("pyvswitch_")}
    assert all(NAME.match(n) for n in ours), ours
    for base, kind in types.items():
        if kind == "counter":
            assert f"{base}_total" in ours or not any(n.startswith(base) for n in ours), base
    # The same exposition on the API socket; the metrics address serves nothing but metrics.
    with httpx.Client(transport=httpx.HTTPTransport(uds=str(host.socket)), timeout=5) as api:
        text = api.get("http://pyvswitchd/metrics").text
    assert f'pyvswitch_port_rx_frames_total{{port="{a}-eth0",switch="{sw}"}}' in text
    other = httpx.get(f"http://127.0.0.1:{port}/v1/switches", timeout=5)
    assert other.headers["content-type"].startswith("text/plain") and "pyvswitch_build_info" in other.text
    assert (
        httpx.post(f"http://127.0.0.1:{port}/v1/switches", json={"name": "x"}, timeout=5).status_code != 201
    )
    assert [s["name"] for s in host.json("switch", "list")] == [sw]  # type: ignore[index, union-attr]
