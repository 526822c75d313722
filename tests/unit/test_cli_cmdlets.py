"""The CLI's parsers without a daemon: PowerShell-style argument binding, the --vlan grammar, global options."""

from __future__ import annotations

import click
import pytest

from pyvswitch.cli import cmdlets
from pyvswitch.cli.cmdlet.framework import Args, CmdletUsageError, bind
from pyvswitch.cli.cmdlets import find
from pyvswitch.cli.format import hyperv_mac, ps_table
from pyvswitch.cli.main import _cmdlet_words, _leading_globals
from pyvswitch.cli.vlanspec import VlanSpecError, format_vlan, parse_vlan_spec, vlan_option_callback
from pyvswitch.cli.vmadapter import vlan_from_args
from pyvswitch.config.schema import VlanConfig


def bound(cmdlet: str, *argv: str) -> dict[str, object]:
    return bind(find(cmdlet), argv).values


def usage_error(cmdlet: str, *argv: str) -> str:
    with pytest.raises(CmdletUsageError) as exc:
        bind(find(cmdlet), argv)
    return str(exc.value)


# ---------------------------------------------------------------- binding


def test_named_parameters_are_case_insensitive() -> None:
    assert bound("new-vmswitch", "-name", "ext", "-NETADAPTERNAME", "eth1") == {
        "Name": "ext",
        "NetAdapterName": "eth1",
    }


def test_cmdlet_names_are_case_insensitive() -> None:
    assert find("get-vmnetworkadaptervlan").name == "Get-VMNetworkAdapterVlan"
    assert find("NEW-VMSWITCH").name == "New-VMSwitch"


def test_first_parameter_binds_by_position() -> None:
    assert bound("Get-VMSwitch", "ext") == {"Name": "ext"}
    assert bound("Connect-VMNetworkAdapter", "web01", "eth0", "lab") == {
        "VMName": "web01",
        "Name": "eth0",
        "SwitchName": "lab",
    }
    # Named parameters bind first; the positional then fills the next free position.
    assert bound("Connect-VMNetworkAdapter", "-VMName", "web01", "-SwitchName", "lab", "eth1") == {
        "VMName": "web01",
        "SwitchName": "lab",
        "Name": "eth1",
    }


def test_extra_positional_is_rejected() -> None:
    msg = usage_error("Get-VMSwitch", "a", "b")
    assert msg == "Get-VMSwitch: A positional parameter cannot be found that accepts argument 'b'."


def test_switch_parameters_take_no_value() -> None:
    v = bound("Set-VMNetworkAdapterVlan", "-VMName", "web01", "-Access", "-VlanId", "10")
    assert v == {"VMName": "web01", "Access": True, "VlanId": 10}
    v = bound("Set-VMNetworkAdapterVlan", "web01", "-Untagged:$false", "-Trunk:$true")
    assert v["Untagged"] is False and v["Trunk"] is True


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (("-AllowManagementOS", "$false"), False),
        (("-AllowManagementOS", "$True"), True),
        (("-AllowManagementOS", "0"), False),
        (("-AllowManagementOS", "true"), True),
        (("-AllowManagementOS:$false",), False),
        (("-AllowManagementOS:false",), False),
    ],
)
def test_boolean_parameters(argv: tuple[str, ...], expected: bool) -> None:
    v = bound("New-VMSwitch", "ext", "-NetAdapterName", "eth1", *argv)
    assert v["AllowManagementOS"] is expected


def test_boolean_without_value_explains_the_shell_pitfall() -> None:
    # bash turns an unquoted $false into nothing: the user typed a value, the parser sees none.
    msg = usage_error("Set-VMSwitch", "ext", "-AllowManagementOS")
    assert "Missing an argument for parameter 'AllowManagementOS'" in msg
    assert "'$false' in quotes" in msg


def test_bad_boolean_uses_powershell_wording() -> None:
    msg = usage_error("Set-VMSwitch", "ext", "-AllowManagementOS", "maybe")
    assert 'Cannot convert value "maybe" to type "System.Boolean"' in msg
    assert msg.startswith("Set-VMSwitch: ")


def test_comma_list_split_by_the_shell_is_joined() -> None:
    v = bound("Set-VMNetworkAdapterVlan", "web01", "-Trunk", "-AllowedVlanIdList", "1-100,", "200")
    assert v["AllowedVlanIdList"] == "1-100,200"
    v = bound("Set-VMNetworkAdapterVlan", "web01", "-Trunk", "-AllowedVlanIdList", "1-100", ",200")
    assert v["AllowedVlanIdList"] == "1-100,200"
    v = bound(
        "Set-VMNetworkAdapterVlan", "web01", "-Trunk", "-AllowedVlanIdList", "1-100,200", "-NativeVlanId", "1"
    )
    assert v["AllowedVlanIdList"] == "1-100,200" and v["NativeVlanId"] == 1


def test_quotes_left_by_the_shell_are_removed() -> None:
    assert bound("Get-VMSwitch", "-Name", "'ext'") == {"Name": "ext"}
    assert bound("Get-VMSwitch", '-Name:"ext"') == {"Name": "ext"}


def test_unknown_parameter_names_it_in_powershell_wording() -> None:
    msg = usage_error("New-VMSwitch", "-Name", "x", "-Foo", "1")
    assert msg == "New-VMSwitch: A parameter cannot be found that matches parameter name 'Foo'."


def test_unambiguous_prefix_and_aliases() -> None:
    assert bound("New-VMSwitch", "-Na", "x", "-SwitchT", "Internal") == {
        "Name": "x",
        "SwitchType": "Internal",
    }
    assert bound("Get-VMSwitch", "-SwitchName", "ext") == {"Name": "ext"}
    assert bound("Set-VMNetworkAdapterVlan", "web01", "-Access", "-AccessVlanId", "5")["VlanId"] == 5


def test_ambiguous_prefix_lists_the_candidates() -> None:
    msg = usage_error("New-VMSwitch", "-S", "x")
    assert "parameter name 'S' is ambiguous" in msg
    assert "-Name" in msg and "-SwitchType" in msg  # -Name through its alias SwitchName


def test_parameter_given_twice() -> None:
    msg = usage_error("Get-VMSwitch", "-Name", "a", "-name", "b")
    assert "parameter 'Name' is specified more than once" in msg


def test_missing_mandatory_parameter() -> None:
    msg = usage_error("Remove-VMSwitch")
    assert msg == (
        "Remove-VMSwitch: Cannot process command because of one or more missing mandatory parameters: Name."
    )


def test_missing_value() -> None:
    msg = usage_error("Get-VMSwitch", "-Name")
    assert "Missing an argument for parameter 'Name'" in msg and "System.String" in msg


def test_enumerated_values_are_matched_case_insensitively() -> None:
    assert bound("New-VMSwitch", "x", "-SwitchType", "internal")["SwitchType"] == "Internal"
    msg = usage_error("New-VMSwitch", "x", "-SwitchType", "Bogus")
    assert "Cannot bind parameter 'SwitchType'" in msg and "Internal, Private, External" in msg


def test_integer_parameters_are_converted_and_range_checked() -> None:
    msg = usage_error("Set-VMNetworkAdapterVlan", "web01", "-Access", "-VlanId", "ten")
    assert "parameter 'VlanId'" in msg and "System.Int32" in msg
    msg = usage_error("Set-VMNetworkAdapterVlan", "web01", "-Access", "-VlanId", "5000")
    assert "parameter 'VlanId'" in msg and "maximum allowed range of 4094" in msg
    # A negative number is a value, not a parameter name.
    msg = usage_error("Set-VMNetworkAdapterVlan", "web01", "-Access", "-VlanId", "-1")
    assert "minimum allowed range of 1" in msg


def test_empty_string_value_is_rejected() -> None:
    assert "null or empty" in usage_error("Get-VMSwitch", "-Name", "")


def test_unknown_cmdlet() -> None:
    with pytest.raises(CmdletUsageError) as exc:
        find("Rename-VMSwitch")
    assert "'Rename-VMSwitch' is not recognized" in str(exc.value)


def test_every_cmdlet_has_syntax_and_unique_parameters() -> None:
    for cmd in cmdlets.CMDLETS:
        names = [p.name.lower() for p in cmd.params]
        assert len(names) == len(set(names)), cmd.name
        assert cmd.syntax().startswith(cmd.name)
    assert "[-Name] <String>" in find("New-VMSwitch").syntax()
    assert "[[-Name] <String>]" in find("Get-VMSwitch").syntax()


# ---------------------------------------------------------------- Set-VMNetworkAdapterVlan modes


def vlan(*argv: str) -> dict[str, object]:
    return vlan_from_args(bind(find("Set-VMNetworkAdapterVlan"), ("web01", *argv)))


def test_vlan_modes_from_cmdlet_arguments() -> None:
    assert vlan("-Untagged") == {"mode": "Untagged"}
    assert vlan("-Access", "-VlanId", "10") == {"mode": "Access", "access_vlan_id": 10}
    assert vlan("-Trunk", "-AllowedVlanIdList", "1-3,7", "-NativeVlanId", "0") == {
        "mode": "Trunk",
        "allowed_vlan_ids": [1, 2, 3, 7],
        "native_vlan_id": 0,
    }
    assert vlan("-Isolated", "-PrimaryVlanId", "100", "-SecondaryVlanId", "101") == {
        "mode": "Isolated",
        "primary_vlan_id": 100,
        "secondary_vlan_id": 101,
    }
    assert vlan("-Community", "-PrimaryVlanId", "100", "-SecondaryVlanId", "102")["mode"] == "Community"
    assert vlan("-Promiscuous", "-PrimaryVlanId", "100", "-SecondaryVlanIdList", "101-102") == {
        "mode": "Promiscuous",
        "primary_vlan_id": 100,
        "secondary_vlan_ids": [101, 102],
    }
    for argv in (("-Untagged",), ("-Access", "-VlanId", "10")):
        VlanConfig.model_validate(vlan(*argv))


def vlan_error(*argv: str) -> str:
    with pytest.raises(CmdletUsageError) as exc:
        vlan(*argv)
    return str(exc.value)


def test_vlan_mode_errors() -> None:
    assert "Parameter set cannot be resolved" in vlan_error()
    assert "Parameter set cannot be resolved" in vlan_error("-Access", "-Trunk", "-VlanId", "1")
    assert "Parameter set cannot be resolved" in vlan_error("-Access", "-VlanId", "1", "-NativeVlanId", "2")
    assert vlan_error("-Access").endswith("missing mandatory parameters: VlanId.")
    assert vlan_error("-Trunk", "-AllowedVlanIdList", "1-10").endswith("parameters: NativeVlanId.")
    msg = vlan_error("-Trunk", "-AllowedVlanIdList", "1-5000", "-NativeVlanId", "1")
    assert "parameter 'AllowedVlanIdList'" in msg and "outside 1-4094" in msg
    msg = vlan_error("-Isolated", "-PrimaryVlanId", "100", "-SecondaryVlanId", "100")
    assert "must differ" in msg


# ---------------------------------------------------------------- --vlan SPEC


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("untagged", {"mode": "Untagged"}),
        ("access:10", {"mode": "Access", "access_vlan_id": 10}),
        ("Access:10", {"mode": "Access", "access_vlan_id": 10}),
        (
            "trunk:1-3,200:native=1",
            {"mode": "Trunk", "allowed_vlan_ids": [1, 2, 3, 200], "native_vlan_id": 1},
        ),
        ("trunk:30-31", {"mode": "Trunk", "allowed_vlan_ids": [30, 31], "native_vlan_id": 0}),
        ("isolated:100:101", {"mode": "Isolated", "primary_vlan_id": 100, "secondary_vlan_id": 101}),
        ("community:100:102", {"mode": "Community", "primary_vlan_id": 100, "secondary_vlan_id": 102}),
        (
            "promiscuous:100:101-102,105",
            {"mode": "Promiscuous", "primary_vlan_id": 100, "secondary_vlan_ids": [101, 102, 105]},
        ),
    ],
)
def test_vlan_spec(spec: str, expected: dict[str, object]) -> None:
    body = parse_vlan_spec(spec)
    assert body == expected
    VlanConfig.model_validate(body)
    assert parse_vlan_spec(format_vlan(body)) == body  # what the CLI prints can be typed back


@pytest.mark.parametrize(
    ("spec", "words"),
    [
        ("access", "access:ID"),
        ("access:x", "not a number"),
        ("access:0", "outside 1-4094"),
        ("access:4095", "outside 1-4094"),
        ("trunk:1-5000", "outside 1-4094"),
        ("trunk:", "empty"),
        ("trunk:1-10:nat=1", "native=ID"),
        ("trunk:1-10:native=4095", "outside 0-4094"),
        ("isolated:100", "isolated:PRIMARY:SECONDARY"),
        ("isolated:100:100", "must differ"),
        ("promiscuous:100:a-b", "bad VLAN list element"),
        ("tagged:5", "unknown VLAN mode 'tagged'"),
        ("untagged:5", "untagged"),
    ],
)
def test_bad_vlan_spec(spec: str, words: str) -> None:
    with pytest.raises(VlanSpecError) as exc:
        parse_vlan_spec(spec)
    assert words in str(exc.value)


def test_bad_vlan_spec_names_the_option() -> None:
    @click.command()
    @click.option("--vlan", callback=vlan_option_callback)
    def cmd(vlan: object) -> None:
        pass

    with pytest.raises(click.BadParameter) as exc:
        cmd.main(["--vlan", "access:9999"], standalone_mode=False)
    assert "'--vlan'" in exc.value.format_message()
    assert "outside 1-4094" in exc.value.format_message()


# ---------------------------------------------------------------- main's dispatch and output helpers


def test_leading_global_options() -> None:
    argv = ["--socket", "/s", "--json", "vm", "show", "web01"]
    assert _leading_globals(argv) == ("/s", True, 3)
    assert _leading_globals(["--socket=/x", "Get-VMSwitch"]) == ("/x", False, 1)
    assert _leading_globals(["switch", "list", "--json"]) == (None, False, 0)


def test_cmdlet_detection() -> None:
    assert _cmdlet_words(["Get-VMSwitch", "ext"]) == ["Get-VMSwitch", "ext"]
    assert _cmdlet_words(["switch", "list"]) is None
    assert _cmdlet_words([]) is None
    # A whole PowerShell line in one argument, as pasted between single quotes.
    assert _cmdlet_words(["Set-VMSwitch ext -AllowManagementOS $false"]) == [
        "Set-VMSwitch",
        "ext",
        "-AllowManagementOS",
        "$false",
    ]


def test_args_accessors() -> None:
    a = Args("X", {"S": "text", "N": 5, "B": False})
    assert a.text("S") == "text" and a.text("N") is None
    assert a.number("N") == 5 and a.number("B") is None
    assert a.boolean("B") is False and not a.flag("B")


def test_hyperv_mac_and_ps_table() -> None:
    assert hyperv_mac("02:15:5d:01:02:0a") == "02155D01020A"
    assert hyperv_mac(None) == "000000000000"
    assert ps_table(["Name", "SwitchType"], [["ext", "External"]]).splitlines() == [
        "Name SwitchType",
        "---- ----------",
        "ext  External",
    ]
