"""The SQLite store: round trip, diffs in one transaction, history, migrations, corrupt rows named; QoS
policies and DCB settings (v3)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from pyvswitch.config.schema import (
    DcbConfig,
    HostConfig,
    IpProtocolMatch,
    PortConfig,
    PortKind,
    QosPolicyConfig,
    QosTemplate,
    SwitchConfig,
    SwitchType,
    TrafficClassConfig,
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


def qos_sample() -> HostConfig:
    return sample().model_copy(
        update={
            "qos_policies": [
                QosPolicyConfig(
                    name="Live Migration",
                    template=QosTemplate.LIVE_MIGRATION,
                    min_bandwidth_weight=30,
                    priority_8021=5,
                ),
                QosPolicyConfig(
                    name="web", ip_protocol=IpProtocolMatch.TCP, ip_dst_port=80, throttle_rate=10**8
                ),
            ],
            "dcb": DcbConfig(
                traffic_classes=[TrafficClassConfig(name="SMB", priorities=[3], bandwidth_percentage=50)],
                flow_control_priorities=[3],
                willing=False,
                adapters=["eth9"],
            ),
        }
    )


def test_qos_policies_and_dcb_round_trip_and_are_in_history(tmp_path: Path) -> None:
    """QS-07/QS-09: host QoS policies (a table) and the DCB settings (a singleton) survive a restart."""
    cfg = qos_sample()
    with Store(tmp_path / "c.db") as store:
        first = store.save(cfg, "first")
        assert first["qos_policy"] == {"added": ["Live Migration", "web"]}
        assert first["setting"] == {"added": ["dcb"]}
    with Store(tmp_path / "c.db") as store:
        assert store.load() == cfg
        dcb = cfg.dcb.model_copy(update={"flow_control_priorities": [3, 4]})
        changes = store.save(cfg.model_copy(update={"dcb": dcb, "qos_policies": cfg.qos_policies[:1]}), "pfc")
        assert changes == {"qos_policy": {"removed": ["web"]}, "setting": {"changed": ["dcb"]}}
        assert store.history()[0]["changes"] == changes
        # back to the default DCB settings: the row goes
        assert store.save(cfg.model_copy(update={"dcb": DcbConfig()}), "reset")["setting"] == {
            "removed": ["dcb"]
        }
        assert store.load().dcb == DcbConfig()


def test_corrupt_dcb_row_is_named(tmp_path: Path) -> None:
    with Store(tmp_path / "c.db") as store:
        store.save(qos_sample(), "first")
    conn = sqlite3.connect(tmp_path / "c.db")
    conn.execute(
        "UPDATE setting SET doc = json_set(doc, '$.flow_control_priorities[0]', 9) WHERE name = 'dcb'"
    )
    conn.commit()
    conn.close()
    with Store(tmp_path / "c.db") as store, pytest.raises(ConfigError) as info:
        store.load()
    assert info.value.problems[0][0] == "store.setting['dcb'].flow_control_priorities[0]"


def test_a_version_2_database_upgrades_to_3(tmp_path: Path) -> None:
    """A store written before QoS (schema v2) gains the qos_policy and setting tables and keeps its rows."""
    path = tmp_path / "c.db"
    conn = sqlite3.connect(path)
    for migrate in MIGRATIONS[:2]:
        migrate(conn)
    conn.execute("PRAGMA user_version = 2")
    for pos, sw in enumerate(sample().switches):
        conn.execute("INSERT INTO switch VALUES (?, ?, ?)", (sw.name, pos, sw.model_dump_json()))
    conn.commit()
    conn.close()
    with Store(path) as store:
        assert store.version == len(MIGRATIONS)
        loaded = store.load()
        assert loaded.switches == sample().switches
        assert (loaded.qos_policies, loaded.dcb) == ([], DcbConfig())
        cfg = qos_sample()
        store.save(cfg, "after the upgrade")
    with Store(path) as store:
        assert store.load() == cfg
