"""Flow export from a running pyvswitchd (issue 14 item 3; EX-05: a capture extension
observes only; EX-16: it sees VM-to-VM traffic): the sFlow agent and the IPFIX exporter enabled with
`pyvswitch extension enable/set`, real traffic between two namespace VMs, real collectors: tshark decodes the
sFlow datagrams (no malformed packet, samples within 10 % of 1-in-100 of 100k frames), nfcapd stores the IPFIX
records and nfdump reads back the 5-tuple, ports and counts."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from pyvswitch.lab.generator import udp_frame
from pyvswitch.lab.pktgen import Phase, Spec
from pyvswitch.testing.netns import unique, wait_for
from tests.component.test_flow_export import nfcapd, nfdump_csv, tshark_sflow
from tests.system.conftest import Host, ping

pytestmark = pytest.mark.skipif(
    shutil.which("tshark") is None or shutil.which("nfcapd") is None,
    reason="tshark and nfdump are installed by make setup",
)
FRAMES = 100_000
RATE = 100
SO_RCVBUFFORCE = 33  # Linux (asm-generic/socket.h); not in Python's socket module. Root may exceed rmem_max.


def pair(host: Host, subnet: str) -> tuple[str, str, str, dict[str, str]]:
    sw = unique("fsw")
    host.cli("switch", "add", sw, "--type", "private")
    a = host.vm_add(sw, f"{subnet}.1/24")
    b = host.vm_add(sw, f"{subnet}.2/24")
    macs = {vm: str(host.json("port", "show", f"{vm}-eth0")["mac"]) for vm in (a, b)}  # type: ignore[index]
    return sw, a, b, macs


def send_frames(netns: str, frame: bytes, count: int, rate_pps: float, tmp: Path) -> int:
    """``count`` copies of ``frame`` from ``netns``'s eth0, evenly paced (lab/pktgen.py); returns frames sent."""
    spec = tmp / f"{unique('spec')}.json"
    spec.write_text(Spec("eth0", [Phase(rate_pps, count, [frame.hex()])]).to_json())
    out = subprocess.run(
        ["ip", "netns", "exec", netns, sys.executable, "-m", "pyvswitch.lab.pktgen", str(spec)],
        capture_output=True, text=True, check=True, timeout=120,
    )  # fmt: skip
    return int(json.loads(out.stdout)[0]["sent"])


def test_sflow_samples_100k_frames_at_1_in_100_within_10_percent_and_tshark_decodes_them(
    host: Host, tmp_path: Path
) -> None:
    sw, a, b, macs = pair(host, "10.63.0")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as collector:
        # Read only after the traffic: room for every datagram (the default buffer holds ~600 samples' worth).
        collector.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, 16 << 20)
        collector.bind(("127.0.0.1", 0))
        collector.settimeout(0.5)
        port = collector.getsockname()[1]
        host.cli("extension", "enable", sw, "pyvswitch-sflow")
        host.cli("extension", "set", sw, "pyvswitch-sflow", f"collectors=127.0.0.1:{port}",
                 f"sampling_rate={RATE}", "polling_interval_s=1")  # fmt: skip
        frame = udp_frame(
            macs[b], macs[a], 128, src_ip="10.63.0.1", dst_ip="10.63.0.2", sport=4000, dport=4001
        )
        sent = send_frames(a, frame, FRAMES, 50_000, tmp_path)
        datagrams: list[bytes] = []
        status: dict[str, Any] = {}

        steady: list[tuple[int, float]] = []

        def flushed() -> bool:
            # The agent's own count first, then what arrived: every datagram it says it sent is here, and its flow
            # samples stopped growing for longer than a tick (the sampler hands its last ones over at a tick).
            row = next(r for r in host.json("extension", "show", sw) if r["name"] == "pyvswitch-sflow")  # type: ignore[union-attr]
            status.update(row["status"], problem=row["problem"])
            while True:
                try:
                    datagrams.append(collector.recv(65535))
                except TimeoutError:
                    break
            now = time.monotonic()
            if not steady or steady[-1][0] != status["flow_samples"]:
                steady.append((status["flow_samples"], now))
            settled = now - steady[-1][1] > 1.5
            return settled and status["counter_samples"] >= 4 and len(datagrams) >= status["datagrams"] > 0

        wait_for(flushed, timeout_s=30, what="the agent's datagrams, counter samples included")
    assert sent == FRAMES
    assert not status["problem"] and status["send_errors"] == 0, status
    text = tshark_sflow(datagrams, port)
    assert "Malformed" not in text and "Expert Info" not in text
    # The samples of the generator's frames: input a's port, UDP 4000 -> 4001 in the header record.
    fields = tshark_sflow(datagrams, port, "sflow.flow_sample.sample_pool")
    samples = text.count("Destination Port: 4001")
    pools = [int(p) for line in fields.splitlines() for p in line.split(",") if p]
    # Frames the port had received at its last sample, sampled or not (the generator's and a few of the VM's
    # own); the frames after it, fewer than 2N, are in no sample's pool.
    received = max(pools)
    expected = received / RATE
    print(
        f"sFlow 1-in-{RATE}: {samples} samples of {received} frames, {100 * (samples / expected - 1):+.1f} %"
    )
    assert abs(samples - expected) <= 0.10 * expected, (
        f"{samples} samples of {received} frames at 1-in-{RATE}"
    )
    assert 0.9 * FRAMES < received <= FRAMES + 1000  # most of the generator's frames reached the switch
    assert text.count("Counters sample, seq") >= 4


def test_ipfix_records_of_vm_traffic_read_by_nfdump(host: Host, tmp_path: Path) -> None:
    sw, a, _, _ = pair(host, "10.64.0")
    with nfcapd(tmp_path) as port:
        host.cli("extension", "enable", sw, "pyvswitch-ipfix")
        host.cli("extension", "set", sw, "pyvswitch-ipfix", f"collectors=127.0.0.1:{port}", "sampling_rate=1",
                 "idle_timeout_s=1")  # fmt: skip
        res = ping(a, "10.64.0.2", count=20)
        assert res.returncode == 0, res.stdout + res.stderr

        def exported() -> bool:
            status = next(r for r in host.json("extension", "show", sw) if r["name"] == "pyvswitch-ipfix")  # type: ignore[union-attr]
            return int(status["status"]["records_exported"]) >= 2 and status["status"]["flows"] == 0

        wait_for(exported, timeout_s=20, what="the ping's flows exported")
    rows = nfdump_csv(tmp_path)
    icmp = [r for r in rows if r["pr"] == "ICMP"]
    requests = sum(int(r["ipkt"]) for r in icmp if (r["sa"], r["da"]) == ("10.64.0.1", "10.64.0.2"))
    replies = sum(int(r["ipkt"]) for r in icmp if (r["sa"], r["da"]) == ("10.64.0.2", "10.64.0.1"))
    assert requests == replies == 20, icmp
    assert all(int(r["ibyt"]) == 84 * int(r["ipkt"]) for r in icmp), icmp  # IP octets, as IPFIX counts them
    ins = {r["in"] for r in icmp}
    assert len(ins) == 2 and {r["out"] for r in icmp} == ins  # each direction in one port and out the other
