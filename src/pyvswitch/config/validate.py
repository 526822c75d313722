"""Cross-object validation of a HostConfig: collect every problem, each with the path of the field it concerns.

The pydantic models check one object at a time; this module checks what only the whole configuration can
tell (names unique, references resolve, an interface bound once, MACs unique, VLAN roles consistent).
Paths look like ``ports[2].vlan.access_vlan_id`` so that an API client can point at the offending field (the
service names objects in them by name for a request: ``daemon/service/paths.py``; start-up's ``settle`` reads the
index to leave the object out); messages name the other objects involved by their names, never by an index.
Nothing stops at the first problem: a rejected request lists everything that is wrong with it.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from pydantic import ValidationError

from pyvswitch.config.schema import (
    IFNAME_RULE,
    HostConfig,
    MinimumBandwidthMode,
    PortConfig,
    PortKind,
    SwitchConfig,
    SwitchType,
    VlanMode,
    check_ifname,
    check_netns,
    format_bps,
    is_ifname,
    shown,
)
from pyvswitch.config.team_nics import team_users

Problem = tuple[str, str]

# Hyper-V: 12 network adapters per VM (8 synthetic + 4 legacy), hyperv-networking.md §1.3.
MAX_ADAPTERS_PER_VM = 12


def format_loc(loc: Iterable[int | str], prefix: str = "") -> str:
    """('ports', 2, 'vlan', 'access_vlan_id') -> 'ports[2].vlan.access_vlan_id' (after ``prefix``)."""
    out = prefix
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif out:
            out += f".{part}"
        else:
            out = str(part)
    return out


def _clean_message(msg: str) -> str:
    # pydantic prefixes errors raised in our validators with "Value error, "; the field path says enough.
    for noise in ("Value error, ", "Assertion failed, "):
        if msg.startswith(noise):
            return msg[len(noise) :]
    return msg


def problems_from_errors(
    errors: Sequence[Mapping[str, Any]], prefix: str = "", skip: int = 0
) -> list[Problem]:
    """pydantic-style error dicts (``loc``, ``msg``) -> [(path, message)]; ``skip`` drops leading loc parts."""
    out: list[Problem] = []
    for err in errors:
        loc = tuple(err.get("loc", ()))[skip:]
        # Tagged-union / function validators add non-field parts such as "function-after[...]".
        loc = tuple(p for p in loc if not (isinstance(p, str) and "[" in p))
        out.append((format_loc(loc, prefix), _clean_message(str(err.get("msg", "invalid")))))
    return out


def problems_from_validation_error(exc: ValidationError, prefix: str = "") -> list[Problem]:
    """A pydantic ValidationError -> [(path, message)], paths relative to ``prefix`` (e.g. 'ports[2]')."""
    return problems_from_errors(exc.errors(), prefix)


def _duplicates(
    items: Iterable[tuple[int, str | None]],
    what: str,
    path: str,
    field: str,
    out: list[Problem],
    owner: Callable[[int], str] | None = None,
) -> None:
    """Report every repeated value after its first occurrence, naming the object that has it first
    (``owner(index)``, e.g. "port 'web01-eth0'"; without one the value is a name and names itself)."""
    first: dict[str, int] = {}
    for i, value in items:
        if value is None:
            continue
        if value in first:
            by = f"is already used by {owner(first[value])}" if owner is not None else "is already taken"
            out.append((f"{path}[{i}].{field}", f"{what} {value!r} {by}"))
        else:
            first[value] = i


def _name_problems(cfg: HostConfig) -> list[Problem]:
    """Issue 11: every name that reaches the kernel or a command, checked again on the whole candidate.

    The models' field validators refuse a bad name in a request, but a candidate built with ``model_copy``
    or loaded from an older store skips them; this pass is what the commit relies on.
    """
    out: list[Problem] = []

    def check(path: str, value: str | None, rule: Callable[[str | None], str | None]) -> None:
        try:
            rule(value)
        except ValueError as exc:
            out.append((path, str(exc)))

    for i, s in enumerate(cfg.switches):
        check(f"switches[{i}].net_adapter", s.net_adapter, check_ifname)
    for i, p in enumerate(cfg.ports):
        check(f"ports[{i}].interface", p.interface, check_ifname)
        check(f"ports[{i}].peer_interface", p.peer_interface, check_ifname)
    for i, v in enumerate(cfg.vms):
        check(f"vms[{i}].netns", v.namespace, check_netns)
    for i, t in enumerate(cfg.teams):
        check(f"teams[{i}].name", t.name, check_ifname)
        for j, m in enumerate(t.members):
            check(f"teams[{i}].members[{j}]", m, check_ifname)
        for j, n in enumerate(t.team_nics):
            check(f"teams[{i}].team_nics[{j}].name", n.name, check_ifname)
    for i, a in enumerate(cfg.sriov_adapters):
        check(f"sriov_adapters[{i}].name", a.name, check_ifname)
    return out


def _binding(cfg: HostConfig, p: PortConfig) -> str:
    """What binds ``p``'s interface, as the user knows it: "the uplink of switch 'ext' (port 'ext-uplink')"."""
    if p.kind is PortKind.UPLINK and p.switch is not None:
        return f"the uplink of switch {p.switch!r} (port {p.name!r})"
    return f"the interface of port {p.name!r}"


def validate(cfg: HostConfig, old: HostConfig | None = None) -> list[Problem]:
    """Every cross-object problem in ``cfg``; an empty list means the configuration can be applied.

    ``old`` is the configuration ``cfg`` replaces, if any: admission control then admits the reservations
    that did not change first, so that the port a request changed is the one named when capacity runs out.
    """
    out: list[Problem] = _name_problems(cfg)
    switches = {s.name: s for s in cfg.switches}
    vms = {v.name: v for v in cfg.vms}

    def port(i: int) -> str:
        return f"port {cfg.ports[i].name!r}"

    _duplicates(enumerate(s.name for s in cfg.switches), "switch name", "switches", "name", out)
    _duplicates(enumerate(p.name for p in cfg.ports), "port name", "ports", "name", out)
    _duplicates(enumerate(v.name for v in cfg.vms), "VM name", "vms", "name", out)
    _duplicates(
        enumerate(v.namespace for v in cfg.vms),
        "namespace",
        "vms",
        "netns",
        out,
        lambda i: f"VM {cfg.vms[i].name!r}",
    )
    _duplicates(enumerate(t.name for t in cfg.teams), "team name", "teams", "name", out)
    # A NIC belongs to one team at most, and a team member is not also bound as a port of its own.
    # Which of the two is named depends on what came last: a team (or member) added over a bound interface is
    # the team's problem ("'eth1' is already the uplink of switch 'ext'"), a port bound to a team's member the
    # port's. Without ``old`` (start-up) the port is the one named, and left out.
    members: dict[str, tuple[str, int, int]] = {}  # member -> (team, team index, member index)
    for i, t in enumerate(cfg.teams):
        for j, m in enumerate(t.members):
            if m in members:
                out.append(
                    (f"teams[{i}].members[{j}]", f"{m!r} is already a member of team {members[m][0]!r}")
                )
            else:
                members[m] = (t.name, i, j)
    old_members = {m for t in old.teams for m in t.members} if old is not None else set()
    old_bound = {(p.name, p.interface) for p in old.ports} if old is not None else set()
    for i, p in enumerate(cfg.ports):
        if p.interface not in members:
            continue
        team, ti, j = members[p.interface]
        if old is not None and p.interface not in old_members and (p.name, p.interface) in old_bound:
            out.append((f"teams[{ti}].members[{j}]", f"{p.interface!r} is already {_binding(cfg, p)}"))
        else:
            out.append((f"ports[{i}].interface", f"{p.interface!r} is already a member of team {team!r}"))
    # An uplink's MAC is its NIC's, not an identity on the switch (bonded NICs may share one).
    _duplicates(
        ((i, p.mac) for i, p in enumerate(cfg.ports) if p.kind is not PortKind.UPLINK),
        "MAC address",
        "ports",
        "mac",
        out,
        port,
    )

    # Interface names live in the daemon's namespace: a switch-side end, a bound NIC, a TAP or a host vNIC.
    # An External switch's adapter may be bound only by that switch's own uplink port.
    host_names: dict[str, str] = {}
    for i, p in enumerate(cfg.ports):
        places = [("interface", p.interface)]
        if p.kind is PortKind.HOST:
            places.append(("peer_interface", p.peer_interface))
        for field, ifname in places:
            if ifname is None:
                continue
            if ifname in host_names:
                out.append(
                    (f"ports[{i}].{field}", f"interface {ifname!r} is already used by {host_names[ifname]}")
                )
            else:
                host_names[ifname] = port(i) if field == "interface" else f"{port(i)} (its {field})"
    adapters: dict[str, int] = {}
    for i, s in enumerate(cfg.switches):
        if s.net_adapter is None:
            continue
        if s.net_adapter in adapters:
            out.append(
                (
                    f"switches[{i}].net_adapter",
                    f"adapter {s.net_adapter!r} is already bound to switch "
                    f"{cfg.switches[adapters[s.net_adapter]].name!r}",
                )
            )
        else:
            adapters[s.net_adapter] = i
    old_adapters = {s.name: s.net_adapter for s in old.switches} if old is not None else {}
    for i, p in enumerate(cfg.ports):
        if p.kind is PortKind.UPLINK or p.interface not in adapters:
            continue
        owner = cfg.switches[adapters[p.interface]].name
        if old is not None and old_adapters.get(owner) != p.interface and (p.name, p.interface) in old_bound:
            continue  # the switch's adapter is what changed: its uplink port is told whose interface it is
        out.append((f"ports[{i}].interface", f"interface {p.interface!r} is the adapter of switch {owner!r}"))

    uplinks: dict[str, int] = {}
    vm_ports: dict[str, list[int]] = defaultdict(list)
    vsid_switch: str | None = None  # virtual subnets are tunnelled from one switch per host (one VXLAN port)
    for i, p in enumerate(cfg.ports):
        base = f"ports[{i}]"
        sw: SwitchConfig | None = switches.get(p.switch) if p.switch is not None else None
        if p.kind is PortKind.TUNNEL:
            out.append(
                (f"{base}.kind", "tunnel ports are made by pyvswitchd in cluster mode, not configured")
            )
        if p.virtual_subnet_id and p.kind is not PortKind.VM:
            out.append(
                (f"{base}.virtual_subnet_id", f"only vm ports join virtual subnets, not {p.kind.value}")
            )
        if p.virtual_subnet_id and p.kind is PortKind.VM and p.switch is not None:
            if vsid_switch is not None and p.switch != vsid_switch:
                out.append(
                    (f"{base}.virtual_subnet_id",
                     f"virtual subnets are on switch {vsid_switch!r} on this host (one switch carries them)")
                )  # fmt: skip
            vsid_switch = vsid_switch or p.switch
        if p.switch is not None and sw is None:
            out.append((f"{base}.switch", f"no switch {p.switch!r}"))
        if p.kind is PortKind.VM:
            if p.vm not in vms:
                out.append((f"{base}.vm", f"no VM {p.vm!r}"))
            else:
                vm_ports[p.vm].append(i)
        if p.kind is PortKind.UPLINK:
            if sw is None:
                if p.switch is None:
                    out.append((f"{base}.switch", "an uplink port must be connected to its External switch"))
            elif sw.type is not SwitchType.EXTERNAL:
                out.append(
                    (f"{base}.switch", f"switch {sw.name!r} is {sw.type.value}; only External has an uplink")
                )
            else:
                if p.interface != sw.net_adapter:
                    out.append(
                        (
                            f"{base}.interface",
                            f"uplink of switch {sw.name!r} must be its net_adapter {sw.net_adapter!r}",
                        )
                    )
                if sw.name in uplinks:
                    out.append(
                        (
                            f"{base}.switch",
                            f"switch {sw.name!r} already has uplink port {cfg.ports[uplinks[sw.name]].name!r}",
                        )
                    )
                else:
                    uplinks[sw.name] = i
        if p.kind is PortKind.HOST and sw is not None and sw.type is SwitchType.PRIVATE:
            out.append((f"{base}.switch", f"switch {sw.name!r} is Private: the management OS cannot connect"))
        if p.ip and p.kind not in (PortKind.VM, PortKind.HOST):
            out.append(
                (f"{base}.ip", f"addresses are configured only on vm and host ports, not {p.kind.value}")
            )
        if p.peer_interface is not None and p.kind not in (PortKind.VM, PortKind.HOST):
            out.append((f"{base}.peer_interface", f"a {p.kind.value} port has no peer interface"))
        if p.allow_teaming and p.kind is not PortKind.VM:
            # Hyper-V: AllowTeaming applies only to VM NICs; teaming host vNICs is unsupported (§3.7).
            out.append(
                (f"{base}.allow_teaming", f"guest teaming applies to vm ports only, not {p.kind.value}")
            )

    for vm_name, idxs in vm_ports.items():
        if len(idxs) > MAX_ADAPTERS_PER_VM:
            i = idxs[MAX_ADAPTERS_PER_VM]
            out.append(
                (f"ports[{i}].vm", f"VM {vm_name!r} has more than {MAX_ADAPTERS_PER_VM} network adapters")
            )
        _duplicates(
            ((i, cfg.ports[i].peer_interface) for i in idxs),
            f"interface in VM {vm_name!r}",
            "ports",
            "peer_interface",
            out,
            port,
        )

    out.extend(_pvlan_problems(cfg))
    out.extend(_team_nic_problems(cfg))
    out.extend(_qos_problems(cfg, old))
    return out


# ---------------------------------------------------------------- QoS (hyperv-networking.md §5)


def effective_mode(sw: SwitchConfig) -> MinimumBandwidthMode:
    """Weight, Absolute or None (``SwitchConfig.bandwidth_mode``)."""
    return sw.bandwidth_mode


def uplink_port(cfg: HostConfig, switch: str) -> PortConfig | None:
    return next((p for p in cfg.ports if p.switch == switch and p.kind is PortKind.UPLINK), None)


def switch_capacity(cfg: HostConfig, sw: SwitchConfig) -> int:
    """The switch's Capacity in bit/s (0 = unbounded): its uplink port's link_speed, or for a team uplink each
    member's line rate times the members that carry traffic (a standby member does not). Internal and
    Private switches never touch a NIC: unbounded."""
    if sw.net_adapter is None:
        return 0
    team = next((t for t in cfg.teams if t.name == sw.net_adapter), None)
    if team is not None:
        active = len(team.members) - (1 if team.standby_member is not None else 0)
        return team.member_link_speed * active
    up = uplink_port(cfg, sw.name)
    return up.link_speed if up is not None else 0


def default_flow_reservation(sw: SwitchConfig, capacity: int) -> int:
    """Absolute mode: the default flow's reservation in bit/s (DefaultFlowMinimumBandwidthAbsolute, or 10 %
    of the capacity when unset, rounded down to a multiple of 8 as Hyper-V does)."""
    if sw.default_flow_minimum_bandwidth_absolute is not None:
        return sw.default_flow_minimum_bandwidth_absolute
    return capacity // 10 // 8 * 8


def _qos_problems(cfg: HostConfig, old: HostConfig | None) -> list[Problem]:
    """QS-02/03/05: minimums only in their switch's mode, a line rate only where a NIC is, admission control
    of absolute reservations against capacity; QS-07/09: unique policy names, DCB on existing adapters."""
    out: list[Problem] = []
    switches = {s.name: (i, s) for i, s in enumerate(cfg.switches)}
    teams = {t.name for t in cfg.teams}
    for i, sw in enumerate(cfg.switches):
        mode = effective_mode(sw)
        if (
            sw.default_flow_minimum_bandwidth_absolute is not None
            and mode is not MinimumBandwidthMode.ABSOLUTE
        ):
            out.append(
                (
                    f"switches[{i}].default_flow_minimum_bandwidth_absolute",
                    f"switch {sw.name!r} is in {mode.value} minimum-bandwidth mode; an absolute default flow "
                    "needs a switch created with minimum_bandwidth_mode Absolute",
                )
            )
        if sw.default_flow_minimum_bandwidth_weight != 1 and mode is not MinimumBandwidthMode.WEIGHT:
            out.append(
                (
                    f"switches[{i}].default_flow_minimum_bandwidth_weight",
                    f"switch {sw.name!r} is in {mode.value} minimum-bandwidth mode; a default-flow weight "
                    "needs a switch in Weight (or Default) mode",
                )
            )
    for i, p in enumerate(cfg.ports):
        base = f"ports[{i}]"
        if p.link_speed:
            if p.kind not in (PortKind.UPLINK, PortKind.INTERFACE):
                out.append(
                    (
                        f"{base}.link_speed",
                        "a line rate belongs to the NIC behind an uplink or interface port, "
                        f"not to a {p.kind.value} port (use maximum_bandwidth to cap what it sends)",
                    )
                )
            elif p.interface in teams:
                out.append(
                    (
                        f"{base}.link_speed",
                        f"{p.interface!r} is a team: its line rate is its members' "
                        "(the team's member_link_speed)",
                    )
                )
        if p.maximum_bandwidth and p.minimum_bandwidth_absolute > p.maximum_bandwidth:
            out.append(
                (
                    f"{base}.minimum_bandwidth_absolute",
                    f"minimum {format_bps(p.minimum_bandwidth_absolute)} is above the port's maximum "
                    f"{format_bps(p.maximum_bandwidth)}",
                )
            )
        found = switches.get(p.switch or "")
        if found is None:
            continue
        sw = found[1]
        mode = effective_mode(sw)
        if p.minimum_bandwidth_weight and mode is not MinimumBandwidthMode.WEIGHT:
            out.append(
                (
                    f"{base}.minimum_bandwidth_weight",
                    f"switch {sw.name!r} is in {mode.value} minimum-bandwidth mode; a weight needs a switch "
                    "in Weight (or Default) mode",
                )
            )
        if p.minimum_bandwidth_absolute and mode is not MinimumBandwidthMode.ABSOLUTE:
            out.append(
                (
                    f"{base}.minimum_bandwidth_absolute",
                    f"switch {sw.name!r} is in {mode.value} minimum-bandwidth mode; an absolute minimum needs "
                    "a switch created with minimum_bandwidth_mode Absolute",
                )
            )
    out.extend(_admission_problems(cfg, old))
    _duplicates(enumerate(q.name for q in cfg.qos_policies), "policy name", "qos_policies", "name", out)
    # DCB is a NIC's setting (Enable-NetAdapterQos), not a switch's: it stays when the switch using the NIC
    # goes, as on Windows. Which adapters may be enabled is checked when one is (the service), not here.
    seen: set[str] = set()
    for k, name in enumerate(cfg.dcb.adapters):
        if name in seen:
            out.append((f"dcb.adapters[{k}]", f"adapter {name!r} is listed twice"))
        seen.add(name)
        if not is_ifname(name):
            out.append((f"dcb.adapters[{k}]", f"{shown(name)} is not an interface name ({IFNAME_RULE})"))
    for k, prio in enumerate(cfg.dcb.flow_control_priorities):
        if not 0 <= prio <= 7:
            out.append(
                (f"dcb.flow_control_priorities[{k}]", f"priority {prio} is not an 802.1p priority 0-7")
            )
    return out


def _admission_problems(cfg: HostConfig, old: HostConfig | None) -> list[Problem]:
    """QS-03: in Absolute mode the ports' minimums plus the default flow's reservation fit the capacity.

    Reservations are admitted in configuration order, those unchanged since ``old`` first, so the error names
    the reservation that does not fit (the one a request added or raised). Capacity 0 is unbounded.
    """
    out: list[Problem] = []
    before = {p.name: p for p in old.ports} if old is not None else {}
    for i, sw in enumerate(cfg.switches):
        if effective_mode(sw) is not MinimumBandwidthMode.ABSOLUTE:
            continue
        capacity = switch_capacity(cfg, sw)
        if not capacity:
            continue
        reserved = default_flow_reservation(sw, capacity)
        if reserved > capacity:
            out.append(
                (
                    f"switches[{i}].default_flow_minimum_bandwidth_absolute",
                    f"switch {sw.name!r} cannot reserve {format_bps(reserved)} for the default flow: "
                    f"{format_bps(capacity)} capacity",
                )
            )
            continue
        ports = [
            (j, p) for j, p in enumerate(cfg.ports) if p.switch == sw.name and p.minimum_bandwidth_absolute
        ]

        def unchanged(item: tuple[int, PortConfig]) -> bool:
            was = before.get(item[1].name)
            return (
                was is not None
                and was.switch == item[1].switch
                and was.minimum_bandwidth_absolute == item[1].minimum_bandwidth_absolute
            )

        for j, p in sorted(ports, key=lambda item: not unchanged(item)):
            want = p.minimum_bandwidth_absolute
            if reserved + want > capacity:
                out.append(
                    (
                        f"ports[{j}].minimum_bandwidth_absolute",
                        f"switch {sw.name!r} cannot admit this reservation: {format_bps(capacity)} capacity, "
                        f"{format_bps(reserved)} reserved, {format_bps(want)} requested",
                    )
                )
            else:
                reserved += want
    return out


def _team_nic_problems(cfg: HostConfig) -> list[Problem]:
    """Team interfaces (hyperv-networking.md §3.6): host interfaces of a team that no switch uses.

    A team bound to a switch keeps only its default team interface, which is the switch's uplink: all VLAN
    separation is done in the switch. A VLAN tNIC's name is a host interface name, so it may not be taken by
    another tNIC, a team, a team member or a port's interface.
    """
    out: list[Problem] = []
    users = team_users(cfg)
    for i, t in enumerate(cfg.teams):
        switch = users.get(t.name, [None])[0]
        if switch is None:
            continue
        why = (
            f"team {t.name!r} is the adapter of switch {switch!r}: when a team is bound to a switch all VLAN "
            "separation is done in the switch; keep only the default team interface"
        )
        if t.primary_nic_vlan is not None:
            out.append((f"teams[{i}].primary_nic_vlan", f"{why} (Set-NetLbfoTeamNic -Default)"))
        for k, n in enumerate(t.team_nics):
            out.append((f"teams[{i}].team_nics[{k}].vlan_id", f"{why} (remove {n.name!r})"))
    taken: dict[str, str] = {}
    for t in cfg.teams:
        taken.setdefault(t.name, f"team {t.name!r}")
        for m in t.members:
            taken.setdefault(m, f"a member of team {t.name!r}")
    for p in cfg.ports:
        for ifname in (p.interface, p.peer_interface if p.kind is PortKind.HOST else None):
            if ifname is not None:
                taken.setdefault(ifname, f"the interface of port {p.name!r}")
    for i, t in enumerate(cfg.teams):
        for k, n in enumerate(t.team_nics):
            where = f"teams[{i}].team_nics[{k}].name"
            if n.name in taken:
                out.append((where, f"interface name {n.name!r} is already used: {taken[n.name]}"))
            else:
                taken[n.name] = f"a team interface of team {t.name!r}"
    return out


def _pvlan_problems(cfg: HostConfig) -> list[Problem]:
    """Private-VLAN roles on one switch must be consistent.

    A secondary VLAN is either isolated or community, never both, and belongs to one primary only; a VLAN
    used as a primary is not also a secondary; a promiscuous port lists secondaries of its own primary.
    Ports not connected to a switch have no role yet and are not compared.
    """
    out: list[Problem] = []

    def port(i: int) -> str:
        return f"port {cfg.ports[i].name!r}"

    secondaries: dict[tuple[str, int], tuple[int, str, int]] = {}  # (switch, sec) -> (primary, role, port)
    primaries: set[tuple[str, int]] = set()
    for i, p in enumerate(cfg.ports):
        v = p.vlan
        if p.switch is None or v.primary_vlan_id is None:
            continue
        primaries.add((p.switch, v.primary_vlan_id))
        if v.secondary_vlan_id is None:
            continue
        role = v.mode.value.lower()
        seen = secondaries.setdefault((p.switch, v.secondary_vlan_id), (v.primary_vlan_id, role, i))
        where = f"ports[{i}].vlan.secondary_vlan_id"
        if seen[0] != v.primary_vlan_id:
            out.append(
                (
                    where,
                    f"secondary VLAN {v.secondary_vlan_id} belongs to primary {seen[0]} on {port(seen[2])}",
                )
            )
        elif seen[1] != role:
            out.append(
                (where, f"secondary VLAN {v.secondary_vlan_id} is {seen[1]} on {port(seen[2])}, {role} here")
            )
    for i, p in enumerate(cfg.ports):
        v = p.vlan
        if p.switch is None or v.mode is not VlanMode.PROMISCUOUS:
            continue
        for sec in v.secondary_vlan_ids:
            found = secondaries.get((p.switch, sec))
            if found is not None and found[0] != v.primary_vlan_id:
                out.append(
                    (
                        f"ports[{i}].vlan.secondary_vlan_ids",
                        f"secondary VLAN {sec} belongs to primary {found[0]} on {port(found[2])}",
                    )
                )
    for (sw, sec), (_, _, j) in secondaries.items():
        if (sw, sec) in primaries:
            out.append(
                (f"ports[{j}].vlan.secondary_vlan_id", f"VLAN {sec} is also a primary VLAN on switch {sw!r}")
            )
    return out
