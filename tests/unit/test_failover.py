"""The failover benchmark's and the demo teaming scene's parsers and verdicts (lab/failover.py, lab/demo_team.py),
on captured and hand-written tool output."""

from __future__ import annotations

import json

from rich.console import Console

from pyvswitch.lab.demo_team import TeamScene, failover_check
from pyvswitch.lab.failover import longest_zero_stretch, parse_lacp_show, parse_tcp, parse_udp
from pyvswitch.lab.verdict import SceneCheck


def recv(received: int, gap_s: float, gap_at: float, last_seq: int, gaps: list[list[float]]) -> str:
    return json.dumps({"received": received, "gap_s": gap_s, "gap_at": gap_at, "last_seq": last_seq,
                       "first_t": 100.0, "last_t": 103.0, "gaps": gaps})  # fmt: skip


def test_udp_gap_lost_and_recovery() -> None:
    g = parse_udp("30001\n", recv(29800, 0.0213, 101.0, 30000, [[101.0, 0.0213], [102.5, 0.009]]))
    assert (g.sent, g.received, g.lost, g.last_seq) == (30001, 29800, 201, 30000)
    assert abs(g.gap_ms - 21.3) < 1e-9 and g.recovered
    # The stream stopped at the cut and never came back: its tail is missing.
    stopped = parse_udp("30001", recv(10000, 0.002, 100.5, 9999, [[100.5, 0.002]]))
    assert not stopped.recovered and stopped.lost == 20001
    assert not parse_udp("30001", recv(0, 0.0, 0.0, -1, [])).recovered


def test_udp_gap_near_a_cut_ignores_hiccups_elsewhere() -> None:
    g = parse_udp(
        "30001", recv(30000, 0.030, 102.4, 30000, [[102.4, 0.030], [101.002, 0.012], [100.2, 0.008]])
    )
    assert abs(g.gap_near(101.0) - 12.0) < 1e-9  # the failover's gap, not the 30 ms one 1.4 s later
    assert g.gap_near(103.5) == 0.0


def test_longest_zero_stretch_sums_consecutive_empty_intervals() -> None:
    def iv(n: int) -> dict[str, object]:
        return {"sum": {"bytes": n, "seconds": 0.1}}

    assert longest_zero_stretch([iv(5), iv(0), iv(0), iv(7), iv(0), iv(0), iv(0), iv(3)]) == 0.1 * 3
    assert longest_zero_stretch([iv(5), iv(6)]) == 0.0
    assert longest_zero_stretch([]) == 0.0
    tail = {"sum": {"bytes": 0, "seconds": 0.011}}  # iperf3's remainder after the end: not a stall
    assert longest_zero_stretch([iv(5), iv(6), tail]) == 0.0


def test_tcp_flow_that_survived() -> None:
    client = {
        "intervals": [{"sum": {"end": 1.0, "retransmits": 4}}, {"sum": {"end": 2.0, "retransmits": 90}}],
        "end": {"sum_sent": {"retransmits": 94, "bits_per_second": 1e8},
                "sum_received": {"bits_per_second": 0.99e8, "seconds": 10.0}},
    }  # fmt: skip
    server = {"intervals": [{"sum": {"bytes": 10, "seconds": 0.1}}, {"sum": {"bytes": 0, "seconds": 0.1}},
                            {"sum": {"bytes": 0, "seconds": 0.1}}, {"sum": {"bytes": 9, "seconds": 0.1}}]}  # fmt: skip
    t = parse_tcp(0, json.dumps(client), json.dumps(server), cut_s=1.5)
    assert t.survived and t.error == ""
    assert abs(t.stall_s - 0.2) < 1e-9
    assert (t.retransmits, t.retransmits_before_cut) == (94, 4)
    assert abs(t.gbps - 0.099) < 1e-9 and t.seconds == 10.0


def test_tcp_flow_reset_or_garbled_is_not_survival() -> None:
    reset = {"error": "error - unable to send control message: Connection reset by peer", "end": {}}
    t = parse_tcp(1, json.dumps(reset), "")
    assert not t.survived and "Connection reset by peer" in t.error and "server output" in t.error
    t = parse_tcp(1, "iperf3: error - unable to connect to server", "{}")
    assert not t.survived and "not JSON" in t.error


LACP_SHOW = """\
---- bond0 ----
  status: active negotiated
  sys_id: 2a:99:5d:b9:17:46
  lacp_time: fast

member: eth1: current attached
  port_id: 1
  actor state: activity timeout aggregation synchronized collecting distributing

member: eth2: defaulted detached
  port_id: 2
"""


def test_lacp_show_members() -> None:
    assert parse_lacp_show(LACP_SHOW) == {"eth1": "current attached", "eth2": "defaulted detached"}
    assert parse_lacp_show(LACP_SHOW.replace("member: ", "slave ")) == {
        "eth1": "current attached",
        "eth2": "defaulted detached",
    }


def test_demo_failover_verdict_fails_a_long_gap_or_a_stream_that_never_resumed() -> None:
    ok = parse_udp("30001", recv(29900, 0.020, 101.0, 30000, [[101.0, 0.020]]))
    assert failover_check(ok).ok and "gap 20.0 ms, 101 of 30,001 lost" in failover_check(ok).observed
    slow = parse_udp("30001", recv(25000, 0.600, 101.0, 30000, [[101.0, 0.600]]))
    assert not failover_check(slow).ok
    dead = parse_udp("30001", recv(10000, 0.001, 100.0, 9999, [[100.0, 0.001]]))
    assert not failover_check(dead).ok and "never resumed" in failover_check(dead).observed


def test_demo_team_table_fails_on_any_failed_check_or_none() -> None:
    scene = TeamScene.__new__(TeamScene)  # the table needs only a console and the mode
    scene.console, scene.lacp = Console(file=None, quiet=True), True
    assert scene.table([SceneCheck("a", "b", "c", True)])
    assert not scene.table([SceneCheck("a", "b", "c", True), SceneCheck("d", "e", "f", False)])
    assert not scene.table([])
