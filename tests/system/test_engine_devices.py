"""The engine on real AF_PACKET devices with a fake clock: MAC table overflow and aging on real frames."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from pyvswitch.config.schema import HostConfig, PortConfig, PortKind, SwitchConfig
from pyvswitch.switch.engine import Engine
from pyvswitch.testing.clock import FakeClock
from pyvswitch.testing.netns import NetnsPool, unique, wait_for
from tests.system.conftest import SEND_RAW, ns_python

pytestmark = pytest.mark.system


@pytest.fixture
def rig(pool: NetnsPool) -> Iterator[tuple[Engine, FakeClock, str]]:
    """Two namespaces wired to a switch of 10 MAC entries; returns (engine, clock, sender namespace)."""
    ns1, ns2 = pool.netns("pve", ipv6=False), pool.netns("pve", ipv6=False)
    p1, p2 = unique("pvq"), unique("pvq")
    pool.veth(p1, "eth0", b_ns=ns1)
    pool.veth(p2, "eth0", b_ns=ns2)
    clock = FakeClock()
    engine = Engine(clock=clock)
    sw = SwitchConfig(name="s", mac_table_size=10, mac_aging_s=300)
    ports = [
        PortConfig(name=n, kind=PortKind.INTERFACE, switch="s", interface=i)
        for n, i in (("p1", p1), ("p2", p2))
    ]
    engine.apply(HostConfig(switches=[sw], ports=ports))
    try:
        yield engine, clock, ns1
    finally:
        engine.stop()


def learned(engine: Engine) -> list[str]:
    return [r["mac"] for r in engine.fdb("s") if not r["static"]]  # type: ignore[misc]


def send_from(ns: str, macs: list[str]) -> None:
    frames = "[" + ",".join(f"Ether(dst='ff:ff:ff:ff:ff:ff', src='{m}')/IP()/UDP()" for m in macs) + "]"
    ns_python(ns, SEND_RAW.format(iface="eth0", frames=frames))


def test_mac_table_overflow_evicts_oldest_on_real_frames(rig: tuple[Engine, FakeClock, str]) -> None:
    engine, clock, ns1 = rig
    macs = [f"02:00:00:00:05:{i:02x}" for i in range(11)]
    for m in macs[:10]:
        clock.advance(1)
        send_from(ns1, [m])
        wait_for(lambda m=m: engine.run_once() >= 0 and m in learned(engine), what=f"{m} learned")
    send_from(ns1, [macs[10]])
    wait_for(lambda: engine.run_once() >= 0 and macs[10] in learned(engine), what="11th MAC learned")
    assert sorted(learned(engine)) == sorted(macs[1:])


def test_aging_on_real_frames_with_fake_clock(rig: tuple[Engine, FakeClock, str]) -> None:
    engine, clock, ns1 = rig
    mac = "02:00:00:00:06:01"
    send_from(ns1, [mac])
    wait_for(lambda: engine.run_once() >= 0 and mac in learned(engine), what="MAC learned")
    clock.advance(299)
    engine.run_once()
    assert mac in learned(engine)
    clock.advance(2)
    engine.run_once()
    assert mac not in learned(engine)
