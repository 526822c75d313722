"""ACL and extension helpers of the CLI without a daemon: list edits, normal forms, cmdlet argument binding."""

from __future__ import annotations

from typing import Any

import click
import pytest

from pyvswitch.cli.acls import (
    AclInputError,
    check_xacl,
    evaluation_order,
    normal_address,
    protocol_text,
    remove_acl,
    remove_xacl,
    weight_in_use,
)
from pyvswitch.cli.cmdlet.framework import CmdletUsageError, bind
from pyvswitch.cli.cmdlets import find
from pyvswitch.cli.extensions import enabled_settings, ordered_settings, settings_changes, with_settings
from pyvswitch.cli.vmacl import acl_entries_from_args, xacl_entry_from_args
from pyvswitch.cli.vmextension import switch_extension_obj, system_extension_obj


def acl(action: str, direction: str, **address: str) -> dict[str, Any]:
    return {"action": action, "direction": direction, **address}


# ---------------------------------------------------------------- ACL list edits


def test_normal_address_is_the_stored_form() -> None:
    assert normal_address("remote_ip", "10.0.0.1") == "10.0.0.1/32"
    assert normal_address("remote_ip", "10.1.2.3/8") == "10.0.0.0/8"
    assert normal_address("local_ip", "fd00::1") == "fd00::1/128"
    assert normal_address("local_ip", "any") == "ANY"
    assert normal_address("remote_mac", "00-15-5D-00-00-01") == "00:15:5d:00:00:01"
    assert normal_address("local_mac", "Any") == "ANY"
    with pytest.raises(AclInputError) as exc:
        normal_address("remote_ip", "10.0.0.300")
    assert exc.value.problems[0][0] == "remote_ip"
    assert "is not an IP address" in exc.value.problems[0][1]
    assert not exc.value.problems[0][1].startswith("Value error")


ENTRIES = [
    acl("Deny", "Both", remote_ip="ANY"),
    acl("Allow", "Both", remote_ip="192.168.1.0/24"),
    acl("Deny", "Inbound", remote_mac="00:15:5d:00:00:09"),
    acl("Meter", "Outbound", remote_ip="ANY"),
]


def test_remove_acl_by_address_action_and_direction() -> None:
    kept, n = remove_acl(ENTRIES, address=("remote_ip", "ANY"))
    assert n == 2 and kept == [ENTRIES[1], ENTRIES[2]]
    kept, n = remove_acl(ENTRIES, action="Deny", address=("remote_ip", "ANY"))
    assert n == 1 and kept == ENTRIES[1:]
    kept, n = remove_acl(ENTRIES, direction="Inbound", action="Deny")
    # the Inbound entry goes; the Both entry keeps its outbound half
    assert n == 2 and kept == [acl("Deny", "Outbound", remote_ip="ANY"), ENTRIES[1], ENTRIES[3]]


def test_remove_acl_both_removes_either_direction() -> None:
    kept, n = remove_acl(ENTRIES, direction="Both")
    assert n == 4 and kept == []
    kept, n = remove_acl(ENTRIES, direction="Outbound", address=("remote_ip", "192.168.1.0/24"))
    assert n == 1 and kept[1] == acl("Allow", "Inbound", remote_ip="192.168.1.0/24")


def test_remove_acl_without_a_match_changes_nothing() -> None:
    kept, n = remove_acl(ENTRIES, direction="Outbound", address=("remote_mac", "00:15:5d:00:00:09"))
    assert n == 0 and kept == ENTRIES
    kept, n = remove_acl(ENTRIES, action="Allow", address=("remote_ip", "ANY"))
    assert n == 0 and kept == ENTRIES


# ---------------------------------------------------------------- extended ACL list edits

XACLS = [
    {"weight": 1, "direction": "Inbound", "action": "Deny"},
    {"weight": 100, "direction": "Inbound", "action": "Allow"},
    {"weight": 1, "direction": "Outbound", "action": "Deny"},
    {"weight": 50, "direction": "Outbound", "action": "Allow"},
]


def test_remove_xacl_by_weight_and_direction() -> None:
    kept, n = remove_xacl(XACLS, 1)
    assert n == 2 and [x["weight"] for x in kept] == [100, 50]
    kept, n = remove_xacl(XACLS, 1, "Outbound")
    assert n == 1 and kept == [XACLS[0], XACLS[1], XACLS[3]]
    assert remove_xacl(XACLS, 7) == (XACLS, 0)


def test_weight_in_use_is_per_direction() -> None:
    assert weight_in_use(XACLS, 100, "Inbound")
    assert not weight_in_use(XACLS, 100, "Outbound")


def test_evaluation_order_highest_weight_first_per_direction() -> None:
    assert [(x["direction"], x["weight"]) for x in evaluation_order(XACLS)] == [
        ("Inbound", 100),
        ("Inbound", 1),
        ("Outbound", 50),
        ("Outbound", 1),
    ]


def test_check_xacl_names_fields_and_rules() -> None:
    base = {"action": "Allow", "direction": "Inbound", "weight": 10}
    assert check_xacl({**base, "protocol": "tcp", "local_port": "80-80"})["protocol"] == "6"
    assert check_xacl({**base, "local_port": "80-80"})["local_port"] == "80"
    with pytest.raises(AclInputError) as exc:
        check_xacl({**base, "remote_port": "90-80"})
    assert exc.value.problems == [("remote_port", "'90-80': ports are 0-65535, low-high")]
    with pytest.raises(AclInputError) as exc:
        check_xacl({**base, "action": "Deny", "stateful": True})
    assert exc.value.problems == [("", "only Allow entries can be stateful")]


def test_protocol_text() -> None:
    assert [protocol_text(p) for p in ("6", "17", "1", "58", "2", None)] == [
        "TCP",
        "UDP",
        "ICMP",
        "ICMPv6",
        "2",
        "ANY",
    ]


# ---------------------------------------------------------------- cmdlet arguments


def acl_args(*argv: str) -> list[dict[str, Any]]:
    return acl_entries_from_args(bind(find("Add-VMNetworkAdapterAcl"), ("web01", *argv)))


def test_acl_cmdlet_builds_one_entry_per_address() -> None:
    entries = acl_args(
        "-Action", "deny", "-Direction", "both", "-RemoteIPAddress", "10.0.0.1,", "10.2.0.0/16"
    )
    assert [(e["action"], e["direction"], e["remote_ip"]) for e in entries] == [
        ("Deny", "Both", "10.0.0.1/32"),
        ("Deny", "Both", "10.2.0.0/16"),
    ]
    (mac,) = acl_args("-Action", "Allow", "-Direction", "Inbound", "-LocalMacAddress", "00155D000A01")
    assert mac["local_mac"] == "00:15:5d:00:0a:01"


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (("-Action", "Deny", "-Direction", "Inbound"), "Parameter set cannot be resolved"),
        (
            (
                "-Action",
                "Deny",
                "-Direction",
                "Inbound",
                "-LocalIPAddress",
                "ANY",
                "-RemoteMacAddress",
                "ANY",
            ),
            "Parameter set cannot be resolved",
        ),
        (
            ("-Action", "Deny", "-Direction", "Inbound", "-RemoteIPAddress", "1.2.3"),
            "Cannot validate argument on parameter 'RemoteIPAddress'.",
        ),
        (
            ("-Action", "Meter", "-Direction", "Inbound", "-LocalMacAddress", "ANY"),
            "The ACL entry is not valid: Meter entries must be IP-based.",
        ),
        (("-Action", "Deny", "-Direction", "Inbound", "-RemoteIPAddress", ","), "null or empty"),
    ],
)
def test_acl_cmdlet_mistakes(argv: tuple[str, ...], words: str) -> None:
    with pytest.raises(CmdletUsageError) as exc:
        acl_args(*argv)
    assert words in str(exc.value)


def xacl_args(*argv: str) -> dict[str, Any]:
    return xacl_entry_from_args(bind(find("Add-VMNetworkAdapterExtendedAcl"), ("web01", *argv)))


def test_extended_acl_cmdlet_maps_parameters_to_fields() -> None:
    line = (
        "-Action allow -Direction outbound -Weight 10 -RemotePort 443 -Protocol TCP -Stateful:$true"
        " -IdleSessionTimeout 60 -IsolationID 20 -RemoteIPAddress 10.0.0.0/8"
    )
    entry = xacl_args(*line.split())
    assert entry == {
        "action": "Allow",
        "direction": "Outbound",
        "weight": 10,
        "local_ip": None,
        "remote_ip": "10.0.0.0/8",
        "local_port": None,
        "remote_port": "443",
        "protocol": "6",
        "stateful": True,
        "idle_session_timeout_s": 60,
        "isolation_id": 20,
    }


def test_extended_acl_cmdlet_mistakes() -> None:
    with pytest.raises(CmdletUsageError) as exc:
        xacl_args("-Action", "Allow", "-Direction", "Inbound", "-Weight", "1", "-LocalPort", "1-70000")
    assert "parameter 'LocalPort'" in str(exc.value) and "0-65535" in str(exc.value)
    with pytest.raises(CmdletUsageError) as exc:
        xacl_args("-Action", "Allow", "-Direction", "Inbound", "-Weight", "1", "-Protocol", "sctp")
    assert "parameter 'Protocol'" in str(exc.value)
    with pytest.raises(CmdletUsageError) as exc:
        bind(find("Add-VMNetworkAdapterExtendedAcl"), ("web01", "-Action", "Allow", "-Direction", "Inbound"))
    assert str(exc.value).endswith("missing mandatory parameters: Weight.")
    with pytest.raises(CmdletUsageError) as exc:
        bind(find("Add-VMNetworkAdapterExtendedAcl"), ("web01", "-Action", "Meter"))
    assert "Allow, Deny" in str(exc.value)


def test_extension_cmdlets_bind_by_position() -> None:
    assert bind(find("Get-VMSwitchExtension"), ("sw", "mon")).values == {"VMSwitchName": "sw", "Name": "mon"}
    assert bind(find("enable-vmswitchextension"), ("a,", "b", "sw")).values == {
        "Name": "a,b",
        "VMSwitchName": "sw",
    }
    assert bind(find("Set-VMSwitch"), ("sw", "-Extensions", "a,", "b")).values == {
        "Name": "sw",
        "Extensions": "a,b",
    }


def test_extension_objects() -> None:
    installed = {
        "name": "fw",
        "kind": "filter",
        "api_version": "1.0",
        "distribution": "pyvswitch",
        "description": "d",
        "problem": None,
    }
    assert system_extension_obj(installed) == {
        "Name": "fw",
        "Vendor": "pyvswitch",
        "Version": "1.0",
        "ExtensionType": "Filter",
        "Description": "d",
        "Problem": "",
    }
    assert system_extension_obj({"name": "x", "kind": None, "problem": "boom"})["ExtensionType"] == ""
    row = {"name": "fw", "kind": "forwarding", "enabled": False, "position": 3, "calls": 0, "errors": 2}
    obj = switch_extension_obj("sw", row, {"fw": installed})
    assert (obj["ExtensionType"], obj["SwitchName"], obj["Enabled"], obj["Running"], obj["Errors"]) == (
        "Forwarding",
        "sw",
        False,
        False,
        2,
    )
    assert switch_extension_obj("sw", {**row, "kind": "capture"}, {})["Vendor"] == ""


# ---------------------------------------------------------------- extension settings


def test_enabled_settings_keep_order_and_append_new() -> None:
    configured = [{"name": "a", "enabled": False}, {"name": "b", "enabled": True}]
    assert enabled_settings(configured, ["b", "c"], False) == [
        {"name": "a", "enabled": False},
        {"name": "b", "enabled": False},
        {"name": "c", "enabled": False},
    ]
    assert configured[1]["enabled"] is True  # not changed in place


def test_ordered_settings_put_names_first_keeping_state() -> None:
    configured = [{"name": "a", "enabled": False}, {"name": "b", "enabled": True}]
    stack = [{"name": "fw", "enabled": True}, {"name": "a", "enabled": False}, {"name": "b", "enabled": True}]
    assert ordered_settings(configured, stack, ["fw", "b", "new"]) == [
        {"name": "fw", "enabled": True},
        {"name": "b", "enabled": True},
        {"name": "new", "enabled": False},
        {"name": "a", "enabled": False},
    ]


def test_ordering_keeps_an_extensions_settings() -> None:
    configured = [{"name": "a", "enabled": True, "settings": {"sampling_rate": 100}}]
    assert ordered_settings(configured, [], ["b", "a"])[1] == configured[0]


def test_extension_set_parses_values_and_drops_emptied_keys() -> None:
    changes = settings_changes(
        ["sampling_rate=100", "collectors=10.0.0.9,10.0.0.10", "flag=true", "agent_address="]
    )
    assert changes == {
        "sampling_rate": 100,
        "collectors": "10.0.0.9,10.0.0.10",
        "flag": True,
        "agent_address": None,
    }
    configured = [
        {"name": "s", "enabled": True, "settings": {"agent_address": "10.0.0.1", "sub_agent_id": 2}}
    ]
    new = with_settings(configured, [], "s", changes)
    assert new[0]["settings"] == {"sub_agent_id": 2, "sampling_rate": 100, "collectors": "10.0.0.9,10.0.0.10",
                                  "flag": True}  # fmt: skip
    assert configured[0]["settings"]["agent_address"] == "10.0.0.1"  # not changed in place
    # Not configured yet: added in the state the stack reports.
    added = with_settings([], [{"name": "x", "enabled": False}], "x", {"k": 1})
    assert added == [{"name": "x", "enabled": False, "settings": {"k": 1}}]
    with pytest.raises(click.BadParameter):
        settings_changes(["novalue"])
