"""The daemon's QEMU guests (daemon/guests.py) against fake QEMU processes: start, keep, restart, stop, adopt."""

from __future__ import annotations

from pathlib import Path

import pytest

from pyvswitch.config.schema import (
    HostConfig,
    PortConfig,
    PortKind,
    SwitchConfig,
    SwitchType,
    VmConfig,
    VmKind,
)
from pyvswitch.daemon.guests import Guests, guest_specs
from pyvswitch.guest.image import ImageError
from pyvswitch.guest.qemu import Guest, GuestError, GuestSpec
from pyvswitch.testing.guests import FakeGuest
from pyvswitch.testing.netns import wait_for


class Fakes:
    def __init__(self) -> None:
        self.started: list[GuestSpec] = []
        self.left_running: dict[str, FakeGuest] = {}  # what an earlier daemon left (adopt finds these)
        self.fail: set[str] = set()
        self.no_image: set[str] = set()
        self.boot_error: set[str] = set()

    def start(self, spec: GuestSpec, root: Path) -> Guest:
        if spec.name in self.fail:
            raise GuestError("qemu-system-x86_64: could not open TAP")
        if spec.name in self.no_image:
            raise ImageError("apt-get download linux-image-6.1.0-57-cloud-amd64 failed: Temporary failure")
        self.started.append(spec)
        return FakeGuest(spec, root / spec.name, pid=1000 + len(self.started))

    def adopt(self, run_dir: Path) -> Guest | None:
        return self.left_running.get(run_dir.name)

    def wait(self, guest: Guest, timeout_s: float) -> None:
        if guest.spec.name in self.boot_error:
            raise GuestError("did not boot")


def cfg(*vms: tuple[str, list[str]], memory: int = 256) -> HostConfig:
    """qemu VMs with one adapter each (name-eth0 on switch sw, tap pvq<name>), plus a namespace VM ns1."""
    ports = [
        PortConfig(
            name=f"{n}-eth0", kind=PortKind.VM, vm=n, switch="sw", interface=f"pvq{n}"[:15], peer_interface="eth0",
            mac="52:54:00:00:00:01", ip=ips,
        )
        for n, ips in vms
    ]  # fmt: skip
    return HostConfig(
        switches=[SwitchConfig(name="sw", type=SwitchType.PRIVATE)],
        vms=[VmConfig(name="ns1"), *(VmConfig(name=n, kind=VmKind.QEMU, memory_mb=memory) for n, _ in vms)],
        ports=ports,
    )


@pytest.fixture
def fakes() -> Fakes:
    return Fakes()


@pytest.fixture
def guests(fakes: Fakes, tmp_path: Path) -> Guests:
    return Guests("owner1", run_root=tmp_path, start=fakes.start, adopt=fakes.adopt, wait=fakes.wait)


def settled(g: Guests, name: str) -> str:
    wait_for(
        lambda: (s := g.status(name)) is not None and s.state != "booting", timeout_s=5, what=f"{name} booted"
    )
    status = g.status(name)
    assert status is not None
    return status.state


def test_specs_take_nics_in_eth_order_with_their_addresses_and_skip_namespace_vms() -> None:
    c = cfg(("g1", ["10.0.0.10/24", "fd00::10/64"]))
    second = c.ports[0].model_copy(
        update={"name": "g1-eth1", "interface": "pvqg1b", "peer_interface": "eth1"}
    )
    c = c.model_copy(update={"ports": [second, *c.ports]})
    (spec,) = guest_specs(c).values()
    assert [n.tap for n in spec.nics] == ["pvqg1", "pvqg1b"]
    assert spec.nics[0].addresses == ("10.0.0.10/24", "fd00::10/64")


def test_a_new_vm_starts_an_unchanged_one_is_kept_a_changed_one_restarts_a_removed_one_stops(
    guests: Guests, fakes: Fakes
) -> None:
    guests.reconcile(cfg(("g1", ["10.0.0.10/24"])))
    assert [s.name for s in fakes.started] == ["g1"]
    assert settled(guests, "g1") == "running"
    first = guests._guests["g1"]
    guests.reconcile(cfg(("g1", ["10.0.0.10/24"])))
    assert len(fakes.started) == 1 and guests._guests["g1"] is first  # unchanged: kept
    guests.reconcile(cfg(("g1", ["10.0.0.11/24"])))
    assert len(fakes.started) == 2 and first.stopped  # the guest sees its address: restarted
    second = guests._guests["g1"]
    guests.reconcile(cfg(("g1", ["10.0.0.11/24"]), memory=512))
    assert len(fakes.started) == 3 and second.stopped
    third = guests._guests["g1"]
    guests.reconcile(cfg())
    assert third.stopped and guests.status("g1") is None


def test_a_guest_left_running_by_an_earlier_daemon_is_adopted_if_its_spec_matches(
    guests: Guests, fakes: Fakes, tmp_path: Path
) -> None:
    c = cfg(("g1", ["10.0.0.10/24"]), ("g2", ["10.0.0.20/24"]))
    specs = guest_specs(c)
    same = FakeGuest(specs["g1"], tmp_path / "owner1" / "g1", pid=77)
    stale = FakeGuest(
        GuestSpec("g2", specs["g2"].nics, memory_mb=1024), tmp_path / "owner1" / "g2", pid=78
    )  # configured since with other memory
    orphan = FakeGuest(GuestSpec("gone", ()), tmp_path / "owner1" / "gone", pid=79)
    for g in (same, stale, orphan):
        g.run_dir.mkdir(parents=True)
        fakes.left_running[g.spec.name] = g
    guests.reconcile(c)
    assert guests._guests["g1"] is same and not same.stopped
    status = guests.status("g1")
    assert status is not None and status.state == "running" and status.pid == 77
    assert stale.stopped and [s.name for s in fakes.started] == ["g2"]
    assert orphan.stopped and not orphan.run_dir.exists()


def test_a_guest_that_fails_to_start_or_boot_is_reported_not_raised(guests: Guests, fakes: Fakes) -> None:
    fakes.fail.add("g1")
    fakes.boot_error.add("g2")
    guests.reconcile(cfg(("g1", []), ("g2", [])))
    s1 = guests.status("g1")
    assert s1 is not None and s1.state == "failed" and "TAP" in str(s1.error)
    assert settled(guests, "g2") == "failed"
    with pytest.raises(GuestError, match="not running"):
        guests.run("g2", ["true"], 5)


def test_an_image_that_cannot_be_built_fails_that_guest_and_starts_the_others(
    guests: Guests, fakes: Fakes
) -> None:
    # A lab host's daemon has no route to the package mirror: once, the guest showed "stopped" and
    # `vm add` succeeded, since the error escaped reconcile.
    fakes.no_image.add("g1")
    guests.reconcile(cfg(("g1", []), ("g2", [])))
    s1 = guests.status("g1")
    assert s1 is not None and s1.state == "failed" and "apt-get download" in str(s1.error)
    assert settled(guests, "g2") == "running"


def test_a_name_too_long_for_the_socket_path_is_a_problem_naming_the_field(tmp_path: Path) -> None:
    g = Guests("owner1", run_root=tmp_path / ("d" * 60))
    problems = g.problems(cfg(("g" * 27, [])))  # 27 + "-eth0": the longest port name
    assert problems and problems[0][0] == "vms[1].name"
