"""Issue 11 with fakes: start-up with a bad row runs the rest and reports the object failed; garbage collection
finishes or undoes an interrupted commit and never touches another owner's objects; the SR-IOV loop logs a
failing tc once and clears at start-up the devices an earlier run left tc filters on."""

from __future__ import annotations

import logging
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from pyvswitch.config.schema import HostConfig
from pyvswitch.config.store import Store
from pyvswitch.daemon.api import create_app
from pyvswitch.daemon.iov import IovManager, StoreTcRecord
from pyvswitch.daemon.macpool import MacPool
from pyvswitch.daemon.service import Service
from pyvswitch.daemon.service.provisioning import INTENT_KIND
from pyvswitch.datapath.nicswitch import NicSwitchPlan
from pyvswitch.errors import DeviceError
from tests.component.test_api import Daemon, FakeEngine, FakeLab
from tests.component.test_iov import FakeKernel, config


class OwnedLab(FakeLab):
    """FakeLab whose objects carry owners (the alias mark); ``foreign`` ones belong to another daemon."""

    owner = "me"

    def __init__(self) -> None:
        super().__init__()
        self.marks: dict[str, str] = {}  # link or namespace -> owner ("" = unmarked)

    def create_vm_nic(self, netns: str, host_if: str, vm_if: str, mac: str, ips: list[str]) -> None:
        super().create_vm_nic(netns, host_if, vm_if, mac, ips)
        self.marks[host_if] = self.owner
        self.marks[netns] = self.owner

    def create_host_vnic(self, host_if: str, switch_if: str, mac: str, ips: list[str]) -> None:
        super().create_host_vnic(host_if, switch_if, mac, ips)
        self.marks[switch_if] = self.marks[host_if] = self.owner

    def ensure_netns(self, name: str) -> None:
        super().ensure_netns(name)
        self.marks[name] = self.owner

    def link_owner(self, ifname: str) -> str | None:
        return self.marks.get(ifname, "") if ifname in self.links else None

    def netns_owner(self, name: str) -> str | None:
        return self.marks.get(name, "") if name in self.netns else None

    def owned_links(self) -> set[str]:
        return {n for n in self.links if self.marks.get(n) == self.owner}

    def owned_namespaces(self) -> set[str]:
        return {n for n in self.netns if self.marks.get(n) == self.owner}

    def mark_link(self, ifname: str) -> None:
        self.marks[ifname] = self.owner

    def mark_netns(self, name: str) -> None:
        self.marks[name] = self.owner


def start(path: Path, lab: FakeLab) -> Service:
    service = Service(Store(path), FakeEngine(), lab, MacPool(0x0102))
    service.start()
    return service


def spoil(path: Path, table: str, name: str, field: str, value: Any) -> None:
    conn = sqlite3.connect(path)
    conn.execute(f"UPDATE {table} SET doc = json_set(doc, '$.{field}', ?) WHERE name = ?", (value, name))
    conn.commit()
    conn.close()


def test_bad_row_starts_the_rest_and_reports_the_object_failed(tmp_path: Path) -> None:
    """issue 11: one bad row stopped the whole host; now that switch (and the port on it) is failed, in
    /v1/failed and health, the rest runs, and the rows stay in the store."""
    d = Daemon(tmp_path / "config.db")
    for sw in ("bad", "good"):
        assert d.client.post("/v1/switches", json={"name": sw, "type": "Private"}).status_code == 201
    assert d.client.post("/v1/vms", json={"name": "v1", "switch": "bad"}).status_code == 201
    assert d.client.post("/v1/vms", json={"name": "v2", "switch": "good"}).status_code == 201
    spoil(d.path, "switch", "bad", "type", "Bogus")
    d.restart()
    failed = d.client.get("/v1/failed").json()
    assert [(f["kind"], f["name"]) for f in failed] == [("port", "v1-eth0"), ("switch", "bad")]
    health = d.client.get("/v1/health").json()
    assert health["status"] == "degraded" and "switch bad" in health["failed"], health
    assert [s["name"] for s in d.client.get("/v1/switches").json()] == ["good"]
    assert d.client.post("/v1/vms", json={"name": "v3", "switch": "good"}).status_code == 201
    assert "v1" in d.lab.netns  # the failed object's VM and veth are kept, not collected
    d.restart()  # the held rows were not deleted by the save above
    assert [(f["kind"], f["name"]) for f in d.client.get("/v1/failed").json()] == [
        ("port", "v1-eth0"),
        ("switch", "bad"),
    ]
    # Re-creating the switch by name replaces the bad row.
    assert d.client.post("/v1/switches", json={"name": "bad", "type": "Private"}).status_code == 201
    assert [f["name"] for f in d.client.get("/v1/failed").json()] == ["v1-eth0"]


def test_interrupted_commit_is_undone_before_save_and_finished_after(tmp_path: Path) -> None:
    """issue 11: a commit killed after creating its veth but before saving leaves an orphan; one killed after
    the save but before removing the old objects leaves those. Start-up collects both, by the intent."""
    lab = OwnedLab()
    path = tmp_path / "config.db"
    service = start(path, lab)
    client = TestClient(create_app(service))
    assert client.post("/v1/switches", json={"name": "sw", "type": "Private"}).status_code == 201
    assert client.post("/v1/vms", json={"name": "keep", "switch": "sw"}).status_code == 201
    assert service._store.intents() == []  # a finished commit leaves no intent

    # 1. killed before the save, as kill -9 leaves it: the intent recorded, the namespace made (not yet
    # marked), the veth made; the store never heard of the VM.
    service._store.begin_intent(INTENT_KIND, {"namespaces": ["lost"], "links": ["pvlost"]})
    lab.netns.add("lost")
    lab.links["pvlost"] = {"netns": "lost", "peer": "eth0", "mac": "", "ips": []}
    lab.marks["pvlost"] = lab.owner
    # Another daemon's namespace, and a link nobody marked that no intent names: never touched.
    lab.netns.add("theirs")
    lab.marks["theirs"] = "other"
    lab.links["eth7"] = {"netns": None, "peer": "", "mac": "", "ips": []}
    service = start(path, lab)
    assert "lost" not in lab.netns and "pvlost" not in lab.links
    assert {"keep", "theirs"} <= lab.netns and "eth7" in lab.links
    assert service._store.intents() == []

    # 2. killed after the save, before the old objects went: the intent names them.
    class Killed(BaseException):
        pass

    def die(name: str) -> None:
        raise Killed

    client = TestClient(create_app(service))
    keep_if = next(p.interface for p in service.config.ports if p.vm == "keep")
    lab.delete_netns = die  # type: ignore[method-assign]
    lab.delete_link = die  # type: ignore[method-assign]
    with pytest.raises(Killed):
        client.delete("/v1/vms/keep")
    del lab.delete_netns, lab.delete_link
    assert "keep" in lab.netns and keep_if in lab.links
    service = start(path, lab)
    assert "keep" not in lab.netns and keep_if not in lab.links
    assert service.config.vms == [] and service._store.intents() == []


def test_failing_tc_is_logged_once_per_error_not_per_poll(caplog: pytest.LogCaptureFixture) -> None:
    """issue 11: ~5 tracebacks a second while tc kept failing."""

    class BrokenTc(FakeKernel):
        error = "tc: RTNETLINK answers: Operation not supported"

        def program(self, plan: NicSwitchPlan) -> None:
            raise DeviceError(self.error)

    k = BrokenTc()
    holder = [config(50)]
    m = IovManager(
        k, lambda: holder[0], lambda c, s: c, nic=k, attach=k.attach, carrier=lambda n: True, poll_s=0.01
    )
    with caplog.at_level(logging.DEBUG, logger="pyvswitch.daemon.iov"):
        m.start()
        deadline = time.monotonic() + 5
        while m.errors < 30 and time.monotonic() < deadline:
            time.sleep(0.01)
        k.error = "tc: something else"
        seen = m.errors
        while m.errors < seen + 10 and time.monotonic() < deadline:
            time.sleep(0.01)
        m.stop()
    assert m.errors >= 40
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 2, [r.getMessage() for r in errors]
    assert all(r.exc_info is None for r in errors)
    assert "Operation not supported" in errors[0].getMessage() and "something else" in errors[1].getMessage()
    assert m.last_error == "DeviceError: tc: something else"


def test_tc_devices_are_recorded_and_cleared_at_the_next_start(tmp_path: Path) -> None:
    """issue 11: a VF port's filters outlived a restart when the port was no VF any more."""
    k = FakeKernel()
    holder: list[HostConfig] = [config(50)]
    with Store(tmp_path / "c.db") as store:
        m = IovManager(
            k,
            lambda: holder[0],
            lambda c, s: c,
            nic=k,
            attach=k.attach,
            carrier=lambda n: True,
            record=StoreTcRecord(store),
        )
        m.reconcile()
        assert {i.doc["dev"] for i in store.intents("tc")} == {"eth9", "pva"}
    # kill -9; meanwhile the port left the VF path (and SR-IOV was disabled) in the stored configuration.
    k2 = FakeKernel()
    holder = [config(0, enabled=False)]
    with Store(tmp_path / "c.db") as store:
        m = IovManager(
            k2,
            lambda: holder[0],
            lambda c, s: c,
            nic=k2,
            attach=k2.attach,
            carrier=lambda n: True,
            record=StoreTcRecord(store),
        )
        m.reconcile()
        assert ("tc-clear", "pva") in k2.log and ("tc-clear", "eth9") in k2.log
        assert store.intents("tc") == []
