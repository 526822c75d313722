"""`pyvswitch sriov ...` and the NetAdapterSriov cmdlets: SR-IOV adapters, their VFs and each port's path.

Both front ends use the /v1/sriov routes (daemon/iov.py). A VF is the kernel switching the VM's frames (the
emulated NIC switch): ACLs, QoS, port guards and extensions do not apply to them, which ``show`` says.

It stands on both front ends' floors (``cli.verbkit``, ``cli.cmdlet``) and imports no other verb or family
module; ``port show`` (``cli.verbs``) and ``Get-VMNetworkAdapter`` (``cli.vmadapter``) read a port's path here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

import click

from pyvswitch.cli.client import ApiError, Client, JsonObj
from pyvswitch.cli.cmdlet.framework import Args, Cmdlet, Param, PType, Session
from pyvswitch.cli.cmdlet.output import show_table
from pyvswitch.cli.format import echo_json, table
from pyvswitch.cli.verbkit import State, json_flag, pass_state

ADAPTER_COLUMNS = ("Name", "Enabled", "NumVFs", "VFsInUse", "SriovSupport")
VF_COLUMNS = ("FunctionID", "Name", "VMName", "MacAddress", "VPortID")


def _seg(name: str | None) -> str:
    return quote(str(name), safe="")


def path_text(p: Mapping[str, Any]) -> str:
    """'VF 0 (policies bypassed)' or 'Software (NoVfAvailable)'."""
    if p.get("path") == "VF":
        return f"VF {p.get('vf')} (policies bypassed)"
    return f"Software ({p.get('reason')})"


def iov_path(c: Client, port: str) -> str | None:
    """`port show`'s SR-IOV line; None from a daemon without the SR-IOV routes."""
    try:
        return path_text(c.request("GET", f"/sriov/ports/{_seg(port)}"))
    except ApiError as exc:
        if exc.status == 404:
            return None
        raise


# ---- Linux-style verbs ----


@click.group("sriov")
def sriov_group() -> None:
    """SR-IOV: uplinks offering VFs (a kernel fast path that skips the switch) and ports using them."""


@sriov_group.command("enable")
@click.argument("adapter")
@click.option(
    "--vfs", "num_vfs", type=click.IntRange(0, 256), help="How many VFs the adapter offers (default 8)."
)
@json_flag
@pass_state
def sriov_enable(state: State, adapter: str, num_vfs: int | None) -> None:
    """Offer VFs on ADAPTER, an External switch's uplink (Enable-NetAdapterSriov)."""
    with state.client() as c:
        out = c.request("PUT", f"/sriov/adapters/{_seg(adapter)}", json={"enabled": True, "num_vfs": num_vfs})
    echo_json(out) if state.json else click.echo(f"SR-IOV on {adapter}: {out['num_vfs']} VFs")


@sriov_group.command("set")
@click.argument("adapter")
@click.option("--vfs", "num_vfs", type=click.IntRange(0, 256), required=True)
@json_flag
@pass_state
def sriov_set(state: State, adapter: str, num_vfs: int) -> None:
    """Change how many VFs ADAPTER offers (Set-NetAdapterSriov -NumVFs); the heaviest ports keep theirs."""
    with state.client() as c:
        out = c.request("PUT", f"/sriov/adapters/{_seg(adapter)}", json={"num_vfs": num_vfs})
    echo_json(out) if state.json else click.echo(f"SR-IOV on {adapter}: {out['num_vfs']} VFs")


@sriov_group.command("disable")
@click.argument("adapter")
@json_flag
@pass_state
def sriov_disable(state: State, adapter: str) -> None:
    """Revoke every VF of ADAPTER: its ports fall back to the switch (Disable-NetAdapterSriov)."""
    with state.client() as c:
        out = c.request("DELETE", f"/sriov/adapters/{_seg(adapter)}")
    echo_json(out) if state.json else click.echo(f"SR-IOV on {adapter}: disabled")


@sriov_group.command("show")
@click.argument("adapter", required=False)
@json_flag
@pass_state
def sriov_show(state: State, adapter: str | None) -> None:
    """Adapters, and every VM port's path: VF (policies bypassed) or Software with the reason."""
    with state.client() as c:
        adapters = [a for a in c.request("GET", "/sriov/adapters") if adapter is None or a["name"] == adapter]
        status = c.request("GET", "/sriov/status")
    ports = [p for p in status["ports"] if adapter is None or p["adapter"] == adapter]
    if state.json:
        echo_json({"adapters": adapters, "ports": ports, "transitions": status["transitions"]})
        return
    click.echo(
        table(
            ["adapter", "enabled", "VFs", "in use", "carrier"],
            [
                [a["name"], a["enabled"], a["num_vfs"], a["vfs_in_use"], "up" if a["carrier"] else "down"]
                for a in adapters
            ],
        )
    )
    if ports:
        click.echo()
        click.echo(
            table(
                ["port", "switch", "IovWeight", "path", "MAC"],
                [[p["port"], p["switch"], p["iov_weight"], path_text(p), p["mac"] or "-"] for p in ports],
            )
        )
    moves = ", ".join(f"{k} {v}" for k, v in sorted(status["transitions"].items()))
    click.echo(f"\ntransitions: {moves or 'none'}")


@sriov_group.command("weight")
@click.argument("port")
@click.argument("weight", type=click.IntRange(0, 100))
@json_flag
@pass_state
def sriov_weight(state: State, port: str, weight: int) -> None:
    """Request a VF for PORT with WEIGHT 1-100, or 0 for the software path (Set-VMNetworkAdapter -IovWeight)."""
    with state.client() as c:
        c.request("PATCH", f"/ports/{_seg(port)}", json={"iov_weight": weight})
        out = c.request("GET", f"/sriov/ports/{_seg(port)}")
    echo_json(out) if state.json else click.echo(f"{port}: {path_text(out)}")


@sriov_group.command("port")
@click.argument("port")
@json_flag
@pass_state
def sriov_port(state: State, port: str) -> None:
    """PORT's path: VF or Software, and why."""
    with state.client() as c:
        out = c.request("GET", f"/sriov/ports/{_seg(port)}")
    echo_json(out) if state.json else click.echo(f"{port}: {path_text(out)}")


@sriov_group.command("revoke")
@click.argument("port")
@click.option("--by", default="operator", help="Who revokes it (an extension's name).")
@json_flag
@pass_state
def sriov_revoke(state: State, port: str, by: str) -> None:
    """Pull PORT back onto the switch so its policies apply (a forwarding extension's VF revoke)."""
    with state.client() as c:
        out = c.request("POST", f"/sriov/ports/{_seg(port)}/revoke", json={"by": by})
    echo_json(out) if state.json else click.echo(f"{port}: {path_text(out)}")


@sriov_group.command("restore")
@click.argument("port")
@json_flag
@pass_state
def sriov_restore(state: State, port: str) -> None:
    """Undo a revoke: PORT may get a VF again."""
    with state.client() as c:
        out = c.request("POST", f"/sriov/ports/{_seg(port)}/restore")
    echo_json(out) if state.json else click.echo(f"{port}: {path_text(out)}")


# ---- cmdlets ----


def _adapter_obj(a: Mapping[str, Any]) -> JsonObj:
    return {
        "Name": a["name"],
        "Enabled": a["enabled"],
        "NumVFs": a["num_vfs"],
        "VFsInUse": a["vfs_in_use"],
        "SriovSupport": a["sriov_support"],
    }


def enable_sriov(a: Args, s: Session) -> None:
    body: dict[str, object] = {"enabled": True}
    if a.has("NumVFs"):
        body["num_vfs"] = a.number("NumVFs")
    s.client.request("PUT", f"/sriov/adapters/{_seg(a.text('Name'))}", json=body)


def disable_sriov(a: Args, s: Session) -> None:
    s.client.request("DELETE", f"/sriov/adapters/{_seg(a.text('Name'))}")


def set_sriov(a: Args, s: Session) -> None:
    body: dict[str, object] = {}
    if a.has("NumVFs"):
        body["num_vfs"] = a.number("NumVFs")
    if a.has("Enabled"):
        body["enabled"] = a.boolean("Enabled")
    s.client.request("PUT", f"/sriov/adapters/{_seg(a.text('Name'))}", json=body)


def get_sriov(a: Args, s: Session) -> None:
    name = a.text("Name")
    objs = [
        _adapter_obj(x)
        for x in s.client.request("GET", "/sriov/adapters")
        if name is None or x["name"] == name
    ]
    show_table(s, objs, ADAPTER_COLUMNS)


def get_sriov_vf(a: Args, s: Session) -> None:
    name = a.text("Name")
    params = {"adapter": name} if name else None
    objs: list[JsonObj] = [
        {
            "FunctionID": v["function_id"],
            "Name": v["adapter"],
            "VMName": v["vm"],
            "MacAddress": str(v["mac"]).replace(":", "-").upper(),
            "VPortID": (v["function_id"] or 0) + 1,
            "Port": v["port"],
        }
        for v in s.client.request("GET", "/sriov/vfs", params=params)
    ]
    show_table(s, objs, VF_COLUMNS)


def add_iov_fields(s: Session, ports: list[JsonObj], objs: list[JsonObj]) -> None:
    """Get-VMNetworkAdapter: each adapter's SR-IOV path (IovPath, e.g. 'VF 0 (policies bypassed)') and
    VirtualFunction; a daemon without the SR-IOV routes leaves them out."""
    try:
        status = s.client.request("GET", "/sriov/status")
    except ApiError as exc:
        if exc.status == 404:
            return
        raise
    by_port = {p["port"]: p for p in status.get("ports") or []}
    for port, obj in zip(ports, objs, strict=True):
        st = by_port.get(str(port.get("name")))
        obj["IovPath"] = path_text(st) if st else "Software"
        obj["VirtualFunction"] = st.get("vf") if st else None


# The NetAdapterSriov cmdlets, gathered by ``cli.cmdlets``.

_NAME = Param("Name", position=0, mandatory=True)
_VFS = Param("NumVFs", PType.UINT32, range=(0, 256))
CMDLETS: tuple[Cmdlet, ...] = (
    Cmdlet(
        "Enable-NetAdapterSriov",
        (_NAME, _VFS, Param("NoRestart", PType.SWITCH)),
        enable_sriov,
        "Offer VFs on an External switch's uplink NIC (the emulated NIC switch).",
        "-NumVFs N (default 8). Ports with -IovWeight > 0 on an IOV switch (New-VMSwitch -EnableIov $true) get one.",
    ),
    Cmdlet(
        "Disable-NetAdapterSriov",
        (_NAME, Param("NoRestart", PType.SWITCH)),
        disable_sriov,
        "Revoke every VF of the NIC: its ports fall back to the switch, connections kept.",
        "",
    ),
    Cmdlet(
        "Set-NetAdapterSriov",
        (_NAME, _VFS, Param("Enabled", PType.BOOL), Param("NoRestart", PType.SWITCH)),
        set_sriov,
        "Change how many VFs the NIC offers; the heaviest IovWeight keeps its VF when they shrink.",
        "",
    ),
    Cmdlet("Get-NetAdapterSriov", (Param("Name", position=0),), get_sriov, "SR-IOV adapters.", ""),
    Cmdlet(
        "Get-NetAdapterSriovVf",
        (Param("Name", position=0),),
        get_sriov_vf,
        "The VFs in use: function id, VM, MAC.",
        "",
    ),
)
