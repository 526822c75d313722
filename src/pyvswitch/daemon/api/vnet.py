"""Cluster and virtual subnet routes (issue 13): /v1/cluster (this host's membership) and /v1/vnet/* (lookup
records, customer routes and provider addresses: Get-/New-/Remove-NetVirtualizationLookupRecord,
Get-/New-/Set-/Remove-NetVirtualizationCustomerRoute, Get-NetVirtualizationProviderAddress). Without
``pyvswitchd --cluster`` they answer 409, saying so."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Response

from pyvswitch.cluster.records import ENCAP, CustomerRoute, LookupRecord, RecordError, check_rdid, check_vsid
from pyvswitch.daemon.api.common import Request_
from pyvswitch.daemon.service import Service
from pyvswitch.daemon.service.errors import Conflict, NotFound
from pyvswitch.errors import ConfigError

if TYPE_CHECKING:
    from pyvswitch.cluster.agent import ClusterAgent


class LookupRecordBody(Request_):
    virtual_subnet_id: int
    customer_address: str
    mac_address: str
    provider_address: str
    rule: str = ENCAP


def _record_view(r: LookupRecord) -> dict[str, Any]:
    return {
        "virtual_subnet_id": r.vsid, "customer_address": r.customer_address, "mac_address": r.customer_mac,
        "provider_address": r.provider_address, "rule": r.rule, "host": r.host, "vm": r.vm, "port": r.port,
        "type": "Static" if r.host is None else "Dynamic",
    }  # fmt: skip


class CustomerRouteBody(Request_):
    routing_domain_id: str
    virtual_subnet_id: int
    destination_prefix: str
    next_hop: str = "0.0.0.0"
    metric: int = 256


def _route_view(r: CustomerRoute) -> dict[str, Any]:
    return {
        "routing_domain_id": r.rdid, "virtual_subnet_id": r.vsid, "destination_prefix": r.destination_prefix,
        "next_hop": r.next_hop, "metric": r.metric, "gateway_address": r.gateway_address,
    }  # fmt: skip


def _record_error(exc: RecordError) -> ConfigError:
    """A record's or route's field error, named as the API's body names it."""
    field, _, message = str(exc).partition(": ")
    field = {"customer_mac": "mac_address", "vsid": "virtual_subnet_id", "rdid": "routing_domain_id"}.get(
        field, field
    )
    return ConfigError([(field, message)])


@contextlib.contextmanager
def _answering() -> Iterator[None]:
    """A field the request got wrong: 400 naming it; etcd out of reach: 409 ``cluster``."""
    # Imported here: etcd's HTTP client (requests, etcd3gw: ~55 ms) is loaded only by a daemon that uses a cluster.
    from pyvswitch.cluster.client import ClusterError

    try:
        yield
    except RecordError as exc:
        raise _record_error(exc) from None
    except ClusterError as exc:
        raise Conflict("cluster", str(exc)) from None


def add_vnet_routes(app: FastAPI, service: Service) -> None:
    def agent() -> ClusterAgent:
        from pyvswitch.cluster.agent import ClusterAgent  # loaded on a cluster request only (see _answering)

        cluster = service.cluster
        if not isinstance(cluster, ClusterAgent):
            raise Conflict("cluster", "this host is not in a cluster (start pyvswitchd with --cluster)")
        return cluster

    def checked_vsid(vsid: int | None) -> int | None:
        return check_vsid(vsid) if vsid is not None else None  # callers answer a RecordError (_answering)

    @app.get("/v1/cluster")
    def cluster_status() -> dict[str, Any]:
        return agent().status()

    @app.get("/v1/vnet/lookup-records")
    def lookup_records(virtual_subnet_id: int | None = None) -> list[dict[str, Any]]:
        a = agent()
        with _answering():
            return [_record_view(r) for r in a.records(checked_vsid(virtual_subnet_id))]

    @app.post("/v1/vnet/lookup-records", status_code=201)
    def add_lookup_record(body: LookupRecordBody) -> dict[str, Any]:
        a = agent()
        with _answering():
            rec = LookupRecord(
                body.virtual_subnet_id, body.customer_address, body.mac_address, body.provider_address,
                rule=body.rule,
            )  # fmt: skip
            return _record_view(a.add_static_record(rec))

    @app.delete("/v1/vnet/lookup-records/{virtual_subnet_id}/{customer_address}", status_code=204)
    def remove_lookup_record(virtual_subnet_id: int, customer_address: str) -> Response:
        a = agent()
        with _answering():
            gone = a.remove_record(int(checked_vsid(virtual_subnet_id) or 0), customer_address)
        if not gone:
            raise NotFound(
                "customer_address", f"no lookup record for {customer_address} on {virtual_subnet_id}"
            )
        return Response(status_code=204)

    @app.get("/v1/vnet/provider-addresses")
    def provider_addresses() -> list[dict[str, Any]]:
        a = agent()
        with _answering():
            return [{"host": h.name, "provider_address": h.provider_address, "capabilities": list(h.capabilities)}
                    for h in a.hosts()]  # fmt: skip

    @app.get("/v1/vnet/customer-routes")
    def customer_routes(
        routing_domain_id: str | None = None, virtual_subnet_id: int | None = None
    ) -> list[dict[str, Any]]:
        a = agent()
        with _answering():
            rdid = check_rdid(routing_domain_id) if routing_domain_id is not None else None
            vsid = checked_vsid(virtual_subnet_id)
            return [
                _route_view(r)
                for r in a.routes()
                if (rdid is None or r.rdid == rdid) and (vsid is None or r.vsid == vsid)
            ]

    @app.post("/v1/vnet/customer-routes", status_code=201)
    def add_customer_route(body: CustomerRouteBody) -> dict[str, Any]:
        """Add a route, or replace the one with the same domain, subnet and prefix (Set-: a new metric)."""
        a = agent()
        with _answering():
            route = CustomerRoute(
                body.routing_domain_id, body.virtual_subnet_id, body.destination_prefix, body.next_hop,
                body.metric,
            )  # fmt: skip
            return _route_view(a.add_route(route))

    @app.delete("/v1/vnet/customer-routes", status_code=204)
    def remove_customer_route(
        routing_domain_id: str, virtual_subnet_id: int, destination_prefix: str
    ) -> Response:
        a = agent()
        with _answering():
            probe = CustomerRoute(routing_domain_id, virtual_subnet_id, destination_prefix)
            gone = a.remove_route(probe.rdid, probe.vsid, probe.destination_prefix)
        if not gone:
            raise NotFound(
                "destination_prefix",
                f"no customer route {destination_prefix} on {virtual_subnet_id} in {routing_domain_id}",
            )
        return Response(status_code=204)
