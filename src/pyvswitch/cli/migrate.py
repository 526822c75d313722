"""Live migration from the command line: ``pyvswitch migrate VM --to HOST`` and ``Move-VM -Name VM
-DestinationHost HOST``, both ``POST /v1/migrations`` on the source daemon (daemon/migration.py).

HOST is a lab host name (``pyvswitch lab up``; resolved here, in the lab's registry, to the destination daemon's
API socket, which is sent with the name: the daemon knows no lab) or the destination daemon's socket path. The answer's timings are printed: validation on the destination, the blackout
(from taking the ports off the source switch to the destination having them), and the total.

Like ``cli.sriov`` it stands on both front ends' floors (``cli.verbkit``, ``cli.cmdlet``).
"""

from __future__ import annotations

from typing import Any

import click

from pyvswitch.cli.client import Client, JsonObj
from pyvswitch.cli.cmdlet.framework import Args, Cmdlet, Param, Session
from pyvswitch.cli.format import echo_json, ps_table
from pyvswitch.cli.verbkit import State, json_flag, pass_state


def migrate_vm(client: Client, vm: str, to: str) -> JsonObj:
    body = {"vm": vm, "to": to}
    if not to.startswith("/"):
        from pyvswitch.lab.hosts import LabError, lookup_host  # the lab's registry (pyroute2): only here

        try:
            body["socket"] = str(lookup_host(to).socket)
        except LabError:
            pass  # no lab, or not one of its hosts: the daemon answers which host it cannot reach
    return dict(client.request("POST", "/migrations", json=body))


def _ms(out: JsonObj, key: str) -> str:
    value: Any = (out.get("timings") or {}).get(key)
    return "-" if value is None else f"{float(value) * 1000:.1f}"


def summary(out: JsonObj) -> str:
    return (
        f"migrated {out['vm']} to {out['to']}: validation {_ms(out, 'validation_s')} ms, "
        f"blackout {_ms(out, 'blackout_s')} ms, total {_ms(out, 'total_s')} ms"
    )


@click.command("migrate")
@click.argument("vm")
@click.option("--to", "to", required=True, metavar="HOST", help="Lab host name or the destination's socket.")
@json_flag
@pass_state
def migrate_command(state: State, vm: str, to: str) -> None:
    """Live-migrate VM's network adapters to another host (validated there first; a veto changes nothing)."""
    with state.client() as c:
        out = migrate_vm(c, vm, to)
    if state.json:
        echo_json(out)
    else:
        click.echo(summary(out))


def move_vm(a: Args, s: Session) -> None:
    name, to = a.text("Name"), a.text("DestinationHost")
    assert name is not None and to is not None  # mandatory
    out = migrate_vm(s.client, name, to)
    if s.json:
        echo_json(out)
        return
    row = {
        "VMName": out["vm"],
        "DestinationHost": out["to"],
        "ValidationMs": _ms(out, "validation_s"),
        "BlackoutMs": _ms(out, "blackout_s"),
        "TotalMs": _ms(out, "total_s"),
    }
    click.echo(ps_table(list(row), [list(row.values())]))


# Move-VM, gathered by ``cli.cmdlets``.

CMDLETS: tuple[Cmdlet, ...] = (
    Cmdlet(
        "Move-VM",
        (
            Param("Name", position=0, mandatory=True, aliases=("VMName",)),
            Param("DestinationHost", position=1, mandatory=True, aliases=("ComputerName",)),
        ),
        move_vm,
        "Live-migrate a VM's network adapters (policies, extension state) to another host.",
        "-DestinationHost is a lab host name or the destination pyvswitchd's socket path.\n"
        "The destination validates first (its extensions may veto); then the VM's interface moves,\n"
        "its MAC is announced on the destination's uplink, and the blackout is printed.",
    ),
)
