"""QoS cmdlets and verbs without a daemon: parameter binding, bandwidth values, how arguments map to bodies."""

from __future__ import annotations

import pytest

from pyvswitch.cli.cmdlet.framework import Args, CmdletError, CmdletUsageError, bind
from pyvswitch.cli.cmdlet.output import ps_list
from pyvswitch.cli.cmdlets import _pipeline, find
from pyvswitch.cli.netqos import class_body, flow_control_priorities, policy_body, policy_obj
from pyvswitch.cli.qos import parse_priorities, policy_add_body, qos_text
from pyvswitch.cli.units import parse_bandwidth
from pyvswitch.cli.vmadapter import security_from_args
from pyvswitch.cli.vmswitch import switch_obj


def args(cmdlet: str, *argv: str) -> Args:
    return bind(find(cmdlet), argv)


def test_bandwidth_values_are_bits_per_second_with_optional_suffixes() -> None:
    assert parse_bandwidth("100000000") == 100_000_000
    assert [parse_bandwidth(v) for v in ("100M", "1G", "1.5g", "10k", "2T", "100Mbit/s")] == [
        10**8,
        10**9,
        1_500_000_000,
        10_000,
        2 * 10**12,
        10**8,
    ]
    with pytest.raises(ValueError, match="bytes are not accepted"):
        parse_bandwidth("100MB")
    with pytest.raises(ValueError, match="not a whole number"):
        parse_bandwidth("1.5")


def test_set_vmnetworkadapter_bandwidth_parameters() -> None:
    """QS-01/02/03: -MaximumBandwidth, -MinimumBandwidthWeight, -MinimumBandwidthAbsolute (Int64 bit/s)."""
    a = args(
        "Set-VMNetworkAdapter",
        "-VMName",
        "web01",
        "-MaximumBandwidth",
        "100M",
        "-MinimumBandwidthWeight",
        "5",
    )
    assert security_from_args(a) == {"maximum_bandwidth": 10**8, "minimum_bandwidth_weight": 5}
    a = args("Set-VMNetworkAdapter", "web01", "-MinimumBandwidthAbsolute", "250000000")
    assert security_from_args(a) == {"minimum_bandwidth_absolute": 250_000_000}
    with pytest.raises(CmdletUsageError, match=r"System\.Int64"):
        args("Set-VMNetworkAdapter", "web01", "-MaximumBandwidth", "fast")
    with pytest.raises(CmdletUsageError, match="maximum allowed range of 100"):
        args("Set-VMNetworkAdapter", "web01", "-MinimumBandwidthWeight", "101")


def test_switch_cmdlets_take_the_qos_parameters() -> None:
    a = args("New-VMSwitch", "ext", "-NetAdapterName", "eth1", "-MinimumBandwidthMode", "absolute")
    assert a.text("MinimumBandwidthMode") == "Absolute"
    a = args("Set-VMSwitch", "ext", "-DefaultFlowMinimumBandwidthAbsolute", "50M")
    assert a.number("DefaultFlowMinimumBandwidthAbsolute") == 50 * 10**6
    with pytest.raises(CmdletUsageError, match="MinimumBandwidthMode"):
        args("New-VMSwitch", "ext", "-SwitchType", "Private", "-MinimumBandwidthMode", "Fast")


def test_get_vmswitch_shows_the_qos_properties() -> None:
    """QS-06: BandwidthReservationMode (Default shown as Weight), default flow, Capacity, Reservation."""
    sw = {"name": "ext", "type": "External", "net_adapter": "eth1", "minimum_bandwidth_mode": "Default"}
    obj = switch_obj(sw)
    assert (obj["BandwidthReservationMode"], obj["DefaultFlowMinimumBandwidthWeight"], obj["Capacity"]) == (
        "Weight",
        1,
        0,
    )
    qos = {
        "mode": "Absolute",
        "capacity": 10**9,
        "reservation": 3 * 10**8,
        "default_flow": {"weight": 1, "absolute": 10**8, "bandwidth_percentage": 10.0},
    }
    obj = switch_obj({**sw, "minimum_bandwidth_mode": "Absolute"}, qos)
    assert obj["DefaultFlowMinimumBandwidthAbsolute"] == 10**8
    assert (obj["Capacity"], obj["Reservation"], obj["BandwidthPercentage"]) == (10**9, 3 * 10**8, 10.0)
    text = ps_list([obj])
    assert "BandwidthReservationMode            : Absolute" in text


def test_pipeline_tail() -> None:
    assert _pipeline(["ext", "|", "fl"]) == (["ext"], {"format_list": True})
    assert _pipeline(["|", "Format-List"]) == ([], {"format_list": True})
    assert _pipeline(["ext", "|fl"]) == (["ext"], {"format_list": True})
    assert _pipeline(["ext"]) == (["ext"], {})
    assert _pipeline(["-Name", "ext", "| Select-Object -Property Name,SwitchType"]) == (
        ["-Name", "ext"],
        {"select": ["Name", "SwitchType"]},
    )
    assert _pipeline(["|", "ft", "Name,", "Notes"]) == (
        [],
        {"format_table": True, "select": ["Name", "Notes"]},
    )
    assert _pipeline(["| select Name | fl"]) == ([], {"select": ["Name"], "format_list": True})
    for bad in (["| Sort-Object Name"], ["| select"]):
        with pytest.raises(CmdletUsageError):
            _pipeline(bad)


def test_new_netqospolicy_template_and_actions() -> None:
    """QS-07/QS-08: the documented converged example."""
    a = args(
        "New-NetQosPolicy",
        "Live Migration",
        "-LiveMigration",
        "-MinBandwidthWeightAction",
        "30",
        "-PriorityValue8021Action",
        "5",
    )
    assert policy_body(a, new=True) == {
        "name": "Live Migration",
        "template": "LiveMigration",
        "min_bandwidth_weight": 30,
        "priority_8021": 5,
    }
    with pytest.raises(CmdletUsageError, match="used alone"):
        policy_body(args("New-NetQosPolicy", "x", "-SMB", "-NFS", "-DSCPAction", "10"), new=True)
    with pytest.raises(CmdletUsageError, match="maximum allowed range of 63"):
        args("New-NetQosPolicy", "x", "-SMB", "-DSCPAction", "64")


def test_new_netqospolicy_conditions() -> None:
    a = args(
        "New-NetQosPolicy",
        "-Name",
        "web",
        "-IPProtocolMatchCondition",
        "tcp",
        "-IPDstPortStartMatchCondition",
        "8000",
        "-IPDstPortEndMatchCondition",
        "8080",
        "-IPDstPrefixMatchCondition",
        "10.0.0.0/8",
        "-ThrottleRateActionBitsPerSecond",
        "1G",
        "-Precedence",
        "200",
        "-PolicyStore",
        "ActiveStore",
    )
    assert policy_body(a, new=True) == {
        "name": "web",
        "ip_protocol": "TCP",
        "ip_dst_port_start": 8000,
        "ip_dst_port_end": 8080,
        "ip_dst_prefix": "10.0.0.0/8",
        "throttle_rate": 10**9,
        "precedence": 200,
    }
    assert policy_body(args("Set-NetQosPolicy", "web", "-DSCPAction", "46"), new=False) == {"dscp": 46}
    with pytest.raises(CmdletError, match="give a condition"):
        policy_body(args("Set-NetQosPolicy", "web"), new=False)


def test_policy_obj_shows_only_what_is_set() -> None:
    q = {
        "name": "SMB",
        "template": "SMB",
        "ip_protocol": "Both",
        "min_bandwidth_weight": 50,
        "precedence": 127,
    }
    obj = policy_obj(q)
    assert obj["Template"] == "SMB" and obj["MinBandwidthWeight"] == 50
    assert "DSCPValue" not in obj and "IPDstPort" not in obj
    ranged = policy_obj({"name": "r", "ip_dst_port_start": 1, "ip_dst_port_end": 9, "dscp": 1})
    assert ranged["IPDstPort"] == "1-9"


def test_traffic_class_cmdlets() -> None:
    """QS-09: -Priority is a Byte[] (3,5), -Algorithm ETS|Strict, -BandwidthPercentage 1-99."""
    a = args("New-NetQosTrafficClass", "SMB", "3, 5", "ETS", "-BandwidthPercentage", "60")
    assert class_body(a, new=True) == {
        "name": "SMB",
        "priorities": [3, 5],
        "algorithm": "ETS",
        "bandwidth_percentage": 60,
    }
    with pytest.raises(CmdletUsageError, match=r"802\.1p priority"):
        class_body(args("New-NetQosTrafficClass", "x", "8"), new=True)
    with pytest.raises(CmdletUsageError, match="maximum allowed range of 99"):
        args("New-NetQosTrafficClass", "x", "3", "-BandwidthPercentage", "100")
    assert class_body(args("Set-NetQosTrafficClass", "SMB", "-Algorithm", "strict"), new=False) == {
        "algorithm": "Strict"
    }


def test_flow_control_without_priority_means_all() -> None:
    assert flow_control_priorities([3], args("Enable-NetQosFlowControl", "-Priority", "4,6"), True) == [
        3,
        4,
        6,
    ]
    assert flow_control_priorities([3, 4], args("Disable-NetQosFlowControl", "3"), False) == [4]
    assert flow_control_priorities([3], args("Enable-NetQosFlowControl"), True) == list(range(8))
    assert flow_control_priorities([3, 4], args("Disable-NetQosFlowControl"), False) == []


def test_dcbx_willing_is_a_boolean() -> None:
    """QS-10."""
    assert args("Set-NetQosDcbxSetting", "-Willing", "$false").boolean("Willing") is False
    with pytest.raises(CmdletUsageError, match="missing mandatory parameters: Willing"):
        args("Set-NetQosDcbxSetting")


def test_qos_verbs_map_to_bodies() -> None:
    body = policy_add_body(
        "web", None, "tcp", None, "10.0.0.0/8", None, 80, None, "49152-65535", None, None, 10**8, 46, 3, None
    )
    assert body == {
        "name": "web",
        "ip_protocol": "TCP",
        "ip_dst_prefix": "10.0.0.0/8",
        "ip_dst_port": 80,
        "throttle_rate": 10**8,
        "dscp": 46,
        "priority_8021": 3,
        "ip_src_port_start": 49152,
        "ip_src_port_end": 65535,
    }
    assert policy_add_body("s", "livemigration", *[None] * 13)["template"] == "LiveMigration"
    assert parse_priorities(("3", "5,6")) == [3, 5, 6]


def test_qos_show_text() -> None:
    """QS-06: per port sent, drops, rate, share now next to the configured share; classes with PFC."""
    status = {
        "switch": "ext",
        "mode": "Weight",
        "capacity": 10**9,
        "reservation": 0,
        "default_flow": {"weight": 1, "absolute": 0, "bandwidth_percentage": 12.5},
        "ports": {
            "a": {
                "sent_bytes": 2048,
                "drops": 1,
                "rate_bps": 3 * 10**8,
                "bandwidth_percentage": 25.0,
                "minimum_bandwidth_weight": 2,
                "maximum_bandwidth": 0,
            },
            "b": {
                "sent_bytes": 0,
                "drops": 0,
                "rate_bps": 10**8,
                "bandwidth_percentage": 62.5,
                "minimum_bandwidth_weight": 5,
                "maximum_bandwidth": 10**8,
            },
        },
        "classes": [
            {
                "name": "SMB",
                "priorities": [3],
                "algorithm": "ETS",
                "bandwidth_percentage": 60,
                "sent_bytes": 1,
                "drops": 0,
                "rate_bps": 0,
                "paused": True,
                "pfc_sent": 4,
                "pfc_received": 1,
            },
        ],
        "dcb": {"enabled": True, "operational": True},
    }
    text = qos_text(status)
    assert "capacity:" in text and "1 Gbit/s" in text
    lines = {ln.split()[0]: ln for ln in text.splitlines() if ln.split()}
    assert "300 Mbit/s" in lines["a"] and "75.0 %" in lines["a"] and "25.0 %" in lines["a"]
    assert "max 100 Mbit/s" in lines["b"]
    assert "yes" in lines["SMB"] and "4/1" in lines["SMB"]
