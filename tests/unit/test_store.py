"""The SQLite store: round trip, diffs in one transaction, history, migrations, corrupt rows named."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from pyvswitch.config.schema import (
    HostConfig,
    PortConfig,
    PortKind,
    SwitchConfig,
    SwitchType,
    VlanConfig,
    VlanMode,
    VmConfig,
)
from pyvswitch.config.store import MIGRATIONS, Store
from pyvswitch.errors import ConfigError


def sample() -> HostConfig:
    return HostConfig(
        switches=[
            SwitchConfig(name="sw1", type=SwitchType.INTERNAL),
            SwitchConfig(name="ext", type=SwitchType.EXTERNAL, net_adapter="eth9"),
        ],
        vms=[VmConfig(name="vm1"), VmConfig(name="vm2", netns="ns2")],
        ports=[
            PortConfig(
                name="vm1-eth0",
                kind=PortKind.VM,
                vm="vm1",
                switch="sw1",
                interface="pv00000001",
                peer_interface="eth0",
                mac="02:15:5d:00:01:00",
                ip=["10.0.0.1/24"],
                vlan=VlanConfig(mode=VlanMode.ACCESS, access_vlan_id=10),
            ),
            PortConfig(name="ext-uplink", kind=PortKind.UPLINK, switch="ext", interface="eth9"),
            PortConfig(
                name="vm2-eth0",
                kind=PortKind.VM,
                vm="vm2",
                vlan=VlanConfig(mode=VlanMode.TRUNK, allowed_vlan_ids=[1, 2, 3], native_vlan_id=1),
            ),
        ],
    )


def test_empty_store_loads_empty_config(tmp_path: Path) -> None:
    with Store(tmp_path / "c.db") as store:
        assert store.load() == HostConfig()
        assert store.version == len(MIGRATIONS)


def test_round_trip_keeps_everything_and_order(tmp_path: Path) -> None:
    cfg = sample()
    with Store(tmp_path / "c.db") as store:
        store.save(cfg, "first")
    # a new connection, as after a restart
    with Store(tmp_path / "c.db") as store:
        assert store.load() == cfg


def test_save_writes_the_diff_and_records_history(tmp_path: Path) -> None:
    cfg = sample()
    with Store(tmp_path / "c.db") as store:
        first = store.save(cfg, "first")
        assert first["switch"]["added"] == ["ext", "sw1"]
        ports = [p for p in cfg.ports if p.name != "ext-uplink"]
        ports[0] = ports[0].model_copy(update={"switch": None})
        new = cfg.model_copy(update={"ports": ports})
        changes = store.save(new, "second")
        assert changes == {"port": {"removed": ["ext-uplink"], "changed": ["vm1-eth0"]}}
        assert store.load() == new
        hist = store.history()
        assert [h["summary"] for h in hist] == ["second", "first"]
        assert hist[0]["changes"] == changes


def test_failed_save_changes_nothing(tmp_path: Path) -> None:
    cfg = sample()
    with Store(tmp_path / "c.db") as store:
        store.save(cfg, "first")

        class Boom(Exception):
            pass

        def broken(new: HostConfig) -> dict[str, dict[str, list[str]]]:
            store._conn.execute("DELETE FROM switch")
            raise Boom

        store._write = broken  # type: ignore[method-assign]
        with pytest.raises(Boom):
            store.save(HostConfig(), "fails half-way")
    with Store(tmp_path / "c.db") as store:
        assert store.load() == cfg
        assert [h["summary"] for h in store.history()] == ["first"]


def test_corrupt_row_is_an_error_naming_it(tmp_path: Path) -> None:
    with Store(tmp_path / "c.db") as store:
        store.save(sample(), "first")
    conn = sqlite3.connect(tmp_path / "c.db")
    conn.execute("UPDATE port SET doc = json_set(doc, '$.vlan.access_vlan_id', 5000) WHERE name = 'vm1-eth0'")
    conn.commit()
    conn.close()
    with Store(tmp_path / "c.db") as store, pytest.raises(ConfigError) as info:
        store.load()
    assert info.value.problems[0][0] == "store.port['vm1-eth0'].vlan.access_vlan_id"


def test_migration_hook_runs_once_in_order(tmp_path: Path) -> None:
    calls: list[int] = []

    def v_next(conn: sqlite3.Connection) -> None:
        calls.append(2)
        conn.execute("CREATE TABLE extra (x INTEGER) STRICT")

    with Store(tmp_path / "c.db") as store:
        store.save(sample(), "first")
    with Store(tmp_path / "c.db", migrations=(*MIGRATIONS, v_next)) as store:
        assert store.version == len(MIGRATIONS) + 1
        assert store.load() == sample()
    with Store(tmp_path / "c.db", migrations=(*MIGRATIONS, v_next)) as store:
        assert store.version == len(MIGRATIONS) + 1
    assert calls == [2]


def test_newer_database_is_refused(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / "c.db")
    conn.execute("PRAGMA user_version = 99")
    conn.close()
    with pytest.raises(ConfigError, match="schema version 99"):
        Store(tmp_path / "c.db")
