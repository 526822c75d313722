"""``pyvswitch lab up|down|status|exec``: several pyvswitchd hosts in namespaces on one LAN (lab/hosts.py)."""

from __future__ import annotations

import json

import click

from pyvswitch.cli.verbkit import State, json_flag, pass_state, run_in_netns
from pyvswitch.lab.hosts import Lab, LabError, list_labs

DEFAULT_LAB = "lab"


def _name(name: str | None) -> str:
    """The lab meant: the one given, else the only one up, else ``lab``."""
    if name:
        return name
    labs = list_labs()
    return labs[0] if len(labs) == 1 else DEFAULT_LAB


def _open(name: str | None) -> Lab:
    try:
        return Lab.open(_name(name))
    except LabError as exc:
        raise click.ClickException(str(exc)) from exc


@click.group("lab")
def lab_group() -> None:
    """Hosts on one machine: pyvswitchd instances in namespaces sharing a physical LAN (a Linux bridge)."""


@lab_group.command("up")
@click.option(
    "--hosts", "count", type=click.IntRange(1, 26), default=2, show_default=True, help="How many hosts."
)
@click.option("--name", metavar="LAB", default=DEFAULT_LAB, show_default=True, help="The lab's name.")
@click.option(
    "--cluster",
    is_flag=True,
    help="Also a provider network with a 3-member etcd cluster, which the hosts join (pyvswitchd --cluster).",
)
@click.option(
    "--lease-ttl",
    type=click.IntRange(1, 3600),
    default=10,
    show_default=True,
    help="With --cluster: seconds after which a silent host's registration and records expire.",
)
@json_flag
@click.pass_context
def lab_up(ctx: click.Context, count: int, name: str, cluster: bool, lease_ttl: int) -> None:
    """Create (or complete) a lab: LAN bridge, LAN host, N hosts each with pyvswitchd and an External switch."""
    lab = Lab(name)
    try:
        lab.up(count, cluster=cluster, lease_ttl_s=lease_ttl)
    except (LabError, TimeoutError) as exc:
        raise click.ClickException(
            f"{exc}\n(`pyvswitch lab down --name {name}` removes what was made)"
        ) from exc
    _print_status(ctx, lab)
    if not _json(ctx):
        first = next(iter(lab.record.hosts))
        click.echo(
            f"\nuse: pyvswitch --host {first} vm add web01 --switch ext --ip {lab.record.lan_host_ip.rsplit('.', 1)[0]}"
            f".10/24 ; pyvswitch lab exec {first} -- ip -br link ; pyvswitch lab down --name {name}"
        )


@lab_group.command("down")
@click.option("--name", metavar="LAB", help="The lab's name (default: the only one, else 'lab').")
@json_flag
@click.pass_context
def lab_down(ctx: click.Context, name: str | None) -> None:
    """Stop the lab's daemons and remove its VMs, namespaces, links, state and registry (also after a crash)."""
    lab = _open(name)
    problems = lab.down()
    if _json(ctx):
        click.echo(json.dumps({"removed": "lab", "name": lab.name, "problems": problems}, indent=2))
        return
    for p in problems:
        click.echo(f"warning: {p}", err=True)
    click.echo(f"lab {lab.name} removed" if not problems else f"lab {lab.name} removed with problems")


@lab_group.command("status")
@click.option("--name", metavar="LAB", help="The lab's name (default: the only one, else 'lab').")
@json_flag
@click.pass_context
def lab_status(ctx: click.Context, name: str | None) -> None:
    """Hosts, namespaces, sockets, whether each daemon runs, switch and VM counts."""
    _print_status(ctx, _open(name))


@lab_group.command(
    "exec", context_settings={"allow_interspersed_args": False, "ignore_unknown_options": True}
)
@click.option("--name", metavar="LAB", help="The lab's name (default: the only one, else 'lab').")
@click.argument("host")
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
@json_flag
@pass_state
def lab_exec(state: State, name: str | None, host: str, command: tuple[str, ...]) -> int:
    """Run COMMAND in HOST's namespace (or 'lan' for the LAN host): pyvswitch lab exec HOST -- CMD [ARGS]..."""
    argv = list(command)
    if argv and argv[0] == "--":
        argv = argv[1:]
    if not argv:
        raise click.UsageError("no command given (pyvswitch lab exec HOST -- CMD [ARGS]...)")
    lab = _open(name)
    if host == "lan":
        netns = lab.record.lan_host_netns
    elif host in lab.record.hosts:
        netns = lab.record.hosts[host].netns
    else:
        raise click.ClickException(
            f"lab {lab.name} has no host {host!r} (hosts: {', '.join(lab.record.hosts)}, lan)"
        )
    return run_in_netns(state, netns, argv)


def _json(ctx: click.Context) -> bool:
    return bool(getattr(ctx.obj, "json", False))


def _print_status(ctx: click.Context, lab: Lab) -> None:
    st = lab.status()
    if _json(ctx):
        click.echo(json.dumps(st, indent=2))
        return
    click.echo(
        f"lab {st['name']}: LAN bridge {st['bridge']} in {st['lan_netns']}, "
        f"LAN host {st['lan_host_ip']} ({st['lan_host_if']} in {st['lan_host_netns']})"
    )
    rows = [("host", "namespace", "daemon", "switches", "vms", "uplink", "socket")]
    for n, h in st["hosts"].items():
        daemon = f"pid {h['pid']}" if h["running"] else "DOWN"
        rows.append(
            (n, h["netns"], daemon, str(h["switches"] or 0), str(h["vms"] or 0), h["uplink"], h["socket"])
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        click.echo("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())
