"""The Linux-style verbs: ``switch``, ``vm``, ``port``, ``fdb``, ``counters``, ``show``, ``demo``, ``bench``.

Each command is one or two API calls; the daemon validates, so options are only checked here where a mistake
can be named better as a usage error (which option, exit 2) than as the daemon's field path. With ``--json``
a command prints the daemon's answer unchanged, so scripts see the API's schema and nothing else.

The commands only: the global state, ``--json`` and the list/show/del factory are ``cli.verbkit``'s (the floor
every verb module stands on), the text views ``cli.views``'.
"""

from __future__ import annotations

import sys
from typing import Any

import click

from pyvswitch.cli.client import Client, JsonObj
from pyvswitch.cli.format import echo_json, table
from pyvswitch.cli.verbkit import (
    BW_HELP,
    State,
    bandwidth_callback,
    created,
    crud_group,
    emit,
    json_flag,
    may_exist_flag,
    pass_state,
    run_in_netns,
)
from pyvswitch.cli.views import (
    config_text,
    counters_text,
    drop_rows,
    fdb_table,
    port_detail,
    port_table,
    switch_detail,
    switch_table,
    vm_detail,
    vm_table,
)
from pyvswitch.cli.vlanspec import GRAMMAR, vlan_option_callback

VLAN_HELP = f"VLAN setting: {GRAMMAR}."

# ---------------------------------------------------------------- switch

switch_group = crud_group(
    "switch",
    "Virtual switches: External (with an uplink), Internal (with a host vNIC), Private.",
    noun="switch",
    names_path="/switches",
    read_all=Client.switches,
    read=Client.switch,
    delete=Client.delete_switch,
    table=switch_table,
    detail=switch_detail,
    helps=(
        "List switches (Get-VMSwitch).",
        "Show switch NAME and its ports.",
        "Remove switch NAME; its VM ports stay, disconnected (Remove-VMSwitch).",
    ),
)


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
@may_exist_flag
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
    may_exist: bool,
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
        emit(state, created(lambda: c.add_switch(body), lambda: c.switch(name), may_exist), switch_detail)


# ---------------------------------------------------------------- vm

vm_group = crud_group(
    "vm",
    "VMs: network namespaces whose adapters are switch ports.",
    noun="VM",
    names_path="/vms",
    read_all=Client.vms,
    read=Client.vm,
    delete=Client.delete_vm,
    table=vm_table,
    detail=vm_detail,
    helps=(
        "List VMs and their adapters.",
        "Show VM NAME: its namespace and adapters.",
        "Remove VM NAME, its adapters and its namespace.",
    ),
)


@vm_group.command("add")
@click.argument("name")
@click.option("--switch", "switch", metavar="SW", help="Connect the adapter to this switch.")
@click.option("--ip", "ips", metavar="CIDR", multiple=True, help="Address inside the VM (repeatable).")
@click.option("--mac", metavar="MAC", help="Static MAC (default: from the daemon's pool).")
@click.option("--vlan", metavar="SPEC", callback=vlan_option_callback, help=VLAN_HELP)
@click.option(
    "--kind",
    type=click.Choice(["namespace", "qemu"]),
    default="namespace",
    show_default=True,
    help="A network namespace, or a QEMU guest (a Linux kernel with virtio-net NICs on TAP ports).",
)
@click.option("--netns", metavar="NS", help="Namespace name (default: the VM name; kind namespace).")
@click.option("--memory", "memory_mb", type=int, metavar="MIB", help="A QEMU guest's memory (default 256).")
@click.option("--cpus", type=int, metavar="N", help="A QEMU guest's virtual CPUs (default 1).")
@click.option("--no-wait", is_flag=True, help="Return once QEMU runs, not once the guest has booted.")
@click.option("--no-adapter", is_flag=True, help="Create the VM without its adapter NAME-eth0.")
@may_exist_flag
@json_flag
@pass_state
def vm_add(
    state: State,
    name: str,
    switch: str | None,
    ips: tuple[str, ...],
    mac: str | None,
    vlan: JsonObj | None,
    kind: str,
    netns: str | None,
    memory_mb: int | None,
    cpus: int | None,
    no_wait: bool,
    no_adapter: bool,
    may_exist: bool,
) -> int:
    """Create VM NAME with one adapter NAME-eth0 (eth0 inside the VM).

    With --kind qemu the VM is a QEMU guest: its image (a Debian kernel and a busybox initramfs) is built from
    Debian packages at first use; the command waits until the guest's NICs are configured."""
    body: JsonObj = {"name": name, "kind": kind}
    if kind == "qemu" and netns is not None:
        raise click.BadParameter("a QEMU guest has no namespace", param_hint="'--netns'")
    if kind == "namespace" and (memory_mb is not None or cpus is not None):
        raise click.BadParameter("--memory and --cpus are a QEMU guest's", param_hint="'--kind'")
    for key, value in (("netns", netns), ("memory_mb", memory_mb), ("cpus", cpus)):
        if value is not None:
            body[key] = value
    adapter = {"switch": switch, "ip": list(ips) or None, "mac": mac, "vlan": vlan}
    given = {k: v for k, v in adapter.items() if v is not None}
    if no_adapter:
        if given:
            opts = ", ".join(f"--{k}" for k in given)
            raise click.BadParameter(f"{opts} configure the adapter", param_hint="'--no-adapter'")
        body["adapter"] = False
    body.update(given)
    # The first QEMU guest builds the image (~5-15 s) inside the request.
    with state.client(timeout_s=600) as c:
        vm = created(lambda: c.add_vm(body), lambda: c.vm(name), may_exist)
        if kind == "qemu" and not no_wait:
            vm = c.wait_vm_booted(name)
        emit(state, vm, vm_detail)
    return 1 if vm.get("state") == "failed" else 0


@vm_group.command("exec", context_settings={"allow_interspersed_args": False, "ignore_unknown_options": True})
@click.argument("name")
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
@click.option(
    "--timeout", "timeout_s", type=float, default=60.0, show_default=True, help="A QEMU guest's limit (s)."
)
@json_flag
@pass_state
def vm_exec(state: State, name: str, command: tuple[str, ...], timeout_s: float) -> int:
    """Run COMMAND inside VM NAME: pyvswitch vm exec NAME -- CMD [ARGS]...

    In a namespace VM through ip netns exec; in a QEMU guest through its agent (stdout, stderr and the exit
    status are the command's; with --json, given back as {"returncode", "stdout", "stderr"})."""
    argv = list(command)
    if argv and argv[0] == "--":
        argv = argv[1:]
    if not argv:
        raise click.UsageError("no command given (pyvswitch vm exec NAME -- CMD [ARGS]...)")
    with state.client(timeout_s=timeout_s + 30) as c:
        vm = c.vm(name)
        if vm.get("kind") == "qemu":
            res = c.exec_vm(name, argv, timeout_s)
            if state.json:
                echo_json({k: res.get(k) for k in ("returncode", "stdout", "stderr")})
            else:
                sys.stdout.write(str(res.get("stdout", "")))
                sys.stderr.write(str(res.get("stderr", "")))
            return int(res.get("returncode", 1))
        netns = str(vm["netns"])
    return run_in_netns(state, netns, argv)


# ---------------------------------------------------------------- port


def _port_with_iov(c: Client, name: str) -> JsonObj:
    """The port, with a VM adapter's SR-IOV path: VF (policies bypassed) or Software, and why (cli/sriov.py)."""
    from pyvswitch.cli.sriov import iov_path  # with the cmdlet framework: not for the other verbs

    port = c.port(name)
    if port.get("kind") == "vm":
        port["iov"] = iov_path(c, name)
    return port


port_group = crud_group(
    "port",
    "Ports: VM adapters, host vNICs, uplinks, bound interfaces and TAPs.",
    noun="port",
    names_path="/ports",
    read_all=Client.ports,
    read=_port_with_iov,
    delete=Client.delete_port,
    table=port_table,
    detail=port_detail,
    helps=(
        "List ports.",
        "Show port NAME.",
        "Remove port NAME (an uplink goes with its switch's uplink setting instead).",
    ),
    list_filters=(
        click.option("--switch", "switch", metavar="SW", help="Only ports of this switch."),
        click.option("--vm", metavar="VM", help="Only adapters of this VM."),
    ),
)


@port_group.command("add")
@click.argument("name")
@click.option("--interface", metavar="IF", help="Bind an existing interface (a NIC, a veth end, a tap).")
@click.option("--tap", metavar="IF", help="A TAP device the switch creates and owns.")
@click.option("--switch", "switch", metavar="SW", required=True, help="The switch to connect it to.")
@click.option("--vlan", metavar="SPEC", callback=vlan_option_callback, help=VLAN_HELP)
@may_exist_flag
@json_flag
@pass_state
def port_add(
    state: State,
    name: str,
    interface: str | None,
    tap: str | None,
    switch: str,
    vlan: JsonObj | None,
    may_exist: bool,
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
        emit(state, created(lambda: c.add_port(body), lambda: c.port(name), may_exist), port_detail)


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
@click.option(
    "--virtual-subnet-id",
    "vsid",
    type=int,
    metavar="VSID",
    help="Put a VM port on virtual subnet VSID (4096-16777215; 0 = none): Set-VMNetworkAdapter -VirtualSubnetId.",
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
    vsid: int | None,
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
    if vsid is not None:
        changes["virtual_subnet_id"] = vsid
    if not changes:
        raise click.UsageError(
            "nothing to change: give --vlan, --switch, --disconnect, --ip, a security option "
            "(--mac-spoofing, --dhcp-guard, --router-guard, --allow-teaming, --storm-limit, "
            "--ieee-priority-tag, --mac-limit) or a bandwidth option (--max-bandwidth, --min-weight, --min-absolute, "
            "--link-speed) or --virtual-subnet-id"
        )
    with state.client() as c:
        emit(state, c.update_port(name, changes), port_detail)


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
        emit(state, c.fdb(switch), fdb_table)


@click.command("counters")
@click.option("--switch", "switch", metavar="SW", help="Only this switch.")
@json_flag
@pass_state
def counters_cmd(state: State, switch: str | None) -> None:
    """Per-port frame and byte counters and drops by reason."""
    with state.client() as c:
        emit(state, c.counters(switch), counters_text)


SHOW_OBJECTS = ("drops", "config", "switch", "switches", "vm", "vms", "port", "ports", "failed")


@click.command("show")
@click.argument("obj", metavar="[OBJECT]", required=False, type=click.Choice(SHOW_OBJECTS))
@click.argument("name", required=False)
@json_flag
@pass_state
def show_cmd(state: State, obj: str | None, name: str | None) -> None:
    """Show the whole configuration, or one OBJECT: switch|vm|port NAME, or switches|vms|ports|failed|drops.

    ``drops``: every drop counter by switch, element or port and reason, largest first. With --json and no
    OBJECT this is the daemon's HostConfig exactly (GET /v1/config). ``failed``: stored
    objects that did not validate at start-up and are not running (also listed under the configuration).
    """
    obj = obj or "config"
    single = obj in ("switch", "vm", "port")
    if single and name is None:
        raise click.UsageError(f"show {obj} needs a NAME")
    if not single and name is not None:
        raise click.UsageError(f"show {obj} takes no NAME")
    with state.client() as c:
        if obj == "config":
            failed = [] if state.json else list(c.request("GET", "/failed"))
            emit(state, c.config(), config_text)
            if failed:
                click.echo("\nFailed (stored, not running)\n" + failed_table(failed))
        elif obj == "failed":
            emit(state, list(c.request("GET", "/failed")), failed_table)
        elif obj == "switch":
            emit(state, c.switch(str(name)), switch_detail)
        elif obj == "switches":
            emit(state, c.switches(), switch_table)
        elif obj == "vm":
            emit(state, c.vm(str(name)), vm_detail)
        elif obj == "vms":
            emit(state, c.vms(), vm_table)
        elif obj == "port":
            emit(state, c.port(str(name)), port_detail)
        elif obj == "drops":
            rows = drop_rows(dict(c.request("GET", "/counters")))
            if state.json:
                keys = ("switch", "where", "reason", "count", "description")
                echo_json([dict(zip(keys, r, strict=True)) for r in rows])
            else:
                click.echo(
                    table(["switch", "where", "reason", "count", "meaning"], rows) if rows else "no drops"
                )
        else:
            emit(state, c.ports(), port_table)


def failed_table(rows: Any) -> str:
    return (
        table(["kind", "name", "error"], [[r.get("kind"), r.get("name"), r.get("error")] for r in rows])
        if rows
        else "no failed objects"
    )


# ---------------------------------------------------------------- lab


def _need_lab_extra(what: str) -> None:
    """The lab's tables need rich, an optional dependency (pyproject's ``lab`` extra): say how to get it."""
    try:
        import rich  # noqa: F401
    except ImportError:
        raise click.ClickException(
            f"pyvswitch {what} needs the lab extra: pip install 'pyvswitch[lab]'"
        ) from None


@click.command("demo")
@click.option("--keep", is_flag=True, help="Leave the demo host running and print how to remove it.")
@json_flag
@pass_state
def demo_cmd(state: State, keep: bool) -> int:
    """Build a small Hyper-V-style host with real namespaces, show it, send traffic (needs root). With --json
    the show goes to stderr and stdout gets {"passed", "exit_code"}."""
    _need_lab_extra("demo")
    from pyvswitch.lab.demo import run_demo

    if not state.json:
        return run_demo(keep=keep)
    from rich.console import Console

    code = run_demo(keep=keep, console=Console(stderr=True))
    echo_json({"passed": code == 0, "exit_code": code})
    return code


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
    _need_lab_extra("bench")
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
