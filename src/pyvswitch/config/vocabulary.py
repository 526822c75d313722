"""The schema's words that the CLI prints and parses, without pydantic: VLAN modes, VLAN id lists, bit rates.

Here rather than in config/schema.py so that a CLI call that only shows what the daemon answers does not import
pydantic and the whole schema (issue 15: the CLI starts in < 150 ms); the schema imports them from here.
"""

from __future__ import annotations

from enum import StrEnum


class VlanMode(StrEnum):
    UNTAGGED = "Untagged"
    ACCESS = "Access"
    TRUNK = "Trunk"
    ISOLATED = "Isolated"
    COMMUNITY = "Community"
    PROMISCUOUS = "Promiscuous"


def parse_vlan_list(text: str) -> list[int]:
    """'1-100,200' -> sorted unique VLAN ids. Raises ValueError naming the bad part."""
    out: set[int] = set()
    for part in text.replace(" ", "").split(","):
        if not part:
            continue
        lo_s, _, hi_s = part.partition("-")
        try:
            lo = int(lo_s)
            hi = int(hi_s) if hi_s else lo
        except ValueError:
            raise ValueError(f"bad VLAN list element {part!r}") from None
        if not (1 <= lo <= hi <= 4094):
            raise ValueError(f"VLAN range {part!r} outside 1-4094")
        out.update(range(lo, hi + 1))
    return sorted(out)


def format_vlan_list(vlans: list[int]) -> str:
    """[1,2,3,7] -> '1-3,7'."""
    parts: list[str] = []
    run: list[int] = []
    for v in sorted(vlans):
        if run and v == run[-1] + 1:
            run.append(v)
            continue
        if run:
            parts.append(str(run[0]) if len(run) == 1 else f"{run[0]}-{run[-1]}")
        run = [v]
    if run:
        parts.append(str(run[0]) if len(run) == 1 else f"{run[0]}-{run[-1]}")
    return ",".join(parts)


def format_bps(bps: int) -> str:
    """bit/s for people: 1_000_000_000 -> '1 Gbit/s', 950_000_000 -> '950 Mbit/s', 1_250_000 -> '1.25 Mbit/s'."""
    for unit, name in ((10**12, "Tbit/s"), (10**9, "Gbit/s"), (10**6, "Mbit/s"), (10**3, "kbit/s")):
        if bps >= unit:
            return f"{bps / unit:.6g} {name}"
    return f"{bps} bit/s"


# The engine's hidden switch of a standalone team is "_team:<team>" (config/team_nics.py); the CLI shows it as
# the team.
HIDDEN_TEAM_PREFIX = "_team:"


def shown_switch(name: str) -> str:
    """The engine's switch ``name`` as the operator knows it: a standalone team's hidden switch is the team
    ("team t1"), in ``show drops`` as in the metrics' labels."""
    return f"team {name.removeprefix(HIDDEN_TEAM_PREFIX)}" if name.startswith(HIDDEN_TEAM_PREFIX) else name


def shown_port(switch: str, port: str) -> str:
    """Port ``port`` of the engine's switch ``switch`` as the operator knows it: on a team's hidden switch, the
    team interface's name or ``uplink`` (its ports are ``_team:<team>:<name>``)."""
    if switch.startswith(HIDDEN_TEAM_PREFIX) and port.startswith(f"{switch}:"):
        return port[len(switch) + 1 :]
    return port
