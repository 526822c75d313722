"""The Prometheus collector (daemon/metrics.py, issue 14 item 1) over canned snapshots: every family the issue
names, labelled by object, in Prometheus' naming conventions (base units, ``_total`` counters); a source that
fails costs its own families for that scrape and is counted, the others are still served."""

from __future__ import annotations

import re
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from pyvswitch.daemon.metrics import Metrics, SwitchMetrics

COUNTERS: dict[str, Any] = {
    "switches": {
        "ext": {
            "ports": {
                "web-eth0": {
                    "rx_frames": 10, "tx_frames": 7, "rx_bytes": 1000, "tx_bytes": 700, "resyncs": 1,
                    "drops": {"ring-overrun": 3}, "port_drops": {"mac-spoofing": 2, "ring-overrun": 1},
                    "flow_cache": {"hits": 5, "misses": 2},
                },
                "vxlan0": {"rx_frames": 1, "tx_frames": 1, "rx_bytes": 1, "tx_bytes": 1, "drops": {},
                           "port_drops": {}, "tunnel": {"arp_suppressed": 4, "replicated": 2, "routed": 9}},
            },
            "elements": {"ingress": {"drops": {"runt": 1}}, "forward": {"drops": {}}, "egress": {"drops": {}}},
            "extensions": [{"name": "pyvswitch-firewall", "calls": 8, "errors": 0, "drops": {"deny": 6},
                            "status": {"connections": 12, "max_connections": 100, "ports": {"web-eth0": {
                                "rule_hits": [{"direction": "Inbound", "weight": 1, "hits": 6}]}}}}],
            "fdb": {"learned": 3, "static": 2, "evictions": 1, "moves": 0, "not_learned": 0},
        }
    },
    "busy_s": 1.5, "loop_restarts": 0, "loop_errors": 0,
    "batches": {"bounds": [1, 2, 4], "counts": [5, 3, 1, 1], "frames": 20},
}  # fmt: skip
QOS = [
    {
        "switch": "ext",
        "ports": {"web-eth0": {"sent_bytes": 900, "drops": 1, "rate_bps": 8000, "bandwidth_percentage": 25.0,
                               "maximum_bandwidth": 100_000_000, "minimum_bandwidth_weight": 5}},
        "egress": {"uplink": {"classes": [{"name": "SMB", "sent_bytes": 50, "drops": 0, "rate_bps": 10,
                                           "bandwidth_percentage": 60, "paused": True, "pfc_sent": 2,
                                           "pfc_received": 1}]}},
    }
]  # fmt: skip
TEAMS = [
    {
        "name": "t1",
        "status": {
            "failovers": 2,
            "members": [{"name": "eth1", "up": True, "active": True, "standby": False, "failures": 1},
                        {"name": "eth2", "up": False, "active": False, "standby": True, "failures": 3}],
            "lacp": [{"member": "eth1", "status": "collecting-distributing", "pdus": {"sent": 9, "received": 8}},
                     {"member": "eth2", "status": "detached", "pdus": {"sent": 4, "received": 0}}],
        },
    }
]  # fmt: skip


def scrape(collector: SwitchMetrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = Metrics(collector).render().decode()
    out = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def full() -> SwitchMetrics:
    return SwitchMetrics(
        counters=lambda: COUNTERS,
        health=lambda: {"state": "ok", "heartbeat_age_s": 0.01},
        qos=lambda: QOS,
        teams=lambda: TEAMS,
        sriov=lambda: {
            "ports": [{"port": "web-eth0", "policies": "bypassed"}],
            "transitions": {"uplink-down": 1},
        },
        migrations=lambda: {
            "outcomes": {"source:committed": 2, "destination:failed": 1},
            "blackouts_s": [0.05, 0.3],
        },
    )


def test_every_family_the_issue_names_with_its_labels() -> None:
    m = scrape(full())
    port = (("port", "web-eth0"), ("switch", "ext"))
    assert m[("pyvswitch_port_rx_frames_total", port)] == 10
    assert m[("pyvswitch_port_tx_bytes_total", port)] == 700
    assert m[("pyvswitch_port_ring_overruns_total", port)] == 3
    # Device and policy drops of one reason are one series.
    assert (
        m[
            (
                "pyvswitch_port_drops_total",
                (("port", "web-eth0"), ("reason", "ring-overrun"), ("switch", "ext")),
            )
        ]
        == 4
    )
    assert m[("pyvswitch_drops_total", (("element", "ingress"), ("reason", "runt"), ("switch", "ext")))] == 1
    assert (
        m[
            (
                "pyvswitch_drops_total",
                (("element", "pyvswitch-firewall"), ("reason", "deny"), ("switch", "ext")),
            )
        ]
        == 6
    )
    assert m[("pyvswitch_fdb_entries", (("kind", "learned"), ("switch", "ext")))] == 3
    assert m[("pyvswitch_fdb_evictions_total", (("switch", "ext"),))] == 1
    assert (
        m[("pyvswitch_firewall_connections", (("extension", "pyvswitch-firewall"), ("switch", "ext")))] == 12
    )
    assert m[("pyvswitch_tunnel_routed_total", (("port", "vxlan0"), ("switch", "ext")))] == 9
    hit = (("direction", "Inbound"), ("port", "web-eth0"), ("switch", "ext"), ("weight", "1"))
    assert m[("pyvswitch_extended_acl_hits_total", hit)] == 6
    assert m[("pyvswitch_qos_port_bandwidth_share_ratio", port)] == 0.25
    assert m[("pyvswitch_qos_port_rate_bits_per_second", port)] == 8000
    cls = (("class", "SMB"), ("egress", "uplink"), ("switch", "ext"))
    assert m[("pyvswitch_qos_class_paused", cls)] == 1 and m[("pyvswitch_qos_class_pfc_sent_total", cls)] == 2
    assert m[("pyvswitch_qos_class_bandwidth_share_ratio", cls)] == 0.6
    assert m[("pyvswitch_team_member_up", (("member", "eth2"), ("team", "t1")))] == 0
    assert (
        m[("pyvswitch_team_member_lacp_collecting_distributing", (("member", "eth1"), ("team", "t1")))] == 1
    )
    assert (
        m[("pyvswitch_team_member_lacp_collecting_distributing", (("member", "eth2"), ("team", "t1")))] == 0
    )
    assert m[("pyvswitch_team_failovers_total", (("team", "t1"),))] == 2
    assert m[("pyvswitch_port_vf_assigned", (("port", "web-eth0"),))] == 1
    assert m[("pyvswitch_migrations_total", (("outcome", "committed"), ("role", "source")))] == 2
    assert m[("pyvswitch_migration_blackout_seconds_bucket", (("le", "0.1"),))] == 1
    assert m[("pyvswitch_migration_blackout_seconds_count", ())] == 2
    assert m[("pyvswitch_forwarding_busy_seconds_total", ())] == 1.5
    assert m[("pyvswitch_forwarding_healthy", ())] == 1
    # The batch histogram: cumulative buckets, the last past the largest bound.
    assert [m[("pyvswitch_forwarding_batch_frames_bucket", (("le", le),))] for le in ("1.0", "2.0", "4.0", "+Inf")] == [
        5, 8, 9, 10,
    ]  # fmt: skip
    assert m[("pyvswitch_forwarding_batch_frames_sum", ())] == 20


def test_names_follow_prometheus_conventions() -> None:
    text = Metrics(full()).render().decode()
    for fam in text_string_to_metric_families(text):
        assert re.fullmatch(r"pyvswitch_[a-z][a-z0-9_]*", fam.name), fam.name
        assert not re.search(r"_(ms|milliseconds|bps|kbytes|percent)(_|$)", fam.name), fam.name  # base units
        for s in fam.samples:
            if fam.type == "counter" and not s.name.endswith("_created"):
                assert s.name.endswith("_total"), s.name
            assert all(re.fullmatch(r"[a-z_]+", k) for k in s.labels), s


def test_a_failing_source_costs_only_its_families_and_is_counted() -> None:
    def broken() -> dict[str, Any]:
        raise ConnectionError("the forwarder is restarting")

    collector = full()
    collector.sources["counters"] = broken
    m = scrape(collector)
    assert not any(name == "pyvswitch_port_rx_frames_total" for name, _ in m)
    assert m[("pyvswitch_team_failovers_total", (("team", "t1"),))] == 2  # the others still answer
    assert m[("pyvswitch_scrape_errors_total", (("source", "counters"),))] == 1
    assert scrape(collector)[("pyvswitch_scrape_errors_total", (("source", "counters"),))] == 2


def test_a_standalone_teams_hidden_switch_is_labelled_as_the_operator_knows_it() -> None:
    # config/team_nics.py: the engine runs a standalone team as the switch "_team:t1" with the ports
    # "_team:t1:uplink" and "_team:t1:<team interface>"; `show drops` calls them "team t1", "uplink", "t1.10".
    port = {"rx_frames": 4, "tx_frames": 0, "rx_bytes": 1, "tx_bytes": 0, "drops": {}, "port_drops": {}}
    counters = {
        "switches": {
            "_team:t1": {
                "ports": {"_team:t1:uplink": port, "_team:t1:t1.10": port},
                "elements": {"ingress": {"drops": {"runt": 2}}},
                "fdb": {},
            },
            "_team:t1x": {"ports": {"other": port}, "elements": {}, "fdb": {}},  # not that team's port prefix
        }
    }
    m = scrape(SwitchMetrics(counters=lambda: counters, health=lambda: {}))
    assert m[("pyvswitch_port_rx_frames_total", (("port", "uplink"), ("switch", "team t1")))] == 4
    assert m[("pyvswitch_port_rx_frames_total", (("port", "t1.10"), ("switch", "team t1")))] == 4
    assert m[("pyvswitch_port_rx_frames_total", (("port", "other"), ("switch", "team t1x")))] == 4
    assert (
        m[("pyvswitch_drops_total", (("element", "ingress"), ("reason", "runt"), ("switch", "team t1")))] == 2
    )
    assert not [key for key in m if any("_team:" in value for _, value in key[1])]
