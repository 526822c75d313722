"""Live migration between two in-process hosts (LM-01, LM-02, EX-14, EX-15): a Service + real Engine each, on
memory devices, with a fake lab whose "namespaces" are two link tables and a mover between them.

The wire is simulated by hand: frames are injected into a host's uplink (a MemoryDevice) and read from the VM's
veth device; after a migration the VM's device on the destination is a new MemoryDevice on the same name.
"""

from __future__ import annotations

import json
import struct
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from pyvswitch.builtin.firewall import Firewall
from pyvswitch.cli.main import main as cli_main
from pyvswitch.config.intents import IntentLog, Phase
from pyvswitch.config.schema import ExtendedAclEntry, SwitchConfig, SwitchType
from pyvswitch.config.store import Store
from pyvswitch.daemon.api import create_app
from pyvswitch.daemon.macpool import MacPool
from pyvswitch.daemon.migration import MigrationError, Migrations, Netns, add_migration_routes
from pyvswitch.daemon.service import Service
from pyvswitch.datapath.memory import MemoryDevice
from pyvswitch.errors import ConfigError
from pyvswitch.ext.api import FilterExtension, PortEvent, PortInfo, Veto
from pyvswitch.ext.registry import Registry
from pyvswitch.packet.mac import parse_mac
from pyvswitch.switch.engine import Engine
from pyvswitch.testing.clock import FakeClock
from pyvswitch.testing.frames import eth, ipv4, strip_tag

LAN_MAC = "02:00:00:00:99:01"
VM_IP, LAN_IP = "10.0.0.10", "10.0.0.100"


class NoVlan20(FilterExtension):
    """Vetoes ports in access VLAN 20 and records what it was shown (validation ports included)."""

    name = "no-vlan20"
    seen: list[tuple[str, str, bool]] = []

    def port_event(self, event: PortEvent, port: PortInfo) -> None:
        NoVlan20.seen.append((event.value, port.name, port.validation))
        if event is PortEvent.CREATE and port.vlan_mode == "Access" and port.name.startswith("vetoed"):
            raise Veto("VLAN policy not allowed on this host")


class FakeLab:
    def __init__(self, existing: set[str]) -> None:
        self.netns: set[str] = set()
        self.links: dict[str, dict[str, Any]] = {}
        self.existing = existing
        self.made: list[str] = []

    def create_vm_nic(self, netns: str, host_if: str, vm_if: str, mac: str, ips: list[str]) -> None:
        if host_if not in self.links:
            self.made.append(host_if)  # a new veth (adoption must not make one)
        self.netns.add(netns)
        self.links[host_if] = {"netns": netns, "peer": vm_if, "mac": mac, "ips": list(ips)}

    def create_guest_tap(self, ifname: str) -> None:
        self.links[ifname] = {"netns": None, "peer": None, "mac": None, "ips": []}

    def create_host_vnic(self, host_if: str, switch_if: str, mac: str, ips: list[str]) -> None:
        self.links[switch_if] = {"netns": None, "peer": host_if, "mac": mac, "ips": list(ips)}

    def delete_link(self, ifname: str) -> None:
        self.links.pop(ifname, None)

    def delete_netns(self, name: str) -> None:
        self.netns.discard(name)

    def link_exists(self, ifname: str) -> bool:
        return ifname in self.links or ifname in self.existing

    def netns_exists(self, name: str) -> bool:
        return name in self.netns

    def ensure_netns(self, name: str) -> None:
        self.netns.add(name)


class Host:
    def __init__(self, tmp: Path, name: str, pid: int, registry: Registry, world: World) -> None:
        self.name = name
        self.pid = pid
        self.lab = FakeLab({"eth1"})
        self.clock = FakeClock()
        self.devices: dict[str, MemoryDevice] = {}
        self.engine = Engine(clock=self.clock, open_device=self._open, registry=registry)
        self.service = Service(Store(tmp / f"{name}.db"), self.engine, self.lab, MacPool(pid))
        self.service.start()
        self.migrations = Migrations(
            self.service,
            self.engine,
            peer_for=world.peer,
            mover=Mover(world, self),
            netns=lambda: Netns(pid, pid, name),
            intents=IntentLog(tmp / name / "migrations"),
        )
        self.service.add_switch(
            SwitchConfig(name="ext", type=SwitchType.EXTERNAL, net_adapter="eth1", allow_management_os=False)
        )

    def _open(self, kind: str, ifname: str) -> MemoryDevice:
        dev = self.devices[ifname] = MemoryDevice(ifname)
        return dev

    def vm_dev(self, vm: str = "web01") -> MemoryDevice:
        port = self.service.port(f"{vm}-eth0")
        assert port.interface is not None
        return self.devices[port.interface]

    def run(self) -> None:
        while self.engine.run_once():
            pass


class World:
    """Both hosts; peers call the other host's Migrations directly; the mover moves fake links."""

    def __init__(self) -> None:
        self.hosts: dict[str, Host] = {}
        self.fail_commit = False
        self.fail_move: Callable[[Netns], None] | None = None  # called instead of a successful move
        self.commit_errors: list[str] = []  # what the destination's commit raised

    def peer(self, to: str) -> Any:
        world = self
        target = self.hosts[to]

        class Direct:
            def validate(self, body: dict[str, Any]) -> dict[str, Any]:
                return _through_errors(lambda: target.migrations.validate(body))

            def commit(self, body: dict[str, Any]) -> dict[str, Any]:
                if world.fail_commit:
                    return _through_errors(lambda: _raise(ConfigError([("ports[0]", "injected failure")])))
                try:
                    return _through_errors(lambda: target.migrations.commit(body))
                except MigrationError as exc:
                    world.commit_errors.append(str(exc))
                    raise

            def abort(self, body: dict[str, Any]) -> dict[str, Any]:
                return _through_errors(lambda: target.migrations.abort(body))

            def forget(self, body: dict[str, Any]) -> dict[str, Any]:
                return _through_errors(lambda: target.migrations.forget(body))

        return Direct()

    def move(self, ifnames: list[str], dest: Netns, src: Netns | None = None) -> None:
        to = next(h for h in self.hosts.values() if h.pid == dest.pid)
        frm = (
            next(h for h in self.hosts.values() if h.pid == src.pid)
            if src is not None
            else next(
                h for h in self.hosts.values() if h is not to and any(i in h.lab.links for i in ifnames)
            )
        )
        for i in ifnames:
            to.lab.links[i] = frm.lab.links.pop(i)

    def holder(self, ifname: str) -> Host | None:
        return next((h for h in self.hosts.values() if ifname in h.lab.links), None)


class Mover:
    """One host's view of the World's links: what NetlinkMover does in a daemon's namespace."""

    def __init__(self, world: World, me: Host) -> None:
        self.world, self.me = world, me

    def move(self, ifnames: list[str], dest: Netns, src: Netns | None = None) -> None:
        if self.world.fail_move:
            self.world.fail_move(dest)
        self.world.move(ifnames, dest, src)

    def arrived(self, ifnames: list[str]) -> bool:
        return all(i in self.me.lab.links for i in ifnames)

    def pull(self, ifnames: list[str], peers: list[Netns]) -> list[str]:
        missing = []
        for i in ifnames:
            holder = self.world.holder(i)
            if holder is None:
                missing.append(i)
            elif holder is not self.me:
                self.me.lab.links[i] = holder.lab.links.pop(i)
        return missing

    def push(self, ifnames: list[str], dest: Netns) -> None:
        to = next(h for h in self.world.hosts.values() if h.pid == dest.pid)
        for i in ifnames:
            if i in self.me.lab.links:
                to.lab.links[i] = self.me.lab.links.pop(i)

    def set_mark(self, ifname: str, mark: str | None) -> None:
        self.me.lab.links[ifname]["alias"] = mark

    def read_mark(self, ifname: str, peers: list[Netns]) -> str | None:
        holder = self.world.holder(ifname)
        return None if holder is None else holder.lab.links[ifname].get("alias")


def _raise(exc: Exception) -> dict[str, Any]:
    raise exc


def _through_errors(fn: Any) -> dict[str, Any]:
    """What HttpPeer does with an error answer: MigrationError with the destination's field problems."""
    try:
        out: dict[str, Any] = fn()
        return out
    except ConfigError as exc:
        raise MigrationError(exc.problems) from exc
    except Exception as exc:
        raise MigrationError([("", str(exc))]) from exc


RULES = [
    ExtendedAclEntry(action="Deny", direction="Inbound", weight=1),
    ExtendedAclEntry(action="Allow", direction="Outbound", weight=10, protocol="TCP", stateful=True,
                     idle_session_timeout_s=60),
]  # fmt: skip


def tcp(sport: int, dport: int, flags: int = 0x10) -> bytes:
    return struct.pack(">HHIIBBHHH", sport, dport, 1, 1, 0x50, flags, 65535, 0, 0)


def out_frame(vm_mac: str, sport: int = 40000) -> bytes:
    return eth(LAN_MAC, vm_mac, ipv4(VM_IP, LAN_IP, 6, tcp(sport, 5201, 0x02)))


def in_frame(vm_mac: str, dport: int = 40000) -> bytes:
    return eth(vm_mac, LAN_MAC, ipv4(LAN_IP, VM_IP, 6, tcp(5201, dport)))


@pytest.fixture
def world(tmp_path: Path) -> World:
    reg = Registry.of(Firewall, NoVlan20)
    w = World()
    w.hosts["hostA"] = Host(tmp_path, "hostA", 1, reg, w)
    w.hosts["hostB"] = Host(tmp_path, "hostB", 2, reg, w)
    NoVlan20.seen = []
    return w


def add_vm(h: Host, name: str = "web01", **port: Any) -> str:
    h.service.add_vm(name, port_fields={"switch": "ext", "ip": [f"{VM_IP}/24"]})
    if port:
        h.service.update_port(f"{name}-eth0", port)
    mac = h.service.port(f"{name}-eth0").mac
    assert mac is not None
    return mac


def sent(dev: MemoryDevice) -> list[bytes]:
    out, dev.sent[:] = list(dev.sent), []
    return out


def test_migration_moves_config_and_connection_table_and_announces(world: World) -> None:
    a, b = world.hosts["hostA"], world.hosts["hostB"]
    mac = add_vm(
        a, extended_acls=[r.model_dump() for r in RULES], vlan={"mode": "Access", "access_vlan_id": 7}
    )
    # A connection from the VM out to the LAN host: the stateful rule admits its replies on A.
    a.vm_dev().inject(out_frame(mac))
    a.run()
    assert len(sent(a.devices["eth1"])) == 1
    a.devices["eth1"].inject(in_frame(mac), tci=7)
    a.run()
    assert len(sent(a.vm_dev())) == 1
    port_a = a.service.port("web01-eth0")

    result = a.migrations.migrate("web01", "hostB")

    assert set(result["timings"]) == {"validation_s", "vf_release_s", "blackout_s", "total_s"}
    # A forgot the VM (configuration and store), left its veth for B; B has it with every policy.
    assert [v.name for v in a.service.config.vms] == []
    assert Store(Path(a.service._store.path)).load().vms == []  # type: ignore[attr-defined]
    assert port_a.interface not in a.lab.links and port_a.interface in b.lab.links
    assert b.lab.made == []  # adopted, not created
    port_b = b.service.port("web01-eth0")
    assert port_b == port_a
    assert Store(Path(b.service._store.path)).load().vms[0].name == "web01"  # type: ignore[attr-defined]
    # B announced the MAC out of its uplink, tagged with the VM's VLAN: a RARP from the VM's MAC.
    announced = sent(b.devices["eth1"])
    vid, rarp = strip_tag(announced[0])
    assert vid == 7 and rarp[6:12] == parse_mac(mac).to_bytes(6, "big") and rarp[12:14] == b"\x80\x35"
    # The migrated connection's replies are still admitted on B (restored connection table)...
    b.devices["eth1"].inject(in_frame(mac), tci=7)
    b.run()
    assert len(sent(b.vm_dev())) == 1
    # ...while a new inbound connection is not.
    b.devices["eth1"].inject(in_frame(mac, dport=40001), tci=7)
    b.run()
    assert sent(b.vm_dev()) == []
    fw = next(
        e for e in b.engine.counters()["switches"]["ext"]["extensions"] if e["name"] == "pyvswitch-firewall"
    )  # type: ignore[index]
    assert fw["status"]["ports"]["web01-eth0"]["flows"] == 1 and fw["status"]["connections"] == 1


def test_restored_flows_expire_on_the_destination_clock(world: World) -> None:
    a, b = world.hosts["hostA"], world.hosts["hostB"]
    b.clock.advance(5000)  # another host, another clock
    mac = add_vm(a, extended_acls=[r.model_dump() for r in RULES])
    a.vm_dev().inject(out_frame(mac))
    a.run()
    a.clock.advance(50)  # 10 s of the 60 s idle timeout left
    a.migrations.migrate("web01", "hostB")
    b.devices["eth1"].inject(in_frame(mac))
    b.run()
    assert len(sent(b.vm_dev())) == 1  # refreshed: 60 s again from here
    b.clock.advance(61)
    b.devices["eth1"].inject(in_frame(mac))
    b.run()
    assert sent(b.vm_dev()) == []


def test_vetoing_extension_aborts_and_vm_keeps_working_on_source(world: World) -> None:
    a, b = world.hosts["hostA"], world.hosts["hostB"]
    # Enabled on B only: A accepted the port.
    b.service.update_switch("ext", {"extensions": [{"name": "no-vlan20", "enabled": True}]})
    a.service.add_vm(
        "vetoed", port_fields={"switch": "ext", "vlan": {"mode": "Access", "access_vlan_id": 20}}
    )
    before = a.service.config
    with pytest.raises(MigrationError) as err:
        a.migrations.migrate("vetoed", "hostB")
    assert "VLAN policy not allowed" in str(err.value)
    assert a.service.config == before and "vetoed" in {v.name for v in a.service.config.vms}
    assert b.service.config.vms == []
    # B's extension saw a validation port, created and deleted; nothing was reserved on B.
    assert ("create", "vetoed-eth0", True) in NoVlan20.seen
    assert all(v for _, n, v in NoVlan20.seen if n == "vetoed-eth0")
    # Still forwarding on A.
    dev = a.devices[a.service.port("vetoed-eth0").interface or ""]
    mac = a.service.port("vetoed-eth0").mac or ""
    a.devices["eth1"].inject(eth(mac, LAN_MAC, b"x" * 50), tci=20)
    a.run()
    assert len(sent(dev)) == 1


def test_validation_port_accepted_leaves_nothing_behind(world: World) -> None:
    a, b = world.hosts["hostA"], world.hosts["hostB"]
    b.service.update_switch("ext", {"extensions": [{"name": "no-vlan20", "enabled": True}]})
    add_vm(a)
    a.migrations.migrate("web01", "hostB")
    events = [(e, v) for e, n, v in NoVlan20.seen if n == "web01-eth0"]
    assert events[:2] == [("create", True), ("delete", True)]  # the validation port
    assert ("create", False) in events[2:]  # then the operational port


def test_destination_without_the_switch_refuses(world: World) -> None:
    a = world.hosts["hostA"]
    a.service.add_switch(SwitchConfig(name="only-a"))
    a.service.add_vm("db01", port_fields={"switch": "only-a"})
    with pytest.raises(MigrationError, match="no switch 'only-a'"):
        a.migrations.migrate("db01", "hostB")
    assert "db01" in {v.name for v in a.service.config.vms}


def test_commit_failure_after_switch_over_brings_the_vm_back(world: World) -> None:
    a, b = world.hosts["hostA"], world.hosts["hostB"]
    mac = add_vm(a, extended_acls=[r.model_dump() for r in RULES])
    a.vm_dev().inject(out_frame(mac))
    a.run()
    ifname = a.service.port("web01-eth0").interface
    world.fail_commit = True
    with pytest.raises(MigrationError, match="injected failure"):
        a.migrations.migrate("web01", "hostB")
    # The veth came back, the VM is configured on A again with its connection table.
    assert ifname in a.lab.links and ifname not in b.lab.links
    assert "web01" in {v.name for v in a.service.config.vms} and b.service.config.vms == []
    a.devices["eth1"].inject(in_frame(mac))
    a.run()
    assert len(sent(a.vm_dev())) == 1


def test_a_failed_move_ends_the_destinations_wait_for_the_veth_and_the_vm_stays(world: World) -> None:
    """The source sends the commit request as its move begins; the destination waits for the veth. A move that
    fails is followed by the source's abort, which ends that wait at once (not after ARRIVAL_TIMEOUT_S)."""
    a, b = world.hosts["hostA"], world.hosts["hostB"]
    mac = add_vm(a, extended_acls=[r.model_dump() for r in RULES])
    ifname = a.service.port("web01-eth0").interface

    def fail(dest: Netns) -> None:
        # The destination has the commit request and waits for the veth (ACCEPTED) before the move fails.
        deadline = time.monotonic() + 10
        while not any(r.phase is Phase.ACCEPTED for r in b.migrations.intents.all()):
            assert time.monotonic() < deadline, "the destination never accepted the commit request"
            time.sleep(0.005)
        raise OSError("injected: the kernel refused the move")

    world.fail_move = fail
    with pytest.raises(OSError, match="injected"):
        a.migrations.migrate("web01", "hostB")
    assert world.commit_errors and "aborted by its source" in world.commit_errors[0], world.commit_errors
    assert ifname in a.lab.links and ifname not in b.lab.links
    assert "web01" in {v.name for v in a.service.config.vms} and b.service.config.vms == []
    assert a.migrations.intents.all() == [] and b.migrations.intents.all() == []
    announced = sent(a.devices["eth1"])  # taking the VM back announced its MAC (RARP, ethertype 0x8035)
    assert [f[12:14] for f in announced] == [b"\x80\x35"], announced
    a.vm_dev().inject(out_frame(mac))
    a.run()
    assert sent(a.devices["eth1"]) == [out_frame(mac)]  # the VM forwards on A again


def test_rest_routes_report_timings_and_veto_as_field_errors(world: World, tmp_path: Path) -> None:
    a, b = world.hosts["hostA"], world.hosts["hostB"]
    app = create_app(a.service)
    app.router.routes[:] = [
        r for r in app.router.routes if not getattr(r, "path", "").startswith("/v1/migrations")
    ]
    add_migration_routes(app, a.service, a.migrations)
    client = TestClient(app)
    add_vm(a)
    r = client.post("/v1/migrations", json={"vm": "web01", "to": "hostB"})
    assert r.status_code == 200, r.text
    assert r.json()["timings"]["blackout_s"] >= 0
    b.service.update_switch("ext", {"extensions": [{"name": "no-vlan20", "enabled": True}]})
    b.migrations.migrate("web01", "hostA")  # back again
    a.service.add_vm(
        "vetoed", port_fields={"switch": "ext", "vlan": {"mode": "Access", "access_vlan_id": 20}}
    )
    r = client.post("/v1/migrations", json={"vm": "vetoed", "to": "hostB"})
    assert r.status_code == 400
    assert r.json()["errors"][0]["field"] == "destination.ports[0]"


class FakeIov:
    def __init__(self, log: list[tuple[str, str, str, bool]], host: str, service: Service) -> None:
        self.log, self.host, self.service = log, host, service

    def set_migrating(self, port: str, moving: bool) -> None:
        where = "configured" if any(p.name == port for p in self.service.config.ports) else "gone"
        self.log.append((self.host, port, where, moving))


def test_vf_is_released_before_the_move_and_assigned_on_the_destination(world: World) -> None:
    a, b = world.hosts["hostA"], world.hosts["hostB"]
    calls: list[tuple[str, str, str, bool]] = []
    a.service.iov = FakeIov(calls, "A", a.service)  # type: ignore[assignment]
    b.service.iov = FakeIov(calls, "B", b.service)  # type: ignore[assignment]
    add_vm(a)
    a.migrations.migrate("web01", "hostB")
    assert calls == [
        ("A", "web01-eth0", "configured", True),  # VF away while the port is still on A: software path
        ("B", "web01-eth0", "configured", False),  # B plans a VF for the adopted port
        ("A", "web01-eth0", "gone", False),  # A forgets the hold
    ]


def test_cli_migrate_and_move_vm_print_timings_and_refusals(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # No lab here: a system test running beside this one may have a lab host named hostB, whose socket the CLI
    # would resolve and send (seen once in make test).
    monkeypatch.setenv("PYVSWITCH_LAB_DIR", str(tmp_path))
    seen: list[tuple[str, str, Any]] = []
    answer = {
        "vm": "web01",
        "to": "hostB",
        "timings": {"validation_s": 0.0123, "vf_release_s": 0.0, "blackout_s": 0.068, "total_s": 0.0931},
    }

    def ok(req: httpx.Request) -> httpx.Response:
        seen.append((req.method, req.url.path, json.loads(req.content)))
        return httpx.Response(200, json=answer)

    assert cli_main(["migrate", "web01", "--to", "hostB"], transport=httpx.MockTransport(ok)) == 0
    assert seen == [("POST", "/v1/migrations", {"vm": "web01", "to": "hostB"})]
    assert "blackout 68.0 ms" in capsys.readouterr().out
    assert cli_main(["Move-VM", "web01", "-DestinationHost", "hostB"], transport=httpx.MockTransport(ok)) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split() == ["VMName", "DestinationHost", "ValidationMs", "BlackoutMs", "TotalMs"]
    assert table[2].split() == ["web01", "hostB", "12.3", "68.0", "93.1"]

    def vetoed(req: httpx.Request) -> httpx.Response:
        errors = [{"field": "destination.ports[0]", "message": "destination: extension 'x' refused create"}]
        return httpx.Response(400, json={"errors": errors})

    assert cli_main(["migrate", "web01", "--to", "hostB"], transport=httpx.MockTransport(vetoed)) == 1
    assert "error: destination.ports[0]: destination: extension 'x' refused" in capsys.readouterr().err
