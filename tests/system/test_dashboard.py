"""The web dashboard in headless Chromium (issue 14 item 2): `pyvswitch dashboard` prints a URL on 127.0.0.1 with
its token; the page shows the switch, its ports and VMs; under traffic the per-port numbers move between two
loads; a what-if trace runs from the page's endpoint; nothing answers without the token; and /docs on the API
socket is the Swagger UI served from the package, not a CDN. PYVSWITCH_DASHBOARD_SHOTS=DIR keeps the two
screenshots (docs/dashboard-1.png, -2.png come from there)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from tests.system.conftest import Host

CHROMIUM = shutil.which("chromium")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (make setup)")


def chromium(*args: str) -> subprocess.CompletedProcess[str]:
    # A fresh profile each time; virtual time lets the page's one-second polls run without waiting for them.
    cmd = [str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
           "--window-size=1400,900", "--virtual-time-budget=4000", *args]  # fmt: skip
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120)


def rx_frames(dom: str, port: str) -> int:
    m = re.search(rf'data-port="[^"]*/{re.escape(port)}" data-rx-frames="(\d+)"', dom)
    assert m, dom[:2000]
    return int(m[1])


def test_the_dashboard_shows_the_switch_and_its_numbers_move_under_traffic(
    host: Host, tmp_path: Path
) -> None:
    host.cli("switch", "add", "dsw", "--type", "private")
    a = host.vm_add("dsw", "10.63.0.1/24")
    host.vm_add("dsw", "10.63.0.2/24")
    url = str(host.json("dashboard")["url"])  # type: ignore[index]
    assert url.startswith("http://127.0.0.1:") and "?token=" in url
    assert host.json("dashboard")["url"] == url  # type: ignore[index]  # asked again: the same one
    base, token = url.split("/?token=")
    assert httpx.get(f"{base}/snapshot", timeout=5).status_code == 403  # no token, nothing
    assert httpx.get(f"{base}/", params={"token": "wrong"}, timeout=5).status_code == 403
    ping = subprocess.Popen(["ip", "netns", "exec", a, "ping", "-i", "0.01", "-q", "10.63.0.2"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        shots = [tmp_path / "dashboard-1.png", tmp_path / "dashboard-2.png"]
        doms = []
        for shot in shots:
            res = chromium(f"--screenshot={shot}", url)
            assert res.returncode == 0 and shot.stat().st_size > 10_000, res.stderr[-500:]
            doms.append(chromium("--dump-dom", url).stdout)
            time.sleep(1.5)
    finally:
        ping.kill()
        ping.wait()
    assert f"{a}-eth0" in doms[0] and "dsw (Private)" in doms[0] and "forwarding ok" in doms[0]
    first, second = rx_frames(doms[0], f"{a}-eth0"), rx_frames(doms[1], f"{a}-eth0")
    assert 0 < first < second, (first, second)  # the live numbers moved between the two loads
    assert shots[0].read_bytes() != shots[1].read_bytes()
    keep = os.environ.get("PYVSWITCH_DASHBOARD_SHOTS")
    if keep:
        for shot in shots:
            shutil.copy(shot, Path(keep) / shot.name)
    # The what-if form's endpoint.
    with httpx.Client(base_url=base, params={"token": token}, timeout=10) as page:
        res = page.post("/whatif", json={"port": f"{a}-eth0", "frame": "ip=10.63.0.1>10.63.0.2 udp dport=53"})
        assert res.status_code == 200 and "what-if" in res.json()["tree"]
        bad = page.post("/whatif", json={"port": f"{a}-eth0", "frame": "dport=99999"})
        assert bad.status_code == 400 and "dport" in bad.json()["tree"]
    # /docs: Swagger UI from the package.
    with httpx.Client(transport=httpx.HTTPTransport(uds=str(host.socket)), timeout=10) as api:
        docs = api.get("http://pyvswitchd/docs").text
        assert "/docs-static/swagger-ui-bundle.js" in docs and "cdn." not in docs
        assert api.get("http://pyvswitchd/docs-static/swagger-ui-bundle.js").status_code == 200
