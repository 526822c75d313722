"""The engine's devices: opening a port's device (AF_PACKET, TAP, a team of AF_PACKET members), rings prepared
ahead of a migrating interface, and closing.

Everything here runs in the caller's thread (the API's), never in the forwarding loop: netlink and system calls
must not stall forwarding. The engine swaps what was opened into the data path between two batches.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

from pyvswitch.clock import Clock
from pyvswitch.config.schema import LacpTimer, PortConfig, PortKind, TeamConfig
from pyvswitch.datapath import link
from pyvswitch.datapath.device import Device
from pyvswitch.errors import DeviceError
from pyvswitch.switch.team import Member, TeamDevice, TeamSettings

log = logging.getLogger(__name__)

OpenDevice = Callable[[str, str], Device]
PREPARED_TTL_S = 30.0  # rings prepared for a migration that never came


@dataclass(frozen=True, slots=True)
class DeviceKey:
    """What identifies an open device: the port and the OS endpoint it is bound to."""

    port: str
    kind: str
    ifname: str


def device_kind(port: PortConfig) -> str:
    if port.kind is PortKind.TUNNEL:
        return "vxlan"  # its interface is the provider address (datapath/tunnel.py)
    return "tap" if port.kind is PortKind.TAP else "afpacket"


def team_settings(team: TeamConfig) -> TeamSettings:
    """The part of a team's configuration the data path uses (and Set-NetLbfoTeam may change live)."""
    return TeamSettings(
        team.teaming_mode,
        team.load_balancing,
        team.lacp_timer is LacpTimer.FAST,
        team.up_delay_ms / 1000,
        team.down_delay_ms / 1000,
        team.lacp_fallback,
    )


def close_all(devices: list[Device]) -> None:
    for dev in devices:
        close_quietly(dev)


def close_quietly(dev: Device) -> None:
    try:
        dev.close()
    except Exception:
        log.exception("closing device %s", getattr(dev, "name", "?"))


class DeviceOpener:
    """Opens the devices a configuration needs: ``open_device(kind, ifname)`` (datapath.open_device, or a memory
    device factory in tests), teams built from their members, and rings prepared ahead of an interface."""

    def __init__(self, clock: Clock, open_device: OpenDevice | None = None) -> None:
        self.clock = clock
        self._open_device = open_device
        self.team_configs: dict[str, TeamConfig] = {}
        # The configuration each open team was built from: a changed one is applied to the live team.
        self.team_built: dict[int, TeamConfig] = {}
        # AF_PACKET devices whose rings were allocated ahead of their interface (prepare), by ifname.
        self.prepared: dict[str, tuple[Device, float]] = {}

    def _opener(self) -> OpenDevice:
        if self._open_device is None:
            from pyvswitch.datapath import open_device

            self._open_device = open_device
        return self._open_device

    def open(self, key: DeviceKey) -> Device:
        try:
            ready = self.prepared.pop(key.ifname, None) if key.kind in ("afpacket", "vxlan") else None
            if ready is not None:
                attach = getattr(ready[0], "attach", None)
                if callable(attach):
                    attach()
                return ready[0]
            if key.kind == "team":
                return self.open_team(self.team_configs[key.ifname])
            return self._opener()(key.kind, key.ifname)
        except DeviceError as e:
            if e.interface is None and e.port is None:
                e.interface = key.ifname  # a team's: its own member names it; anything else is about this one
            raise
        except OSError as e:
            msg = f"cannot open {key.kind} device on interface {key.ifname!r}: {e}"
            raise DeviceError(msg, interface=key.ifname) from e

    def open_members(self, names: list[str], standby: str | None) -> list[Member]:
        """Team members, each an AF_PACKET device (all or none)."""
        opener = self._opener()
        opened: list[Device] = []
        try:
            for name in names:
                opened.append(opener("afpacket", name))
        except Exception:
            close_all(opened)
            raise
        return [
            Member(dev, carrier=partial(link.carrier, name), standby=name == standby, mac=link.mac(name))
            for dev, name in zip(opened, names, strict=True)
        ]

    def open_team(self, team: TeamConfig) -> Device:
        """A team's members as one TeamDevice (switch/team.py)."""
        s = team_settings(team)
        device = TeamDevice(
            team.name,
            self.open_members(team.members, team.standby_member),
            s.mode,
            s.algorithm,
            system_mac=link.mac(team.members[0]) or 0x020000000000,
            lacp_fast=s.lacp_fast,
            clock=self.clock.now,
            up_delay_s=s.up_delay_s,
            down_delay_s=s.down_delay_s,
            lacp_fallback=s.lacp_fallback,
            link_events=link.LinkEvents,
        )
        self.team_built[id(device)] = team
        return device

    def retune_team(
        self, live: TeamDevice, team: TeamConfig
    ) -> tuple[TeamDevice, TeamConfig, list[Member], list[Device]]:
        """The member list for ``team`` on the live device: kept members (their state, LACP included), new
        ones opened now; and the devices of members that leave, closed once the change is in."""
        by_name = {m.device.name: m for m in live.members}
        new = [n for n in team.members if n not in by_name]
        fresh = {m.device.name: m for m in self.open_members(new, team.standby_member)}
        members = []
        for name in team.members:
            m = by_name.get(name) or fresh[name]
            m.standby = name == team.standby_member
            members.append(m)
        removed = [m.device for m in live.members if m.device.name not in team.members]
        return live, team, members, removed

    def prepare(self, ifname: str) -> None:
        """Allocate the AF_PACKET rings of an interface that is about to arrive (a migrating VM's veth), so that
        opening it then only binds: the ~20 ms of ring allocation leave the migration's blackout. Unused ones
        are closed after PREPARED_TTL_S. A no-op with an injected device opener (tests)."""
        from pyvswitch.datapath import open_device
        from pyvswitch.datapath.afpacket import AfPacketDevice

        if self._open_device not in (None, open_device):
            return
        self._expire(ifname)
        self.prepared[ifname] = (AfPacketDevice(ifname, attach=False), self.clock.now())

    def prepare_tunnel(self, ifname: str) -> Device:
        """The tunnel device of a tunnel port about to appear (the first VM of a virtual subnet arriving by live
        migration), opened now and taken by ``open``; closed after PREPARED_TTL_S if no port takes it. One
        prepared tunnel at a time is kept per ``ifname``: a second call returns the first."""
        ready = self.prepared.get(ifname)
        if ready is not None and self.clock.now() - ready[1] <= PREPARED_TTL_S:
            return ready[0]
        self._expire(ifname)
        dev = self._opener()("vxlan", ifname)
        self.prepared[ifname] = (dev, self.clock.now())
        return dev

    def _expire(self, ifname: str) -> None:
        """Close what was prepared for ``ifname`` and whatever no port took in PREPARED_TTL_S."""
        now = self.clock.now()
        for name, (dev, since) in list(self.prepared.items()):
            if now - since > PREPARED_TTL_S or name == ifname:
                del self.prepared[name]
                close_quietly(dev)

    def close_prepared(self) -> None:
        for dev, _ in self.prepared.values():
            close_quietly(dev)
        self.prepared = {}
