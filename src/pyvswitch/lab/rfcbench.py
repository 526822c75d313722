"""The RFC 2544 / RFC 2889 part of ``pyvswitch bench``: the generator's ceilings, the RFC tests for each
forwarder in one run, a summary with pyvswitch / bridge ratios, and its tables.

A figure the test could not push to its limit is a lower bound and is printed as ``>= value``: ``generator``
(the forwarder passed at the most the generator achieved, measured on a direct veth pair in the same run) or
``cap`` (the search's largest size passed). A loss sweep without two consecutive zero-loss steps gives an
upper bound, ``<= lowest step`` (``below``). A ratio with a bound is a bound too; with bounds pulling both
ways it is not printed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from rich.console import Console
from rich.table import Table

from pyvswitch.lab import rfc2544, rfc2889
from pyvswitch.lab.generator import GeneratorProfile, measure_generator
from pyvswitch.lab.harness import (
    DirectPairs,
    Forwarder,
    Harness,
    LinuxBridge,
    PyvswitchForwarder,
    StarHarness,
    StarPyvswitch,
)
from pyvswitch.lab.rfc2544 import Context, RfcPlan

log = logging.getLogger(__name__)

SUITES = ("classic", "rfc2544", "rfc2889")


@dataclass(frozen=True)
class Metric:
    key: str
    label: str
    higher_better: bool
    ratio: bool  # a pyvswitch / bridge ratio means something (not for loss percentages or times near 0)


SUMMARY_METRICS: tuple[Metric, ...] = (
    Metric("sweep_smooth_pps", "64 B zero-loss load, evenly paced (RFC 2544 26.3 sweep)", True, True),
    Metric("sweep_smooth_max_loss_pct", "64 B worst loss in that sweep, %", False, False),
    Metric("sweep_burst_pps", "64 B zero-loss load, trafgen -b bursts (sweep)", True, True),
    Metric("sweep_burst_max_loss_pct", "64 B worst loss in that sweep, %", False, False),
    Metric("sweep_gap_pps", "64 B zero-loss load, trafgen -t gaps (sweep)", True, True),
    Metric("b2b_frames", "back-to-back burst forwarded whole, frames (26.4)", True, True),
    Metric("recovery_ms", "recovery from an overload (2x asked): last loss, ms (26.5)", False, False),
    Metric("recovery_latency_ms", "... latency back to baseline, ms", False, False),
    Metric("recovery_overload_factor", "... overload achieved, x throughput", True, False),
    Metric("caching_addresses", "address caching capacity, MACs (RFC 2889 5.7)", True, True),
    Metric("learning_pps", "address learning rate, frames/s (5.8)", True, True),
    Metric("congestion_hol_loss_pct", "congestion: loss on the uncongested port, % (5.5)", False, False),
    Metric("congestion_congested_loss_pct", "congestion: loss on the congested port, %", False, False),
    Metric("broadcast_pps", "broadcast zero-loss rate, frames/s in (5.10)", True, True),
    Metric("broadcast_max_per_port_pps", "broadcast forwarding rate at max load, a port", True, True),
    Metric("mesh_pps", "fully meshed 4 ports, zero-loss aggregate frames/s (5.1)", True, True),
    Metric("mesh_max_pps", "fully meshed 4 ports, forwarding rate at max load", True, True),
)

Value = dict[str, Any]  # {"value": float | None, "bound": None | "generator" | "cap"}


def _v(value: Any, bound: str | None = None) -> Value:
    return {
        "value": float(value) if value is not None else None,
        "bound": bound if value is not None else None,
    }


def sweep_value(sw: dict[str, Any]) -> Value:
    """A loss sweep's zero-loss load (RFC 2544 §26.3's stopping point: the first of two consecutive zero-loss
    steps from the top). At the top step it is bounded by the generator (``generator``: at least); with no
    two such steps at all it is below the lowest step tried (``below``: at most that)."""
    pts = sorted(sw["points"], key=lambda p: -p["step_pct"])
    value = sw.get("rfc_zero_loss_pps")
    if value is not None:
        at_top = float(pts[0]["offered_pps"]) == float(value) and pts[0]["loss_pct"] == 0
        return _v(value, "generator" if at_top else None)
    return _v(pts[-1]["offered_pps"], "below")


def summarise_forwarder(r2544: dict[str, Any] | None, r2889: dict[str, Any] | None) -> dict[str, Value]:
    """One forwarder's summary figures from its RFC 2544 and RFC 2889 results (either may be missing)."""
    out: dict[str, Value] = {m.key: _v(None) for m in SUMMARY_METRICS}
    a = r2544 or {}
    for pacing, sw in (a.get("sweeps") or {}).items():
        key = f"sweep_{pacing}_pps"
        if key in out and sw.get("points"):
            out[key] = sweep_value(sw)
        if f"sweep_{pacing}_max_loss_pct" in out:
            out[f"sweep_{pacing}_max_loss_pct"] = _v(sw.get("max_loss_pct"))
    b2b = a.get("back_to_back")
    if b2b:
        out["b2b_frames"] = _v(b2b["burst_frames"], "cap" if b2b.get("at_cap") else None)
    rec = a.get("recovery")
    if rec and rec.get("valid") and rec.get("overloaded"):
        out["recovery_ms"] = _v(rec.get("recovery_ms"))
        out["recovery_latency_ms"] = _v(rec.get("latency_recovery_ms"))
    if rec:
        out["recovery_overload_factor"] = _v(rec.get("overload_factor"))
    b = r2889 or {}
    if b.get("caching"):
        c = b["caching"]
        out["caching_addresses"] = _v(c["addresses"], "cap" if c.get("at_cap") else None)
    if b.get("learning"):
        lr = b["learning"]
        out["learning_pps"] = _v(lr["rate_pps"], "generator" if lr.get("generator_bound") else None)
    if b.get("congestion"):
        cg = b["congestion"]
        out["congestion_hol_loss_pct"] = _v(cg["loss_uncongested_pct"])
        out["congestion_congested_loss_pct"] = _v(cg["loss_congested_pct"])
    if b.get("broadcast"):
        bc = b["broadcast"]
        out["broadcast_pps"] = _v(bc["zero_loss_pps"], "generator" if bc.get("generator_bound") else None)
        out["broadcast_max_per_port_pps"] = _v(bc.get("max_load_forwarding_rate_per_port_pps"))
    if b.get("mesh"):
        m = b["mesh"]
        out["mesh_pps"] = _v(m["zero_loss_pps"], "generator" if m.get("generator_bound") else None)
        out["mesh_max_pps"] = _v(m.get("max_forwarding_rate_pps"))
    return out


UPPER_BOUNDS = ("below",)  # the value is at most this; other bounds ("generator", "cap") say at least


def _direction(v: Value) -> int:
    """+1: the true figure is at least the value, -1: at most, 0: the value is the figure."""
    b = v.get("bound")
    return 0 if not b else -1 if b in UPPER_BOUNDS else 1


def ratio(ours: Value, theirs: Value) -> dict[str, Any] | None:
    """pyvswitch / bridge with what it is: ``exact``, ``at_least`` or ``at_most``, from the bounds on either
    side. None when a side is missing or zero, or the bounds pull both ways."""
    x, y = ours.get("value"), theirs.get("value")
    if x is None or not y:
        return None
    d = {_direction(ours), -_direction(theirs)} - {0}
    if len(d) > 1:
        return None
    kind = "exact" if not d else "at_least" if d == {1} else "at_most"
    return {"value": x / y, "kind": kind}


def summarise(r2544: dict[str, dict[str, Any]], r2889: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Per metric: each forwarder's value and, where it means something, pyvswitch / bridge."""
    names = sorted(set(r2544) | set(r2889))
    per = {n: summarise_forwarder(r2544.get(n), r2889.get(n)) for n in names}
    out: dict[str, Any] = {}
    for m in SUMMARY_METRICS:
        row: dict[str, Any] = {n: per[n][m.key] for n in names}
        if m.ratio and "pyvswitch" in per and "linux-bridge" in per:
            row["ratio"] = ratio(per["pyvswitch"][m.key], per["linux-bridge"][m.key])
        out[m.key] = row
    return out


# ------------------------------------------------------------------------------------------------- text


def fmt_value(v: Value | None) -> str:
    if not v or v.get("value") is None:
        return "—"
    x = float(v["value"])
    text = f"{x:,.0f}" if abs(x) >= 100 else f"{x:.1f}" if abs(x) >= 10 else f"{x:.2f}"
    return {1: f">= {text}", -1: f"<= {text}", 0: text}[_direction(v)]


def fmt_ratio(r: dict[str, Any] | None) -> str:
    if not r:
        return "—"
    prefix = {"exact": "", "at_least": ">= ", "at_most": "<= "}[r["kind"]]
    return f"{prefix}{r['value']:.2f}x"


def render(console: Console, doc: dict[str, Any]) -> None:
    """The generator's ceilings, the summary, and the loss sweeps as tables."""
    gen = doc.get("generator") or {}
    if gen.get("ceilings"):
        t = Table(
            title="Generator alone: direct veth pair, no forwarder, same run (the most any test can offer)"
        )
        for col in ("pacing", "frame", "senders", "frames/s", "how"):
            t.add_column(col, justify="left" if col in ("pacing", "how") else "right")
        for c in gen["ceilings"]:
            how = (gen.get("pacing") or {}).get(c["pacing"], "")
            t.add_row(c["pacing"], f"{c['frame_size']} B", str(c["senders"]), f"{c['achieved_pps']:,}", how)
        console.print(t)
    summary = doc.get("summary") or {}
    names = [n for n in ("linux-bridge", "pyvswitch") if any(n in row for row in summary.values())]
    names += sorted({n for row in summary.values() for n in row if n not in ("ratio", *names)})
    if summary:
        t = Table(
            title="RFC 2544 / RFC 2889 — same harness, same run (>= : bounded by the generator or the search cap)"
        )
        t.add_column("test")
        for n in names:
            t.add_column(n, justify="right")
        t.add_column("pyvswitch / bridge", justify="right")
        for m in SUMMARY_METRICS:
            row = summary.get(m.key) or {}
            if all((row.get(n) or {}).get("value") is None for n in names):
                continue  # not run (quick mode, a suite left out) or failed: the errors below say which
            t.add_row(m.label, *(fmt_value(row.get(n)) for n in names), fmt_ratio(row.get("ratio")))
        console.print(t)
    r2544 = doc.get("rfc2544") or {}
    pacings: list[str] = []
    for res in r2544.values():
        for p in (res or {}).get("sweeps") or {}:
            if p not in pacings:
                pacings.append(p)
    for pacing in pacings:
        t = Table(title=f"Loss vs offered load, 64 B, {pacing} pacing (steps of the generator's ceiling)")
        t.add_column("step", justify="right")
        fwd_names = [n for n in r2544 if ((r2544[n] or {}).get("sweeps") or {}).get(pacing)]
        for n in fwd_names:
            t.add_column(f"{n} offered/s", justify="right")
            t.add_column(f"{n} loss %", justify="right")
        steps = sorted(
            {p["step_pct"] for n in fwd_names for p in r2544[n]["sweeps"][pacing]["points"]}, reverse=True
        )
        for s in steps:
            cells = [f"{s} %"]
            for n in fwd_names:
                pt = next((p for p in r2544[n]["sweeps"][pacing]["points"] if p["step_pct"] == s), None)
                cells += [f"{pt['offered_pps']:,}", f"{pt['loss_pct']:.3f}"] if pt else ["—", "—"]
            t.add_row(*cells)
        console.print(t)
    for n, res in r2544.items():
        rec = (res or {}).get("recovery")
        if rec and not rec.get("overloaded"):
            console.print(
                f"[dim]recovery: {n} lost nothing at {rec.get('overload_factor')}x its measured throughput "
                "(the most the generator made): not overloaded, no recovery figure[/dim]"
            )
        elif rec and not rec.get("valid"):
            console.print(
                f"[yellow]recovery: {n}: the sink capture dropped frames; no recovery figure[/yellow]"
            )
    for section in ("rfc2544", "rfc2889"):
        for n, res in (doc.get(section) or {}).items():
            for key, why in ((res or {}).get("errors") or {}).items():
                console.print(f"[yellow]{n}: {section} {key} failed: {why}[/yellow]")


# ------------------------------------------------------------------------------------------------ running


def star_variant(fwd: Forwarder) -> Forwarder | None:
    """The same forwarder for the four-port star (None: it has no star form)."""
    if type(fwd) is PyvswitchForwarder:
        return StarPyvswitch(fwd.bin_dir)
    if isinstance(fwd, LinuxBridge):
        return LinuxBridge()
    return None


def measure_profile(quick: bool, console: Console) -> GeneratorProfile:
    with DirectPairs(2) as pairs:
        console.print(f"generator reference: direct veth pairs {pairs.namespaces}, CPU {pairs.gen_cpu}")
        return measure_generator(pairs.pairs, pairs.gen_cpu, quick)


def run_rfc2544(
    harness: Harness,
    fwds: Sequence[Forwarder],
    profile: GeneratorProfile,
    plan: RfcPlan,
    console: Console,
    classic_ndr: Callable[[str], float | None],
    failures: dict[str, str],
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for fwd in fwds:
        if fwd.name in failures:
            continue
        console.print(f"[bold]{fwd.name}[/bold] — RFC 2544")
        try:
            fwd.start(harness)
        except (RuntimeError, TimeoutError, OSError) as exc:
            failures[fwd.name] = f"could not start: {exc}"
            continue
        try:
            ctx = Context(harness, profile, plan, fwd.name, log=lambda m: console.print(f"  [dim]{m}[/dim]"))
            out[fwd.name] = rfc2544.run_suite(ctx, classic_ndr(fwd.name))
        finally:
            fwd.stop()
    return out


def run_rfc2889(
    fwds: Sequence[Forwarder],
    profile: GeneratorProfile,
    plan: RfcPlan,
    console: Console,
    failures: dict[str, str],
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    stars = [(f.name, star_variant(f)) for f in fwds if f.name not in failures]
    with StarHarness(4) as star:
        console.print(f"star harness {star.namespaces}")
        for name, sfwd in stars:
            if sfwd is None:
                continue
            console.print(f"[bold]{name}[/bold] — RFC 2889, 4 ports")
            try:
                sfwd.start(star)
            except (RuntimeError, TimeoutError, OSError) as exc:
                failures[name] = f"could not start on the star: {exc}"
                continue
            try:
                ctx = Context(star, profile, plan, name, log=lambda m: console.print(f"  [dim]{m}[/dim]"))
                out[name] = rfc2889.run_suite(ctx, sfwd)
            finally:
                sfwd.stop()
    return out
