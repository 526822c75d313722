"""Traffic-tool parsers on real output captured on this platform (iputils ping, fping 5.1, iperf3 3.12, trafgen 0.6.8,
iproute2)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from pyvswitch.lab.bench import QUICK_PLAN, search_rates
from pyvswitch.lab.traffic import (
    GapLog,
    PingResult,
    TrafficError,
    TrialResult,
    fping_sent,
    latency_from_ping,
    loss_pct,
    parse_iperf3_json,
    parse_link_stats,
    parse_ping,
    parse_trafgen_sent,
    percentile,
    reply_times,
    udp_frame_config,
)

# `ping -n -c 5 -i 0.01 10.77.0.2` between two namespaces.
PING_OK = """PING 10.77.0.2 (10.77.0.2) 56(84) bytes of data.
64 bytes from 10.77.0.2: icmp_seq=1 ttl=64 time=0.416 ms
64 bytes from 10.77.0.2: icmp_seq=2 ttl=64 time=0.056 ms
64 bytes from 10.77.0.2: icmp_seq=3 ttl=64 time=0.058 ms
64 bytes from 10.77.0.2: icmp_seq=4 ttl=64 time=0.059 ms
64 bytes from 10.77.0.2: icmp_seq=5 ttl=64 time=0.061 ms

--- 10.77.0.2 ping statistics ---
5 packets transmitted, 5 received, 0% packet loss, time 67ms
rtt min/avg/max/mdev = 0.056/0.130/0.416/0.143 ms
"""

# `ping -c 6 -i 0.5 10.99.0.77`: a neighbour that never answers ARP.
PING_UNREACHABLE = """PING 10.99.0.77 (10.99.0.77) 56(84) bytes of data.
From 10.99.0.1 icmp_seq=1 Destination Host Unreachable
From 10.99.0.1 icmp_seq=2 Destination Host Unreachable
From 10.99.0.1 icmp_seq=3 Destination Host Unreachable
From 10.99.0.1 icmp_seq=4 Destination Host Unreachable
From 10.99.0.1 icmp_seq=5 Destination Host Unreachable
From 10.99.0.1 icmp_seq=6 Destination Host Unreachable

--- 10.99.0.77 ping statistics ---
6 packets transmitted, 0 received, +6 errors, 100% packet loss, time 2551ms
pipe 6
"""

# `ping -n -c 3 -i 0.3 -W 0.5 10.77.0.9`: silent loss.
PING_ALL_LOST = """PING 10.77.0.9 (10.77.0.9) 56(84) bytes of data.

--- 10.77.0.9 ping statistics ---
3 packets transmitted, 0 received, 100% packet loss, time 647ms

"""

# `iperf3 -c 10.77.0.2 -p 5300 -t 1 -J` between two namespaces over a veth (offloads on).
IPERF_OK = """{
	"start":	{
		"connected":	[{
				"socket":	5,
				"local_host":	"10.77.0.1",
				"local_port":	41732,
				"remote_host":	"10.77.0.2",
				"remote_port":	5300
			}],
		"version":	"iperf 3.12",
		"system_info":	"Linux vm 6.18.44-fc-v669 #1 SMP PREEMPT_DYNAMIC @0 x86_64",
		"timestamp":	{
			"time":	"Tue, 24 Nov 2026 15:15:47 GMT",
			"timesecs":	1795533347
		},
		"connecting_to":	{
			"host":	"10.77.0.2",
			"port":	5300
		},
		"cookie":	"o3cvris36rsriepfs23qkwv6ckx2phrwuqrf",
		"tcp_mss_default":	1448,
		"target_bitrate":	0,
		"sock_bufsize":	0,
		"sndbuf_actual":	16384,
		"rcvbuf_actual":	131072,
		"test_start":	{
			"protocol":	"TCP",
			"num_streams":	1,
			"blksize":	131072,
			"omit":	0,
			"duration":	1,
			"bytes":	0,
			"blocks":	0,
			"reverse":	0,
			"tos":	0,
			"target_bitrate":	0
		}
	},
	"intervals":	[{
			"streams":	[{
					"socket":	5,
					"start":	0,
					"end":	1.001248,
					"seconds":	1.0012480020523071,
					"bytes":	1937899520,
					"bits_per_second":	15483872255.647291,
					"retransmits":	7987,
					"snd_cwnd":	501008,
					"snd_wnd":	4080640,
					"rtt":	713,
					"rttvar":	435,
					"pmtu":	1500,
					"omitted":	false,
					"sender":	true
				}],
			"sum":	{
				"start":	0,
				"end":	1.001248,
				"seconds":	1.0012480020523071,
				"bytes":	1937899520,
				"bits_per_second":	15483872255.647291,
				"retransmits":	7987,
				"omitted":	false,
				"sender":	true
			}
		}],
	"end":	{
		"streams":	[{
				"sender":	{
					"socket":	5,
					"start":	0,
					"end":	1.001248,
					"seconds":	1.001248,
					"bytes":	1937899520,
					"bits_per_second":	15483872287.385344,
					"retransmits":	7987,
					"max_snd_cwnd":	501008,
					"max_snd_wnd":	4080640,
					"max_rtt":	713,
					"min_rtt":	713,
					"mean_rtt":	713,
					"sender":	true
				},
				"receiver":	{
					"socket":	5,
					"start":	0,
					"end":	1.001279,
					"seconds":	1.001248,
					"bytes":	1935529696,
					"bits_per_second":	15464458525.545826,
					"sender":	true
				}
			}],
		"sum_sent":	{
			"start":	0,
			"end":	1.001248,
			"seconds":	1.001248,
			"bytes":	1937899520,
			"bits_per_second":	15483872287.385344,
			"retransmits":	7987,
			"sender":	true
		},
		"sum_received":	{
			"start":	0,
			"end":	1.001279,
			"seconds":	1.001279,
			"bytes":	1935529696,
			"bits_per_second":	15464458525.545826,
			"sender":	true
		},
		"cpu_utilization_percent":	{
			"host_total":	93.541998214009553,
			"host_user":	0.3917205872815529,
			"host_system":	93.150277626728,
			"remote_total":	42.773436719758074,
			"remote_user":	2.704605649500845,
			"remote_system":	40.06893094122394
		},
		"sender_tcp_congestion":	"bbr",
		"receiver_tcp_congestion":	"bbr"
	}
}
"""

# `iperf3 -c ... -J` with no server listening.
IPERF_REFUSED = """{
	"start":	{
		"connected":	[],
		"version":	"iperf 3.12",
		"system_info":	"Linux vm 6.18.44-fc-v669 #1 SMP PREEMPT_DYNAMIC @0 x86_64"
	},
	"intervals":	[],
	"end":	{
	},
	"error":	"unable to connect to server: Connection refused"
}
"""

# `ip -s -j link show dev yv2`
LINK_JSON = """[{"ifindex":41,"link_index":42,"ifname":"yv2","flags":["BROADCAST","MULTICAST","UP","LOWER_UP"],"mtu":1500,"qdisc":"noqueue","operstate":"UP","linkmode":"DEFAULT","group":"default","txqlen":1000,"link_type":"ether","address":"5e:99:2c:9c:01:75","broadcast":"ff:ff:ff:ff:ff:ff","link_netnsid":0,"stats64":{"rx":{"bytes":1952169224,"packets":41054,"errors":0,"dropped":0,"over_errors":0,"multicast":0},"tx":{"bytes":1973863,"packets":29792,"errors":0,"dropped":0,"carrier_errors":0,"collisions":0}}}]"""

# trafgen's stdout for `trafgen --no-sock-mem -o yv1 -i cfg -P 1 -b 1000pps -n 10`
TRAFGEN_OUT = """     1 packets to schedule
    60 bytes in total
Running! Hang up with ^C!



          10 packets outgoing

         600 bytes outgoing

           0 sec, 34 usec on CPU0 (10 packets)
"""


def test_ping_ok() -> None:
    r = parse_ping(PING_OK)
    assert (r.transmitted, r.received, r.loss_pct, r.errors) == (5, 5, 0.0, 0)
    assert (r.rtt_min_ms, r.rtt_avg_ms, r.rtt_max_ms) == (0.056, 0.130, 0.416)
    assert r.rtts_ms == (0.416, 0.056, 0.058, 0.059, 0.061)


def test_ping_unreachable_counts_errors() -> None:
    r = parse_ping(PING_UNREACHABLE)
    assert (r.transmitted, r.received, r.errors, r.loss_pct) == (6, 0, 6, 100.0)
    assert r.rtt_avg_ms is None and r.rtts_ms == ()


def test_ping_all_lost() -> None:
    r = parse_ping(PING_ALL_LOST)
    assert (r.transmitted, r.received, r.loss_pct) == (3, 0, 100.0)
    with pytest.raises(TrafficError, match="no ping replies"):
        latency_from_ping(r)


def test_ping_without_statistics_is_an_error() -> None:
    with pytest.raises(TrafficError):
        parse_ping("ping: connect: Network is unreachable\n")


def test_latency_percentiles_from_rtts() -> None:
    lat = latency_from_ping(parse_ping(PING_OK))
    assert lat.samples == 5
    assert lat.p50_ms == 0.059
    assert lat.min_ms == 0.056 and lat.max_ms == 0.416
    assert 0.059 < lat.p99_ms <= 0.416


def test_latency_percentiles_large_sample() -> None:
    rtts = tuple(float(i) for i in range(1, 101))
    lat = latency_from_ping(PingResult(100, 100, 0.0, 1.0, 50.5, 100.0, rtts))
    assert lat.p50_ms == pytest.approx(50.5)
    assert lat.p99_ms == pytest.approx(99.01)


def test_percentile_edges() -> None:
    assert percentile([3.0], 99) == 3.0
    assert percentile([1.0, 2.0], 0) == 1.0 and percentile([1.0, 2.0], 100) == 2.0
    with pytest.raises(ValueError):
        percentile([], 50)


def test_iperf3_ok() -> None:
    r = parse_iperf3_json(IPERF_OK)
    assert r.gbps == pytest.approx(15.464458525545826)
    assert r.sent_gbps == pytest.approx(15.483872287385344)
    assert r.retransmits == 7987
    assert r.bytes_received == 1935529696
    assert r.seconds == pytest.approx(1.001279)


def test_iperf3_error_report() -> None:
    with pytest.raises(TrafficError, match="Connection refused"):
        parse_iperf3_json(IPERF_REFUSED)


def test_iperf3_garbage() -> None:
    with pytest.raises(TrafficError):
        parse_iperf3_json("iperf3: error - unable to connect")


def test_link_stats() -> None:
    c = parse_link_stats(LINK_JSON)
    assert (c.rx_packets, c.tx_packets, c.rx_dropped, c.tx_dropped) == (41054, 29792, 0, 0)
    with pytest.raises(TrafficError):
        parse_link_stats("[]")


def test_trafgen_sent() -> None:
    assert parse_trafgen_sent(TRAFGEN_OUT) == 10
    assert parse_trafgen_sent("Running! Hang up with ^C!") is None


def test_loss_pct() -> None:
    assert loss_pct(1000, 999) == pytest.approx(0.1)
    assert loss_pct(1000, 1001) == 0.0  # a stray frame is not negative loss
    assert loss_pct(0, 0) == 100.0


@pytest.mark.parametrize("size", [64, 128, 1518])
def test_udp_frame_config_sizes(size: int) -> None:
    cfg = udp_frame_config("02:00:00:00:00:01", "02:00:00:00:00:02", "10.0.0.1", "10.0.0.2", size)
    assert "eth(da=02:00:00:00:00:02, sa=02:00:00:00:00:01)" in cfg
    assert "ipv4(saddr=10.0.0.1, daddr=10.0.0.2" in cfg
    # 4 FCS + 14 Ethernet + 20 IPv4 + 8 UDP around the payload.
    assert f"fill(0x00, {size - 46})" in cfg


def test_udp_frame_config_rejects_bad_sizes() -> None:
    for size in (63, 1519):
        with pytest.raises(ValueError):
            udp_frame_config("02:00:00:00:00:01", "02:00:00:00:00:02", "10.0.0.1", "10.0.0.2", size)


def _fake_forwarder(capacity: float, ceiling: float) -> Callable[[int], TrialResult]:
    """A trial runner for a forwarder that forwards up to ``capacity`` frames/s, behind a generator
    that makes at most ``ceiling`` frames/s; 1 s trials."""

    def trial(rate: int) -> TrialResult:
        offered = int(min(rate, ceiling))
        return TrialResult(64, rate, 1.0, offered, int(min(offered, capacity)), offered)

    return trial


def test_search_finds_forwarder_capacity() -> None:
    res = search_rates(_fake_forwarder(100_000, 600_000), 64, QUICK_PLAN)
    assert res.ceiling_pps == 600_000 and not res.generator_bound
    assert len(res.trials) <= 1 + QUICK_PLAN.search_iters + QUICK_PLAN.ndr_extra_iters
    assert res.ndr_pps <= res.pdr_pps <= 100_100  # 0.1 % over capacity still passes the PDR criterion
    assert res.ndr_pps > 60_000


def test_search_generator_bound() -> None:
    res = search_rates(_fake_forwarder(1e9, 200_000), 64, QUICK_PLAN)
    assert res.generator_bound and res.pdr_pps == res.ndr_pps == 200_000
    assert len(res.trials) == 1


# `fping -l -D -i 1 -p 2 -t 1000 10.99.0.2` (lab/traffic.GapPinger) while the far end's veth went down for 20 ms:
# requests 26 to 37 had no reply.
FPING_GAP = """[1796502216.90966] 10.99.0.2 : [22], 64 bytes, 0.019 ms (0.024 avg, 0% loss)
[1796502216.91168] 10.99.0.2 : [23], 64 bytes, 0.019 ms (0.024 avg, 0% loss)
[1796502216.91381] 10.99.0.2 : [24], 64 bytes, 0.013 ms (0.024 avg, 0% loss)
[1796502216.91561] 10.99.0.2 : [25], 64 bytes, 0.006 ms (0.023 avg, 0% loss)
[1796502216.94172] 10.99.0.2 : [38], 64 bytes, 0.040 ms (0.024 avg, 0% loss)
[1796502216.94365] 10.99.0.2 : [39], 64 bytes, 0.021 ms (0.023 avg, 0% loss)
[1796502216.94568] 10.99.0.2 : [40], 64 bytes, 0.023 ms (0.023 avg, 0% loss)
"""
# Its summary on stderr at SIGINT.
FPING_SUMMARY = "\n10.99.0.2 : xmt/rcv/%loss = 835/823/1%, min/avg/max = 0.002/0.012/0.157\n"


def test_fping_reply_times_and_sequence_numbers() -> None:
    replies = reply_times(FPING_GAP)
    assert [seq for _, seq in replies] == [22, 23, 24, 25, 38, 39, 40]
    assert replies[0][0] == pytest.approx(1796502216.90966)


def test_fping_sent_from_the_summary() -> None:
    assert fping_sent(FPING_SUMMARY) == 835
    assert fping_sent("") is None


def test_gap_is_the_longest_silence_and_unanswered_requests_are_lost() -> None:
    log = GapLog(reply_times(FPING_GAP), sent=41, stopped=1796502216.9466)
    assert log.longest_gap() == pytest.approx(0.94172 - 0.91561, abs=1e-6)
    assert log.lost == 41 - 7  # 0-21 are not in this excerpt, 26-37 went unanswered


def test_a_silence_until_the_stop_is_a_gap_up_to_the_stop() -> None:
    """A VM that stops answering and never comes back is a long blackout, not a short one."""
    replies = reply_times(FPING_GAP)[:4]
    log = GapLog(replies, sent=400, stopped=1796502217.5)
    assert log.longest_gap() == pytest.approx(1796502217.5 - 1796502216.91561, abs=1e-6)
    assert log.lost == 396


def test_gap_without_replies() -> None:
    assert GapLog([], sent=10, stopped=1.0).longest_gap() == float("inf")
