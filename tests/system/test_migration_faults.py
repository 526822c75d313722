"""Live migration survives either daemon dying at any step of the hand-over (issue 11 item 4).

Issue 11's reproduction: the destination daemon died right after the hand-over (the veth in its namespace,
before it adopted the VM); the source tried to pull the veth back through the dead process's namespace
(``/proc/<pid>/ns/net``) and the VM ended up in neither host's configuration, its veth stranded. Here each
daemon is made to die at each step of the two-phase hand-over (``PYVSWITCH_FAULT=migration:<side>:<step>``,
daemon/faults.py: the daemon ``os._exit``\\ s there, as kill -9 would), then is started again, and the VM must
be owned by exactly one host (in exactly one store, its veth in that host's namespace) and reachable from the
LAN host. Where the rule (daemon/migration.py: the destination's commit mark decides) makes the survivor the
owner, the survivor alone must already have settled it before the dead daemon comes back.

One lab serves every case (each case uses its own VM and address); a case costs two daemon restarts. Nothing
here measures time, so the module runs in the parallel tier.
"""

from __future__ import annotations

import contextlib
import itertools
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import pytest

from pyvswitch.cli.client import ApiError, Client, DaemonUnreachable
from pyvswitch.lab.hosts import SWITCH, Lab, LabHost
from pyvswitch.testing.netns import unique, wait_for

pytestmark = pytest.mark.system

_addresses = itertools.count(20)


@pytest.fixture(scope="module")
def lab() -> Iterator[Lab]:
    with Lab.running(hosts=2, name=unique("flab")) as lab:
        yield lab


def api(host: LabHost) -> Client:
    """The host's REST API in this process: the CLI costs an interpreter start (~1 s here) per call."""
    return Client(host.socket, timeout_s=60)


def vms_of(host: LabHost) -> list[str]:
    with api(host) as c:
        return [str(v["name"]) for v in c.vms()]


def records(host: LabHost) -> list[dict[str, Any]]:
    """GET /v1/migrations: the migrations a host has not settled yet."""
    with api(host) as c:
        return list(c.request("GET", "/migrations"))


def answers(host: LabHost) -> bool:
    try:
        with api(host) as c:
            c.health()
    except (ApiError, DaemonUnreachable):
        return False
    return True


def migrate(lab: Lab, src: str, vm: str, dst: str) -> None:
    """``pyvswitch migrate VM --to DST`` as the CLI sends it; the answer does not matter (a daemon may die)."""
    body = {"vm": vm, "to": dst, "socket": lab.host(dst).socket}
    with contextlib.suppress(ApiError, DaemonUnreachable), api(lab.host(src)) as c:
        c.request("POST", "/migrations", json=body)


def reachable(lab: Lab, ip: str, timeout_s: float = 10) -> bool:
    """The LAN host gets a reply from ``ip`` within ``timeout_s`` (ARP and the LAN's learning settle first)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        cmd = ["ip", "netns", "exec", lab.lan_host_netns, "ping", "-c1", "-W1", ip]
        if subprocess.run(cmd, capture_output=True).returncode == 0:
            return True
        time.sleep(0.05)
    return False


def assert_owned_by(lab: Lab, vm: str, ip: str, owner: str, ifname: str, *, settled: bool = True) -> None:
    """Exactly ``owner`` has the VM (configuration and store), its veth is in ``owner``'s namespace, the LAN
    host reaches it; with ``settled``, no running daemon still has a record of the migration."""
    live = {n: h for n, h in lab.hosts.items() if answers(h)}
    holders = [n for n, h in live.items() if vm in vms_of(h)]
    assert holders == [owner], f"VM {vm} is configured on {holders}, expected only {owner}"
    where = [
        n
        for n, h in lab.hosts.items()
        if subprocess.run(["ip", "-n", h.netns, "link", "show", ifname], capture_output=True).returncode == 0
    ]
    assert where == [owner], f"veth {ifname} of {vm} is in {where}'s namespace, expected {owner}'s"
    assert reachable(lab, ip), f"VM {vm} ({ip}) does not answer the LAN host"
    if settled:

        def no_records() -> bool:
            return all(not [r for r in records(h) if r["vm"] == vm] for h in live.values())

        wait_for(no_records, timeout_s=10, interval_s=0.1, what=f"both hosts to settle the migration of {vm}")


def new_vm(lab: Lab, host: LabHost) -> tuple[str, str, str]:
    """A VM on ``host``: (name, address, its switch-side veth)."""
    vm = unique("fvm")
    ip = f"{lab.lan_host_ip.rsplit('.', 1)[0]}.{next(_addresses)}"
    with api(host) as c:
        c.add_vm({"name": vm, "switch": SWITCH, "ip": [f"{ip}/24"]})
        ifname = str(c.port(f"{vm}-eth0")["interface"])
    assert reachable(lab, ip)
    return vm, ip, ifname


def remove(lab: Lab, vm: str) -> None:
    for h in lab.hosts.values():
        if answers(h) and vm in vms_of(h):
            with api(h) as c:
                c.delete_vm(vm)


# step -> who owns the VM by the rule (before the destination's commit mark: the source; after: the destination)
DESTINATION_STEPS = [
    ("prepared", "hostA"),  # validated, recorded PREPARED, died before answering: nothing moved
    ("accepted", "hostA"),  # issue 11's reproduction: the veth is on B, B recorded ACCEPTED and died
    ("marked", "hostB"),  # B set its commit mark and died before its store had the VM
    ("adopted", "hostB"),  # B's store has the VM; died before restoring state and announcing it
    ("committed", "hostB"),  # B recorded COMMITTED and died before answering
]


@pytest.mark.parametrize(("step", "owner"), DESTINATION_STEPS)
def test_destination_dies_at_each_step(lab: Lab, step: str, owner: str) -> None:
    a = lab.host("hostA")
    vm, ip, ifname = new_vm(lab, a)
    try:
        lab.restart("hostB", env={"PYVSWITCH_FAULT": f"migration:destination:{step}"})
        migrate(lab, "hostA", vm, "hostB")
        lab.wait_dead("hostB")
        # The survivor alone has settled it by the rule already (the mark read in B's namespace by name).
        if owner == "hostA":
            assert_owned_by(lab, vm, ip, "hostA", ifname, settled=False)
        else:
            assert vm not in vms_of(a)
        lab.restart("hostB")
        assert_owned_by(lab, vm, ip, owner, ifname)
    finally:
        remove(lab, vm)


# None: either host, by the rule. A sends the commit request as its move begins (daemon/migration.py), so when A
# dies after the move, B commits if it read the request before the connection closed (uvicorn answers a request
# whose client is gone with a disconnect if the app had not read its body yet), and gives the veth back if not.
SOURCE_STEPS: list[tuple[str, str | None]] = [
    ("preparing", "hostA"),  # recorded PREPARING, died before asking B
    ("validated", "hostA"),  # B has PREPARED; nothing moved
    ("handed_over", "hostA"),  # recorded HANDED_OVER (with the saved state), died before the move
    ("commit_sent", "hostA"),  # the commit request on its way, nothing moved: B's wait ends with A's abort
    ("moved", None),  # the veth is in B's namespace, the commit request on its way
    ("answered", "hostB"),  # B committed and answered; A died before recording it
]


def holder(lab: Lab, vm: str) -> str:
    """The one running host that has ``vm`` configured, once exactly one has (the others gave it up)."""
    found: list[str] = []

    def one() -> bool:
        found[:] = [n for n, h in lab.hosts.items() if answers(h) and vm in vms_of(h)]
        return len(found) == 1

    wait_for(one, timeout_s=15, interval_s=0.1, what=f"exactly one host to own {vm}")
    return found[0]


@pytest.mark.parametrize(("step", "owner"), SOURCE_STEPS)
def test_source_dies_at_each_step(lab: Lab, step: str, owner: str | None) -> None:
    a = lab.restart("hostA", env={"PYVSWITCH_FAULT": f"migration:source:{step}"})
    vm, ip, ifname = new_vm(lab, a)
    try:
        migrate(lab, "hostA", vm, "hostB")
        lab.wait_dead("hostA")
        if owner == "hostB":  # the survivor is the owner: the VM works on B before A comes back
            assert vm in vms_of(lab.host("hostB"))
            assert reachable(lab, ip)
        lab.restart("hostA")
        owner = owner or holder(lab, vm)
        assert_owned_by(lab, vm, ip, owner, ifname)
        # And it still migrates afterwards, both ways.
        there = "hostB" if owner == "hostA" else "hostA"
        with api(lab.host(owner)) as c:
            c.request("POST", "/migrations", json={"vm": vm, "to": there, "socket": lab.host(there).socket})
        assert_owned_by(lab, vm, ip, there, ifname)
    finally:
        remove(lab, vm)
