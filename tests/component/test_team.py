"""NIC teaming data path (TM-01..06) on memory wires with a fake clock: LACP team to LACP team, load
balancing, failover on carrier loss, standby, HyperVPort pinning, the marker responder."""

from __future__ import annotations

from collections.abc import Sequence

from pyvswitch.datapath.memory import MemoryDevice
from pyvswitch.packet.frame import Packet
from pyvswitch.switch.lacp import MarkerPdu, decode, encode_marker
from pyvswitch.switch.team import LoadBalancing, Member, TeamDevice, TeamingMode
from pyvswitch.testing.clock import FakeClock
from pyvswitch.testing.frames import eth, ipv4, udp

A, B = "02:00:00:00:00:0a", "02:00:00:00:00:0b"


class Wire(MemoryDevice):
    """A memory device whose sent frames arrive at its peer."""

    peer: Wire | None = None
    carrier = True

    def send(self, pkts: Sequence[Packet], tcis: Sequence[int]) -> None:
        before = len(self.sent)
        super().send(pkts, tcis)
        if self.peer is not None and self.carrier:
            for frame in self.sent[before:]:
                self.peer.inject(frame)


def wires(n: int) -> tuple[list[Wire], list[Wire]]:
    left, right = [Wire(f"l{i}") for i in range(n)], [Wire(f"r{i}") for i in range(n)]
    for a, b in zip(left, right, strict=True):
        a.peer, b.peer = b, a
    return left, right


def team(
    devs: list[Wire],
    clock: FakeClock,
    mode: TeamingMode = TeamingMode.LACP,
    mac: int = 0x100,
    algorithm: LoadBalancing = LoadBalancing.TRANSPORT_PORTS,
    standby: int | None = None,
) -> TeamDevice:
    members = [Member(d, carrier=lambda d=d: d.carrier, standby=i == standby) for i, d in enumerate(devs)]
    return TeamDevice("t", members, mode, algorithm, system_mac=mac, clock=clock.now)


def run(clock: FakeClock, teams: list[TeamDevice], seconds: float) -> None:
    for _ in range(round(seconds / 0.1)):
        clock.advance(0.1)
        for t in teams:
            t.tick(clock.now())
            t.recv(64)
            t.release()


def flows(n: int) -> list[Packet]:
    return [Packet(eth(B, A, ipv4("10.0.0.1", "10.0.0.2", 17, udp(1000 + i, 53)))) for i in range(n)]


def test_lacp_teams_aggregate_and_spread_flows_over_both_members() -> None:
    clock = FakeClock()
    left, right = wires(2)
    a, b = team(left, clock), team(right, clock, mac=0x200)
    run(clock, [a, b], 5.0)
    assert len(a.active()) == 2 and len(b.active()) == 2
    for d in left:
        d.sent.clear()
    a.send(flows(16), [-1] * 16)
    assert all(
        sum(1 for f in d.sent if f[12:14] == b"\x08\x00") > 0 for d in left
    )  # both members carry flows
    got = b.recv(64)
    assert len(got) == 16  # and the partner collects on both


def test_carrier_loss_moves_every_flow_to_the_survivor_and_back() -> None:
    clock = FakeClock()
    left, _ = wires(2)
    a = team(left, clock, TeamingMode.SWITCH_INDEPENDENT)
    assert len(a.active()) == 2
    left[1].carrier = False
    a.tick(clock.now())
    assert [m.device.name for m in a.active()] == ["l0"] and a.failovers == 1
    for d in left:
        d.sent.clear()
    a.send(flows(8), [-1] * 8)
    assert len(left[0].sent) == 8 and not left[1].sent
    left[1].carrier = True
    a.tick(clock.now())
    assert len(a.active()) == 2 and a.show()["members"][1]["failures"] == 1  # type: ignore[index]


def test_standby_member_only_while_another_is_down() -> None:
    clock = FakeClock()
    left, _ = wires(2)
    a = team(left, clock, TeamingMode.SWITCH_INDEPENDENT, standby=1)
    assert [m.device.name for m in a.active()] == ["l0"]
    left[0].carrier = False
    a.tick(clock.now())
    assert [m.device.name for m in a.active()] == ["l1"]
    left[0].carrier = True
    a.tick(clock.now())
    assert [m.device.name for m in a.active()] == ["l0"]  # back to standby when all recover


def test_hyperv_port_pins_each_switch_port_to_one_member() -> None:
    clock = FakeClock()
    left, _ = wires(2)
    a = team(left, clock, TeamingMode.STATIC, algorithm=LoadBalancing.HYPERV_PORT)
    for port in range(6):
        for d in left:
            d.sent.clear()
        pkts = flows(8)
        for p in pkts:
            p.in_port = port
        a.send(pkts, [-1] * 8)
        assert sorted(len(d.sent) for d in left) == [0, 8]  # all of one VM's flows on one member


def test_lacp_member_not_distributing_does_not_collect_and_markers_are_answered() -> None:
    clock = FakeClock()
    left, right = wires(2)
    a = team(left, clock)  # the partner never speaks LACP: nothing aggregates
    run(clock, [a], 4.0)
    assert a.active() == []
    right[0].send([Packet(eth(B, A))], [-1])
    assert a.recv(8) == [] and a.counters.drops["rx-member-not-collecting"] == 1
    request = MarkerPdu(0x0200000000FF, False, 9, 0x0200000000FF, 77)
    before = len(left[0].sent)
    right[0].send([Packet(encode_marker(request))], [-1])
    a.recv(8)
    reply = decode(left[0].sent[before])
    assert isinstance(reply, MarkerPdu) and reply.response and reply.transaction_id == 77


def test_failover_announces_the_macs_behind_the_team_on_the_survivor() -> None:
    clock = FakeClock()
    left, _ = wires(2)
    a = team(left, clock, TeamingMode.SWITCH_INDEPENDENT)
    a.announce = lambda: [0x02000000000A, 0x02000000000B]
    left[0].sent.clear()
    left[1].carrier = False
    a.tick(clock.now())
    rarps = [f for f in left[0].sent if f[12:14] == b"\x80\x35"]
    assert [f[6:12].hex() for f in rarps] == ["02000000000a", "02000000000b"] and a.announcements == 2
