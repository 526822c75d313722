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


def test_a_port_at_its_mac_limit_learns_nothing_new() -> None:
    """PS-02 with a bound: a spoofing port's new sources are learned only up to its limit; the refusals are
    counted, and other ports learn as before."""
    t = MacTable()
    t.set_port_limits({1: 2})
    for mac in (0xA, 0xB, 0xC, 0xD):
        t.learn(0, mac, 1, now=0)
    t.learn(0, 0xE, 2, now=0)
    assert {k[1]: e.port for k, e in t.learned.items()} == {0xA: 1, 0xB: 1, 0xE: 2}
    assert t.not_learned[1] == 2 and t.per_port[1] == 2
    t.learn(0, 0xA, 1, now=5)  # what it has learned is refreshed as usual
    assert t.learned[(0, 0xA)].seen == 5


def test_a_mac_does_not_move_to_a_port_at_its_limit() -> None:
    t = MacTable()
    t.set_port_limits({1: 1})
    t.learn(0, 0xA, 1, now=0)
    t.learn(0, 0xB, 2, now=0)
    t.learn(0, 0xB, 1, now=1)  # B claimed by the full port: stays where it was learned
    assert t.lookup(0, 0xB) == 2 and t.moves == 0 and t.not_learned[1] == 1
    t.learn(0, 0xA, 2, now=2)  # moving away frees room
    t.learn(0, 0xB, 1, now=3)
    assert t.lookup(0, 0xB) == 1 and t.per_port == {1: 1, 2: 1}


def test_aging_and_flush_give_the_room_back() -> None:
    t = MacTable(aging_s=10)
    t.set_port_limits({1: 1})
    t.learn(0, 0xA, 1, now=0)
    t.learn(0, 0xB, 1, now=0)
    assert t.age(now=11) == 1
    t.learn(0, 0xB, 1, now=12)
    assert t.lookup(0, 0xB) == 1
    t.flush_port(1)
    assert t.per_port[1] == 0 and 1 not in t.not_learned
    t.learn(0, 0xC, 1, now=13)
    assert t.lookup(0, 0xC) == 1


@given(
    st.lists(
        st.tuples(st.sampled_from(["learn", "age", "flush", "static"]), st.integers(0, 12), st.integers(0, 3))
    ),
    st.integers(1, 6),
    st.integers(1, 4),
)
def test_per_port_counts_match_the_table_and_limits_hold(
    ops: list[tuple[str, int, int]], size: int, limit: int
) -> None:
    t = MacTable(max_entries=size, aging_s=5)
    t.set_port_limits({0: limit, 1: limit})
    for now, (op, mac, port) in enumerate(ops):
        if op == "learn":
            t.learn(mac % 2, mac, port, float(now))
        elif op == "age":
            t.age(float(now))
        elif op == "flush":
            t.flush_port(port)
        else:
            t.set_static({mac: port})
        actual: dict[int, int] = {}
        for e in t.learned.values():
            actual[e.port] = actual.get(e.port, 0) + 1
        assert {p: n for p, n in t.per_port.items() if n} == actual
        assert actual.get(0, 0) <= limit and actual.get(1, 0) <= limit and len(t.learned) <= size
