"""Host agents (cluster/agent.py) against a real 3-member etcd (issue 13 items 1-2): registration under a lease,
lookup records of a host's ports seen by the hosts that share the subnet and only by them, overlapping customer
addresses in two subnets kept apart, a dead host's records expiring with its lease, a restart that resumes from
the cached revision without reading the cluster again, and a resync only when the history was compacted."""

from __future__ import annotations

import shutil
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from pyvswitch.cluster.agent import ClusterAgent
from pyvswitch.cluster.client import ClusterClient
from pyvswitch.cluster.records import (
    CustomerRoute,
    HostInfo,
    LookupRecord,
    RecordError,
    host_key,
    record_key,
)
from pyvswitch.lab.etcd import EtcdCluster, etcd_unavailable
from pyvswitch.testing.netns import wait_for

pytestmark = pytest.mark.skipif(etcd_unavailable() is not None, reason=str(etcd_unavailable()))

TTL_S = 2


@pytest.fixture(scope="module")
def cluster() -> Iterator[EtcdCluster]:
    with EtcdCluster.running(3) as c:
        yield c


@pytest.fixture
def vsids() -> tuple[int, int]:
    base = 4096 + uuid.uuid4().int % 1_000_000  # distinct subnets per test on the shared cluster
    return base, base + 1


class Agents:
    def __init__(self, cluster: EtcdCluster, root: Path) -> None:
        self.cluster = cluster
        self.root = root
        self.running: list[ClusterAgent] = []

    def start(self, name: str, pa: str) -> ClusterAgent:
        cache = self.root / name
        cache.mkdir(exist_ok=True)
        agent = ClusterAgent(ClusterClient(self.cluster.endpoints), HostInfo(name, pa), cache, ttl_s=TTL_S)
        self.running.append(agent.start())
        return agent


@pytest.fixture
def agents(cluster: EtcdCluster, tmp_path: Path) -> Iterator[Agents]:
    a = Agents(cluster, tmp_path)
    try:
        yield a
    finally:
        for agent in a.running:
            agent.stop(leave=True)


def rec(vsid: int, ca: str, mac: str, pa: str) -> LookupRecord:
    return LookupRecord(vsid, ca, mac, pa)


def mine_record(vsid: int) -> LookupRecord:
    return rec(vsid, "10.0.0.1", "02:00:00:00:0a:01", "192.0.2.1")


def two_hosts(agents: Agents, vsid: int) -> tuple[ClusterAgent, ClusterAgent]:
    """hostA and hostB with one port each on ``vsid``, each seeing the other's record."""
    a = agents.start("hostA", "192.0.2.1")
    b = agents.start("hostB", "192.0.2.2")
    a.publish([mine_record(vsid)])
    b.publish([rec(vsid, "10.0.0.2", "02:00:00:00:0b:02", "192.0.2.2")])
    wait_for(lambda: b.lookup(vsid, "10.0.0.1") is not None, timeout_s=10, what="hostA's record at hostB")
    wait_for(lambda: a.lookup(vsid, "10.0.0.2") is not None, timeout_s=10, what="hostB's record at hostA")
    # Each host's own record and membership back through its own watch: what a restart finds in its cache (a
    # stop before they came back made the successor write them again, seen on a loaded fresh-clone run).
    for agent, ip in ((a, "10.0.0.1"), (b, "10.0.0.2")):

        def settled(agent: ClusterAgent = agent, ip: str = ip) -> bool:
            v = agent.view(vsid)
            return agent.lookup(vsid, ip) is not None and v is not None and agent.host.name in v.hosts

        wait_for(settled, timeout_s=10, what=f"{agent.host.name}'s own record in its view")
    return a, b


def test_records_are_checked_field_by_field() -> None:
    with pytest.raises(RecordError, match="virtual_subnet_id"):
        LookupRecord(4095, "10.0.0.1", "02:00:00:00:00:01", "192.0.2.1")
    with pytest.raises(RecordError, match="customer_address"):
        LookupRecord(5000, "10.0.0.300", "02:00:00:00:00:01", "192.0.2.1")
    with pytest.raises(RecordError, match="customer_mac"):
        LookupRecord(5000, "10.0.0.1", "02:00:00:00:00", "192.0.2.1")
    with pytest.raises(RecordError, match="rule"):
        LookupRecord(5000, "10.0.0.1", "02:00:00:00:00:01", "192.0.2.1", rule="TranslationMethodNat")
    r = LookupRecord(5000, "10.0.0.1", "02-00-00-00-00-0A", "192.0.2.1")
    assert r.customer_mac == "02:00:00:00:00:0a" and LookupRecord.decode(r.encode()) == r


def test_hosts_see_the_records_of_their_subnets_only_and_overlapping_addresses_stay_apart(
    agents: Agents, vsids: tuple[int, int]
) -> None:
    blue, red = vsids
    a = agents.start("hostA", "192.0.2.1")
    b = agents.start("hostB", "192.0.2.2")
    c = agents.start("hostC", "192.0.2.3")
    a.publish([rec(blue, "10.0.0.1", "02:00:00:00:0a:01", "192.0.2.1")])
    b.publish([rec(blue, "10.0.0.2", "02:00:00:00:0b:02", "192.0.2.2"),
               rec(red, "10.0.0.1", "02:00:00:00:0b:01", "192.0.2.2")])  # fmt: skip
    c.publish([rec(red, "10.0.0.2", "02:00:00:00:0c:02", "192.0.2.3")])
    for agent in (a, b, c):
        assert agent.wait_ready()

    def settled() -> bool:
        views = (a.view(blue), b.view(blue), b.view(red), c.view(red))
        return all(v is not None and len(v.records) == 2 and len(v.hosts) == 2 for v in views)

    wait_for(settled, timeout_s=10, what="each host's view of its subnets")
    assert a.view(red) is None and c.view(blue) is None  # not watched: no port there
    blue_rec, red_rec = a.lookup(blue, "10.0.0.1"), c.lookup(red, "10.0.0.1")
    assert blue_rec is not None and red_rec is not None
    assert (blue_rec.customer_mac, blue_rec.host) == ("02:00:00:00:0a:01", "hostA")
    assert (red_rec.customer_mac, red_rec.host) == ("02:00:00:00:0b:01", "hostB")
    blue_view = b.view(blue)
    assert blue_view is not None and sorted(blue_view.hosts) == ["hostA", "hostB"]
    # A port goes: its record goes, and the host leaves the subnet when it has no port left there.
    a.publish([])
    wait_for(lambda: b.lookup(blue, "10.0.0.1") is None, timeout_s=10, what="hostA's record removed")
    wait_for(lambda: sorted(b.view(blue).hosts) == ["hostB"], timeout_s=10, what="hostA left the subnet")  # type: ignore[union-attr]


def test_a_dead_hosts_records_expire_with_its_lease(
    agents: Agents, cluster: EtcdCluster, vsids: tuple[int, int]
) -> None:
    blue, _ = vsids
    a, b = two_hosts(agents, blue)
    agents.running.remove(a)
    a.halt()  # dies: no more keepalives, nothing revoked
    died = time.monotonic()
    wait_for(lambda: b.lookup(blue, "10.0.0.1") is None, timeout_s=TTL_S + 5, what="hostA's record expired")
    gone_after = time.monotonic() - died
    assert gone_after <= TTL_S + 3, gone_after  # etcd checks leases every 500 ms; a loaded machine
    view = b.view(blue)
    assert view is not None and list(view.hosts) == ["hostB"]
    assert ClusterClient(cluster.endpoints).get(host_key("hostA")) is None


def test_records_a_host_withdraws_are_deleted_and_their_owner_writes_its_own_again(
    agents: Agents, vsids: tuple[int, int]
) -> None:
    """A live migration's destination publishes the arriving VM's record (overwriting the source's) and, giving
    the VM back, withdraws it; the source, which still wants its record, writes it again. ``withdraw`` deletes
    even a record the destination no longer knows it wrote (a restart between the two)."""
    blue, _ = vsids
    a, b = two_hosts(agents, blue)
    arriving = rec(blue, "10.0.0.1", "02:00:00:00:0a:01", "192.0.2.2")  # hostA's VM as hostB publishes it
    own = rec(blue, "10.0.0.2", "02:00:00:00:0b:02", "192.0.2.2")
    b.publish([own, arriving])

    def points_to(pa: str) -> bool:
        r = a.lookup(blue, "10.0.0.1")
        return r is not None and r.provider_address == pa

    wait_for(lambda: points_to("192.0.2.2"), timeout_s=10, what="hostB's record of the arriving VM at hostA")
    b._written.pop(
        record_key(blue, "10.0.0.1"), None
    )  # forgotten, as by a restart before the cache was saved
    b.publish([own])
    cycles = b.stats.cycles
    wait_for(lambda: b.stats.cycles >= cycles + 2, timeout_s=10, what="two sync cycles of hostB")
    assert points_to("192.0.2.2"), "a record the host forgot it wrote stays without withdraw"
    b.withdraw([arriving])
    wait_for(lambda: points_to("192.0.2.1"), timeout_s=10, what="hostA's own record written again")
    wait_for(
        lambda: getattr(b.lookup(blue, "10.0.0.1"), "host", None) == "hostA",
        timeout_s=10,
        what="hostA's record back in hostB's view",
    )


def test_a_restarted_host_resumes_from_its_revision_without_reading_the_cluster_again(
    agents: Agents, cluster: EtcdCluster, vsids: tuple[int, int]
) -> None:
    blue, _ = vsids
    a, b = two_hosts(agents, blue)
    mine = [mine_record(blue)]
    lease = a.lease
    agents.running.remove(a)
    a.stop()  # a daemon restart: the lease is left running
    # While A is away: B gets another port.
    b.publish([rec(blue, "10.0.0.2", "02:00:00:00:0b:02", "192.0.2.2"),
               rec(blue, "10.0.0.3", "02:00:00:00:0b:03", "192.0.2.2")])  # fmt: skip
    assert b.wait_ready()
    a2 = agents.start("hostA", "192.0.2.1")
    # As pyvswitchd starts it: the agent runs before start-up has read the configuration and published. Its first
    # rounds used to sync an empty desired set, deleting every record the host still had (writes == 6).
    wait_for(lambda: a2.stats.cycles >= 1, timeout_s=10, what="the restarted agent's first round")
    a2.publish(mine)
    assert a2.wait_ready()
    wait_for(lambda: a2.lookup(blue, "10.0.0.3") is not None, timeout_s=10, what="the change made meanwhile")
    assert a2.lease == lease and a2.stats.registrations == 0  # same lease: nothing expired, nothing re-added
    assert a2.stats.range_reads == 0 and a2.stats.resyncs == 0  # the watch resumed; no subnet read again
    assert a2.stats.writes == 0  # its records were still there
    assert a2.stats.events >= 1
    resume = a2.status()["resume"]
    assert isinstance(resume, dict) and resume["lease"] == "kept" and 0 <= resume["stopped_s"] < TTL_S


def test_a_host_stopped_past_its_lease_registers_again_and_says_why(
    agents: Agents, cluster: EtcdCluster, vsids: tuple[int, int]
) -> None:
    blue, _ = vsids
    a, b = two_hosts(agents, blue)
    lease = a.lease
    agents.running.remove(a)
    a.stop()
    ClusterClient(cluster.endpoints).revoke(lease)  # as its TTL running out does: its records go with it
    wait_for(lambda: b.lookup(blue, "10.0.0.1") is None, timeout_s=10, what="hostA's record gone")
    a2 = agents.start("hostA", "192.0.2.1")
    a2.publish([mine_record(blue)])
    assert a2.wait_ready()
    wait_for(lambda: b.lookup(blue, "10.0.0.1") is not None, timeout_s=10, what="hostA's record back")
    assert a2.lease != lease and a2.stats.registrations == 1 and a2.stats.writes >= 1
    resume = a2.status()["resume"]
    assert isinstance(resume, dict) and resume["lease"] == "expired" and resume["ttl_left_s"] == 0


def test_history_compacted_while_away_means_one_resync_of_that_subnet(
    agents: Agents, cluster: EtcdCluster, vsids: tuple[int, int]
) -> None:
    blue, _ = vsids
    a, b = two_hosts(agents, blue)
    agents.running.remove(a)
    a.stop()
    b.publish([rec(blue, "10.0.0.9", "02:00:00:00:0b:09", "192.0.2.2")])
    assert b.wait_ready()
    client = ClusterClient(cluster.endpoints)
    client.compact(client.put(record_key(blue, "10.0.0.99") + "-marker", b"x"))
    a2 = agents.start("hostA", "192.0.2.1")
    a2.publish([rec(blue, "10.0.0.1", "02:00:00:00:0a:01", "192.0.2.1")])
    wait_for(lambda: a2.lookup(blue, "10.0.0.9") is not None, timeout_s=10, what="the change made meanwhile")
    assert a2.lookup(blue, "10.0.0.2") is None  # the deletion is not lost either
    assert a2.stats.resyncs == 1 and a2.stats.range_reads == 1


def test_a_subnet_expected_before_its_port_is_watched_then_dropped_when_the_hold_ends(
    agents: Agents, vsids: tuple[int, int]
) -> None:
    """A migration's destination loads the subnet's records before the VM arrives (ClusterAgent.expect): the
    view is there with no port of its own, and goes once the hold ends without a port asking for it."""
    blue, _ = vsids
    a = agents.start("hostA", "192.0.2.1")
    b = agents.start("hostB", "192.0.2.2")
    a.publish([mine_record(blue)])
    assert a.wait_ready()
    assert b.view(blue) is None
    assert b.expect([blue], timeout_s=10, hold_s=1.0)
    assert b.lookup(blue, "10.0.0.1") is not None  # hostA's record, before hostB has a port there
    assert b.wait_ready(timeout_s=0.5)  # an expected subnet's watch is a wanted one, not a stray
    wait_for(lambda: b.view(blue) is None, timeout_s=15, what="the expected subnet unwatched after its hold")


def test_customer_routes_make_a_host_watch_the_subnets_its_routing_domain_routes_to(
    agents: Agents, vsids: tuple[int, int]
) -> None:
    """Item 2, customer routes: a host with a port on BLUE watches GREEN once both are in one routing domain
    (the distributed router needs GREEN's records), not a subnet of another domain; a subnet is in one domain
    only; the routes survive a restart in the cache (no read again); removing them ends the extra watch."""
    blue, green = vsids
    red = green + 1
    rd = "{" + str(uuid.uuid4()).upper() + "}"
    other_rd = "{" + str(uuid.uuid4()).upper() + "}"
    a, b = agents.start("hostA", "192.0.2.1"), agents.start("hostB", "192.0.2.2")
    a.publish([mine_record(blue)])
    b.publish([rec(green, "10.0.1.7", "02:00:00:00:0b:07", "192.0.2.2")])
    assert a.wait_ready() and b.wait_ready()
    assert a.view(green) is None
    a.add_route(CustomerRoute(rd, blue, "10.0.0.0/24"))
    a.add_route(CustomerRoute(rd, green, "10.0.1.0/24"))
    a.add_route(CustomerRoute(other_rd, red, "10.0.1.0/24"))
    with pytest.raises(RecordError, match=r"virtual_subnet_id.*routing domain"):
        b.add_route(CustomerRoute(other_rd, blue, "10.9.0.0/24"))
    wait_for(lambda: a.lookup(green, "10.0.1.7") is not None, timeout_s=10, what="GREEN watched by hostA")
    wait_for(lambda: b.lookup(blue, "10.0.0.1") is not None, timeout_s=10, what="BLUE watched by hostB")
    assert a.view(red) is None  # another routing domain
    assert {(r.vsid, r.destination_prefix) for r in a.customer_routes() if r.rdid == rd} == {
        (blue, "10.0.0.0/24"), (green, "10.0.1.0/24"),
    }  # fmt: skip
    assert a.wait_ready(timeout_s=5)
    agents.running.remove(a)
    a.stop()
    a2 = agents.start("hostA", "192.0.2.1")
    a2.publish([mine_record(blue)])
    assert a2.wait_ready()
    assert a2.stats.route_reads == 0 and a2.view(green) is not None  # from the cache, watch resumed
    for vsid, prefix in ((blue, "10.0.0.0/24"), (green, "10.0.1.0/24")):
        assert a2.remove_route(rd, vsid, prefix)
    assert a2.remove_route(other_rd, red, "10.0.1.0/24")
    wait_for(lambda: a2.view(green) is None, timeout_s=10, what="GREEN unwatched once the routes went")


def test_a_store_rebuilt_from_nothing_is_read_again_not_followed_from_a_revision_it_never_reached(
    tmp_path: Path,
) -> None:
    """Every member's data lost and the cluster started new (the old `lab up` did this; so would an operator
    without a snapshot): the leases are gone and the store's revision starts again from 1. A host re-registers
    and, its views being ahead of the store, reads them again; followed from its old revision, its watch would
    deliver nothing until the new store got there, and a record written meanwhile would never be seen."""
    with EtcdCluster.running(3) as cluster:
        agents = Agents(cluster, tmp_path)
        try:
            blue = 4096
            a, b = two_hosts(agents, blue)
            b.publish([rec(blue, "10.0.0.2", "02:00:00:00:0b:02", "192.0.2.2"),
                       rec(blue, "10.0.0.4", "02:00:00:00:0b:04", "192.0.2.2")])  # fmt: skip
            writer = ClusterClient(cluster.endpoints)
            for i in range(40):  # the old store well ahead of where the new one will be
                writer.put(f"/test/pad{i}", b"x")
            wait_for(lambda: a.lookup(blue, "10.0.0.4") is not None, timeout_s=10, what="10.0.0.4 at hostA")
            for m in range(3):
                cluster.kill(m)
            shutil.rmtree(cluster.members[0].data_dir)
            assert cluster.converge() == "started"
            b.publish([rec(blue, "10.0.0.2", "02:00:00:00:0b:02", "192.0.2.2"),
                       rec(blue, "10.0.0.3", "02:00:00:00:0b:03", "192.0.2.2")])  # fmt: skip
            wait_for(lambda: a.lookup(blue, "10.0.0.3") is not None, timeout_s=20,
                     what="a record written after the rebuild, at hostA")  # fmt: skip
            assert a.lookup(blue, "10.0.0.4") is None  # gone with the lost store: not left in the view
            assert a.stats.registrations == 2 and a.stats.resyncs >= 1
            view = a.view(blue)
            assert view is not None and view.revision <= writer.revision()
        finally:
            for agent in agents.running:
                agent.halt()
