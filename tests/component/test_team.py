"""NIC teaming data path (TM-01..06) on memory wires with a fake clock: LACP team to LACP team, load
balancing, failover on carrier loss, standby, HyperVPort pinning, the marker responder."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from pyvswitch.datapath.memory import MemoryDevice
from pyvswitch.packet.frame import Packet
from pyvswitch.switch.lacp import MarkerPdu, decode, encode_marker
from pyvswitch.switch.team import LoadBalancing, Member, TeamDevice, TeamingMode
from pyvswitch.testing.clock import FakeClock
from pyvswitch.testing.frames import eth, ipv4, udp

A, B = "02:00:00:00:00:0a", "02:00:00:00:00:0b"
MEMBER_MAC = 0x0200000000E0  # members' own MACs: 02:00:00:00:00:e0, :e1, ...


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
    **kw: Any,
) -> TeamDevice:
    members = [
        Member(d, carrier=lambda d=d: d.carrier, standby=i == standby, mac=MEMBER_MAC + i)
        for i, d in enumerate(devs)
    ]
    return TeamDevice("t", members, mode, algorithm, system_mac=mac, clock=clock.now, **kw)


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
    a.announce = lambda: [(0x02000000000A, 1), (0x02000000000B, 2)]
    left[1].carrier = False  # not the primary: the physical switch learned no VM MAC there, nothing to say
    a.tick(clock.now())
    assert a.announcements == 0
    left[1].carrier = True
    a.tick(clock.now())
    left[0].carrier = False  # the primary: every MAC behind the team moves to the new primary
    a.tick(clock.now())
    rarps = [f for f in left[1].sent if f[12:14] == b"\x80\x35"]
    assert [f[6:12].hex() for f in rarps] == ["02000000000a", "02000000000b"] and a.announcements == 2


def sources(dev: Wire) -> set[str]:
    return {f[6:12].hex() for f in dev.sent}


def test_switch_independent_address_hash_announces_on_the_primary_and_replaces_the_source_elsewhere() -> None:
    """TM-07/§3.4: SI + address hash — ARP and broadcasts only on the primary, frames hashed onto another
    member carry that member's MAC, the primary keeps the VM's; the physical switch so learns the VM's MAC on
    the primary alone."""
    clock = FakeClock()
    left, _ = wires(2)
    a = team(left, clock, TeamingMode.SWITCH_INDEPENDENT)
    arp_request = Packet(eth("ff:ff:ff:ff:ff:ff", A, bytes(28), ethertype=0x0806))
    arp_reply = Packet(eth(B, A, bytes(28), ethertype=0x0806))
    pkts = flows(32)
    a.send([arp_request, arp_reply, *pkts], [-1] * 34)
    primary, other = left
    assert [f[12:14] for f in primary.sent[:2]] == [b"\x08\x06"] * 2
    assert not [f for f in other.sent if f[12:14] == b"\x08\x06"]
    assert other.sent and sources(other) == {"0200000000e1"}  # MAC replacement on the non-primary member
    assert sources(primary) == {A.replace(":", "")}
    assert all(p.data[6:12] == bytes.fromhex("02000000000a") for p in pkts)  # the switch's frames untouched


def test_switch_independent_takes_one_copy_of_a_flood_and_drops_the_echo_of_its_own_broadcast() -> None:
    """TM-07: inbound broadcasts enter on the primary only; with Dynamic a port's broadcast leaves on its
    affinitized member, and the physical switch's flood of it back to the primary does not enter."""
    clock = FakeClock()
    left, right = wires(2)
    a = team(left, clock, TeamingMode.SWITCH_INDEPENDENT, algorithm=LoadBalancing.DYNAMIC)
    flood = eth("ff:ff:ff:ff:ff:ff", "02:00:00:00:00:99", bytes(28), ethertype=0x0806)
    for r in right:
        r.send([Packet(flood)], [-1])
    assert len(a.recv(8)) == 1 and a.counters.drops["rx-multicast-on-secondary"] == 1
    # Two ports: one of them is affinitized to the second member, its ARP goes out there...
    for port in (1, 2):
        p = Packet(eth("ff:ff:ff:ff:ff:ff", f"02:00:00:00:01:0{port}", bytes(28), ethertype=0x0806))
        p.in_port = port
        a.send([p], [-1])
    echoed = [f for f in left[1].sent if f[12:14] == b"\x08\x06"]
    assert len(echoed) == 1
    right[0].send([Packet(echoed[0])], [-1])  # ...and the physical switch floods it back to the primary
    assert a.recv(8) == [] and a.counters.drops["rx-own-multicast-echo"] == 1


def test_hyperv_port_moves_only_the_failed_members_ports_and_evens_out_on_failback() -> None:
    """TM-08/§3.5: ports of a failed member are re-affinitized to survivors, with a RARP for their MACs on the
    new member; the others stay where they are; on failback the fewest ports move back."""
    clock = FakeClock()
    left, _ = wires(3)
    a = team(left, clock, TeamingMode.SWITCH_INDEPENDENT, algorithm=LoadBalancing.HYPERV_PORT)
    a.announce = lambda: [(0x020000000100 + port, port) for port in range(6)]
    for port in range(6):
        p = flows(1)[0]
        p.in_port = port
        a.send([p], [-1])
    before = {port: m.device.name for port, m in a._affinity.items()}
    assert sorted(before.values()) == ["l0", "l0", "l1", "l1", "l2", "l2"]
    for d in left:
        d.sent.clear()
    left[1].carrier = False
    a.tick(clock.now())
    after = {port: m.device.name for port, m in a._affinity.items()}
    moved = {port for port in before if before[port] != after[port]}
    assert moved == {port for port in before if before[port] == "l1"} and "l1" not in after.values()
    rarps = {(d.name, f[6:12].hex()) for d in left for f in d.sent if f[12:14] == b"\x80\x35"}
    assert rarps == {(after[port], f"0200000001{port:02x}") for port in moved}
    left[1].carrier = True
    a.tick(clock.now())
    counts = sorted(len(m.ports) for m in a.members)
    assert counts == [2, 2, 2]
    back = {port: m.device.name for port, m in a._affinity.items()}
    assert sum(1 for port in before if back[port] != after[port]) == 2  # only as many as needed move


def dynamic_flow(port: int = 1, sport: int = 5000) -> Packet:
    p = Packet(eth(B, A, ipv4("10.0.0.1", "10.0.0.2", 17, udp(sport, 53, bytes(1000)))))
    p.in_port = port
    return p


def where(a: TeamDevice, p: Packet) -> str:
    for m in a.members:
        m.device.sent.clear()
    a.send([p], [-1])
    return next(m.device.name for m in a.members if m.device.sent)


def test_dynamic_moves_a_flow_only_at_a_flowlet_gap() -> None:
    """TM-06 Dynamic (§3.3): a busy flow stays on its member however unbalanced the load; after a gap longer
    than FLOWLET_GAP_S it goes to the least-loaded member."""
    clock = FakeClock()
    left, _ = wires(2)
    a = team(left, clock, TeamingMode.STATIC, algorithm=LoadBalancing.DYNAMIC)
    first = where(a, dynamic_flow(sport=5000))
    # A second flow starts on the other (idle) member; then the first flow's member is loaded heavily by
    # a third flow pinned there (it started while its member was least loaded).
    second = where(a, dynamic_flow(sport=6000))
    assert second != first
    for _ in range(200):  # both flows keep sending every millisecond: they never move
        clock.advance(0.001)
        a.tick(clock.now())
        assert where(a, dynamic_flow(sport=5000)) == first
        for _ in range(3):
            assert where(a, dynamic_flow(sport=6000)) == second  # the second member is now much busier
    assert a.flowlet_moves == 0
    clock.advance(0.001)
    for _ in range(20):  # the busy flow continues; the first flow pauses past the flowlet gap...
        clock.advance(0.001)
        a.tick(clock.now())
        where(a, dynamic_flow(sport=6000))
    assert where(a, dynamic_flow(sport=5000)) == first  # ...and stays: its member is still the least loaded
    # Now load the first member and pause the first flow: after the gap it moves to the less loaded one.
    for _ in range(200):
        clock.advance(0.001)
        a.tick(clock.now())
        for _ in range(4):
            where(a, dynamic_flow(sport=7000 + _))
    clock.advance(0.05)
    a.tick(clock.now())
    loads = {m.device.name: m.load for m in a.members}
    lighter = min(loads, key=lambda n: loads[n])
    assert where(a, dynamic_flow(sport=5000)) == lighter


def test_switch_independent_dynamic_replaces_the_source_only_off_the_ports_member() -> None:
    """§3.4 SI + Dynamic: each port is affinitized to a member; its flows balanced onto another member
    carry that member's MAC."""
    clock = FakeClock()
    left, _ = wires(2)
    a = team(left, clock, TeamingMode.SWITCH_INDEPENDENT, algorithm=LoadBalancing.DYNAMIC)
    a.send([dynamic_flow(port=1, sport=s) for s in range(5000, 5016)], [-1] * 16)
    home = a._affinity[1].device
    for d in left:
        if d is home:
            assert sources(d) == {A.replace(":", "")}
        else:
            assert d.sent and sources(d) == {f"{MEMBER_MAC + left.index(d):012x}"}


def test_down_delay_ignores_a_flap_and_up_delay_holds_a_returning_member() -> None:
    """Link monitoring with delays: a carrier loss shorter than the down delay changes nothing; a member back
    up waits the up delay before carrying traffic (reported as WaitingForStableConnectivity)."""
    clock = FakeClock()
    left, _ = wires(2)
    a = team(left, clock, TeamingMode.SWITCH_INDEPENDENT, down_delay_s=0.2, up_delay_s=0.5)
    clock.advance(1.0)
    a.tick(clock.now())
    assert len(a.active()) == 2
    left[1].carrier = False
    clock.advance(0.1)
    a.tick(clock.now())
    left[1].carrier = True
    clock.advance(0.1)
    a.tick(clock.now())
    assert len(a.active()) == 2 and a.failovers == 0  # the flap was shorter than the down delay
    left[1].carrier = False
    for _ in range(3):
        clock.advance(0.1)
        a.tick(clock.now())
    assert [m.device.name for m in a.active()] == ["l0"]
    left[1].carrier = True
    a.tick(clock.now())
    clock.advance(0.3)
    a.tick(clock.now())
    assert [m.device.name for m in a.active()] == ["l0"]
    assert a.member_status(a.members[1]) == ("Failed", "WaitingForStableConnectivity")
    clock.advance(0.3)
    a.tick(clock.now())
    assert len(a.active()) == 2


def test_lacp_falls_back_to_switch_independent_only_when_configured_and_no_partner_speaks() -> None:
    """LACP fallback (issue 4 item 3): without a partner, a team with lacp_fallback carries traffic as SI
    once its members' receive machines are DEFAULTED (3 s); one without it carries nothing; a partner that
    starts speaking ends the fallback and the team aggregates."""
    clock = FakeClock()
    left, right = wires(2)
    strict = team(wires(2)[0], clock)
    a = team(left, clock, lacp_fallback=True)
    run(clock, [a, strict], 2.0)
    assert a.active() == [] and not a.lacp_fallen_back()
    run(clock, [a, strict], 2.0)
    assert len(a.active()) == 2 and a.lacp_fallen_back() and a.show()["switch_independent_rules"]
    assert strict.active() == []
    b = team(right, clock, mac=0x200)
    run(clock, [a, b], 5.0)
    assert not a.lacp_fallen_back() and len(a.active()) == 2
    assert {lm["status"] for lm in a.show()["lacp"]} == {"collecting-distributing"}


def test_live_reconfiguration_keeps_lacp_state_of_kept_members() -> None:
    """Set-NetLbfoTeam / Add-NetLbfoTeamMember on a live LACP team: the members that stay keep their
    negotiated state (no outage); a new member negotiates and joins; a changed algorithm applies at once."""
    clock = FakeClock()
    left, right = wires(3)
    a = team(left[:2], clock)
    b = team(right[:2], clock, mac=0x200)
    run(clock, [a, b], 5.0)
    assert len(a.active()) == 2
    kept = [m.lacp for m in a.members]
    newcomer = Member(left[2], carrier=lambda: left[2].carrier, mac=MEMBER_MAC + 2)
    settings = replace(a.settings, algorithm=LoadBalancing.MAC_ADDRESSES)
    a.reconfigure([*a.members, newcomer], settings)
    assert [m.lacp for m in a.members[:2]] == kept and len(a.active()) == 2
    assert a.algorithm is LoadBalancing.MAC_ADDRESSES
    b.reconfigure([*b.members, Member(right[2], carrier=lambda: right[2].carrier)], b.settings)
    run(clock, [a, b], 5.0)
    assert len(a.active()) == 3
    a.reconfigure(a.members[1:], settings)  # Remove-NetLbfoTeamMember
    assert [m.device.name for m in a.active()] == ["l1", "l2"]


class FakeEvents:
    def __init__(self) -> None:
        self.pending: set[str] = set()

    def fileno(self) -> int:
        return -1

    def changed(self) -> set[str]:
        out, self.pending = self.pending, set()
        return out

    def close(self) -> None:
        pass


def test_a_link_notification_makes_the_team_look_at_once() -> None:
    """Netlink link events (datapath.link.LinkEvents): a notification makes recv re-read the carriers, so a
    member set down is out before the next tick."""
    clock = FakeClock()
    left, _ = wires(2)
    events = FakeEvents()
    a = TeamDevice(
        "t",
        [Member(d, carrier=lambda d=d: d.carrier) for d in left],
        TeamingMode.SWITCH_INDEPENDENT,
        clock=clock.now,
        link_events=lambda: events,
    )
    a._events = events
    left[1].carrier = False
    a.recv(8)
    assert len(a.active()) == 2  # no notification, no tick: not seen yet
    events.pending = {"l1"}
    a.recv(8)
    assert [m.device.name for m in a.active()] == ["l0"]


def test_state_changes_are_logged_as_events_an_operator_can_read(caplog: Any) -> None:
    """Issue 14 item 5: a team that goes Down because LACP is not negotiated says so (LacpNegotiationIssue),
    a member's carrier loss and return are events with the member, status and reason, the LACP partner is
    named when it appears; nothing is said while nothing changes."""
    import logging

    caplog.set_level(logging.INFO, logger="pyvswitch.switch.team")
    clock = FakeClock()
    left, right = wires(2)
    a = team(left, clock)  # no partner yet: right has no team
    run(clock, [a], 1.0)
    events = [
        (r.event, r.fields.get("member"), r.fields.get("reason"))
        for r in caplog.records
        if hasattr(r, "event")
    ]
    assert ("team.member", "l0", "LacpNegotiationIssue") in events and (
        "team.member",
        "l1",
        "LacpNegotiationIssue",
    ) in events
    assert any(r.event == "team.state" and r.fields["active"] == "" and "Down" in r.getMessage()
               for r in caplog.records if hasattr(r, "event"))  # fmt: skip
    caplog.clear()
    b = team(right, clock, mac=0x200)
    run(clock, [a, b], 5.0)
    got = {
        (r.event, r.fields.get("member"), r.fields.get("status"))
        for r in caplog.records
        if hasattr(r, "event")
    }
    assert ("team.member", "l0", "Active") in got and ("lacp.partner", "l0", None) in got
    partner = next(
        r for r in caplog.records if getattr(r, "event", "") == "lacp.partner" and r.fields["member"] == "l0"
    )
    assert partner.fields["system"] == "00:00:00:00:02:00"
    caplog.clear()
    run(clock, [a, b], 2.0)
    assert not [r for r in caplog.records if r.name == "pyvswitch.switch.team"]  # steady: silent
    left[0].carrier = False
    right[0].carrier = False
    run(clock, [a, b], 1.0)
    down = [
        r for r in caplog.records if getattr(r, "event", "") == "team.member" and r.fields["member"] == "l0"
    ]
    assert (
        down
        and down[-1].fields["status"] == "Failed"
        and down[-1].fields["reason"] == "PhysicalMediaDisconnected"
    )
    assert down[-1].levelname == "WARNING"
