"""The cluster client (cluster/client.py) against a real 3-member etcd on loopback (issue 13 item 1): reads with
their revision, leases, failover when a member dies, and a watch that resumes on another member from the last
revision it delivered, losing and repeating nothing."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator

import pytest

from pyvswitch.cluster.client import ClusterClient, ClusterError, Compacted, Event, parse_endpoints
from pyvswitch.lab.etcd import EtcdCluster, etcd_unavailable
from pyvswitch.testing.netns import wait_for

pytestmark = pytest.mark.skipif(etcd_unavailable() is not None, reason=str(etcd_unavailable()))


@pytest.fixture(scope="module")
def cluster() -> Iterator[EtcdCluster]:
    with EtcdCluster.running(3) as c:
        yield c


@pytest.fixture
def prefix() -> str:
    return f"/test/{uuid.uuid4().hex[:8]}/"


def test_endpoints_are_checked() -> None:
    assert parse_endpoints("http://127.0.0.1:1, http://[::1]:2") == ["http://127.0.0.1:1", "http://[::1]:2"]
    for bad in ("", "127.0.0.1:2379", "http://host", "ftp://h:1"):
        with pytest.raises(ValueError):
            parse_endpoints(bad)


def test_put_get_range_and_delete_with_revisions(cluster: EtcdCluster, prefix: str) -> None:
    c = ClusterClient(cluster.endpoints)
    r1 = c.put(prefix + "a", b"1")
    r2 = c.put(prefix + "b", "2")
    assert r2 > r1
    kvs, rev = c.range_prefix(prefix)
    assert [(kv.key, kv.value) for kv in kvs] == [(prefix + "a", b"1"), (prefix + "b", b"2")]
    assert rev >= r2 and kvs[1].mod_revision == r2
    got = c.get(prefix + "a")
    assert got is not None and got.value == b"1"
    assert c.get(prefix + "zzz") is None
    assert c.delete(prefix + "a") == 1 and c.delete(prefix + "a") == 0
    assert c.delete_prefix(prefix) == 1
    assert c.range_prefix(prefix)[0] == []


def test_a_leased_key_goes_with_its_lease(cluster: EtcdCluster, prefix: str) -> None:
    c = ClusterClient(cluster.endpoints)
    lease = c.grant(5)
    c.put(prefix + "host", b"alive", lease=lease)
    assert 0 < c.keepalive(lease) <= 5
    got = c.get(prefix + "host")
    assert got is not None and got.lease == lease
    c.revoke(lease)
    assert c.get(prefix + "host") is None
    assert c.keepalive(lease) == -1


def test_calls_move_to_another_member_when_theirs_dies(cluster: EtcdCluster, prefix: str) -> None:
    c = ClusterClient(cluster.endpoints, timeout_s=1.0)
    c.put(prefix + "k", b"before")
    cluster.kill(0)  # the member the client was using
    try:
        c.put(prefix + "k", b"after")  # the two left still have a quorum
        got = c.get(prefix + "k")
        assert got is not None and got.value == b"after"
        assert c.failovers >= 1
    finally:
        cluster.restart(0)


def test_no_member_answering_is_a_cluster_error() -> None:
    c = ClusterClient("http://127.0.0.1:9,http://127.0.0.1:7", timeout_s=0.5)
    with pytest.raises(ClusterError, match="no etcd member answered"):
        c.put("/x", b"y")


def test_a_watch_resumes_on_another_member_losing_and_repeating_nothing(
    cluster: EtcdCluster, prefix: str
) -> None:
    c = ClusterClient(cluster.endpoints, timeout_s=1.0)
    writer = ClusterClient(list(reversed(cluster.endpoints)), timeout_s=1.0)
    start = writer.put(prefix + "k0", b"0")
    got: list[Event] = []
    stop = threading.Event()
    closers = []
    t = threading.Thread(
        target=c.watch_prefix, args=(prefix, start, got.extend, stop, closers.append), daemon=True
    )
    t.start()
    for i in range(1, 20):
        writer.put(prefix + f"k{i}", str(i))
    wait_for(lambda: len(got) >= 20, timeout_s=10, what="the first 20 events")
    watched_on = c._current
    cluster.kill(watched_on)
    try:
        for i in range(20, 40):
            writer.put(prefix + f"k{i}", str(i))
        writer.delete(prefix + "k0")
        wait_for(lambda: len(got) >= 41, timeout_s=15, what="the events after the member died")
    finally:
        stop.set()
        for close in closers:
            close()
        cluster.restart(watched_on)
    t.join(timeout=5)
    puts = [e for e in got if e.kind == "put"]
    assert [e.key for e in puts] == [prefix + f"k{i}" for i in range(40)]  # in order, none twice
    assert [e.value for e in puts][:3] == [b"0", b"1", b"2"]
    assert got[-1].kind == "delete" and got[-1].key == prefix + "k0"
    assert len(got) == 41
    assert c._current != watched_on


def test_a_watch_from_compacted_history_says_so(cluster: EtcdCluster, prefix: str) -> None:
    c = ClusterClient(cluster.endpoints)
    old = c.put(prefix + "a", b"1")
    latest = c.put(prefix + "a", b"2")
    c.compact(latest)
    with pytest.raises(Compacted) as info:
        c.watch_prefix(prefix, old, lambda events: None, threading.Event())
    assert info.value.compact_revision >= latest


def test_a_conditional_delete_leaves_a_key_someone_else_rewrote(cluster: EtcdCluster, prefix: str) -> None:
    c = ClusterClient(cluster.endpoints)
    c.put(prefix + "rec", b"on hostA")
    c.put(prefix + "rec", b"on hostB")  # the VM migrated: hostB owns the record now
    assert c.delete_if(prefix + "rec", b"on hostA") is False
    got = c.get(prefix + "rec")
    assert got is not None and got.value == b"on hostB"
    assert c.delete_if(prefix + "rec", b"on hostB") is True and c.get(prefix + "rec") is None


def test_converge_starts_only_the_dead_member_again_and_the_cluster_keeps_its_keys_and_leases(
    cluster: EtcdCluster, prefix: str
) -> None:
    """What `lab up` does to a lab's cluster with a member down: that member starts again on its own data; the
    others keep running; keys and leases survive (it once started the whole cluster afresh and every lease was
    lost). A cluster that answers is kept as it is."""
    c = ClusterClient(cluster.endpoints, timeout_s=1.0)
    lease = c.grant(30)
    c.put(prefix + "host", b"alive", lease=lease)
    pids = [m.proc.pid for m in cluster.members if m.proc is not None]
    cluster.kill(2)
    assert cluster.converge() == "restarted m2"
    after = [m.proc.pid for m in cluster.members if m.proc is not None]
    assert after[:2] == pids[:2] and after[2] != pids[2]
    only_m2 = ClusterClient([cluster.endpoints[2]], timeout_s=2.0)
    got = only_m2.get(prefix + "host")
    assert got is not None and got.value == b"alive" and got.lease == lease
    assert only_m2.keepalive(lease) > 0
    assert cluster.converge() == "kept"
    assert [m.proc.pid for m in cluster.members if m.proc is not None] == after
