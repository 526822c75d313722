"""Where in the request a problem is: paths of the whole configuration made into the request's fields.

Validation (``config.validate``) and the engine speak of the whole candidate (``ports[3].vlan``, an interface a
DeviceError names); a client that sent ``PATCH /v1/ports/web01-eth0`` wants to hear ``vlan``. The commit
(``commit.py``) and the OS checks (``provisioning.py``) use these to name the request's own fields.
"""

from __future__ import annotations

import re
from collections.abc import Collection

from pyvswitch.config.schema import HostConfig, PortConfig, PortKind
from pyvswitch.config.team_nics import hidden_owner, realize
from pyvswitch.errors import DeviceError

# The HostConfig lists of named objects: a path into one of them starts ``collection[index]``.
_NAMED = ("teams", "switches", "ports", "vms", "qos_policies", "sriov_adapters")
_ITEM = re.compile(r"^(\w+)\[(\d+)\](.*)$", re.DOTALL)


def named_path(path: str, cfg: HostConfig) -> str:
    """``ports[3].interface`` -> ``ports['ext-uplink'].interface``: an object is named by its name, not by
    its place in the whole configuration, which a client never sees (still one JSON string, still a path)."""
    m = _ITEM.match(path)
    if m is None or m[1] not in _NAMED:
        return path
    items = getattr(cfg, m[1])
    index = int(m[2])
    if index >= len(items):
        return path
    return f"{m[1]}[{items[index].name!r}]{m[3]}"


def request_paths(
    problems: list[tuple[str, str]], cfg: HostConfig, collection: str, name: str
) -> list[tuple[str, str]]:
    """Problems as the request about ``collection``'s object ``name`` speaks of them: ``ports[3].vlan`` is
    ``vlan`` when ``ports[3]`` is that object; a switch's own uplink port's interface is the switch's
    ``net_adapter``; every other object is named by its name (``named_path``)."""
    items = getattr(cfg, collection)
    index = next((i for i, item in enumerate(items) if item.name == name), None)
    own: dict[str, str] = {}
    if index is not None:
        own[f"{collection}[{index}]"] = ""
    if collection == "switches":
        for i, p in enumerate(cfg.ports):
            if p.switch == name and p.kind is PortKind.UPLINK:
                own[f"ports[{i}].interface"] = "net_adapter"
    out: list[tuple[str, str]] = []
    for path, msg in problems:
        if own.get(path):
            path = own[path]
        else:
            m = _ITEM.match(path)
            if m is not None and m[3].startswith(".") and own.get(f"{m[1]}[{m[2]}]") == "":
                path = m[3].removeprefix(".")
            else:
                path = named_path(path, cfg)
        out.append((path, msg))
    return out


def culprit(cfg: HostConfig, exc: DeviceError, exclude: Collection[str] = ()) -> PortConfig | None:
    """The connected port a DeviceError is about: the port it names, or the one whose interface it names (for a
    port on a team, a member's name counts as the team's). ``cfg`` is what the engine was given."""
    if exc.port is None and exc.interface is None:
        return None
    members = {t.name: t.members for t in cfg.teams}
    for p in cfg.ports:
        if p.switch is None or p.name in exclude:
            continue
        if exc.port == p.name or (
            exc.interface is not None and exc.interface in (p.interface, *members.get(p.interface or "", ()))
        ):
            return p
    return None


def team_nic_field(cfg: HostConfig, team: str, nic: str | None) -> str:
    """The request path of a team's hidden port: its tNIC's name (the team's name for the primary), or
    the team's members for its uplink."""
    ti = next(i for i, t in enumerate(cfg.teams) if t.name == team)
    if nic is None:
        return f"teams[{ti}].members"
    k = next((k for k, n in enumerate(cfg.teams[ti].team_nics) if n.name == nic), None)
    return f"teams[{ti}].name" if k is None else f"teams[{ti}].team_nics[{k}].name"


def device_field(cfg: HostConfig, exc: DeviceError) -> str:
    """The path of what the engine failed to open: a port's interface, a team's members or a team interface."""
    port = culprit(realize(cfg), exc)
    if port is None:
        return "interface"
    owner = hidden_owner(port.name)
    if owner is not None:
        return team_nic_field(cfg, *owner)
    team = next((i for i, t in enumerate(cfg.teams) if t.name == port.interface), None)
    if team is not None:
        return f"teams[{team}].members"
    return f"ports[{cfg.ports.index(port)}].interface"
