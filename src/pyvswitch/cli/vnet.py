"""Virtual subnets from the command line (issue 13): ``pyvswitch vnet status|records|hosts|record-add|record-del|
routes|route-add|route-del`` and Windows' HNV cmdlets, ``Get-/New-/Remove-NetVirtualizationLookupRecord``,
``Get-/New-/Set-/Remove-NetVirtualizationCustomerRoute`` and ``Get-NetVirtualizationProviderAddress``, over
/v1/cluster and /v1/vnet (daemon/api/vnet.py).

Customer routes put virtual subnets in a routing domain (a GUID) and say which prefix is on which subnet; the
hosts then route between them (datapath/distributed_router.py): a VM's default gateway is the first address of
its subnet's on-link prefix.

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
from pyvswitch.cli.verbkit import State, json_flag, pass_state, removed

_VSID = (4096, 16_777_215)


def _records(client: Client, vsid: int | None) -> list[JsonObj]:
    params = {"virtual_subnet_id": str(vsid)} if vsid is not None else None
    return list(client.request("GET", "/vnet/lookup-records", params=params))


def _add(client: Client, vsid: int, ca: str, mac: str, pa: str) -> JsonObj:
    body = {"virtual_subnet_id": vsid, "customer_address": ca, "mac_address": mac, "provider_address": pa}
    return dict(client.request("POST", "/vnet/lookup-records", json=body))


def _remove(client: Client, vsid: int, ca: str) -> None:
    client.request("DELETE", f"/vnet/lookup-records/{vsid}/{quote(ca, safe='')}")


def _routes(client: Client, rdid: str | None = None, vsid: int | None = None) -> list[JsonObj]:
    params = {
        k: str(v) for k, v in (("routing_domain_id", rdid), ("virtual_subnet_id", vsid)) if v is not None
    }
    return list(client.request("GET", "/vnet/customer-routes", params=params or None))


def _add_route(client: Client, rdid: str, vsid: int, prefix: str, next_hop: str, metric: int) -> JsonObj:
    body = {"routing_domain_id": rdid, "virtual_subnet_id": vsid, "destination_prefix": prefix,
            "next_hop": next_hop, "metric": metric}  # fmt: skip
    return dict(client.request("POST", "/vnet/customer-routes", json=body))


def _remove_route(client: Client, rdid: str, vsid: int, prefix: str) -> None:
    params = {"routing_domain_id": rdid, "virtual_subnet_id": str(vsid), "destination_prefix": prefix}
    client.request("DELETE", "/vnet/customer-routes", params=params)


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
@json_flag
@pass_state
def vnet_record_del(state: State, vsid: int, customer_address: str) -> None:
    """Remove a lookup record."""
    with state.client() as c:
        _remove(c, vsid, customer_address)
    removed(state, f"lookup record of VSID {vsid}", customer_address)


@vnet_group.command("routes")
@click.option("--rdid", default=None, help="Only this routing domain (a GUID).")
@click.option("--vsid", type=click.IntRange(*_VSID), default=None, help="Only this virtual subnet.")
@json_flag
@pass_state
def vnet_routes(state: State, rdid: str | None, vsid: int | None) -> None:
    """Customer routes: which prefix of a routing domain is on which virtual subnet, and the gateway there."""
    with state.client() as c:
        routes = _routes(c, rdid, vsid)
    if state.json:
        echo_json(routes)
        return
    rows = [[r["routing_domain_id"], r["virtual_subnet_id"], r["destination_prefix"], r["next_hop"], r["metric"],
             r["gateway_address"] or "-"] for r in routes]  # fmt: skip
    click.echo(table(["ROUTING DOMAIN", "VSID", "PREFIX", "NEXT HOP", "METRIC", "GATEWAY"], rows))


@vnet_group.command("route-add")
@click.argument("rdid")
@click.argument("vsid", type=click.IntRange(*_VSID))
@click.argument("prefix")
@click.option(
    "--next-hop", default="0.0.0.0", show_default=True, help="0.0.0.0: on-link (the subnet itself)."
)
@click.option("--metric", type=click.IntRange(0, 2**32 - 1), default=256, show_default=True)
@json_flag
@pass_state
def vnet_route_add(state: State, rdid: str, vsid: int, prefix: str, next_hop: str, metric: int) -> None:
    """Put PREFIX on virtual subnet VSID in routing domain RDID (replaces the same route's metric)."""
    with state.client() as c:
        out = _add_route(c, rdid, vsid, prefix, next_hop, metric)
    if state.json:
        echo_json(out)


@vnet_group.command("route-del")
@click.argument("rdid")
@click.argument("vsid", type=click.IntRange(*_VSID))
@click.argument("prefix")
@json_flag
@pass_state
def vnet_route_del(state: State, rdid: str, vsid: int, prefix: str) -> None:
    """Remove a customer route."""
    with state.client() as c:
        _remove_route(c, rdid, vsid, prefix)
    removed(state, f"customer route of VSID {vsid}", prefix)


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


def _print_routes(s: Session, routes: list[JsonObj]) -> None:
    if s.json:
        echo_json(routes)
        return
    headers = ["RoutingDomainID", "VirtualSubnetID", "DestinationPrefix", "NextHop", "Metric"]
    rows = [[r["routing_domain_id"], r["virtual_subnet_id"], r["destination_prefix"], r["next_hop"], r["metric"]]
            for r in routes]  # fmt: skip
    click.echo(ps_table(headers, rows))


def _matching_routes(a: Args, s: Session) -> list[JsonObj]:
    prefix, hop = a.text("DestinationPrefix"), a.text("NextHop")
    return [
        r
        for r in _routes(s.client, a.text("RoutingDomainID"), a.number("VirtualSubnetID"))
        if (prefix is None or r["destination_prefix"] == prefix) and (hop is None or r["next_hop"] == hop)
    ]


def get_customer_route(a: Args, s: Session) -> None:
    _print_routes(s, _matching_routes(a, s))


def new_customer_route(a: Args, s: Session) -> None:
    rdid, vsid, prefix, hop = (a.text("RoutingDomainID"), a.number("VirtualSubnetID"), a.text("DestinationPrefix"),
                               a.text("NextHop"))  # fmt: skip
    assert rdid is not None and vsid is not None and prefix is not None and hop is not None  # mandatory
    metric = a.number("Metric")
    _print_routes(s, [_add_route(s.client, rdid, vsid, prefix, hop, 256 if metric is None else metric)])


def set_customer_route(a: Args, s: Session) -> None:
    """Set-NetVirtualizationCustomerRoute: a new metric for every route that matches."""
    metric = a.number("Metric")
    changed = [
        _add_route(s.client, str(r["routing_domain_id"]), int(r["virtual_subnet_id"]), str(r["destination_prefix"]),
                   str(r["next_hop"]), int(r["metric"]) if metric is None else metric)
        for r in _matching_routes(a, s)
    ]  # fmt: skip
    if a.flag("PassThru"):
        _print_routes(s, changed)


def remove_customer_route(a: Args, s: Session) -> None:
    for r in _matching_routes(a, s):
        _remove_route(s.client, str(r["routing_domain_id"]), int(r["virtual_subnet_id"]),
                      str(r["destination_prefix"]))  # fmt: skip


_ROUTE_FILTERS = (
    Param("RoutingDomainID"),
    Param("VirtualSubnetID", PType.UINT32, range=_VSID),
    Param("DestinationPrefix"),
    Param("NextHop"),
)

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
        "Get-NetVirtualizationCustomerRoute",
        _ROUTE_FILTERS,
        get_customer_route,
        "List the cluster's customer routes (which prefix of a routing domain is on which virtual subnet).",
    ),
    Cmdlet(
        "New-NetVirtualizationCustomerRoute",
        (
            Param("RoutingDomainID", mandatory=True),
            Param("VirtualSubnetID", PType.UINT32, mandatory=True, range=_VSID),
            Param("DestinationPrefix", mandatory=True),
            Param("NextHop", mandatory=True),
            Param("Metric", PType.UINT32),
        ),
        new_customer_route,
        "Add a customer route: the hosts route between the virtual subnets of its routing domain.",
        "NextHop 0.0.0.0: the prefix is on the subnet itself (on-link); its first address is the VMs'\n"
        "default gateway, answered by every host. Another next hop: a customer address on that subnet\n"
        "(a gateway VM) that the prefix is reached through.",
    ),
    Cmdlet(
        "Set-NetVirtualizationCustomerRoute",
        (*_ROUTE_FILTERS, Param("Metric", PType.UINT32), Param("PassThru", PType.SWITCH)),
        set_customer_route,
        "Change the metric of customer routes (every one that matches).",
    ),
    Cmdlet(
        "Remove-NetVirtualizationCustomerRoute",
        _ROUTE_FILTERS,
        remove_customer_route,
        "Remove customer routes (every one that matches).",
    ),
    Cmdlet(
        "Get-NetVirtualizationProviderAddress",
        (),
        get_provider_address,
        "List the cluster's hosts and their provider addresses.",
    ),
)
