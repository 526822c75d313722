"""Prometheus metrics (issue 14 item 1): what ``/metrics`` answers on the API socket and, with
``pyvswitchd --metrics-listen ADDR``, on a TCP address that serves nothing else.

Names follow Prometheus' conventions: ``pyvswitch_`` prefix, base units (bytes, seconds), ``_total`` for
counters, labels for the dimensions (``switch``, ``port``, ``reason``...), never one metric per object. Nothing
is counted twice for the sake of metrics: a scrape reads the same snapshots the API and the CLI read (the
engine's counters, QoS and team status over the forwarder link, the SR-IOV plan, the migrations' outcomes)
and turns them into metric families, in one collector (``SwitchMetrics.collect``). The data path keeps no
Prometheus objects and pays nothing between scrapes; a scrape costs one counters read of the forwarder
(measured: lab/metricsbench.py).

Only the API's own latency is measured here as it happens (a histogram the middleware feeds, per method and
route template, so ``/v1/ports/{name}`` is one series whatever the name).

What each family means is its HELP text; docs/contracts.md lists them.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Histogram
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    InfoMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

import pyvswitch
from pyvswitch.config.vocabulary import shown_port, shown_switch

log = logging.getLogger(__name__)

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
API_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Families:
    """Metric families by name, made on first use, so a collector adds samples without declaring each first."""

    def __init__(self) -> None:
        self._by_name: dict[str, Metric] = {}

    def counter(self, name: str, doc: str, labels: Iterable[str]) -> CounterMetricFamily:
        fam = self._by_name.get(name)
        if fam is None:
            fam = self._by_name[name] = CounterMetricFamily(name, doc, labels=list(labels))
        return fam  # type: ignore[return-value]

    def gauge(self, name: str, doc: str, labels: Iterable[str]) -> GaugeMetricFamily:
        fam = self._by_name.get(name)
        if fam is None:
            fam = self._by_name[name] = GaugeMetricFamily(name, doc, labels=list(labels))
        return fam  # type: ignore[return-value]

    def add(self, fam: Metric) -> None:
        self._by_name[fam.name] = fam

    def __iter__(self) -> Iterator[Metric]:
        return iter(self._by_name.values())


def _num(value: object) -> float:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0.0


def _dict(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


class SwitchMetrics(Collector):
    """The collector: every family from the daemon's current snapshots, at each scrape.

    ``sources`` are callables so a source that fails (a forwarder restarting) costs its families for that
    scrape only: what the others say is still served, and ``pyvswitch_scrape_errors_total`` counts it."""

    def __init__(
        self,
        counters: Callable[[], Mapping[str, Any]],
        health: Callable[[], Mapping[str, Any]],
        qos: Callable[[], Iterable[Mapping[str, Any]]] = lambda: (),
        teams: Callable[[], Iterable[Mapping[str, Any]]] = lambda: (),
        sriov: Callable[[], Mapping[str, Any] | None] = lambda: None,
        migrations: Callable[[], Mapping[str, Any]] = lambda: {},
    ) -> None:
        self.sources: dict[str, Callable[[], Any]] = {
            "counters": counters,
            "health": health,
            "qos": qos,
            "teams": teams,
            "sriov": sriov,
            "migrations": migrations,
        }
        self.scrape_errors: dict[str, int] = {}

    def describe(self) -> Iterable[Metric]:
        return []  # families depend on the configuration; the registry must not call collect() to register

    def collect(self) -> Iterable[Metric]:
        f = Families()
        info = InfoMetricFamily("pyvswitch_build", "The pyvswitch version serving these metrics.")
        info.add_metric([], {"version": pyvswitch.__version__})
        f.add(info)
        for name, source in self.sources.items():
            try:
                data = source()
            except Exception as exc:  # a source that cannot answer now: the others are still served
                self.scrape_errors[name] = self.scrape_errors.get(name, 0) + 1
                log.debug("metrics: %s unavailable: %s", name, exc)
                continue
            getattr(self, f"_{name}")(f, data)
        errors = f.counter(
            "pyvswitch_scrape_errors", "Scrapes in which a source of metrics could not be read.", ["source"]
        )
        for name in self.sources:
            errors.add_metric([name], self.scrape_errors.get(name, 0))
        yield from f

    # ---- the forwarder's counters ----

    def _counters(self, f: Families, data: Mapping[str, Any]) -> None:
        sp = ["switch", "port"]
        rx_frames = f.counter("pyvswitch_port_rx_frames", "Frames received on a port.", sp)
        tx_frames = f.counter("pyvswitch_port_tx_frames", "Frames sent on a port.", sp)
        rx_bytes = f.counter("pyvswitch_port_rx_bytes", "Bytes received on a port.", sp)
        tx_bytes = f.counter("pyvswitch_port_tx_bytes", "Bytes sent on a port.", sp)
        port_drops = f.counter(
            "pyvswitch_port_drops",
            "Frames a port's device or policies (security guards, ACLs) dropped, by reason.",
            [*sp, "reason"],
        )
        overruns = f.counter(
            "pyvswitch_port_ring_overruns",
            "Frames the kernel dropped because the port's receive ring was full.",
            sp,
        )
        resyncs = f.counter(
            "pyvswitch_port_ring_resyncs",
            "Times a port's receive ring was found out of step and recovered.",
            sp,
        )
        flow_hits = f.counter("pyvswitch_port_flow_cache_hits", "Frames the port's flow cache replayed.", sp)
        flow_misses = f.counter(
            "pyvswitch_port_flow_cache_misses", "Frames of the port that took the whole chain.", sp
        )
        drops = f.counter(
            "pyvswitch_drops",
            "Frames a switch element (ingress, forward, egress, an extension) dropped, by reason.",
            ["switch", "element", "reason"],
        )
        fdb = f.gauge("pyvswitch_fdb_entries", "MAC table entries, learned or static.", ["switch", "kind"])
        fdb_evictions = f.counter(
            "pyvswitch_fdb_evictions", "MAC table entries evicted to make room.", ["switch"]
        )
        fdb_moves = f.counter(
            "pyvswitch_fdb_moves", "MAC table entries that moved to another port.", ["switch"]
        )
        fdb_refused = f.counter(
            "pyvswitch_fdb_not_learned", "Learning attempts a port's MAC limit refused.", ["switch"]
        )
        ext_calls = f.counter(
            "pyvswitch_extension_calls", "Batches an extension was called with.", ["switch", "extension"]
        )
        ext_errors = f.counter(
            "pyvswitch_extension_errors", "Exceptions an extension raised.", ["switch", "extension"]
        )
        conns = f.gauge(
            "pyvswitch_firewall_connections",
            "Connections the stateful firewall tracks.",
            ["switch", "extension"],
        )
        conns_max = f.gauge(
            "pyvswitch_firewall_connections_max",
            "The firewall's connection table size.",
            ["switch", "extension"],
        )
        rule_hits = f.counter(
            "pyvswitch_extended_acl_hits",
            "Packets an extended ACL entry decided (its own match, or a connection it opened).",
            ["switch", "port", "direction", "weight"],
        )
        tunnel = {
            key: f.counter(f"pyvswitch_tunnel_{key}", doc, sp)
            for key, doc in (
                ("arp_suppressed", "ARP requests a tunnel port answered from the lookup records."),
                ("replicated", "Copies a tunnel port sent by head-end replication."),
                ("routed", "Frames the distributed router sent on to another virtual subnet (or answered)."),
            )
        }
        for engine_name, sw in _dict(data.get("switches")).items():
            # Labels name what the operator knows: a standalone team's hidden switch is "team <team>", its ports
            # "uplink" and its team interfaces' names (config/vocabulary.py), as in ``pyvswitch show drops``.
            sw_name = shown_switch(engine_name)
            for engine_port, p in _dict(sw.get("ports")).items():
                labels = [sw_name, shown_port(engine_name, engine_port)]
                rx_frames.add_metric(labels, _num(p.get("rx_frames")))
                tx_frames.add_metric(labels, _num(p.get("tx_frames")))
                rx_bytes.add_metric(labels, _num(p.get("rx_bytes")))
                tx_bytes.add_metric(labels, _num(p.get("tx_bytes")))
                resyncs.add_metric(labels, _num(p.get("resyncs")))
                dev_drops = _dict(p.get("drops"))
                overruns.add_metric(labels, _num(dev_drops.get("ring-overrun")))
                merged: dict[str, float] = {}
                for reasons in (dev_drops, _dict(p.get("port_drops"))):
                    for reason, n in reasons.items():
                        merged[reason] = merged.get(reason, 0.0) + _num(n)
                for reason, n in sorted(merged.items()):
                    port_drops.add_metric([*labels, reason], n)
                cache = _dict(p.get("flow_cache"))
                if cache:
                    flow_hits.add_metric(labels, _num(cache.get("hits")))
                    flow_misses.add_metric(labels, _num(cache.get("misses")))
                t = _dict(p.get("tunnel"))
                for key, fam in tunnel.items():
                    if key in t:
                        fam.add_metric(labels, _num(t[key]))
            for element, e in _dict(sw.get("elements")).items():
                for reason, n in sorted(_dict(_dict(e).get("drops")).items()):
                    drops.add_metric([sw_name, element, reason], _num(n))
            for ext in sw.get("extensions") or []:
                ext = _dict(ext)
                name = str(ext.get("name"))
                ext_calls.add_metric([sw_name, name], _num(ext.get("calls")))
                ext_errors.add_metric([sw_name, name], _num(ext.get("errors")))
                for reason, n in sorted(_dict(ext.get("drops")).items()):
                    drops.add_metric([sw_name, name, reason], _num(n))
                status = _dict(ext.get("status"))
                if "connections" in status:
                    conns.add_metric([sw_name, name], _num(status["connections"]))
                    conns_max.add_metric([sw_name, name], _num(status.get("max_connections")))
                for port, acl in _dict(status.get("ports")).items():
                    for h in _dict(acl).get("rule_hits") or []:
                        labels = [sw_name, shown_port(engine_name, port), str(h.get("direction")),
                                  str(h.get("weight"))]  # fmt: skip
                        rule_hits.add_metric(labels, _num(h.get("hits")))
            table = _dict(sw.get("fdb"))
            fdb.add_metric([sw_name, "learned"], _num(table.get("learned")))
            fdb.add_metric([sw_name, "static"], _num(table.get("static")))
            fdb_evictions.add_metric([sw_name], _num(table.get("evictions")))
            fdb_moves.add_metric([sw_name], _num(table.get("moves")))
            fdb_refused.add_metric([sw_name], _num(table.get("not_learned")))
        f.counter(
            "pyvswitch_forwarding_busy_seconds",
            "Seconds the forwarding thread spent on batches with frames (its rate is the loop's busy fraction).",
            [],
        ).add_metric([], _num(data.get("busy_s")))
        f.counter(
            "pyvswitch_forwarding_loop_restarts", "Times the forwarding loop died and was restarted.", []
        ).add_metric([], _num(data.get("loop_restarts")))
        f.counter(
            "pyvswitch_forwarding_loop_errors", "Batches dropped because processing them raised.", []
        ).add_metric([], _num(data.get("loop_errors")))
        batches = _dict(data.get("batches"))
        bounds = batches.get("bounds") or []
        counts = batches.get("counts") or []
        if bounds and len(counts) == len(bounds) + 1:
            hist = HistogramMetricFamily(
                "pyvswitch_forwarding_batch_frames",
                "Frames per batch the forwarding loop received from one port.",
                labels=[],
            )
            cumulative, buckets = 0.0, []
            for bound, n in zip(bounds, counts, strict=False):
                cumulative += _num(n)
                buckets.append((_le(bound), cumulative))
            cumulative += _num(counts[-1])
            buckets.append(("+Inf", cumulative))
            hist.add_metric([], buckets, _num(batches.get("frames")))
            f.add(hist)

    def _health(self, f: Families, data: Mapping[str, Any]) -> None:
        f.gauge(
            "pyvswitch_forwarding_healthy",
            "1 when forwarding progresses with no problem reported, else 0.",
            [],
        ).add_metric([], 1.0 if data.get("state") == "ok" else 0.0)
        age = data.get("heartbeat_age_s")
        if isinstance(age, int | float):
            f.gauge(
                "pyvswitch_forwarding_heartbeat_age_seconds",
                "Seconds since the forwarding loop's last pass.",
                [],
            ).add_metric([], float(age))

    # ---- QoS (per switch: ports and classes of each egress port) ----

    def _qos(self, f: Families, data: Iterable[Mapping[str, Any]]) -> None:
        sp = ["switch", "port"]
        sent = f.counter("pyvswitch_qos_port_sent_bytes", "Bytes QoS scheduled for a port's traffic.", sp)
        qdrops = f.counter("pyvswitch_qos_port_drops", "Frames QoS dropped for a port (queue full).", sp)
        rate = f.gauge("pyvswitch_qos_port_rate_bits_per_second", "A port's measured rate through QoS.", sp)
        share = f.gauge(
            "pyvswitch_qos_port_bandwidth_share_ratio",
            "A port's guaranteed share of its egress (Get-VMNetworkAdapter's BandwidthPercentage / 100).",
            sp,
        )
        maximum = f.gauge(
            "pyvswitch_qos_port_maximum_bandwidth_bits_per_second", "A port's MaximumBandwidth (0: none).", sp
        )
        weight = f.gauge(
            "pyvswitch_qos_port_minimum_bandwidth_weight", "A port's MinimumBandwidthWeight.", sp
        )
        cl = ["switch", "egress", "class"]
        c_sent = f.counter(
            "pyvswitch_qos_class_sent_bytes", "Bytes a traffic class sent on an egress port.", cl
        )
        c_drops = f.counter(
            "pyvswitch_qos_class_drops", "Frames a traffic class dropped on an egress port.", cl
        )
        c_rate = f.gauge("pyvswitch_qos_class_rate_bits_per_second", "A traffic class's measured rate.", cl)
        c_share = f.gauge(
            "pyvswitch_qos_class_bandwidth_share_ratio",
            "An ETS class's configured share (percentage / 100).",
            cl,
        )
        c_paused = f.gauge(
            "pyvswitch_qos_class_paused", "1 while PFC holds one of the class's priorities.", cl
        )
        c_pfc_sent = f.counter("pyvswitch_qos_class_pfc_sent", "PFC frames sent for the class.", cl)
        c_pfc_rx = f.counter("pyvswitch_qos_class_pfc_received", "PFC frames received for the class.", cl)
        for status in data:
            sw = str(status.get("switch"))
            for port, p in _dict(status.get("ports")).items():
                labels = [sw, port]
                sent.add_metric(labels, _num(p.get("sent_bytes")))
                qdrops.add_metric(labels, _num(p.get("drops")))
                rate.add_metric(labels, _num(p.get("rate_bps")))
                if p.get("bandwidth_percentage") is not None:
                    share.add_metric(labels, _num(p.get("bandwidth_percentage")) / 100)
                maximum.add_metric(labels, _num(p.get("maximum_bandwidth")))
                weight.add_metric(labels, _num(p.get("minimum_bandwidth_weight")))
            for egress, e in _dict(status.get("egress")).items():
                for c in e.get("classes") or []:
                    labels = [sw, egress, str(c.get("name"))]
                    c_sent.add_metric(labels, _num(c.get("sent_bytes")))
                    c_drops.add_metric(labels, _num(c.get("drops")))
                    c_rate.add_metric(labels, _num(c.get("rate_bps")))
                    if c.get("bandwidth_percentage") is not None:
                        c_share.add_metric(labels, _num(c.get("bandwidth_percentage")) / 100)
                    c_paused.add_metric(labels, 1.0 if c.get("paused") else 0.0)
                    c_pfc_sent.add_metric(labels, _num(c.get("pfc_sent")))
                    c_pfc_rx.add_metric(labels, _num(c.get("pfc_received")))

    # ---- teams ----

    def _teams(self, f: Families, data: Iterable[Mapping[str, Any]]) -> None:
        tm = ["team", "member"]
        up = f.gauge("pyvswitch_team_member_up", "1 when a team member has carrier.", tm)
        active = f.gauge("pyvswitch_team_member_active", "1 when a team member carries traffic.", tm)
        standby = f.gauge("pyvswitch_team_member_standby", "1 for a team's standby member.", tm)
        failures = f.counter("pyvswitch_team_member_failures", "Times a team member failed.", tm)
        lacp = f.gauge(
            "pyvswitch_team_member_lacp_collecting_distributing",
            "1 when LACP has a team member collecting and distributing (802.1AX mux state).",
            tm,
        )
        pdus = f.counter("pyvswitch_team_member_lacpdus", "LACPDUs of a team member.", [*tm, "direction"])
        failovers = f.counter(
            "pyvswitch_team_failovers", "Times traffic moved off a failed team member.", ["team"]
        )
        for team in data:
            status = _dict(team.get("status"))
            name = str(team.get("name"))
            if not status:
                continue
            failovers.add_metric([name], _num(status.get("failovers")))
            for m in status.get("members") or []:
                labels = [name, str(m.get("name"))]
                up.add_metric(labels, 1.0 if m.get("up") else 0.0)
                active.add_metric(labels, 1.0 if m.get("active") else 0.0)
                standby.add_metric(labels, 1.0 if m.get("standby") else 0.0)
                failures.add_metric(labels, _num(m.get("failures")))
            for p in status.get("lacp") or []:
                labels = [name, str(p.get("member"))]
                lacp.add_metric(labels, 1.0 if "distributing" in str(p.get("status")).lower() else 0.0)
                counts = _dict(p.get("pdus"))
                pdus.add_metric([*labels, "sent"], _num(counts.get("sent")))
                pdus.add_metric([*labels, "received"], _num(counts.get("received")))

    # ---- SR-IOV and migrations ----

    def _sriov(self, f: Families, data: Mapping[str, Any] | None) -> None:
        if not data:
            return
        vf = f.gauge(
            "pyvswitch_port_vf_assigned",
            "1 while a port's traffic takes its VF (policies bypassed).",
            ["port"],
        )
        for p in data.get("ports") or []:
            vf.add_metric([str(p.get("port"))], 1.0 if p.get("policies") == "bypassed" else 0.0)
        moves = f.counter(
            "pyvswitch_vf_transitions",
            "Ports moved between the VF and the software path, by cause.",
            ["reason"],
        )
        for reason, n in sorted(_dict(data.get("transitions")).items()):
            moves.add_metric([reason], _num(n))

    def _migrations(self, f: Families, data: Mapping[str, Any]) -> None:
        done = f.counter(
            "pyvswitch_migrations",
            "Live migrations this host took part in, by role and outcome.",
            ["role", "outcome"],
        )
        for key, n in sorted(_dict(data.get("outcomes")).items()):
            role, _, outcome = key.partition(":")
            done.add_metric([role, outcome], _num(n))
        blackouts = data.get("blackouts_s") or []
        bounds = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
        hist = HistogramMetricFamily(
            "pyvswitch_migration_blackout_seconds",
            "The source's blackout of each live migration it drove (ports off here -> destination answered).",
            labels=[],
        )
        buckets = [(_le(b), float(sum(1 for x in blackouts if x <= b))) for b in bounds]
        buckets.append(("+Inf", float(len(blackouts))))
        hist.add_metric([], buckets, float(sum(blackouts)))
        f.add(hist)


def _le(bound: float) -> str:
    return str(float(bound)) if not float(bound).is_integer() else str(int(bound)) + ".0"


class Metrics:
    """The daemon's registry: the collector and the API latency histogram, and the text a scrape returns."""

    def __init__(self, collector: SwitchMetrics) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.collector = collector
        self.registry.register(collector)
        self.api_latency = Histogram(
            "pyvswitch_api_request_duration_seconds",
            "REST API requests by method and route template, and how long they took.",
            ["method", "route"],
            buckets=API_BUCKETS,
            registry=self.registry,
        )

    def observe(self, method: str, route: str, started: float) -> None:
        self.api_latency.labels(method, route).observe(time.perf_counter() - started)

    def render(self) -> bytes:
        from prometheus_client import generate_latest

        return generate_latest(self.registry)
