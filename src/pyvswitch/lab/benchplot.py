"""The benchmark's picture: delivered against offered load for pyvswitch and the Linux bridge, from the JSON
document ``pyvswitch bench`` writes (so a saved ``bench.json`` can be drawn again).

One panel per pacing of the RFC 2544 loss sweep (the generator's ceiling on a direct veth pair drawn as a
vertical line: offered load cannot go past it), and one for the fully meshed four-port test. matplotlib is
an optional dependency (``pip install pyvswitch[bench]``; ``make bench`` installs it); without it
``plot_bench`` says so and draws nothing.
"""

from __future__ import annotations

import logging
from typing import Any

log = logging.getLogger(__name__)

COLOURS = {"pyvswitch": "tab:blue", "linux-bridge": "tab:orange"}
PACING_TITLES = {
    "smooth": "64 B, evenly paced (pktgen, <= 8-frame micro-bursts)",
    "burst": "64 B, trafgen -b (each second's frames in one burst)",
    "gap": "64 B, trafgen -t (one frame per sleep)",
}


def series(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """The panels to draw: title, ceiling (or None), and per forwarder the (offered, delivered) points in
    frames/s, sorted by offered load. Pure, so the shape is testable without matplotlib."""
    rfc = doc.get("rfc") or {}
    r2544 = rfc.get("rfc2544") or {}
    r2889 = rfc.get("rfc2889") or {}
    panels: list[dict[str, Any]] = []
    pacings: list[str] = []
    for res in r2544.values():
        for p in (res or {}).get("sweeps", {}):
            if p not in pacings:
                pacings.append(p)
    for pacing in pacings:
        lines: dict[str, list[tuple[float, float]]] = {}
        ceiling = None
        for fwd, res in r2544.items():
            sw = ((res or {}).get("sweeps") or {}).get(pacing)
            if not sw:
                continue
            ceiling = sw.get("generator_ceiling_pps") or ceiling
            lines[fwd] = sorted((float(p["offered_pps"]), float(p["delivered_pps"])) for p in sw["points"])
        panels.append({"title": PACING_TITLES.get(pacing, pacing), "ceiling": ceiling, "lines": lines})
    mesh_lines: dict[str, list[tuple[float, float]]] = {}
    mesh_ceiling = None
    for fwd, res in r2889.items():
        m = (res or {}).get("mesh")
        if not m:
            continue
        mesh_ceiling = m.get("generator_ceiling_pps") or mesh_ceiling
        mesh_lines[fwd] = sorted((float(t["offered_pps"]), float(t["delivered_pps"])) for t in m["trials"])
    if mesh_lines:
        panels.append(
            {
                "title": "fully meshed, 4 ports (aggregate), evenly paced",
                "ceiling": mesh_ceiling,
                "lines": mesh_lines,
            }
        )
    return panels


def plot_bench(doc: dict[str, Any], path: str) -> bool:
    """Draw ``doc``'s panels into a PNG at ``path``. False (and nothing written) without matplotlib or data."""
    panels = series(doc)
    if not panels:
        log.warning("nothing to plot: no loss sweep and no mesh results")
        return False
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        log.warning("matplotlib is not installed (pip install 'pyvswitch[bench]'): no plot")
        return False
    cols = min(2, len(panels))
    rows = (len(panels) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(6.2 * cols, 4.8 * rows), squeeze=False)
    for ax, panel in zip(axes.flat, panels, strict=False):
        top = 1.0
        for fwd, pts in panel["lines"].items():
            if not pts:
                continue
            xs = [p[0] / 1e3 for p in pts]
            ys = [p[1] / 1e3 for p in pts]
            top = max(top, *xs, *ys)
            ax.plot(xs, ys, marker="o", label=fwd, color=COLOURS.get(fwd))
        if panel["ceiling"]:
            c = panel["ceiling"] / 1e3
            top = max(top, c)
            ax.axvline(c, linestyle="--", color="grey", label="generator ceiling (direct veth)")
        ax.plot(
            [0, top * 1.05], [0, top * 1.05], linestyle=":", color="black", linewidth=0.8, label="no loss"
        )
        ax.set_xlim(0, top * 1.05)
        ax.set_ylim(0, top * 1.05)
        ax.set_title(panel["title"], fontsize=10)
        ax.set_xlabel("offered, k frames/s")
        ax.set_ylabel("delivered, k frames/s")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8, loc="upper left")
    for ax in list(axes.flat)[len(panels) :]:
        ax.set_visible(False)
    host = doc.get("host") or {}
    fig.suptitle(
        f"pyvswitch vs Linux bridge, same run — {doc.get('started', '')}, kernel {host.get('kernel', '?')}, "
        f"{host.get('cpus', '?')} CPUs",
        fontsize=11,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True
