"""Sampling extensions (API 1.4) in a switch on memory devices, and the sFlow and IPFIX exporters' datagrams read
by the real decoders: tshark for sFlow, nfcapd/nfdump for IPFIX (issue 14 item 3; EX-05: a capture extension observes
only; EX-16: it sees VM-to-VM traffic)."""

from __future__ import annotations

import re
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import pytest

from pyvswitch.builtin.ipfix import IpfixExporter
from pyvswitch.builtin.sflow import SflowAgent
from pyvswitch.config.schema import ExtensionSetting, PortConfig, PortKind, SwitchConfig
from pyvswitch.ext.api import Context, Sample, SamplingExtension
from pyvswitch.ext.registry import Registry
from pyvswitch.testing.frames import BCAST, eth
from pyvswitch.testing.harness import SwitchHarness

A, B, C = "02:00:00:00:00:0a", "02:00:00:00:00:0b", "02:00:00:00:00:0c"


class Recorder(SamplingExtension):
    name = "recorder"

    def __init__(self, switch: str) -> None:
        super().__init__(switch)
        self.samples: list[Sample] = []
        self.ticks = 0
        self.sampling_rate = 100

    def sampled(self, ctx: Context, samples: Sequence[Sample]) -> None:
        self.samples += samples

    def tick(self, ctx: Context, now: float) -> None:
        self.ticks += 1


REGISTRY = Registry.of(Recorder, SflowAgent, IpfixExporter)


def vm(name: str, mac: str) -> PortConfig:
    return PortConfig(name=name, kind=PortKind.VM, vm=name, switch="s", mac=mac)


def harness(*settings: ExtensionSetting) -> SwitchHarness:
    sw = SwitchConfig(name="s", extensions=list(settings))
    return SwitchHarness([sw], [vm("a", A), vm("b", B), vm("c", C)], REGISTRY)


def instance(h: SwitchHarness, name: str) -> object:
    stack = h.engine.switches["s"].ext
    assert stack is not None
    return next(s.instance for s in stack.slots if s.name == name)


def udp(frame_no: int) -> bytes:
    """A UDP/IPv4 frame A -> B (10.0.0.1:5000+n -> 10.0.0.2:53)."""
    from scapy.layers.inet import IP, UDP
    from scapy.layers.l2 import Ether

    return bytes(
        Ether(src=A, dst=B)
        / IP(src="10.0.0.1", dst="10.0.0.2")
        / UDP(sport=5000 + frame_no % 3, dport=53)
        / (b"x" * 30)
    )


def blast(h: SwitchHarness, port: str, frames: Sequence[bytes]) -> None:
    dev = h.port_device(port)
    for i in range(0, len(frames), 256):
        for f in frames[i : i + 256]:
            dev.inject(f)
        while h.engine.run_once():
            pass


def test_one_in_100_of_100k_frames_is_sampled_within_10_percent_and_the_flow_cache_stays_on() -> None:
    """EX-05, EX-16: sampling accuracy at 1-in-100 over 100k frames; a sampler adds no step and keeps the flow cache."""
    h = harness(ExtensionSetting(name="recorder"))
    sw = h.engine.switches["s"]
    port = sw.ports[sw.index_of["a"]]
    assert port is not None and port.flows is not None  # the flow cache is still in front of the chain
    assert sw.ext_active is None  # no extension step in any chain
    frame = eth(B, A, b"p" * 50)
    blast(h, "a", [frame] * 100_000)
    h.advance(1.5)  # the tick hands over what the sampler still holds
    rec = instance(h, "recorder")
    assert isinstance(rec, Recorder)
    n = len(rec.samples)
    assert 900 <= n <= 1100, f"{n} samples of 100,000 frames at 1-in-100"
    assert len(h.take("b")) == 100_000
    last = rec.samples[-1]
    assert 100_000 - 2 * 100 < last.pool <= 100_000  # the pool counts every frame, sampled or not
    assert all(s.outputs == (sw.index_of["b"],) and s.header == frame for s in rec.samples)
    assert port.flows.counters()["hits"] > 99_000  # type: ignore[operator]


def test_the_pool_counts_every_frame_across_a_sampler_rebuilt_between_batches() -> None:
    """A port event rebuilds the switch's sampler (refresh_extensions): the frames a port received since its
    countdown was set are told to the taps first, so the sample pool and the sampling rate run on unbroken."""
    h = harness(ExtensionSetting(name="recorder"))
    sw = h.engine.switches["s"]
    frame = eth(B, A, b"p" * 50)
    dev = h.port_device("a")
    for _ in range(3):
        for _ in range(5_000):  # batches of 4: most of them end under a countdown, their frames deferred
            for _ in range(4):
                dev.inject(frame)
            h.engine.run_once()
        first = sw.sampler
        sw.refresh_extensions()
        assert sw.sampler is not first  # a new sampler took over the old one's countdowns and pools
    assert sw.sampler is not None
    sw.sampler.settle()
    assert sw.sampler.taps[0].pools[sw.index_of["a"]] == 60_000  # every frame counted once, none lost
    h.advance(1.5)
    rec = instance(h, "recorder")
    assert isinstance(rec, Recorder)
    assert 510 <= len(rec.samples) <= 690, f"{len(rec.samples)} samples of 60,000 frames at 1-in-100"
    assert 60_000 - 2 * 100 < rec.samples[-1].pool <= 60_000
    pools = [s.pool for s in rec.samples]
    assert pools == sorted(pools) and len(set(pools)) == len(pools)  # one frame is sampled once, in order


def test_samples_say_where_frames_went_flooded_or_dropped() -> None:
    h = harness(ExtensionSetting(name="recorder"))
    rec = instance(h, "recorder")
    assert isinstance(rec, Recorder)
    rec.sampling_rate = 1
    h.engine.switches["s"].refresh_extensions()  # the sampler reads the rate again
    idx = h.engine.switches["s"].index_of
    h.send("a", eth(BCAST, A))
    h.send("a", eth(B, "02:00:00:00:00:99"))  # spoofed source on a VM port: dropped by the MAC guard
    h.advance(1.5)  # samples are held until 32 are taken or the next tick
    assert rec.ticks >= 1
    assert sorted(rec.samples[0].outputs) == sorted([idx["b"], idx["c"]])
    assert rec.samples[1].outputs == ()


def test_a_failing_sampler_is_contained_and_traffic_flows() -> None:
    class Broken(Recorder):
        name = "broken"

        def sampled(self, ctx: Context, samples: Sequence[Sample]) -> None:
            raise RuntimeError("boom")

    sw = SwitchConfig(name="s", extensions=[ExtensionSetting(name="broken")])
    h = SwitchHarness([sw], [vm("a", A), vm("b", B)], Registry.of(Broken))
    blast(h, "a", [eth(B, A)] * 500)
    assert len(h.take("b")) == 500
    counters = h.engine.counters()["switches"]["s"]["extensions"]  # type: ignore[index]
    assert next(e for e in counters if e["name"] == "broken")["errors"] >= 1


@contextmanager
def udp_listener() -> Iterator[socket.socket]:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    s.settimeout(5)
    try:
        yield s
    finally:
        s.close()


def tshark_sflow(datagrams: list[bytes], port: int, *fields: str) -> str:
    """tshark's decode of ``datagrams`` as UDP to ``port`` (written to a pcap by scapy): verbose, or the
    ``fields`` asked for, one line per datagram, several values of a field separated by commas."""
    from scapy.layers.inet import IP, UDP
    from scapy.layers.l2 import Ether
    from scapy.utils import wrpcap

    shape = (
        ["-T", "fields", "-E", "occurrence=a", *(a for f in fields for a in ("-e", f))] if fields else ["-V"]
    )
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "sflow.pcap"
        wrpcap(
            str(path),
            [
                Ether() / IP(src="127.0.0.1", dst="127.0.0.1") / UDP(sport=40000, dport=port) / d
                for d in datagrams
            ],
        )
        out = subprocess.run(
            ["tshark", "-n", "-r", str(path), "-d", f"udp.port=={port},sflow", *shape],
            capture_output=True, text=True, check=True, timeout=120,
        )  # fmt: skip
    return out.stdout


@pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark is installed by make test")
def test_sflow_datagrams_decode_in_tshark_without_malformed_packets() -> None:
    with udp_listener() as sock:
        port = sock.getsockname()[1]
        settings = {"collectors": [f"127.0.0.1:{port}"], "sampling_rate": 1, "polling_interval_s": 1}
        h = harness(ExtensionSetting(name="pyvswitch-sflow", settings=settings))
        blast(h, "a", [udp(i) for i in range(30)])
        h.send("a", eth(BCAST, A, ethertype=0x88B5))  # a local experimental EtherType: nothing to decode
        h.advance(1.5)  # the tick: counter samples (at once, and after the interval), and the flush
        agent = instance(h, "pyvswitch-sflow")
        assert isinstance(agent, SflowAgent)
        datagrams = []
        while True:
            try:
                datagrams.append(sock.recv(65535))
            except TimeoutError:
                break
            sock.settimeout(0.3)
    assert datagrams
    text = tshark_sflow(datagrams, port)
    assert "Malformed" not in text and "Expert Info" not in text, text[-3000:]
    assert text.count("Datagram version: 5") == len(datagrams)
    assert text.count("Flow sample, seq") == 31
    assert text.count("Counters sample, seq") == agent.counter_samples == 6  # a, b and c, twice
    assert "Sampling rate: 1 out of 1 packets" in text
    assert "Source Port: 5000" in text or "Src Port: 5000" in text  # the header record decodes down to UDP
    formats = re.findall(r"Output interface format: .*\((\d)\)", text)
    assert formats.count("0") == 30 and formats.count("2") == 1  # to b (ifIndex 2) 30 times, one flood
    assert "Output interface value: 2" in text


@contextmanager
def nfcapd(directory: Path) -> Iterator[int]:
    """nfcapd on a free UDP port of 127.0.0.1, writing to ``directory``; on leaving, it writes its file out."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    proc = subprocess.Popen(
        ["nfcapd", "-b", "127.0.0.1", "-p", str(port), "-w", str(directory), "-t", "3600"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        wait_bound(port)
        yield port
        # Everything sent has been read: nfcapd on SIGTERM writes out what it read, not what waits in its socket.
        deadline = time.monotonic() + 10
        while udp_queued(port) and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        proc.terminate()  # it writes out and closes the current file on SIGTERM
        proc.wait(timeout=30)


def udp_queued(port: int) -> int:
    """Bytes waiting in the receive queue of the UDP socket bound to 127.0.0.1:``port`` (/proc/net/udp)."""
    want = f"0100007F:{port:04X}"
    with open("/proc/net/udp") as f:
        for line in f.readlines()[1:]:
            fields = line.split()
            if fields[1] == want:
                return int(fields[4].split(":")[1], 16)
    return 0


def wait_bound(port: int, timeout_s: float = 10.0) -> None:
    """Until something listens on UDP ``port`` (nfcapd has no readiness signal)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                return  # taken: bound by the collector
        time.sleep(0.02)
    raise TimeoutError(f"nothing bound UDP port {port} in {timeout_s} s")


def nfdump_csv(directory: Path) -> list[dict[str, str]]:
    files = sorted(str(p) for p in directory.rglob("nfcapd.*"))
    assert files, f"nfcapd wrote nothing in {directory}"
    rows: list[dict[str, str]] = []
    for f in files:
        out = subprocess.run(
            ["nfdump", "-r", f, "-o", "csv", "-q"], capture_output=True, text=True, timeout=60
        )
        lines = [line for line in out.stdout.splitlines() if line.strip()]
        head = subprocess.run(["nfdump", "-r", f, "-o", "csv"], capture_output=True, text=True, timeout=60)
        names = head.stdout.splitlines()[0].split(",")
        rows += [dict(zip(names, line.split(","), strict=False)) for line in lines]
    return rows


@pytest.mark.skipif(shutil.which("nfcapd") is None, reason="nfdump is installed by make test")
def test_ipfix_records_read_by_nfdump_with_the_5_tuple_ports_and_counts(tmp_path: Path) -> None:
    directory = tmp_path
    with nfcapd(directory) as port:
        settings = {"collectors": [f"127.0.0.1:{port}"], "sampling_rate": 1, "idle_timeout_s": 1}
        h = harness(ExtensionSetting(name="pyvswitch-ipfix", settings=settings))
        blast(h, "a", [udp(i) for i in range(30)])
        h.advance(1.1)  # the samples handed over
        h.advance(1.1)  # the flows idle for a second: exported
        exporter = instance(h, "pyvswitch-ipfix")
        assert isinstance(exporter, IpfixExporter)
        assert exporter.exported == 3 and exporter.collectors.errors == 0
    rows = nfdump_csv(directory)
    flows = sorted(
        (r["sa"], r["da"], r["sp"], r["dp"], r["pr"], r["ipkt"], r["ibyt"], r["in"], r["out"]) for r in rows
    )
    # 10 frames of each source port; 58 octets of IP each (IPFIX counts from the IP header on).
    assert flows == [
        ("10.0.0.1", "10.0.0.2", str(5000 + i), "53", "UDP", "10", "580", "1", "2") for i in range(3)
    ], rows
