"""QoS through the whole engine on memory devices and a fake clock (switch/qos.py): an uplink with a line rate
shared by weights, a MaximumBandwidth ceiling, host policies, ETS/strict classes and PFC both ways.
QS-01..QS-05 (§5.2-5.3), DCB (§5.5)."""

from __future__ import annotations

from collections import Counter

import pytest

from pyvswitch.config.schema import (
    DcbConfig,
    HostConfig,
    PortConfig,
    PortKind,
    QosPolicyConfig,
    SwitchConfig,
    SwitchType,
    TrafficClassConfig,
)
from pyvswitch.packet.frame import UNTAGGED
from pyvswitch.packet.pfc import PfcFrame, decode_mac_control, encode_pfc
from pyvswitch.testing.frames import eth, ipv4, udp
from pyvswitch.testing.harness import SwitchHarness

LAN = "02:00:00:00:99:99"
MBIT = 1_000_000
SIZE = 1500


def vm_mac(i: int) -> str:
    return f"02:00:00:00:01:{i:02x}"


def harness(
    weights: list[int],
    link: int = 100 * MBIT,
    maximum: dict[int, int] | None = None,
    mode: str = "Weight",
    prio_tag: bool = False,
    policies: list[QosPolicyConfig] | None = None,
    dcb: DcbConfig | None = None,
    host: bool = False,
) -> SwitchHarness:
    sw = SwitchConfig(name="ext", type=SwitchType.EXTERNAL, net_adapter="up0", minimum_bandwidth_mode=mode)
    ports = [PortConfig(name="up", kind=PortKind.UPLINK, switch="ext", interface="up0", link_speed=link)]
    for i, w in enumerate(weights):
        field = "minimum_bandwidth_weight" if mode == "Weight" else "minimum_bandwidth_absolute"
        kind = PortKind.HOST if host and i == 0 else PortKind.VM
        ports.append(
            PortConfig(
                name=f"v{i}",
                kind=kind,
                switch="ext",
                interface=f"v{i}",
                vm=None if kind is PortKind.HOST else f"vm{i}",
                mac=vm_mac(i),
                ieee_priority_tag=prio_tag,
                maximum_bandwidth=(maximum or {}).get(i, 0),
                **{field: w},
            )
        )
    h = SwitchHarness([sw], [])
    h.config = HostConfig(switches=[sw], ports=ports, qos_policies=policies or [], dcb=dcb or DcbConfig())
    h.engine.apply(h.config)
    # The LAN host is known behind the uplink, so VM frames are unicast to it.
    h.send("up", eth(vm_mac(0), LAN, ipv4("10.0.0.99", "10.0.0.1", 17, udp(9, 9))))
    h.take("v0")
    return h


def frame(i: int, dport: int = 5000) -> bytes:
    payload = udp(4000 + i, dport, bytes(SIZE - 14 - 20 - 8))
    return eth(LAN, vm_mac(i), ipv4(f"10.0.0.{i + 1}", "10.0.0.99", 17, payload))


def saturate(
    h: SwitchHarness,
    offered: dict[int, int],
    seconds: float,
    step: float = 0.001,
    tci: dict[int, int] | None = None,
    dport: dict[int, int] | None = None,
) -> Counter[int]:
    """Each VM i offers offered[i] bit/s for ``seconds``; bytes the uplink sent, by VM."""
    up = h.port_device("up")
    up.sent.clear()
    credit: Counter[int] = Counter()
    got: Counter[int] = Counter()
    for _ in range(round(seconds / step)):
        h.clock.advance(step)
        for i, rate in offered.items():
            credit[i] += rate / 8 * step
            while credit[i] >= SIZE:
                credit[i] -= SIZE
                h.port_device(f"v{i}").inject(
                    frame(i, (dport or {}).get(i, 5000)), tci=(tci or {}).get(i, UNTAGGED)
                )
        h.engine.run_once()
        for f in up.sent:
            got[f[11]] += len(f)
        up.sent.clear()
    return got


def test_weights_1_2_5_share_the_uplink_and_the_link_rate_holds() -> None:
    """QS-03: under contention each port gets w / sum(w) of the link (plus the default flow's 1)."""
    h = harness([1, 2, 5])
    got = saturate(h, {0: 80 * MBIT, 1: 80 * MBIT, 2: 80 * MBIT}, 3.0)
    settled = sum(got.values())
    assert settled * 8 / 3.0 == pytest.approx(100 * MBIT, rel=0.05)
    for i, w in enumerate((1, 2, 5)):
        assert got[i] / settled == pytest.approx(w / 8, rel=0.06), got
    status = h.engine.qos_status("ext")
    assert status is not None and status["capacity"] == 100 * MBIT
    ports = status["ports"]  # type: ignore[index]
    assert ports["v2"]["bandwidth_percentage"] == pytest.approx(
        100 * 5 / 9, abs=0.01
    )  # 5 / (1+2+5+1 default)


def test_an_idle_share_is_taken_by_the_others() -> None:
    """Work-conserving: with one sender idle, the other two fill the link in proportion 1:2."""
    h = harness([1, 2, 5])
    got = saturate(h, {0: 80 * MBIT, 1: 80 * MBIT}, 3.0)
    total = sum(got.values())
    assert total * 8 / 3.0 == pytest.approx(100 * MBIT, rel=0.05)
    assert got[1] / total == pytest.approx(2 / 3, rel=0.06)


def test_maximum_bandwidth_caps_a_port_even_on_a_free_link() -> None:
    """QS-04: MaximumBandwidth is a ceiling at all times (the port's ring is read no faster)."""
    h = harness([0, 0], link=0, maximum={0: 20 * MBIT})
    got = saturate(h, {0: 60 * MBIT, 1: 60 * MBIT}, 3.0)
    assert got[0] * 8 / 3.0 == pytest.approx(20 * MBIT, rel=0.05)
    assert got[1] * 8 / 3.0 == pytest.approx(60 * MBIT, rel=0.05)


def test_absolute_minimums_are_honoured_under_contention() -> None:
    """QS-05: in Absolute mode each reservation is met under contention; the rest is shared."""
    h = harness([30 * MBIT, 10 * MBIT], mode="Absolute")
    got = saturate(h, {0: 80 * MBIT, 1: 80 * MBIT}, 3.0)
    assert got[0] * 8 / 3.0 >= 30 * MBIT * 0.97 and got[1] * 8 / 3.0 >= 10 * MBIT * 0.97
    assert sum(got.values()) * 8 / 3.0 == pytest.approx(100 * MBIT, rel=0.05)


def dcb(*classes: TrafficClassConfig, pfc: list[int] | None = None) -> DcbConfig:
    return DcbConfig(
        traffic_classes=list(classes), flow_control_priorities=pfc or [], willing=False, adapters=["up0"]
    )


def test_ets_60_40_and_a_strict_class_first() -> None:
    """DCB: ETS classes share 60/40 under contention; a Strict class goes first."""
    h = harness(
        [0, 0, 0],
        prio_tag=True,
        dcb=dcb(
            TrafficClassConfig(name="a", priorities=[3], bandwidth_percentage=60),
            TrafficClassConfig(name="b", priorities=[4], bandwidth_percentage=39),
            TrafficClassConfig(name="rt", priorities=[6], algorithm="Strict"),
        ),
    )
    tci = {0: 3 << 13, 1: 4 << 13, 2: 6 << 13}
    got = saturate(h, {0: 90 * MBIT, 1: 90 * MBIT, 2: 20 * MBIT}, 3.0, tci=tci)
    assert got[2] * 8 / 3.0 == pytest.approx(20 * MBIT, rel=0.05)  # strict: all it offers
    rest = got[0] + got[1]
    assert got[0] / rest == pytest.approx(60 / 99, rel=0.05)


def test_dcb_is_not_applied_while_willing() -> None:
    """Set-NetQosDcbxSetting -Willing $true (Windows' default): the peer's configuration would win; there is
    none, so the local classes are not enforced."""
    cfg = dcb(TrafficClassConfig(name="a", priorities=[3], bandwidth_percentage=60)).model_copy(
        update={"willing": True}
    )
    h = harness([0, 0], prio_tag=True, dcb=cfg)
    status = h.engine.qos_status("ext")
    assert status is not None and [c["name"] for c in status["classes"]] == ["[Default]"]  # type: ignore[index]


def test_pfc_from_the_link_pauses_only_its_priority() -> None:
    """PFC received: priority 3 is held for the pause time, priority 0 keeps the link."""
    h = harness(
        [0, 0],
        prio_tag=True,
        dcb=dcb(TrafficClassConfig(name="s", priorities=[3], bandwidth_percentage=50), pfc=[3]),
    )
    h.port_device("up").inject(encode_pfc(0x020000009999, {3: 0xFFFF}))  # ~0.34 ms at 100 Mbit/s: refresh it
    got: Counter[int] = Counter()
    for _ in range(20):
        h.port_device("up").inject(encode_pfc(0x020000009999, {3: 0xFFFF}))
        got += saturate(h, {0: 60 * MBIT, 1: 60 * MBIT}, 0.01, tci={0: 3 << 13})
    assert got[0] == 0 and got[1] > 0
    got = saturate(h, {0: 60 * MBIT, 1: 60 * MBIT}, 1.0, tci={0: 3 << 13})
    assert got[0] > 0  # the pause ran out
    classes = {c["name"]: c for c in h.engine.qos_status("ext")["classes"]}  # type: ignore[index]
    assert classes["s"]["pfc_received"] >= 20


def test_a_congested_lossless_class_sends_pfc_to_its_sender_and_drops_nothing() -> None:
    """PFC emitted: priority 3 offered at twice the link rate crosses XOFF; its sender's port gets PFC
    frames for priority 3 only, the switch stops reading it (its frames wait), and the class drops nothing;
    priority 0 from another port keeps flowing."""
    h = harness(
        [0, 0],
        prio_tag=True,
        dcb=dcb(TrafficClassConfig(name="s", priorities=[3], bandwidth_percentage=50), pfc=[3]),
    )
    sender = h.port_device("v0")
    got = saturate(h, {0: 200 * MBIT, 1: 40 * MBIT}, 2.0, tci={0: 3 << 13})
    pfc = [decode_mac_control(f) for f in sender.sent if f[12:14] == b"\x88\x08"]
    assert pfc and all(isinstance(p, PfcFrame) and set(p.quanta) == {3} for p in pfc)
    assert not [f for f in h.port_device("v1").sent if f[12:14] == b"\x88\x08"]
    status = h.engine.qos_status("ext")
    classes = {c["name"]: c for c in status["classes"]}  # type: ignore[index]
    assert classes["s"]["drops"] == 0 and classes["s"]["pfc_sent"] >= 1
    assert got[1] * 8 / 2.0 == pytest.approx(40 * MBIT, rel=0.05)  # the other class flowed
    assert got[0] * 8 / 2.0 == pytest.approx(60 * MBIT, rel=0.08)  # the lossless one used the rest


def test_host_policy_marks_dscp_and_priority_and_throttles() -> None:
    """New-NetQosPolicy on a host vNIC's traffic: SMB (TCP 445) gets DSCP 26 and priority 3 on the wire;
    a throttle caps a UDP port's traffic."""
    policies = [
        QosPolicyConfig(name="smb", template="SMB", dscp=26, priority_8021=3),
        QosPolicyConfig(name="bulk", ip_protocol="UDP", ip_dst_port=7000, throttle_rate=10 * MBIT),
    ]
    h = harness([0, 0], policies=policies, host=True)
    tcp = eth(
        LAN,
        vm_mac(0),
        ipv4("10.0.0.1", "10.0.0.99", 6, bytes.fromhex("c0000 1bd".replace(" ", "")) + bytes(16)),
    )
    h.send("v0", tcp)
    sent = h.take("up")
    assert len(sent) == 1 and sent[0][12:14] == b"\x81\x00" and sent[0][14] >> 5 == 3
    assert sent[0][18 + 1] >> 2 == 26  # DSCP in the IPv4 header after the tag
    got = saturate(h, {0: 50 * MBIT}, 3.0, dport={0: 7000})
    assert got[0] * 8 / 3.0 == pytest.approx(10 * MBIT, rel=0.05)


def test_a_link_that_loses_capacity_sends_slower() -> None:
    """A team uplink's capacity follows its active members (engine: per_member x active): half the members,
    half the rate, with the same shares."""
    h = harness([1, 3])
    up = next(p for p in h.engine.switches["ext"].ports if p is not None and p.name == "up")
    assert up.egress is not None
    up.egress.set_capacity(50 * MBIT, h.clock.now())
    got = saturate(h, {0: 80 * MBIT, 1: 80 * MBIT}, 3.0)
    assert sum(got.values()) * 8 / 3.0 == pytest.approx(50 * MBIT, rel=0.05)
    assert got[1] / sum(got.values()) == pytest.approx(0.75, rel=0.05)
