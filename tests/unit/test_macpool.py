"""SW-09. The dynamic MAC pool: shape of the addresses, per-host separation, skipping and wrapping, exhaustion."""

from __future__ import annotations

import pytest

from pyvswitch.daemon.macpool import POOL_SIZE, MacPool, host_id_from
from pyvswitch.errors import ConflictError
from pyvswitch.packet.mac import is_local_admin, is_multicast, parse_mac


def test_first_address_has_host_id_bytes_and_is_local_unicast() -> None:
    mac = MacPool(0x1234).allocate([])
    assert mac == "02:15:5d:12:34:00"
    assert is_local_admin(parse_mac(mac))
    assert not is_multicast(parse_mac(mac))


def test_two_host_ids_give_disjoint_pools() -> None:
    a, b = MacPool(1), MacPool(2)
    assert a.allocate([]) != b.allocate([])
    assert not a.contains(b.allocate([]))


def test_skips_addresses_in_use_and_continues_after_highest() -> None:
    pool = MacPool(7)
    assert pool.allocate(["02:15:5d:00:07:00"]) == "02:15:5d:00:07:01"
    # a freed low address is not handed out again while higher ones are in use
    assert pool.allocate(["02:15:5d:00:07:05"]) == "02:15:5d:00:07:06"
    # addresses outside the pool do not matter
    assert pool.allocate(["00:11:22:33:44:55"]) == "02:15:5d:00:07:00"


def test_wraps_around_and_accepts_any_mac_format() -> None:
    pool = MacPool(7)
    assert pool.allocate(["02-15-5D-00-07-FF"]) == "02:15:5d:00:07:00"


def test_exhausted_pool_raises_conflict() -> None:
    pool = MacPool(3)
    used = [f"02:15:5d:00:03:{i:02x}" for i in range(POOL_SIZE)]
    with pytest.raises(ConflictError, match="exhausted"):
        pool.allocate(used)


def test_host_id_is_stable_and_depends_on_state_dir() -> None:
    a = host_id_from("abc", "/var/lib/pyvswitch")
    assert a == host_id_from("abc\n", "/var/lib/pyvswitch")
    assert 0 <= a <= 0xFFFF
    assert a != host_id_from("abc", "/var/lib/pyvswitch2")


def test_host_id_range_checked() -> None:
    with pytest.raises(ValueError):
        MacPool(70000)
