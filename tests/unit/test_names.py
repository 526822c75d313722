"""Issue 11 (security, item 1): every name that reaches the kernel or a command is checked at the config layer.

Interface names: <= 15 bytes (IFNAMSIZ - 1), ASCII letters, digits, '_', '.', '-' only, not '.'/'..', no
leading '-'. Namespace names: iproute2's rule (no '/', not '.'/'..', not empty) plus the same alphabet and
64 bytes at most. Each refusal names its field.
"""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel

from pyvswitch.config.schema import (
    DcbConfig,
    HostConfig,
    PortConfig,
    SriovAdapterConfig,
    SwitchConfig,
    TeamConfig,
    TeamNicConfig,
    VmConfig,
    is_ifname,
    is_netns_name,
)
from pyvswitch.config.validate import validate
from pyvswitch.daemon.service.errors import build
from pyvswitch.errors import ConfigError

# The reproductions of issue 11: shell metacharacters, a 15-character name that is 30 bytes, paths, options.
BAD_IFNAMES = [
    "`touch${IFS}Q`",
    "$(touch Q)",
    "a;b",
    "a|b",
    "a&b",
    "\u00e9" * 15,
    "a b",
    "a\n",
    "a/b",
    "a:b",
    ".",
    "..",
    "-h",
    "",
    "x" * 16,
]
GOOD_IFNAMES = ["eth0", "pv_1.2", "to-hostA", "x" * 15, "a-", "_a", ".a"]
BAD_NETNS = ["/etc", "../..", "a/b", "a\nb", "-h", "x" * 65, ".", "..", "", "a b", "$(id)", "\u00e9"]
GOOD_NETNS = ["web01", "x" * 64, "vm_1.a-b", "lab-hostA"]


@pytest.mark.parametrize("name", BAD_IFNAMES)
def test_bad_interface_names_refused(name: str) -> None:
    """issue 11: the interface-name pattern accepted `$(`, backticks, ';|&' and counted characters, not bytes."""
    assert not is_ifname(name)


@pytest.mark.parametrize("name", GOOD_IFNAMES)
def test_good_interface_names_accepted(name: str) -> None:
    assert is_ifname(name)


@pytest.mark.parametrize("name", BAD_NETNS)
def test_bad_namespace_names_refused(name: str) -> None:
    """issue 11: a VM's netns was not validated ('/etc', '../..', a newline, '-h', 300 characters)."""
    assert not is_netns_name(name)
    problems = _refusal(VmConfig, {"name": "v", "netns": name})
    assert [f for f, _ in problems] == ["netns"]
    assert "namespace name" in problems[0][1]


@pytest.mark.parametrize("name", GOOD_NETNS)
def test_good_namespace_names_accepted(name: str) -> None:
    assert VmConfig(name="v", netns=name).namespace == name


def _refusal(model: type[BaseModel], data: dict[str, Any]) -> list[tuple[str, str]]:
    with pytest.raises(ConfigError) as exc:
        build(model, data)
    return exc.value.problems


@pytest.mark.parametrize(
    ("model", "data", "field"),
    [
        (
            PortConfig,
            {"name": "p", "kind": "vm", "vm": "v", "peer_interface": "`touch${IFS}Q`"},
            "peer_interface",
        ),
        (PortConfig, {"name": "p", "kind": "interface", "interface": "\u00e9" * 15}, "interface"),
        (SwitchConfig, {"name": "s", "type": "External", "net_adapter": "eth0;id"}, "net_adapter"),
        (TeamConfig, {"name": "t;x", "members": ["eth1"]}, "name"),
        (TeamConfig, {"name": "t", "members": ["eth1", "$(id)"]}, "members"),
        (TeamNicConfig, {"name": "..", "vlan_id": 5}, "name"),
        (SriovAdapterConfig, {"name": "-h"}, "name"),
    ],
)
def test_every_interface_name_field_is_checked(
    model: type[BaseModel], data: dict[str, Any], field: str
) -> None:
    """issue 11: peer_interface, interface, net_adapter, team names and members, tNICs, SR-IOV adapters."""
    problems = _refusal(model, data)
    assert [f for f, _ in problems] == [field]
    assert "1-15 ASCII" in problems[0][1]


def test_long_values_are_cut_in_messages() -> None:
    ((_, msg),) = _refusal(VmConfig, {"name": "v", "netns": "x" * 5000})
    assert len(msg) < 300 and "5000 characters" in msg


def test_validate_checks_names_of_candidates_built_without_validation() -> None:
    """issue 11: a candidate built with model_copy skips field validators; the commit's validate() does not."""
    cfg = HostConfig(
        vms=[VmConfig(name="v").model_copy(update={"netns": "../../etc"})],
        ports=[
            PortConfig(name="p", kind="vm", vm="v").model_copy(update={"peer_interface": "`touch${IFS}Q`"}),  # type: ignore[arg-type]
        ],
        teams=[TeamConfig(name="t", members=["eth1"]).model_copy(update={"members": ["eth1", "a b"]})],
        dcb=DcbConfig(adapters=["a;b"]),
    )
    fields = {f for f, _ in validate(cfg)}
    assert {"vms[0].netns", "ports[0].peer_interface", "teams[0].members[1]", "dcb.adapters[0]"} <= fields
