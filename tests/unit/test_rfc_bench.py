"""The RFC 2544 / 2889 benchmark's pure parts: steps, searches, classification, recovery analysis, pacing
arguments, frames, summary and ratios, JSON shaping for the plot, and the plot itself (to a file)."""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

import pytest

from pyvswitch.lab import benchplot, rfcbench
from pyvswitch.lab.bench import default_plot_path
from pyvswitch.lab.generator import (
    SEQ_OFFSET,
    TS_OFFSET,
    Ceiling,
    GeneratorProfile,
    Pacing,
    Sender,
    SenderReport,
    Trial,
    _command,
    gap_ns,
    parse_trafgen_send_rate,
    parse_trafgen_send_s,
    trafgen_config,
    trial_of,
    udp_frame,
)
from pyvswitch.lab.pktgen import Phase, Spec, due_frames
from pyvswitch.lab.recovery import (
    Received,
    analyse_recovery,
    latency_back,
    parse_bench_frame,
    parse_pcap,
    send_times,
)
from pyvswitch.lab.rfc2544 import (
    bracket,
    frame_loss_summary,
    load_steps,
    next_rate,
    next_size,
    rate_search,
    size_search,
    throughput_for_recovery,
)
from pyvswitch.lab.rfc2889 import (
    classify_caching,
    congestion_expected,
    congestion_rate_bps,
    loss_pct,
    mesh_expected,
)
from pyvswitch.lab.traffic import TrafficError

# trafgen 0.6.8's summary after `-n 60000 -b 20000pps` (its worker's wall time, sleeps included).
TRAFGEN_OUT = """
      60000 packets outgoing
     3600000 bytes outgoing
           3 sec, 301 usec on CPU0 (60000 packets)
"""

# ------------------------------------------------------------------------------------------------ steps


def test_load_steps_go_down_from_the_ceiling_in_ten_percent_steps() -> None:
    steps = load_steps(300_000, 10)
    assert [p for p, _ in steps] == [100, 90, 80, 70, 60, 50, 40, 30, 20, 10]
    assert steps[0][1] == 300_000 and steps[-1][1] == pytest.approx(30_000)
    assert [p for p, _ in load_steps(1000, 5)] == [100, 80, 60, 40, 20]
    with pytest.raises(ValueError):
        load_steps(1000, 0)


def test_frame_loss_summary_takes_the_first_two_consecutive_zero_loss_steps() -> None:
    pts = [
        {"step_pct": 100, "offered_pps": 100_000, "loss_pct": 20.0},
        {"step_pct": 90, "offered_pps": 90_000, "loss_pct": 0.0},
        {"step_pct": 80, "offered_pps": 80_000, "loss_pct": 1.0},
        {"step_pct": 70, "offered_pps": 70_000, "loss_pct": 0.0},
        {"step_pct": 60, "offered_pps": 60_000, "loss_pct": 0.0},
    ]
    s = frame_loss_summary(pts)
    assert s["rfc_zero_loss_pps"] == 70_000  # 90 % alone is not two in a row
    assert s["highest_zero_loss_pps"] == 90_000
    assert s["monotone"] is False and s["lossless_at_all_steps"] is False and s["max_loss_pct"] == 20.0
    lossless = frame_loss_summary([{**p, "loss_pct": 0.0} for p in pts])
    assert lossless["rfc_zero_loss_pps"] == 100_000 and lossless["lossless_at_all_steps"]
    assert frame_loss_summary([])["rfc_zero_loss_pps"] is None


# --------------------------------------------------------------------------------------------- searches


def test_bracket_ignores_failures_below_the_best_pass() -> None:
    assert bracket([(10, True), (5, False), (20, False), (30, False)], 100) == (10, 20)
    assert bracket([(10, False)], 100) == (0, 10)
    assert bracket([(10, True)], 100) == (10, 100)


def test_next_size_doubles_then_bisects_and_stops_at_the_cap() -> None:
    assert next_size([], 1024, 65536, 0.01) == 1024
    assert next_size([(1024, True)], 1024, 65536, 0.01) == 2048
    assert next_size([(1024, True), (2048, False)], 1024, 65536, 0.01) == 1536
    assert next_size([(65536, True)], 1024, 65536, 0.01) is None
    assert next_size([(32768, True)], 1024, 65536, 0.01) == 65536
    assert next_size([(8000, True), (8050, False)], 1024, 65536, 0.01) is None  # within 1 %
    assert next_size([(1024, False)], 1024, 65536, 0.01) == 512


def test_size_search_finds_a_table_size() -> None:
    capacity = 8190
    calls: list[int] = []

    def run(n: int) -> bool:
        calls.append(n)
        return n <= capacity

    best, trials = size_search(run, 1024, 65536, 0.01, 20)
    assert capacity * 0.99 <= best <= capacity
    assert trials[:5] == [(1024, True), (2048, True), (4096, True), (8192, False), (6144, True)]
    best_cap, _ = size_search(lambda n: True, 1024, 16384, 0.01, 20)
    assert best_cap == 16384
    nothing, _ = size_search(lambda n: False, 1024, 16384, 0.01, 4)
    assert nothing == 0


def test_rate_search_uses_achieved_rates_and_reports_generator_bound() -> None:
    # The generator makes at most 300k; the forwarder passes up to 120k.
    def run(target: float) -> tuple[float, bool]:
        achieved = min(target, 300_000.0)
        return achieved, achieved <= 120_000

    best, bound, trials = rate_search(run, 1_000_000, 0.05, 10)
    assert not bound and trials[0] == (300_000, False)
    assert 120_000 * 0.95 <= best <= 120_000
    best, bound, trials = rate_search(lambda t: (min(t, 300_000.0), True), 1_000_000, 0.05, 10)
    assert bound and best == 300_000 and len(trials) == 1
    assert next_rate([(100.0, True), (104.0, False)], 1000, 0.05) is None


# ---------------------------------------------------------------------------------------------- 2889


def test_caching_trial_classification() -> None:
    assert classify_caching(100, 100, 0, 100, 0) == "pass"
    assert classify_caching(100, 99, 0, 100, 0) == "learning-frames-lost"
    assert classify_caching(100, 100, 0, 100, 3) == "flooded"
    assert classify_caching(100, 100, 0, 97, 0) == "test-frames-lost"
    assert classify_caching(100, 100, 2, 100, 0) == "learning-frames-flooded"


def test_congestion_accounting() -> None:
    assert congestion_expected(11, 10) == (16, 5)  # h1 alternates starting with the congested port
    assert congestion_rate_bps(10_000) == 2_400_000  # a third of the 15k frames/s it is offered, 60 B
    assert loss_pct(0, 0) == 0.0 and loss_pct(200, 150) == 25.0 and loss_pct(100, 120) == 0.0


def test_mesh_expected_counts_round_robin_destinations() -> None:
    due = mesh_expected({0: 7, 1: 3, 2: 3, 3: 3}, 4)
    # host 0 sends 3,2,2 to hosts 1,2,3; the others 1 to each of theirs
    assert due == {0: 3, 1: 3 + 2, 2: 2 + 2, 3: 2 + 2}
    assert sum(due.values()) == 16


# -------------------------------------------------------------------------------------------- recovery


def test_recovery_from_sequence_numbers() -> None:
    # 1,000 frames/s from t=99 s for 3 s; an overload from 100.0 to 101.0 s. Lost: 10 during the overload
    # (100.5 s) and two after it, the last one 50 ms after the drop; a 20 ms backlog for 30 ms after it.
    rate, t_over, t_drop = 1000.0, 100.0, 101.0
    lost = {1500, *range(1501, 1510), 2040, 2050}
    rx = []
    for s in range(3000):
        tx = 99.0 + s / rate
        if s in lost:
            continue
        delay = 0.02 if t_drop <= tx < t_drop + 0.03 else 0.00005
        rx.append(Received(s, tx, tx + delay))
    res = analyse_recovery(rx, 3000, rate, t_over, t_drop)
    assert res["stream_lost"] == 12 and res["lost_before_overload"] == 0
    assert res["lost_during_overload"] == 10 and res["lost_after_drop"] == 2
    assert res["recovery_ms"] == pytest.approx(50.0)
    assert res["latency_recovery_ms"] == pytest.approx(30.0, abs=10.0)
    assert res["baseline_latency_p50_ms"] == pytest.approx(0.05, abs=0.001)
    clean = analyse_recovery([r for r in rx if r.seq < 900], 900, rate, t_over, t_drop)
    assert clean["recovery_ms"] == 0.0 and clean["stream_lost"] == 0 and clean["latency_recovery_ms"] is None


def test_send_times_of_lost_frames_are_interpolated() -> None:
    rx = [Received(0, 10.0, 10.1), Received(10, 11.0, 11.1)]
    when = send_times(rx, [5, 12, -1], 10.0)
    assert when[5] == pytest.approx(10.5)  # between its neighbours' own send times
    assert when[12] == pytest.approx(11.2)  # past the end: at the stream's rate
    assert send_times([], [1], 10.0) == {}


def test_latency_back_ignores_a_lone_late_frame() -> None:
    samples = [(10.0 + i * 0.001, 5.0 if i < 20 else 0.1) for i in range(100)]
    samples[60] = (samples[60][0], 9.0)
    assert latency_back(samples, 10.0, 0.5) == pytest.approx(20.0)
    assert latency_back([(10.0, 5.0)], 10.0, 0.5) is None


def test_bench_frames_carry_sequence_and_send_time() -> None:
    f = bytearray(udp_frame("02:00:00:00:00:02", "02:00:00:00:00:01", dport=7))
    assert len(f) == 60
    struct.pack_into(">I", f, SEQ_OFFSET, 1234)
    struct.pack_into("<d", f, TS_OFFSET, 1.5)
    assert parse_bench_frame(bytes(f)) == (1234, 1.5)
    assert parse_bench_frame(b"\x00" * 20) is None
    assert len(udp_frame("02:00:00:00:00:02", "02:00:00:00:00:01", 1518)) == 1514
    with pytest.raises(ValueError):
        udp_frame("02:00:00:00:00:02", "02:00:00:00:00:01", 40)


def test_throughput_for_recovery_prefers_the_smooth_sweep() -> None:
    sweeps = {"smooth": {"rfc_zero_loss_pps": 50_000.0, "highest_zero_loss_pps": 60_000.0}}
    assert throughput_for_recovery(sweeps, 7_000) == (50_000.0, "smooth sweep rfc_zero_loss_pps")
    none = {
        "smooth": {"rfc_zero_loss_pps": None, "highest_zero_loss_pps": None, "generator_ceiling_pps": 300_000}
    }
    assert throughput_for_recovery(none, None)[0] == 30_000.0
    assert throughput_for_recovery({}, 7_000)[0] == 7_000.0


# ---------------------------------------------------------------------------------------------- pacing


def test_pacing_command_lines() -> None:
    frame = udp_frame("02:00:00:00:00:02", "02:00:00:00:00:01")
    burst = Sender.simple("ns", "eth0", Pacing.BURST, [frame], 20_000, 40_000)
    assert _command(burst, "/c", 0)[-2:] == ["-b", "20000pps"]
    assert "-n" in _command(burst, "/c", 0)
    gap = Sender.simple("ns", "eth0", Pacing.GAP, [frame], 20_000, 100)
    assert _command(gap, "/c", 24_000)[-2:] == ["-t", "26000ns"]  # 50 us period less 24 us of overhead
    unpaced = Sender.simple("ns", "eth0", Pacing.UNPACED, [frame], 1e9, 4096)
    assert _command(unpaced, "/c", 0)[-2:] == ["-n", "4096"]
    smooth = Sender.simple("ns", "eth0", Pacing.SMOOTH, [frame], 1e5, 10)
    assert _command(smooth, "/spec.json", 0)[-2:] == ["pyvswitch.lab.pktgen", "/spec.json"]
    seq = Sender("ns", "eth0", Pacing.BURST, [Phase(1.0, 1, [frame.hex()], SEQ_OFFSET)])
    with pytest.raises(ValueError):
        _command(seq, "/c", 0)
    assert gap_ns(1_000_000, 24_000) == 1000  # never below 1 us
    assert burst.expected_s() == 2.0


def test_trafgen_parsers_and_raw_config() -> None:
    assert parse_trafgen_send_s(TRAFGEN_OUT) == pytest.approx(3.000301)
    assert parse_trafgen_send_rate(TRAFGEN_OUT) == pytest.approx(60000 / 3.000301)
    assert parse_trafgen_send_s("nothing") is None
    cfg = trafgen_config([b"\x01\x02", bytes(range(20))])
    assert cfg.count("{") == 2 and "0x01, 0x02" in cfg and "0x13" in cfg
    with pytest.raises(ValueError):
        trafgen_config([])


def test_trial_rates_and_pktgen_schedule() -> None:
    rep = SenderReport("smooth", 1000, 1000, elapsed_s=1.2, send_s=1.0, max_lag=3)
    t = trial_of(Pacing.SMOOTH, 1000, [rep], offered=1000, delivered=990)
    assert t.offered_pps == 1000 and t.delivered_pps == 990 and t.loss_pct == pytest.approx(1.0)
    assert t.as_dict()["max_lag"] == 3
    assert Trial("x", 1, 0, 0, 0).loss_pct == 100.0
    assert due_frames(0.0, 1000, 10) == 1 and due_frames(0.0095, 1000, 100) == 10
    assert due_frames(5.0, 1000, 10) == 10 and due_frames(-1, 1000, 10) == 0
    spec = Spec("eth0", [Phase(10.0, 5, ["00ff"], 42, 46, 7)])
    assert Spec.from_json(spec.to_json()) == spec


def test_generator_profile_lookup() -> None:
    prof = GeneratorProfile(
        ceilings=[
            Ceiling("smooth", 64, 1, 5e6, 300_000, 300_000),
            Ceiling("smooth", 64, 4, 5e6, 250_000, 250_000),
        ]
    )
    assert prof.ceiling(Pacing.SMOOTH) == 300_000
    assert prof.ceiling("smooth", senders=4) == 250_000
    assert prof.ceiling(Pacing.BURST) is None
    doc = prof.as_dict()
    assert set(doc["pacing"]) == {"smooth", "burst", "gap", "unpaced"}
    json.dumps(doc)


# ------------------------------------------------------------------------------------- summary, JSON, plot


def _doc() -> dict[str, Any]:
    def sweep(losses: list[float], ceiling: float) -> dict[str, Any]:
        pts = []
        for (pct, target), loss in zip(load_steps(ceiling, len(losses)), losses, strict=True):
            pts.append(
                {
                    "step_pct": pct,
                    "offered_pps": round(target),
                    "delivered_pps": round(target * (1 - loss / 100)),
                    "loss_pct": loss,
                }
            )
        return {
            "pacing": "smooth",
            "generator_ceiling_pps": ceiling,
            "points": pts,
            **frame_loss_summary(pts),
        }

    r2544 = {
        "linux-bridge": {
            "sweeps": {"smooth": sweep([0, 0, 0], 300_000)},
            "back_to_back": {"burst_frames": 262_144, "at_cap": True},
            "recovery": {
                "valid": True,
                "recovery_ms": 0.0,
                "latency_recovery_ms": 0.0,
                "overload_factor": 1.0,
            },
            "errors": {},
        },
        "pyvswitch": {
            "sweeps": {"smooth": sweep([10, 0, 0], 300_000)},
            "back_to_back": {"burst_frames": 40_000, "at_cap": False},
            "recovery": {"valid": False, "recovery_ms": 12.0, "overload_factor": 2.0},
            "errors": {},
        },
    }
    mesh = {
        "zero_loss_pps": 200_000,
        "generator_bound": True,
        "generator_ceiling_pps": 250_000,
        "max_forwarding_rate_pps": 200_000,
        "trials": [{"offered_pps": 200_000, "delivered_pps": 200_000}],
    }
    r2889 = {
        "linux-bridge": {
            "caching": {"addresses": 65_536, "at_cap": True},
            "mesh": mesh,
            "congestion": {"loss_uncongested_pct": 0.0, "loss_congested_pct": 40.0},
        },
        "pyvswitch": {
            "caching": {"addresses": 8_160, "at_cap": False},
            "learning": {"rate_pps": 90_000, "generator_bound": False},
            "mesh": {**mesh, "generator_bound": False, "zero_loss_pps": 100_000},
            "congestion": {"loss_uncongested_pct": 0.0, "loss_congested_pct": 38.0},
        },
    }
    return {"rfc2544": r2544, "rfc2889": r2889, "summary": rfcbench.summarise(r2544, r2889)}


def test_summary_marks_bounds_and_qualifies_ratios() -> None:
    s = _doc()["summary"]
    assert s["sweep_smooth_pps"]["linux-bridge"] == {"value": 300_000.0, "bound": "generator"}
    assert s["sweep_smooth_pps"]["pyvswitch"] == {"value": 200_000.0, "bound": None}
    assert s["sweep_smooth_pps"]["ratio"]["kind"] == "at_most"  # the bridge's figure is a lower bound
    assert s["caching_addresses"]["ratio"] == {"value": 8_160 / 65_536, "kind": "at_most"}
    assert s["mesh_pps"]["ratio"]["kind"] == "at_most"
    assert s["b2b_frames"]["pyvswitch"]["value"] == 40_000
    assert s["recovery_ms"]["pyvswitch"]["value"] is None  # an invalid capture gives no figure
    assert s["recovery_overload_factor"]["pyvswitch"]["value"] == 2.0
    assert s["learning_pps"]["ratio"] is None  # the bridge has none here
    assert "ratio" not in s["congestion_hol_loss_pct"]
    json.dumps(s)


def test_ratio_kinds_and_formatting() -> None:
    exact = rfcbench.ratio({"value": 50.0, "bound": None}, {"value": 100.0, "bound": None})
    assert exact == {"value": 0.5, "kind": "exact"} and rfcbench.fmt_ratio(exact) == "0.50x"
    least = rfcbench.ratio({"value": 50.0, "bound": "cap"}, {"value": 100.0, "bound": None})
    assert rfcbench.fmt_ratio(least) == ">= 0.50x"
    assert rfcbench.ratio({"value": 5.0, "bound": "cap"}, {"value": 1.0, "bound": "generator"}) is None
    assert rfcbench.ratio({"value": 5.0, "bound": None}, {"value": 0.0, "bound": None}) is None
    assert rfcbench.fmt_value({"value": 123456.0, "bound": "generator"}) == ">= 123,456"
    assert rfcbench.fmt_value({"value": 0.25, "bound": None}) == "0.25"
    assert rfcbench.fmt_value(None) == "—"


def test_render_prints_every_table(capsys: pytest.CaptureFixture[str]) -> None:
    from rich.console import Console

    doc = _doc()
    doc["generator"] = GeneratorProfile([Ceiling("smooth", 64, 1, 5e6, 300_000, 300_000)]).as_dict()
    rfcbench.render(Console(width=200, force_terminal=False), doc)
    out = capsys.readouterr().out
    assert "Generator alone" in out and "RFC 2544 / RFC 2889" in out and "Loss vs offered load" in out
    assert ">= 300,000" in out and "8,160" in out


def test_plot_series_and_png(tmp_path: Path) -> None:
    doc = {"rfc": _doc(), "started": "2026-12-05", "host": {"kernel": "6.18", "cpus": 2}}
    panels = benchplot.series(doc)
    assert [p["ceiling"] for p in panels] == [300_000, 250_000]
    assert set(panels[0]["lines"]) == {"linux-bridge", "pyvswitch"}
    xs = [x for x, _ in panels[0]["lines"]["pyvswitch"]]
    assert xs == sorted(xs)
    assert benchplot.series({}) == []
    assert not benchplot.plot_bench({}, str(tmp_path / "none.png"))
    pytest.importorskip("matplotlib")
    out = tmp_path / "bench.png"
    assert benchplot.plot_bench(doc, str(out))
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_default_plot_path() -> None:
    assert default_plot_path("bench.json") == "bench.png"
    assert default_plot_path("/tmp/x/run.json") == "/tmp/x/run.png"
    assert default_plot_path(None) is None


def test_sweep_value_bounds() -> None:
    def sw(losses: list[float]) -> dict[str, Any]:
        pts = [
            {"step_pct": pct, "offered_pps": round(t), "loss_pct": loss}
            for (pct, t), loss in zip(load_steps(100_000, len(losses)), losses, strict=True)
        ]
        return {"points": pts, **frame_loss_summary(pts)}

    assert rfcbench.sweep_value(sw([0, 0, 0])) == {"value": 100_000.0, "bound": "generator"}
    assert rfcbench.sweep_value(sw([5, 0, 0])) == {"value": 66_667.0, "bound": None}
    # 100 % passed, 67 % did not: the RFC's stopping point is lower, and exact
    assert rfcbench.sweep_value(sw([0, 3, 0, 0])) == {"value": 50_000.0, "bound": None}
    below = rfcbench.sweep_value(sw([9, 8, 0]))
    assert below == {"value": 33_333.0, "bound": "below"} and rfcbench.fmt_value(below) == "<= 33,333"
    # ours at most, theirs at least: pyvswitch / bridge is at most the quotient
    r = rfcbench.ratio(below, {"value": 100_000.0, "bound": "generator"})
    assert r is not None and r["kind"] == "at_most" and r["value"] == pytest.approx(0.33333)
    assert rfcbench.ratio({"value": 1.0, "bound": "cap"}, {"value": 2.0, "bound": "below"}) is not None
    assert rfcbench.ratio(below, {"value": 2.0, "bound": "below"}) is None


def test_parse_pcap_reads_tcpdump_files() -> None:
    hdr = struct.pack("<IHHiIII", 0xA1B23C4D, 2, 4, 0, 0, 65535, 1)
    rec1 = struct.pack("<IIII", 100, 500_000_000, 3, 3) + b"abc"
    rec2 = struct.pack("<IIII", 101, 0, 10, 10) + b"cut"
    assert parse_pcap(hdr + rec1 + rec2) == [(100.5, b"abc")]  # the cut-off record is left out
    us = (
        struct.pack(">IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)
        + struct.pack(">IIII", 7, 250_000, 1, 1)
        + b"x"
    )
    assert parse_pcap(us) == [(7.25, b"x")]
    assert parse_pcap(b"") == []
    with pytest.raises(TrafficError):
        parse_pcap(b"\x00" * 24)


def test_udp_frame_is_a_valid_ipv4_udp_frame() -> None:
    from pyvswitch.packet.checksum import internet_checksum

    f = udp_frame("02:00:00:00:00:02", "02:00:00:00:00:01", 128, dport=7)
    assert len(f) == 124 and f[:6] == bytes.fromhex("020000000002") and f[12:14] == b"\x08\x00"
    assert internet_checksum(f[14:34]) == 0  # header checksum right
    assert struct.unpack(">H", f[16:18])[0] == 110 and struct.unpack(">HHH", f[34:40]) == (9, 7, 90)
