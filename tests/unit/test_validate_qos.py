"""QoS and DCB cross-object rules (hyperv-networking.md §5): each rule, and each error names its field."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from pyvswitch.config.schema import (
    DcbConfig,
    HostConfig,
    PortConfig,
    QosPolicyConfig,
    SwitchConfig,
    TeamConfig,
    format_bps,
)
from pyvswitch.config.validate import (
    default_flow_reservation,
    effective_mode,
    problems_from_validation_error,
    switch_capacity,
    validate,
)

G = 10**9
M = 10**6


def host(mode: str = "Default", link_speed: int = G, ports: list[dict[str, Any]] | None = None,
         **switch: Any) -> HostConfig:  # fmt: skip
    """An External switch 'ext' on eth1 (its uplink at ``link_speed``) and VM ports a, b, c on it."""
    sw = SwitchConfig.model_validate(
        {"name": "ext", "type": "External", "net_adapter": "eth1", "minimum_bandwidth_mode": mode, **switch}
    )
    uplink = PortConfig(
        name="ext-uplink", kind="uplink", switch="ext", interface="eth1", link_speed=link_speed
    )  # type: ignore[arg-type]
    vms = [
        PortConfig.model_validate(
            {"name": f"{n}-eth0", "kind": "vm", "vm": n, "switch": "ext", "interface": f"pv{n}", **(kw or {})}
        )
        for n, kw in zip("abc", ports or [{}, {}, {}], strict=False)
    ]
    return HostConfig.model_validate(
        {
            "switches": [sw],
            "vms": [{"name": n} for n in "abc"],
            "ports": [uplink, *vms],
        }
    )


def problems(cfg: HostConfig, old: HostConfig | None = None) -> dict[str, str]:
    return dict(validate(cfg, old))


def test_default_mode_is_weight_and_a_plain_config_is_valid() -> None:
    cfg = host(ports=[{"minimum_bandwidth_weight": 5, "maximum_bandwidth": 100 * M}, {}, {}])
    assert effective_mode(cfg.switches[0]).value == "Weight"
    assert validate(cfg) == []


def test_weight_only_on_a_weight_mode_switch() -> None:
    """QS-02/QS-05: a weight on an Absolute or None switch names the port's field."""
    for mode in ("Absolute", "None"):
        got = problems(host(mode, ports=[{}, {"minimum_bandwidth_weight": 3}]))
        assert "ports[2].minimum_bandwidth_weight" in got
        assert f"{mode} minimum-bandwidth mode" in got["ports[2].minimum_bandwidth_weight"]
    assert problems(host("Weight", ports=[{}, {"minimum_bandwidth_weight": 3}])) == {}


def test_absolute_only_on_an_absolute_mode_switch() -> None:
    """QS-03/QS-05."""
    for mode in ("Default", "Weight", "None"):
        got = problems(host(mode, ports=[{"minimum_bandwidth_absolute": 100 * M}]))
        assert list(got) == ["ports[1].minimum_bandwidth_absolute"]
    assert problems(host("Absolute", ports=[{"minimum_bandwidth_absolute": 100 * M}])) == {}


def test_a_disconnected_port_keeps_its_settings() -> None:
    cfg = host("None")
    p = cfg.ports[1].model_copy(update={"switch": None, "minimum_bandwidth_weight": 5})
    assert validate(cfg.model_copy(update={"ports": [cfg.ports[0], p, *cfg.ports[2:]]})) == []


def test_default_flow_settings_only_in_their_mode() -> None:
    got = problems(host("Weight", default_flow_minimum_bandwidth_absolute=50 * M))
    assert list(got) == ["switches[0].default_flow_minimum_bandwidth_absolute"]
    got = problems(host("Absolute", default_flow_minimum_bandwidth_weight=5))
    assert list(got) == ["switches[0].default_flow_minimum_bandwidth_weight"]


def test_default_flow_absolute_rounds_down_to_8() -> None:
    """Hyper-V: DefaultFlowMinimumBandwidthAbsolute 1234567 -> 1234560."""
    sw = SwitchConfig(name="s", default_flow_minimum_bandwidth_absolute=1234567)
    assert sw.default_flow_minimum_bandwidth_absolute == 1234560


def test_admission_counts_the_default_flow_and_names_the_port_that_does_not_fit() -> None:
    """QS-03: 1 Gbit/s, default flow 10 % = 100 Mbit/s, 850 Mbit/s for a: 950 reserved, b's 100 does not fit."""
    cfg = host(
        "Absolute", ports=[{"minimum_bandwidth_absolute": 850 * M}, {"minimum_bandwidth_absolute": 100 * M}]
    )
    assert default_flow_reservation(cfg.switches[0], switch_capacity(cfg, cfg.switches[0])) == 100 * M
    got = problems(cfg)
    assert list(got) == ["ports[2].minimum_bandwidth_absolute"]
    assert (
        "1 Gbit/s capacity, 950 Mbit/s reserved, 100 Mbit/s requested"
        in got["ports[2].minimum_bandwidth_absolute"]
    )
    # exactly full is fine
    assert (
        problems(
            host(
                "Absolute",
                ports=[{"minimum_bandwidth_absolute": 800 * M}, {"minimum_bandwidth_absolute": 100 * M}],
            )
        )
        == {}
    )


def test_admission_with_an_explicit_default_flow() -> None:
    cfg = host(
        "Absolute",
        default_flow_minimum_bandwidth_absolute=10 * M,
        ports=[{"minimum_bandwidth_absolute": 900 * M}, {"minimum_bandwidth_absolute": 90 * M}],
    )
    assert problems(cfg) == {}
    got = problems(host("Absolute", default_flow_minimum_bandwidth_absolute=2 * G))
    assert list(got) == ["switches[0].default_flow_minimum_bandwidth_absolute"]


def test_admission_blames_the_changed_reservation_not_an_earlier_one() -> None:
    """Raising a's reservation past capacity names a, even though b comes later in the configuration."""
    old = host(
        "Absolute", ports=[{"minimum_bandwidth_absolute": 100 * M}, {"minimum_bandwidth_absolute": 500 * M}]
    )
    new = host(
        "Absolute", ports=[{"minimum_bandwidth_absolute": 500 * M}, {"minimum_bandwidth_absolute": 500 * M}]
    )
    assert list(problems(new, old)) == ["ports[1].minimum_bandwidth_absolute"]
    assert list(problems(new)) == ["ports[2].minimum_bandwidth_absolute"]


def test_unbounded_capacity_admits_everything() -> None:
    cfg = host("Absolute", link_speed=0, ports=[{"minimum_bandwidth_absolute": 10 * G}])
    assert switch_capacity(cfg, cfg.switches[0]) == 0
    assert problems(cfg) == {}


def test_team_capacity_is_member_speed_times_active_members() -> None:
    cfg = host("Absolute", link_speed=0, ports=[{"minimum_bandwidth_absolute": 1500 * M}])
    team = TeamConfig(name="eth1", members=["m1", "m2"], member_link_speed=G)
    with_team = cfg.model_copy(update={"teams": [team]})
    assert switch_capacity(with_team, cfg.switches[0]) == 2 * G
    assert problems(with_team) == {}
    standby = team.model_copy(update={"standby_member": "m2"})
    assert switch_capacity(cfg.model_copy(update={"teams": [standby]}), cfg.switches[0]) == G
    assert "ports[1].minimum_bandwidth_absolute" in problems(cfg.model_copy(update={"teams": [standby]}))


def test_link_speed_on_a_team_uplink_points_at_member_link_speed() -> None:
    cfg = host(link_speed=G).model_copy(update={"teams": [TeamConfig(name="eth1", members=["m1"])]})
    got = problems(cfg)
    assert "its members' (the team's member_link_speed)" in got["ports[0].link_speed"]  # named, no index


def test_absolute_minimum_above_the_ports_maximum() -> None:
    got = problems(
        host("Absolute", ports=[{"minimum_bandwidth_absolute": 200 * M, "maximum_bandwidth": 100 * M}])
    )
    assert "above the port's maximum 100 Mbit/s" in got["ports[1].minimum_bandwidth_absolute"]
    assert problems(host("Absolute", ports=[{"minimum_bandwidth_absolute": 200 * M}])) == {}


def test_link_speed_only_on_uplink_and_interface_ports() -> None:
    got = problems(host(ports=[{"link_speed": G}]))
    assert list(got) == ["ports[1].link_speed"]
    cfg = host()
    nic = PortConfig(name="nic", kind="interface", interface="eth7", switch="ext", link_speed=G)  # type: ignore[arg-type]
    assert problems(cfg.model_copy(update={"ports": [*cfg.ports, nic]})) == {}


def test_port_bandwidth_rounds_to_8() -> None:
    """QS-01: bit/s rounded to the nearest multiple of 8."""
    p = PortConfig(name="p", kind="host", maximum_bandwidth=1234567, minimum_bandwidth_absolute=13)  # type: ignore[arg-type]
    assert (p.maximum_bandwidth, p.minimum_bandwidth_absolute) == (1234568, 16)


def test_qos_policy_names_are_unique() -> None:
    """QS-07."""
    pol = QosPolicyConfig(name="SMB", template="SMB", min_bandwidth_weight=50)  # type: ignore[arg-type]
    cfg = HostConfig(qos_policies=[pol, pol.model_copy(update={"min_bandwidth_weight": 10})])
    assert list(problems(cfg)) == ["qos_policies[1].name"]


def test_dcb_adapters_are_interface_names_listed_once() -> None:
    """QS-09: DCB is a NIC's setting; which NICs may get it is checked when it is enabled (the service answers
    404 for a VM's adapter), so a NIC whose switch is gone keeps it. The list itself must be sound."""
    cfg = host().model_copy(update={"teams": [TeamConfig(name="t1", members=["m1"])]})
    ok = cfg.model_copy(update={"dcb": DcbConfig(adapters=["eth1", "t1", "gone0"])})
    assert problems(ok) == {}
    bad = cfg.model_copy(update={"dcb": DcbConfig(adapters=["eth1", "bad/name", "eth1"])})
    got = problems(bad)
    assert set(got) == {"dcb.adapters[1]", "dcb.adapters[2]"}
    assert "listed twice" in got["dcb.adapters[2]"]


def test_flow_control_priorities_are_0_to_7() -> None:
    """QS-09: PFC per 802.1p priority."""
    with pytest.raises(ValidationError) as info:
        HostConfig.model_validate({"dcb": {"flow_control_priorities": [3, 8]}})
    assert [p for p, _ in problems_from_validation_error(info.value)] == ["dcb.flow_control_priorities[1]"]


def test_format_bps() -> None:
    assert [format_bps(v) for v in (G, 950 * M, 1_250_000, 1500, 7, 25 * G)] == [
        "1 Gbit/s",
        "950 Mbit/s",
        "1.25 Mbit/s",
        "1.5 kbit/s",
        "7 bit/s",
        "25 Gbit/s",
    ]
