"""MacTable (SW-07: lookup by MAC and VLAN): learning, moves, aging, size limit with oldest-first eviction, static entries."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from pyvswitch.switch.fdb import MacTable


def test_learn_lookup_and_move() -> None:
    t = MacTable()
    t.learn(0, 0xA, port=1, now=0)
    assert t.lookup(0, 0xA) == 1
    assert t.lookup(10, 0xA) is None  # keyed by learning domain
    t.learn(0, 0xA, port=2, now=1)
    assert t.lookup(0, 0xA) == 2 and t.moves == 1


def test_aging_removes_only_expired() -> None:
    t = MacTable(aging_s=300)
    t.learn(0, 1, 1, now=0)
    t.learn(0, 2, 1, now=100)
    assert t.age(now=299) == 0
    assert t.age(now=301) == 1
    assert t.lookup(0, 1) is None and t.lookup(0, 2) == 1


def test_refresh_keeps_entry_alive() -> None:
    t = MacTable(aging_s=300)
    t.learn(0, 1, 1, now=0)
    t.learn(0, 1, 1, now=250)
    assert t.age(now=400) == 0
    assert t.age(now=551) == 1


def test_overflow_evicts_least_recently_refreshed() -> None:
    t = MacTable(max_entries=3, aging_s=300)
    for i, now in ((1, 0), (2, 5), (3, 10)):
        t.learn(0, i, 1, now=now)
    t.learn(0, 1, 1, now=20)  # 1 refreshed: 2 is now the oldest
    t.learn(0, 4, 1, now=30)
    assert t.lookup(0, 2) is None
    assert {k[1] for k in t.learned} == {1, 3, 4}
    assert t.evictions == 1


def test_static_wins_and_is_not_learned() -> None:
    t = MacTable()
    t.set_static({0xB: 7})
    t.learn(0, 0xB, 3, now=0)
    assert t.lookup(0, 0xB) == 7 and not t.learned


def test_flush_port() -> None:
    t = MacTable()
    t.learn(0, 1, 1, 0)
    t.learn(0, 2, 2, 0)
    t.flush_port(1)
    assert t.lookup(0, 1) is None and t.lookup(0, 2) == 2


@given(st.lists(st.tuples(st.integers(0, 20), st.integers(0, 3)), max_size=200), st.integers(1, 8))
def test_never_exceeds_size(ops: list[tuple[int, int]], size: int) -> None:
    t = MacTable(max_entries=size)
    for now, (mac, port) in enumerate(ops):
        t.learn(0, mac, port, float(now))
        assert len(t.learned) <= size
        assert t.lookup(0, mac) == port
