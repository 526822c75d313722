"""QEMU-guest VMs through the REST API (issue 12): the service makes TAPs, not namespaces, hands the VM to its
guests manager, and answers exec, errors and migration refusals; QEMU itself is faked (system tests run it)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from pyvswitch.daemon import guests as guests_module
from pyvswitch.daemon.guests import Guests
from pyvswitch.daemon.migration import Migrations
from pyvswitch.daemon.service import Conflict
from pyvswitch.guest.qemu import Guest, GuestSpec
from pyvswitch.testing.guests import FakeGuest
from pyvswitch.testing.netns import wait_for
from tests.component.test_api import Daemon, errors
from tests.component.test_cli import Cli


@pytest.fixture
def d(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Daemon]:
    monkeypatch.setattr(guests_module, "guests_unavailable", lambda: None)
    daemon = Daemon(tmp_path / "config.db")
    started: list[FakeGuest] = []

    def start(spec: GuestSpec, root: Path) -> Guest:
        started.append(FakeGuest(spec, root / spec.name, pid=4242))
        return started[-1]

    daemon.service.guests = Guests(
        "o", run_root=tmp_path / "run", start=start, adopt=lambda _: None, wait=lambda g, t: None
    )
    daemon.started = started  # type: ignore[attr-defined]
    yield daemon
    daemon.store.close()


def running(d: Daemon, name: str) -> dict[str, object]:
    wait_for(lambda: d.client.get(f"/v1/vms/{name}").json()["state"] == "running", timeout_s=5)
    view: dict[str, object] = d.client.get(f"/v1/vms/{name}").json()
    return view


def test_a_qemu_vm_gets_a_tap_no_namespace_a_guest_and_exec_goes_to_the_guest(d: Daemon) -> None:
    d.client.post("/v1/switches", json={"name": "sw", "type": "Private"})
    r = d.client.post(
        "/v1/vms", json={"name": "web01", "kind": "qemu", "switch": "sw", "ip": ["10.0.0.10/24"]}
    )
    assert r.status_code == 201, r.text
    view = running(d, "web01")
    assert view["kind"] == "qemu" and view["netns"] is None and view["pid"] == 4242
    assert view["memory_mb"] == 256 and view["cpus"] == 1
    tap = view["ports"][0]["interface"]  # type: ignore[index]
    assert d.lab.links[tap]["tap"] and "web01" not in d.lab.netns
    (guest,) = d.started  # type: ignore[attr-defined]
    assert guest.spec.nics[0].tap == tap and guest.spec.nics[0].addresses == ("10.0.0.10/24",)
    r = d.client.post("/v1/vms/web01/exec", json={"argv": ["uname", "-r"]})
    assert r.json() == {"returncode": 3, "stdout": "ran ['uname', '-r']\n", "stderr": ""}
    assert d.client.delete("/v1/vms/web01").status_code == 204
    assert guest.stopped and tap not in d.lab.links


def test_requests_a_qemu_vm_cannot_take_are_refused_naming_the_field(
    d: Daemon, monkeypatch: pytest.MonkeyPatch
) -> None:
    r = d.client.post("/v1/vms", json={"name": "g", "kind": "qemu", "netns": "x"})
    assert r.status_code == 400 and errors(r)[0][0] == "netns"
    r = d.client.post("/v1/vms", json={"name": "g", "kind": "qemu", "memory_mb": 16})
    assert r.status_code == 400 and "memory_mb" in errors(r)[0][0]
    d.client.post("/v1/vms", json={"name": "ns1"})
    r = d.client.post("/v1/vms/ns1/exec", json={"argv": ["true"]})
    assert r.status_code == 409 and "ip netns exec" in errors(r)[0][1]
    monkeypatch.setattr(guests_module, "guests_unavailable", lambda: "qemu-system-x86_64 is not installed")
    r = d.client.post("/v1/vms", json={"name": "g", "kind": "qemu", "adapter": False})
    assert r.status_code == 400 and errors(r)[0] == (
        "kind",
        "QEMU guests cannot run on this host: qemu-system-x86_64 is not installed",
    )
    assert [v["name"] for v in d.client.get("/v1/vms").json()] == ["ns1"]


def test_migrating_a_guest_that_is_not_running_is_refused_before_anything_moves(d: Daemon) -> None:
    """A guest that failed to boot has no running copy to send: 409 naming it, nothing recorded or changed."""
    d.service.guests._wait = lambda g, t: (_ for _ in ()).throw(RuntimeError("no READY line"))  # type: ignore[union-attr]
    d.client.post("/v1/vms", json={"name": "g", "kind": "qemu", "adapter": False})
    wait_for(lambda: d.client.get("/v1/vms/g").json()["state"] == "failed", timeout_s=5)
    migrations = Migrations(d.service, d.engine)
    with pytest.raises(Conflict, match="not running"):
        migrations.migrate("g", "hostB", socket="/nonexistent.sock")
    assert [v["name"] for v in d.client.get("/v1/vms").json()] == ["g"] and migrations.pending() == []


def test_new_vm_with_memory_startup_bytes_and_vm_add_kind_qemu_create_guests(
    d: Daemon, capsys: pytest.CaptureFixture[str]
) -> None:
    """Hyper-V's New-VM -MemoryStartupBytes 512MB (a PowerShell byte literal) and the Linux verb both end in a
    booted guest; Get-VM shows its state and kind, `vm exec` answers with the guest's exit status."""
    cli = Cli(d, capsys)
    d.client.post("/v1/switches", json={"name": "ext", "type": "Private"})
    (obj,) = cli.ok(
        "--json", "New-VM", "-Name", "web01", "-SwitchName", "ext", "-MemoryStartupBytes", "512MB"
    ).json()
    assert obj["Kind"] == "Qemu" and obj["State"] == "Running" and obj["MemoryStartup"] == 512 * 2**20
    assert d.service.vm("web01").memory_mb == 512
    res = cli("New-VM", "-Name", "x", "-MemoryStartupBytes", "lots")
    assert res.rc != 0 and "MemoryStartupBytes" in res.err
    vm = cli.ok("--json", "vm", "add", "db01", "--kind", "qemu", "--cpus", "2", "--switch", "ext").json()
    assert vm["state"] == "running" and vm["cpus"] == 2
    assert "qemu (running)" in cli.ok("vm", "list").out
    res = cli("vm", "exec", "db01", "--", "uname", "-r")
    assert res.rc == 3 and "ran ['uname', '-r']" in res.out
    assert cli("vm", "add", "y", "--kind", "qemu", "--netns", "n").rc == 2
    assert cli("vm", "add", "y", "--memory", "512").rc == 2  # a namespace has no memory
    assert {o["Name"]: o["Kind"] for o in cli.ok("--json", "Get-VM").json()} == {
        "web01": "Qemu",
        "db01": "Qemu",
    }
