"""The Linux-style verbs: ``switch``, ``vm``, ``port``, ``fdb``, ``counters``, ``show``, ``demo``, ``bench``.

Each command is one or two API calls; the daemon validates, so options are only checked here where a mistake
can be named better as a usage error (which option, exit 2) than as the daemon's field path. With ``--json``
a command prints the daemon's answer unchanged, so scripts see the API's schema and nothing else.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import click
import httpx

from pyvswitch.cli.client import DEFAULT_SOCKET, Client, JsonObj
from pyvswitch.cli.format import counter_rows, detail, echo_json, table
from pyvswitch.cli.vlanspec import GRAMMAR, format_vlan, vlan_option_callback

F = TypeVar("F", bound=Callable[..., Any])


@dataclass
class State:
    """What the global options decided, shared by every command through click's context object."""

    socket: str = DEFAULT_SOCKET
    json: bool = False
    # Tests put an httpx.MockTransport here to talk to an in-process app instead of a socket.
    transport: httpx.BaseTransport | None = None

    def client(self) -> Client:
        return Client(self.socket, transport=self.transport)


pass_state = click.make_pass_decorator(State, ensure=True)


def _set_json(ctx: click.Context, param: click.Parameter, value: bool) -> None:
    if value:
        ctx.ensure_object(State).json = True


def json_flag(f: F) -> F:
    """``--json`` after the verb too (``pyvswitch vm show web01 --json``), same as the global option."""
    return click.option(
        "--json",
        "json_flag",
        is_flag=True,
        expose_value=False,
        callback=_set_json,
        help="Print the daemon's answer as JSON.",
    )(f)


VLAN_HELP = f"VLAN setting: {GRAMMAR}."


def bandwidth_callback(ctx: click.Context, param: click.Parameter, value: str | None) -> int | None:
    """click option callback for bit/s: a number, or with a decimal k/M/G/T suffix (100M, 1G), as
    ``cli.netqos.parse_bandwidth`` (a callback, not a ParamType: see ``vlanspec.vlan_option_callback``)."""
    if value is None:
        return None
    from pyvswitch.cli.netqos import parse_bandwidth

    try:
        return parse_bandwidth(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc), ctx=ctx, param=param) from None


BW_HELP = "bit/s; k, M, G, T suffixes accepted (100M, 1G)"


def _bits(v: object) -> str:
    from pyvswitch.config.schema import format_bps

    return format_bps(int(v)) if isinstance(v, int) and v else "-"


# ---------------------------------------------------------------- human views


def _names(items: Sequence[Any]) -> str:
    return ", ".join(str(i) for i in items)


def _ips(port: Mapping[str, Any]) -> str:
    return _names(port.get("ip") or [])


def switch_detail(sw: Mapping[str, Any]) -> str:
    return detail(
        [
            ("name", sw.get("name")),
            ("type", sw.get("type")),
            ("uplink", sw.get("net_adapter") or "-"),
            ("management os", sw.get("allow_management_os")),
            ("flood unknown unicast", sw.get("flood_unknown_unicast")),
            ("mac aging (s)", sw.get("mac_aging_s")),
            ("mac table size", sw.get("mac_table_size")),
            ("notes", sw.get("notes")),
            ("min bandwidth mode", sw.get("minimum_bandwidth_mode") or "Default"),
            ("default flow weight", sw.get("default_flow_minimum_bandwidth_weight", 1)),
            (
                "default flow absolute",
                _bits(sw.get("default_flow_minimum_bandwidth_absolute"))
                if sw.get("default_flow_minimum_bandwidth_absolute") is not None
                else "- (10 % of capacity)",
            ),
            ("ports", _names(sw.get("ports") or [])),
        ]
    )


def switch_table(switches: Sequence[Mapping[str, Any]]) -> str:
    return table(
        ["name", "type", "uplink", "management-os", "flood-unknown", "ports"],
        [
            [
                s.get("name"),
                s.get("type"),
                s.get("net_adapter") or "-",
                s.get("allow_management_os"),
                s.get("flood_unknown_unicast"),
                _names(s.get("ports") or []),
            ]
            for s in switches
        ],
    )


def port_table(ports: Sequence[Mapping[str, Any]]) -> str:
    return table(
        ["name", "kind", "switch", "vm", "interface", "mac", "ip", "vlan"],
        [
            [
                p.get("name"),
                p.get("kind"),
                p.get("switch") or "-",
                p.get("vm") or "-",
                p.get("interface") or "-",
                p.get("mac") or "-",
                _ips(p) or "-",
                format_vlan(p.get("vlan")),
            ]
            for p in ports
        ],
    )


def port_detail(p: Mapping[str, Any]) -> str:
    return detail(
        [
            ("name", p.get("name")),
            ("kind", p.get("kind")),
            ("switch", p.get("switch") or "- (not connected)"),
            ("vm", p.get("vm") or "-"),
            ("interface", p.get("interface") or "-"),
            ("peer interface", p.get("peer_interface") or "-"),
            ("mac", p.get("mac") or "- (learned)"),
            ("ip", _ips(p) or "-"),
            ("vlan", format_vlan(p.get("vlan"))),
            ("mac spoofing", p.get("mac_spoofing")),
            ("dhcp guard", p.get("dhcp_guard")),
            ("router guard", p.get("router_guard")),
            ("allow teaming", p.get("allow_teaming")),
            ("storm limit (pps)", p.get("storm_limit") or "- (off)"),
            ("mac limit", p.get("mac_limit") or "- (none)"),
            ("ieee priority tag", p.get("ieee_priority_tag")),
            ("acl entries", len(p.get("acls") or [])),
            ("extended acl entries", len(p.get("extended_acls") or [])),
            ("maximum bandwidth", _bits(p.get("maximum_bandwidth"))),
            ("minimum weight", p.get("minimum_bandwidth_weight") or "- (default flow)"),
            ("minimum absolute", _bits(p.get("minimum_bandwidth_absolute"))),
            ("link speed", _bits(p.get("link_speed")) if p.get("kind") in ("uplink", "interface") else "-"),
            *([("iov weight", p.get("iov_weight") or 0), ("sr-iov path", p["iov"])] if p.get("iov") else []),
        ]
    )


def vm_table(vms: Sequence[Mapping[str, Any]]) -> str:
    rows: list[list[object]] = []
    for vm in vms:
        ports = vm.get("ports") or []
        if not ports:
            rows.append([vm.get("name"), vm.get("netns"), "-", "-", "-", "-", "-"])
        for p in ports:
            rows.append(
                [
                    vm.get("name"),
                    vm.get("netns"),
                    f"{p.get('name')} ({p.get('peer_interface') or '?'})",
                    p.get("switch") or "-",
                    p.get("mac") or "-",
                    _ips(p) or "-",
                    format_vlan(p.get("vlan")),
                ]
            )
    return table(["vm", "netns", "adapter", "switch", "mac", "ip", "vlan"], rows)


def vm_detail(vm: Mapping[str, Any]) -> str:
    head = detail([("name", vm.get("name")), ("netns", vm.get("netns"))])
    ports = vm.get("ports") or []
    if not ports:
        return head + "\nadapters: none"
    return head + "\n\n" + port_table(ports)


def fdb_table(rows: Sequence[Mapping[str, Any]]) -> str:
    return table(
        ["mac", "vlan", "port", "age (s)", "static"],
        [[r.get("mac"), r.get("vlan"), r.get("port"), r.get("age_s"), r.get("static")] for r in rows],
    )


def counters_text(data: Mapping[str, Any]) -> str:
    out: list[str] = []
    switches = data.get("switches") or {}
    for name, sw in switches.items() if isinstance(switches, Mapping) else ():
        if not isinstance(sw, Mapping):
            continue
        out.append(f"switch {name}")
        headers, rows = counter_rows(sw.get("ports") or {})
        out.append(table(headers, rows) if rows else "  no ports")
        drops = sw.get("drops") or {}
        if isinstance(drops, Mapping) and drops:
            out.append("drops: " + ", ".join(f"{k}={v}" for k, v in sorted(drops.items())))
        else:
            out.append("drops: none")
        fdb = sw.get("fdb")
        if isinstance(fdb, Mapping) and fdb:
            limits = fdb.get("mac_limits") or {}
            out.append("fdb: " + ", ".join(f"{k}={v}" for k, v in fdb.items() if k != "mac_limits"))
            for port, lim in sorted(limits.items()) if isinstance(limits, Mapping) else ():
                out.append(
                    f"mac limit {port}: {lim.get('limit')} (learned {lim.get('learned')}, "
                    f"not learned {lim.get('not_learned')})"
                )
        out.append("")
    if not out:
        out.append("no switches")
    if data.get("loop_errors"):
        out.append(f"forwarding loop errors: {data['loop_errors']}")
    return "\n".join(out).rstrip()


def _emit(state: State, data: Any, human: Callable[[Any], str]) -> None:
    if state.json:
        echo_json(data)
    else:
        click.echo(human(data))


# ---------------------------------------------------------------- switch


@click.group("switch")
def switch_group() -> None:
    """Virtual switches: External (with an uplink), Internal (with a host vNIC), Private."""


@switch_group.command("add")
@click.argument("name")
@click.option(
    "--type",
    "type_",
    type=click.Choice(["external", "internal", "private"], case_sensitive=False),
    help="Switch type (default private; --uplink makes it external).",
)
@click.option("--uplink", metavar="IF", help="Bind this interface as the uplink (an External switch).")
@click.option(
    "--no-management-os",
    is_flag=True,
    help="External switch without the host vNIC named after the switch (AllowManagementOS $false).",
)
@click.option(
    "--flood-unknown", is_flag=True, help="Flood unknown unicast to every port (default: uplink only)."
)
@click.option(
    "--link-speed",
    metavar="BIT/S",
    callback=bandwidth_callback,
    help=f"Line rate of the --uplink NIC ({BW_HELP}; 0 = unbounded).",
)
@click.option(
    "--min-bandwidth-mode",
    type=click.Choice(["default", "weight", "absolute", "none"], case_sensitive=False),
    help="Minimum-bandwidth mode, fixed at creation (default = weight).",
)
@json_flag
@pass_state
def switch_add(
    state: State,
    name: str,
    type_: str | None,
    uplink: str | None,
    no_management_os: bool,
    flood_unknown: bool,
    link_speed: int | None,
    min_bandwidth_mode: str | None,
) -> None:
    """Create switch NAME (New-VMSwitch)."""
    kind = type_.lower() if type_ else None
    if uplink is not None:
        if kind not in (None, "external"):
            raise click.BadParameter(
                f"--uplink makes a switch external, not {kind}; drop one of them", param_hint="'--type'"
            )
        kind = "external"
    elif kind == "external":
        raise click.BadParameter("an external switch needs --uplink IF", param_hint="'--type'")
    if no_management_os and kind == "internal":
        raise click.BadParameter(
            "an internal switch always has its host vNIC", param_hint="'--no-management-os'"
        )
    body: JsonObj = {"name": name}
    if kind is not None:
        body["type"] = kind.capitalize()
    if uplink is not None:
        body["net_adapter"] = uplink
    if no_management_os:
        body["allow_management_os"] = False
    if flood_unknown:
        body["flood_unknown_unicast"] = True
    if link_speed is not None:
        if uplink is None:
            raise click.BadParameter("a line rate needs --uplink IF", param_hint="'--link-speed'")
        body["link_speed"] = link_speed
    if min_bandwidth_mode is not None:
        body["minimum_bandwidth_mode"] = min_bandwidth_mode.capitalize()
    with state.client() as c:
        _emit(state, c.add_switch(body), switch_detail)


@switch_group.command("list")
@json_flag
@pass_state
def switch_list(state: State) -> None:
    """List switches (Get-VMSwitch)."""
    with state.client() as c:
        _emit(state, c.switches(), switch_table)


@switch_group.command("show")
@click.argument("name")
@json_flag
@pass_state
def switch_show(state: State, name: str) -> None:
    """Show switch NAME and its ports."""
    with state.client() as c:
        _emit(state, c.switch(name), switch_detail)


@switch_group.command("del")
@click.argument("name")
@json_flag
@pass_state
def switch_del(state: State, name: str) -> None:
    """Remove switch NAME; its VM ports stay, disconnected (Remove-VMSwitch)."""
    with state.client() as c:
        c.delete_switch(name)
    if not state.json:
        click.echo(f"removed switch {name}")


# ---------------------------------------------------------------- vm


@click.group("vm")
def vm_group() -> None:
    """VMs: network namespaces whose adapters are switch ports."""


@vm_group.command("add")
@click.argument("name")
@click.option("--switch", "switch", metavar="SW", help="Connect the adapter to this switch.")
@click.option("--ip", "ips", metavar="CIDR", multiple=True, help="Address inside the VM (repeatable).")
@click.option("--mac", metavar="MAC", help="Static MAC (default: from the daemon's pool).")
@click.option("--vlan", metavar="SPEC", callback=vlan_option_callback, help=VLAN_HELP)
@click.option("--netns", metavar="NS", help="Namespace name (default: the VM name).")
@click.option("--no-adapter", is_flag=True, help="Create the VM without its adapter NAME-eth0.")
@json_flag
@pass_state
def vm_add(
    state: State,
    name: str,
    switch: str | None,
    ips: tuple[str, ...],
    mac: str | None,
    vlan: JsonObj | None,
    netns: str | None,
    no_adapter: bool,
) -> None:
    """Create VM NAME with one adapter NAME-eth0 (eth0 inside the VM)."""
    body: JsonObj = {"name": name}
    if netns is not None:
        body["netns"] = netns
    adapter = {"switch": switch, "ip": list(ips) or None, "mac": mac, "vlan": vlan}
    given = {k: v for k, v in adapter.items() if v is not None}
    if no_adapter:
        if given:
            opts = ", ".join(f"--{k}" for k in given)
            raise click.BadParameter(f"{opts} configure the adapter", param_hint="'--no-adapter'")
        body["adapter"] = False
    body.update(given)
    with state.client() as c:
        _emit(state, c.add_vm(body), vm_detail)


@vm_group.command("list")
@json_flag
@pass_state
def vm_list(state: State) -> None:
    """List VMs and their adapters."""
    with state.client() as c:
        _emit(state, c.vms(), vm_table)


@vm_group.command("show")
@click.argument("name")
@json_flag
@pass_state
def vm_show(state: State, name: str) -> None:
    """Show VM NAME: its namespace and adapters."""
    with state.client() as c:
        _emit(state, c.vm(name), vm_detail)


@vm_group.command("del")
@click.argument("name")
@json_flag
@pass_state
def vm_del(state: State, name: str) -> None:
    """Remove VM NAME, its adapters and its namespace."""
    with state.client() as c:
        c.delete_vm(name)
    if not state.json:
        click.echo(f"removed VM {name}")


@vm_group.command("exec", context_settings={"allow_interspersed_args": False, "ignore_unknown_options": True})
@click.argument("name")
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
@pass_state
def vm_exec(state: State, name: str, command: tuple[str, ...]) -> None:
    """Run COMMAND inside VM NAME's namespace: pyvswitch vm exec NAME -- CMD [ARGS]..."""
    argv = list(command)
    if argv and argv[0] == "--":
        argv = argv[1:]
    if not argv:
        raise click.UsageError("no command given (pyvswitch vm exec NAME -- CMD [ARGS]...)")
    with state.client() as c:
        netns = str(c.vm(name)["netns"])
    # exec, not a child: the command's exit status and signals are the CLI's own.
    try:
        os.execvp("ip", ["ip", "netns", "exec", netns, *argv])
    except OSError as exc:
        raise click.ClickException(f"cannot run ip netns exec: {exc}") from exc


# ---------------------------------------------------------------- port


@click.group("port")
def port_group() -> None:
    """Ports: VM adapters, host vNICs, uplinks, bound interfaces and TAPs."""


@port_group.command("add")
@click.argument("name")
@click.option("--interface", metavar="IF", help="Bind an existing interface (a NIC, a veth end, a tap).")
@click.option("--tap", metavar="IF", help="A TAP device the switch creates and owns.")
@click.option("--switch", "switch", metavar="SW", required=True, help="The switch to connect it to.")
@click.option("--vlan", metavar="SPEC", callback=vlan_option_callback, help=VLAN_HELP)
@json_flag
@pass_state
def port_add(
    state: State,
    name: str,
    interface: str | None,
    tap: str | None,
    switch: str,
    vlan: JsonObj | None,
) -> None:
    """Add port NAME bound to an interface or a TAP."""
    if (interface is None) == (tap is None):
        raise click.UsageError("give exactly one of --interface IF and --tap IF")
    body: JsonObj = {
        "name": name,
        "kind": "interface" if interface is not None else "tap",
        "interface": interface if interface is not None else tap,
        "switch": switch,
    }
    if vlan is not None:
        body["vlan"] = vlan
    with state.client() as c:
        _emit(state, c.add_port(body), port_detail)


@port_group.command("list")
@click.option("--switch", "switch", metavar="SW", help="Only ports of this switch.")
@click.option("--vm", metavar="VM", help="Only adapters of this VM.")
@json_flag
@pass_state
def port_list(state: State, switch: str | None, vm: str | None) -> None:
    """List ports."""
    with state.client() as c:
        _emit(state, c.ports(switch=switch, vm=vm), port_table)


@port_group.command("show")
@click.argument("name")
@json_flag
@pass_state
def port_show(state: State, name: str) -> None:
    """Show port NAME."""
    with state.client() as c:
        port = c.port(name)
        if port.get("kind") == "vm":  # SR-IOV: VF (policies bypassed) or Software, and why (cli/sriov.py)
            from pyvswitch.cli.sriov import iov_path  # sriov imports this module

            port["iov"] = iov_path(c, name)
        _emit(state, port, port_detail)


@port_group.command("set")
@click.argument("name")
@click.option("--vlan", metavar="SPEC", callback=vlan_option_callback, help=VLAN_HELP)
@click.option("--switch", "switch", metavar="SW", help="Connect to this switch.")
@click.option("--disconnect", is_flag=True, help="Disconnect from its switch.")
@click.option("--ip", "ips", metavar="CIDR", multiple=True, help="Replace the addresses (repeatable).")
@click.option(
    "--mac-spoofing/--no-mac-spoofing", "mac_spoofing", default=None, help="Allow other source MACs."
)
@click.option(
    "--dhcp-guard/--no-dhcp-guard", "dhcp_guard", default=None, help="Drop DHCP server messages from it."
)
@click.option(
    "--router-guard/--no-router-guard",
    "router_guard",
    default=None,
    help="Drop router advertisements and redirects from it.",
)
@click.option(
    "--allow-teaming/--no-allow-teaming",
    "allow_teaming",
    default=None,
    help="Guest teaming: may send with the MACs of the VM's other teamed adapters.",
)
@click.option(
    "--storm-limit",
    "storm_limit",
    metavar="PPS",
    type=click.IntRange(min=0),
    help="Broadcast, multicast and unknown-unicast frames a second it may send (0 = no limit).",
)
@click.option(
    "--ieee-priority-tag/--no-ieee-priority-tag",
    "ieee_priority_tag",
    default=None,
    help="Keep the 802.1p priority of its frames.",
)
@click.option(
    "--mac-limit",
    "mac_limit",
    metavar="N",
    type=click.IntRange(min=0, max=1_000_000),
    help="Most source MACs the switch learns on it (0 = no limit); others are forwarded, not learned.",
)
@click.option(
    "--max-bandwidth",
    metavar="BIT/S",
    callback=bandwidth_callback,
    help=f"Cap on what it sends ({BW_HELP}; 0 = none).",
)
@click.option(
    "--min-weight", type=click.IntRange(0, 100), help="Minimum-bandwidth weight (Weight-mode switch)."
)
@click.option(
    "--min-absolute",
    metavar="BIT/S",
    callback=bandwidth_callback,
    help=f"Minimum bandwidth (Absolute-mode switch; {BW_HELP}).",
)
@click.option(
    "--link-speed",
    metavar="BIT/S",
    callback=bandwidth_callback,
    help=f"Line rate of an uplink or interface port's NIC ({BW_HELP}).",
)
@json_flag
@pass_state
def port_set(
    state: State,
    name: str,
    vlan: JsonObj | None,
    switch: str | None,
    disconnect: bool,
    ips: tuple[str, ...],
    mac_spoofing: bool | None,
    dhcp_guard: bool | None,
    router_guard: bool | None,
    allow_teaming: bool | None,
    storm_limit: int | None,
    ieee_priority_tag: bool | None,
    mac_limit: int | None,
    max_bandwidth: int | None,
    min_weight: int | None,
    min_absolute: int | None,
    link_speed: int | None,
) -> None:
    """Change port NAME (Set-VMNetworkAdapterVlan, Connect-/Disconnect-VMNetworkAdapter, Set-VMNetworkAdapter)."""
    if switch is not None and disconnect:
        raise click.BadParameter("--switch and --disconnect contradict each other", param_hint="'--switch'")
    changes: JsonObj = {}
    if vlan is not None:
        changes["vlan"] = vlan
    if switch is not None:
        changes["switch"] = switch
    if disconnect:
        changes["switch"] = None
    if ips:
        changes["ip"] = list(ips)
    security = {
        "mac_spoofing": mac_spoofing,
        "dhcp_guard": dhcp_guard,
        "router_guard": router_guard,
        "allow_teaming": allow_teaming,
        "storm_limit": storm_limit,
        "ieee_priority_tag": ieee_priority_tag,
    }
    changes.update({k: v for k, v in security.items() if v is not None})
    if mac_limit is not None:
        changes["mac_limit"] = mac_limit or None  # 0 on the command line: no limit
    bandwidth = {
        "maximum_bandwidth": max_bandwidth,
        "minimum_bandwidth_weight": min_weight,
        "minimum_bandwidth_absolute": min_absolute,
        "link_speed": link_speed,
    }
    changes.update({k: v for k, v in bandwidth.items() if v is not None})
    if not changes:
        raise click.UsageError(
            "nothing to change: give --vlan, --switch, --disconnect, --ip, a security option "
            "(--mac-spoofing, --dhcp-guard, --router-guard, --allow-teaming, --storm-limit, "
            "--ieee-priority-tag, --mac-limit) or a bandwidth option (--max-bandwidth, --min-weight, --min-absolute, "
            "--link-speed)"
        )
    with state.client() as c:
        _emit(state, c.update_port(name, changes), port_detail)


@port_group.command("del")
@click.argument("name")
@json_flag
@pass_state
def port_del(state: State, name: str) -> None:
    """Remove port NAME (an uplink goes with its switch's uplink setting instead)."""
    with state.client() as c:
        c.delete_port(name)
    if not state.json:
        click.echo(f"removed port {name}")


# ---------------------------------------------------------------- observation


@click.group("fdb")
def fdb_group() -> None:
    """The MAC address tables."""


@fdb_group.command("show")
@click.argument("switch")
@json_flag
@pass_state
def fdb_show(state: State, switch: str) -> None:
    """Show what switch SWITCH has learned: MAC, VLAN, port, age."""
    with state.client() as c:
        _emit(state, c.fdb(switch), fdb_table)


@click.command("counters")
@click.option("--switch", "switch", metavar="SW", help="Only this switch.")
@json_flag
@pass_state
def counters_cmd(state: State, switch: str | None) -> None:
    """Per-port frame and byte counters and drops by reason."""
    with state.client() as c:
        _emit(state, c.counters(switch), counters_text)


SHOW_OBJECTS = ("drops", "config", "switch", "switches", "vm", "vms", "port", "ports")


def config_text(cfg: Mapping[str, Any]) -> str:
    ports = list(cfg.get("ports") or [])
    switches = [
        {**s, "ports": [p.get("name") for p in ports if p.get("switch") == s.get("name")]}
        for s in cfg.get("switches") or []
    ]
    vms = [{"name": v.get("name"), "netns": v.get("netns") or v.get("name")} for v in cfg.get("vms") or []]
    return "\n".join(
        [
            "Switches",
            switch_table(switches),
            "",
            "VMs",
            table(["name", "netns"], [[v["name"], v["netns"]] for v in vms]),
            "",
            "Ports",
            port_table(ports),
        ]
    )


@click.command("show")
@click.argument("obj", metavar="[OBJECT]", required=False, type=click.Choice(SHOW_OBJECTS))
@click.argument("name", required=False)
@json_flag
@pass_state
def show_cmd(state: State, obj: str | None, name: str | None) -> None:
    """Show the whole configuration, or one OBJECT: switch|vm|port NAME, or switches|vms|ports.

    With --json and no OBJECT this is the daemon's HostConfig exactly (GET /v1/config).
    """
    obj = obj or "config"
    single = obj in ("switch", "vm", "port")
    if single and name is None:
        raise click.UsageError(f"show {obj} needs a NAME")
    if not single and name is not None:
        raise click.UsageError(f"show {obj} takes no NAME")
    with state.client() as c:
        if obj == "config":
            _emit(state, c.config(), config_text)
        elif obj == "switch":
            _emit(state, c.switch(str(name)), switch_detail)
        elif obj == "switches":
            _emit(state, c.switches(), switch_table)
        elif obj == "vm":
            _emit(state, c.vm(str(name)), vm_detail)
        elif obj == "vms":
            _emit(state, c.vms(), vm_table)
        elif obj == "port":
            _emit(state, c.port(str(name)), port_detail)
        elif obj == "drops":
            rows = drop_rows(dict(c.request("GET", "/counters")))
            if state.json:
                echo_json([dict(zip(("switch", "where", "reason", "count"), r, strict=True)) for r in rows])
            else:
                click.echo(table(["switch", "where", "reason", "count"], rows) if rows else "no drops")
        else:
            _emit(state, c.ports(), port_table)


def drop_rows(counters: dict[str, Any]) -> list[list[object]]:
    """Every drop counter by switch, element (ingress, forward, a port's guards or ACLs, an extension, the
    device) and reason, largest first: where frames died and why (VPP's ``show errors``)."""
    rows: list[list[object]] = []
    for sw, data in (counters.get("switches") or {}).items():
        for element, e in (data.get("elements") or {}).items():
            rows += [[sw, element, r, n] for r, n in (e.get("drops") or {}).items()]
        for port, p in (data.get("ports") or {}).items():
            rows += [[sw, f"{port} device", r, n] for r, n in (p.get("drops") or {}).items()]
            for element, e in (p.get("security") or {}).items():
                rows += [[sw, f"{port} {element}", r, n] for r, n in (e.get("drops") or {}).items()]
            for direction, a in (p.get("acl") or {}).items():
                rows += [[sw, f"{port} ACL {direction}", r, n] for r, n in (a.get("drops") or {}).items()]
        for ext in data.get("extensions") or []:
            rows += [[sw, f"extension {ext['name']}", r, n] for r, n in (ext.get("drops") or {}).items()]
            if ext.get("errors"):
                rows.append([sw, f"extension {ext['name']}", "raised", ext["errors"]])
    return sorted((r for r in rows if r[3]), key=lambda r: -int(r[3]))  # type: ignore[call-overload]


# ---------------------------------------------------------------- lab


@click.command("demo")
@click.option("--keep", is_flag=True, help="Leave the demo host running and print how to remove it.")
def demo_cmd(keep: bool) -> int:
    """Build a small Hyper-V-style host with real namespaces, show it, send traffic (needs root)."""
    from pyvswitch.lab.demo import run_demo

    return run_demo(keep=keep)


@click.command("bench")
@click.option("--json", "json_path", metavar="PATH", help="Also write the results as JSON to PATH.")
@click.option("--quick", is_flag=True, help="Short trials, one repetition.")
@click.option(
    "--plot",
    "plot_path",
    metavar="PATH",
    help="PNG of delivered vs offered load (default: the --json path with .png; needs matplotlib).",
)
@click.option(
    "--suite",
    "suites",
    multiple=True,
    type=click.Choice(["classic", "rfc2544", "rfc2889"]),
    help="Run only these parts (repeatable; default: all).",
)
def bench_cmd(json_path: str | None, quick: bool, plot_path: str | None, suites: tuple[str, ...]) -> int:
    """Benchmark pyvswitch against the Linux bridge on one harness (needs root): TCP, latency and frame-rate
    searches, then RFC 2544 / RFC 2889 tests on two- and four-port harnesses, with the generator's own
    ceiling measured in the same run."""
    from pyvswitch.lab.bench import run_bench
    from pyvswitch.lab.rfcbench import SUITES

    if plot_path or suites:
        return run_bench(json_path, quick, plot_path=plot_path, suites=suites or SUITES)
    return run_bench(json_path, quick)


COMMANDS: tuple[click.Command, ...] = (
    switch_group,
    vm_group,
    port_group,
    fdb_group,
    counters_cmd,
    show_cmd,
    demo_cmd,
    bench_cmd,
)
