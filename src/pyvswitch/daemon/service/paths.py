"""Where in the request a problem is: paths of the whole configuration made into the request's fields.

Validation (``config.validate``) and the engine speak of the whole candidate (``ports[3].vlan``, an interface a
DeviceError names); a client that sent ``PATCH /v1/ports/web01-eth0`` wants to hear ``vlan``. The commit
(``commit.py``) and the OS checks (``provisioning.py``) use these to name the request's own fields.
"""

from __future__ import annotations

from collections.abc import Collection

from pyvswitch.config.schema import HostConfig, PortConfig
from pyvswitch.config.team_nics import hidden_owner, realize
from pyvswitch.errors import DeviceError


def request_paths(
    problems: list[tuple[str, str]], cfg: HostConfig, collection: str, name: str
) -> list[tuple[str, str]]:
    """Rewrite ``ports[3].vlan`` to ``vlan`` when ``ports[3]`` is the object named ``name``."""
    items = getattr(cfg, collection)
    index = next((i for i, item in enumerate(items) if item.name == name), None)
    if index is None:
        return problems
    prefix = f"{collection}[{index}]."
    return [(path.removeprefix(prefix), msg) for path, msg in problems]


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
