"""Virtual subnets from the command line (issue 13): ``pyvswitch vnet status|records|hosts|record-add|record-del``
and Windows' HNV cmdlets, ``Get-/New-/Remove-NetVirtualizationLookupRecord`` and
``Get-NetVirtualizationProviderAddress``, over /v1/cluster and /v1/vnet (daemon/api/vnet.py).

A port joins a virtual subnet with ``port set NAME --virtual-subnet-id N`` or ``Set-VMNetworkAdapter
-VirtualSubnetId N``; its records are then published by its host (``Type Dynamic``). Records made here are
``Static``: they stay until removed, as New-NetVirtualizationLookupRecord's do.

Like ``cli.migrate`` it stands on both front ends' floors (``cli.verbkit``, ``cli.cmdlet``).
"""

from __future__ import annotations

from urllib.parse import quote

import click

from pyvswitch.cli.client import Client, JsonObj
from pyvswitch.cli.cmdlet.framework import Args, Cmdlet, Param, PType, Session
from pyvswitch.cli.format import detail, echo_json, hyperv_mac, ps_table, table
from pyvswitch.cli.verbkit import State, json_flag, pass_state

_VSID = (4096, 16_777_215)


def _records(client: Client, vsid: int | None) -> list[JsonObj]:
    params = {"virtual_subnet_id": str(vsid)} if vsid is not None else None
    return list(client.request("GET", "/vnet/lookup-records", params=params))


def _add(client: Client, vsid: int, ca: str, mac: str, pa: str) -> JsonObj:
    body = {"virtual_subnet_id": vsid, "customer_address": ca, "mac_address": mac, "provider_address": pa}
    return dict(client.request("POST", "/vnet/lookup-records", json=body))


def _remove(client: Client, vsid: int, ca: str) -> None:
    client.request("DELETE", f"/vnet/lookup-records/{vsid}/{quote(ca, safe='')}")


# ---------------------------------------------------------------- pyvswitch vnet ...


@click.group("vnet")
def vnet_group() -> None:
    """Virtual subnets across a cluster of hosts (pyvswitchd --cluster): records, hosts, this host's state."""


@vnet_group.command("status")
@json_flag
@pass_state
def vnet_status(state: State) -> None:
    """This host in the cluster: its lease, the subnets it watches, what it published."""
    with state.client() as c:
        out = dict(c.request("GET", "/cluster"))
    if state.json:
        echo_json(out)
        return
    click.echo(
        detail(
            [
                ("host", out["host"]),
                ("provider address", out["provider_address"]),
                ("etcd", ", ".join(out["endpoints"])),
                ("lease", f"{out['lease']} (TTL {out['lease_ttl_s']} s)"),
                ("published", f"{out['published']} keys, {'in sync' if out['in_sync'] else 'pending'}"),
                ("last error", out["last_error"] or "-"),
            ]
        )
    )
    rows = [[v, s["revision"], s["records"], ", ".join(s["hosts"])] for v, s in out["subnets"].items()]
    if rows:
        click.echo(table(["VSID", "REVISION", "RECORDS", "HOSTS"], rows))


@vnet_group.command("records")
@click.option("--vsid", type=click.IntRange(*_VSID), default=None, help="Only this virtual subnet.")
@json_flag
@pass_state
def vnet_records(state: State, vsid: int | None) -> None:
    """Lookup records: customer address -> MAC, provider address, host."""
    with state.client() as c:
        recs = _records(c, vsid)
    if state.json:
        echo_json(recs)
        return
    keys = (
        "virtual_subnet_id",
        "customer_address",
        "mac_address",
        "provider_address",
        "host",
        "port",
        "type",
    )
    rows = [[r[k] if r[k] is not None else "-" for k in keys] for r in recs]
    click.echo(table(["VSID", "CUSTOMER", "MAC", "PROVIDER", "HOST", "PORT", "TYPE"], rows))


@vnet_group.command("hosts")
@json_flag
@pass_state
def vnet_hosts(state: State) -> None:
    """The cluster's hosts and their provider addresses."""
    with state.client() as c:
        hosts = list(c.request("GET", "/vnet/provider-addresses"))
    if state.json:
        echo_json(hosts)
        return
    click.echo(table(["HOST", "PROVIDER ADDRESS"], [[h["host"], h["provider_address"]] for h in hosts]))


@vnet_group.command("record-add")
@click.argument("vsid", type=click.IntRange(*_VSID))
@click.argument("customer_address")
@click.option("--mac", required=True, help="The customer MAC address.")
@click.option("--provider-address", "pa", required=True, metavar="IP", help="Where the address lives.")
@json_flag
@pass_state
def vnet_record_add(state: State, vsid: int, customer_address: str, mac: str, pa: str) -> None:
    """A static lookup record (stays until removed)."""
    with state.client() as c:
        out = _add(c, vsid, customer_address, mac, pa)
    if state.json:
        echo_json(out)


@vnet_group.command("record-del")
@click.argument("vsid", type=click.IntRange(*_VSID))
@click.argument("customer_address")
@pass_state
def vnet_record_del(state: State, vsid: int, customer_address: str) -> None:
    """Remove a lookup record."""
    with state.client() as c:
        _remove(c, vsid, customer_address)


# ---------------------------------------------------------------- cmdlets


def _print_records(s: Session, recs: list[JsonObj]) -> None:
    if s.json:
        echo_json(recs)
        return
    headers = [
        "CustomerAddress",
        "VirtualSubnetID",
        "MACAddress",
        "ProviderAddress",
        "Rule",
        "Type",
        "VMName",
    ]
    rows = [
        [r["customer_address"], r["virtual_subnet_id"], hyperv_mac(r["mac_address"]), r["provider_address"],
         r["rule"], r["type"], r["vm"] or ""]
        for r in recs
    ]  # fmt: skip
    click.echo(ps_table(headers, rows))


def get_lookup_record(a: Args, s: Session) -> None:
    recs = _records(s.client, a.number("VirtualSubnetID"))
    ca = a.text("CustomerAddress")
    _print_records(s, [r for r in recs if ca is None or r["customer_address"] == ca])


def new_lookup_record(a: Args, s: Session) -> None:
    vsid, ca, mac, pa = (a.number("VirtualSubnetID"), a.text("CustomerAddress"), a.text("MACAddress"),
                         a.text("ProviderAddress"))  # fmt: skip
    assert vsid is not None and ca is not None and mac is not None and pa is not None  # mandatory
    _print_records(s, [_add(s.client, vsid, ca, mac, pa)])


def remove_lookup_record(a: Args, s: Session) -> None:
    vsid, ca = a.number("VirtualSubnetID"), a.text("CustomerAddress")
    recs = [r for r in _records(s.client, vsid) if ca is None or r["customer_address"] == ca]
    for r in recs:
        _remove(s.client, int(r["virtual_subnet_id"]), str(r["customer_address"]))


def get_provider_address(a: Args, s: Session) -> None:
    hosts = list(s.client.request("GET", "/vnet/provider-addresses"))
    if s.json:
        echo_json(hosts)
        return
    click.echo(ps_table(["ProviderAddress", "HostName"], [[h["provider_address"], h["host"]] for h in hosts]))


# The HNV cmdlets, gathered by ``cli.cmdlets``.

CMDLETS: tuple[Cmdlet, ...] = (
    Cmdlet(
        "Get-NetVirtualizationLookupRecord",
        (Param("CustomerAddress"), Param("VirtualSubnetID", PType.UINT32, range=_VSID)),
        get_lookup_record,
        "List the cluster's lookup records (customer address -> provider address).",
    ),
    Cmdlet(
        "New-NetVirtualizationLookupRecord",
        (
            Param("CustomerAddress", mandatory=True),
            Param("VirtualSubnetID", PType.UINT32, mandatory=True, range=_VSID),
            Param("MACAddress", mandatory=True),
            Param("ProviderAddress", mandatory=True),
            Param("Rule", choices=("TranslationMethodEncap",)),
            Param("VMName"),
        ),
        new_lookup_record,
        "Add a static lookup record to the cluster.",
        "Ports on a virtual subnet (Set-VMNetworkAdapter -VirtualSubnetId) publish their own records;\n"
        "a static one stays until Remove-NetVirtualizationLookupRecord.",
    ),
    Cmdlet(
        "Remove-NetVirtualizationLookupRecord",
        (Param("CustomerAddress"), Param("VirtualSubnetID", PType.UINT32, range=_VSID)),
        remove_lookup_record,
        "Remove lookup records (every one that matches).",
    ),
    Cmdlet(
        "Get-NetVirtualizationProviderAddress",
        (),
        get_provider_address,
        "List the cluster's hosts and their provider addresses.",
    ),
)
