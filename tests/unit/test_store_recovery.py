"""Issue 11: a store that is not one is moved aside, a bad row is held (not lost, not fatal), intents survive
a restart, and SR-IOV enablement is stored."""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path

import pytest

from pyvswitch.config.schema import (
    HostConfig,
    PortConfig,
    PortKind,
    SriovAdapterConfig,
    SwitchConfig,
    SwitchType,
    VmConfig,
)
from pyvswitch.config.store import Store, open_store
from pyvswitch.errors import ConfigError


def sample() -> HostConfig:
    return HostConfig(
        switches=[
            SwitchConfig(name="a", type=SwitchType.PRIVATE),
            SwitchConfig(name="b", type=SwitchType.PRIVATE),
        ],
        vms=[VmConfig(name="vm1"), VmConfig(name="vm2")],
        ports=[
            PortConfig(name="vm1-eth0", kind=PortKind.VM, vm="vm1", switch="a"),
            PortConfig(name="vm2-eth0", kind=PortKind.VM, vm="vm2", switch="b"),
        ],
    )


def written(path: Path) -> Path:
    with Store(path) as store:
        store.save(sample(), "first")
    return path


def random_bytes(path: Path) -> None:
    path.write_bytes(bytes(range(256)) * 20)


def truncated(path: Path) -> None:
    written(path)
    size = path.stat().st_size
    with open(path, "r+b") as f:
        f.truncate(size // 2)


def directory(path: Path) -> None:
    path.mkdir()
    (path / "x").write_text("not a database")


def foreign(path: Path) -> None:
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE bookmarks (url TEXT)")
    conn.execute("INSERT INTO bookmarks VALUES ('https://example.org')")
    conn.commit()
    conn.close()


def overwritten_header(path: Path) -> None:
    written(path)
    with open(path, "r+b") as f:
        f.seek(0)
        f.write(b"\x00" * 100)


@pytest.mark.parametrize("spoil", [random_bytes, truncated, directory, foreign, overwritten_header])
def test_unusable_database_is_moved_aside_and_an_empty_store_opened(
    tmp_path: Path, spoil: object, caplog: pytest.LogCaptureFixture
) -> None:
    """issue 11: random bytes, truncated, a directory, another program's database: moved aside, one line."""
    path = tmp_path / "config.db"
    spoil(path)  # type: ignore[operator]
    with caplog.at_level(logging.ERROR, logger="pyvswitch.config.store"):
        store = open_store(path)
    with store:
        assert store.load() == HostConfig()
        store.save(sample(), "works")
    aside = [p for p in tmp_path.iterdir() if p.name.startswith("config.db.corrupt-")]
    assert len(aside) == 1, list(tmp_path.iterdir())
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and str(aside[0]) in errors[0].getMessage()
    assert "\n" not in errors[0].getMessage() and errors[0].exc_info is None


def test_a_good_store_is_not_moved(tmp_path: Path) -> None:
    path = written(tmp_path / "config.db")
    with open_store(path) as store:
        assert store.load() == sample()
    assert sorted(p.name for p in tmp_path.iterdir() if "corrupt" in p.name) == []


def test_a_newer_store_is_refused_not_moved(tmp_path: Path) -> None:
    """A newer pyvswitchd's data is not corrupt: refuse to start rather than discard it."""
    conn = sqlite3.connect(tmp_path / "config.db")
    conn.execute("PRAGMA user_version = 99")
    conn.close()
    with pytest.raises(ConfigError, match="schema version 99"):
        open_store(tmp_path / "config.db")
    assert [p.name for p in tmp_path.iterdir()] == ["config.db"]


def test_bad_row_is_reported_held_and_kept_by_later_saves(tmp_path: Path) -> None:
    """issue 11: one bad row does not lose the rest, and saving without it does not delete it."""
    path = written(tmp_path / "config.db")
    conn = sqlite3.connect(path)
    conn.execute("UPDATE switch SET doc = json_set(doc, '$.type', 'Bogus') WHERE name = 'a'")
    conn.commit()
    conn.close()
    with Store(path) as store:
        loaded = store.load_tolerant()
        assert [s.name for s in loaded.config.switches] == ["b"]
        assert [(f.table, f.name) for f in loaded.failed] == [("switch", "a")]
        assert "type" in loaded.failed[0].error
        store.hold("switch", "a")
        store.save(loaded.config.model_copy(update={"ports": loaded.config.ports[1:]}), "without a")
    with Store(path) as store:
        assert [(f.table, f.name) for f in store.load_tolerant().failed] == [("switch", "a")]
        store.hold("switch", "a")
        # An object of the same name replaces the failed row and ends the hold.
        store.save(sample(), "a again")
        assert store.held() == frozenset()
    with Store(path) as store:
        assert store.load() == sample()


def test_intents_survive_a_restart_until_ended(tmp_path: Path) -> None:
    with Store(tmp_path / "c.db") as store:
        first = store.begin_intent("provision", {"namespaces": ["vm1"], "links": []})
        second = store.begin_intent("tc", {"dev": "eth9"})
        store.end_intent(first)
    with Store(tmp_path / "c.db") as store:
        left = store.intents()
        assert [(i.id, i.kind, i.doc) for i in left] == [(second, "tc", {"dev": "eth9"})]
        assert store.intents("provision") == []
        store.end_intent(second)
        store.end_intent(second)  # idempotent
        assert store.intents() == []


def test_sriov_enablement_is_stored(tmp_path: Path) -> None:
    """issue 11: Enable-NetAdapterSriov survived no restart (sriov_adapters was not in the store)."""
    cfg = sample().model_copy(update={"sriov_adapters": [SriovAdapterConfig(name="eth9", num_vfs=2)]})
    with Store(tmp_path / "c.db") as store:
        store.save(cfg, "enable SR-IOV")
    with Store(tmp_path / "c.db") as store:
        assert store.load().sriov_adapters == cfg.sriov_adapters
