"""The VXLAN tunnel of a cluster host (issue 13 item 3): the tunnel port the engine runs beside the virtual subnets'
VM ports, and its tables, kept in step with the cluster agent's views.

The port is not configuration: ``with_tunnel`` adds it to what the engine runs (``Service._engine_view``) on the
switch that carries the host's virtual subnets, bound to the provider address. Its tables (which provider
address has which MAC, which hosts share each subnet, the addresses ARP is answered for) come from the lookup
records: ``Tunnels.refresh`` rebuilds them after each commit and each change the agent's watches bring, and
hands them to the forwarder, which swaps them in whole.
"""

from __future__ import annotations

import ipaddress
import logging
import threading
import time
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

from pyvswitch.cluster.records import CustomerRoute, router_mac
from pyvswitch.config.schema import HostConfig, PortConfig, PortKind
from pyvswitch.datapath.distributed_router import Route, RouterTables
from pyvswitch.datapath.tunnel import TunnelTables
from pyvswitch.packet.mac import parse_mac

if TYPE_CHECKING:  # the agent (and etcd's HTTP client) is imported only in cluster mode, by pyvswitchd
    from pyvswitch.cluster.agent import ClusterAgent, SubnetView

log = logging.getLogger(__name__)

TUNNEL_PORT = "vxlan0"
# Tables handed over by prepare() (a live migration's validation) are fresh enough for the port its adoption
# opens for this long; the commit refreshes them right after the port runs anyway.
PREPARED_FRESH_S = 10.0


def tunnel_switch(cfg: HostConfig) -> str | None:
    """The switch of the host's virtual subnets (config validation keeps them on one)."""
    return next(
        (p.switch for p in cfg.ports if p.kind is PortKind.VM and p.virtual_subnet_id and p.switch), None
    )


def with_tunnel(cfg: HostConfig, provider_address: str, datapath: str = "python") -> HostConfig:
    """``cfg`` plus the tunnel port, if a VM port is on a virtual subnet. ``datapath``: "python" (datapath/
    tunnel.py) or "kernel" (kernel vxlan devices, datapath/kernel_vxlan.py), told to ``open_device`` after the
    provider address."""
    switch = tunnel_switch(cfg)
    if switch is None:
        return cfg
    # Not an interface name, so set past validation (the port is the daemon's, never the user's configuration).
    interface = tunnel_interface(provider_address, datapath)
    port = PortConfig(name=TUNNEL_PORT, kind=PortKind.TUNNEL, switch=switch).model_copy(
        update={"interface": interface}
    )
    return cfg.model_copy(update={"ports": [*cfg.ports, port]})


def tunnel_interface(provider_address: str, datapath: str = "python") -> str:
    """What the tunnel port is bound to: the provider address, then the datapath unless it is the Python one."""
    return provider_address if datapath == "python" else f"{provider_address},{datapath}"


def tables_of(
    views: dict[int, SubnetView], provider_address: str, routes: Iterable[CustomerRoute] = ()
) -> TunnelTables:
    """What the tunnel needs of the records: every record elsewhere (another provider address) by MAC and, for
    IPv4, by address; the other hosts of each subnet; and the distributed router's tables (``router_of``)."""
    unicast: dict[tuple[int, int], str] = {}
    arp: dict[tuple[int, bytes], int] = {}
    flood: dict[int, tuple[str, ...]] = {}
    local: set[tuple[int, bytes]] = set()
    hosts: dict[tuple[int, bytes], tuple[int, str | None]] = {}
    for vsid, view in views.items():
        for rec in view.records.values():
            ip = ipaddress.ip_address(rec.customer_address)
            v4 = (vsid, ip.packed) if ip.version == 4 else None  # ARP is IPv4's
            mac = parse_mac(rec.customer_mac)
            here = rec.provider_address == provider_address
            if v4 is not None:
                hosts[v4] = (mac, None if here else rec.provider_address)
            if here:
                if v4 is not None:
                    local.add(v4)
                continue
            unicast[(vsid, mac)] = rec.provider_address
            if v4 is not None:
                arp[v4] = mac
        flood[vsid] = tuple(
            sorted(
                {h.provider_address for h in view.hosts.values() if h.provider_address != provider_address}
            )
        )
    router = router_of(routes, hosts)
    # A routed frame arrives with its destination subnet's VNI from any host of the routing domain.
    domain_hosts: dict[str, set[str]] = {}
    for vsid, rdid in router.rdid_of.items():
        domain_hosts.setdefault(rdid, set()).update(flood.get(vsid, ()))
    routed_peers = {v: tuple(sorted(domain_hosts[d])) for v, d in router.rdid_of.items()}
    return TunnelTables(unicast, flood, arp, frozenset(local), router, routed_peers)


def router_of(
    routes: Iterable[CustomerRoute], hosts: Mapping[tuple[int, bytes], tuple[int, str | None]]
) -> RouterTables:
    """The distributed router's tables for ``routes`` and the IPv4 records ``hosts`` ((VSID, address) -> (MAC,
    provider address or None here)). A subnet named by routes of two domains (the API refuses it) stays in the
    first by RDID order."""
    rdid_of: dict[int, str] = {}
    by_rdid: dict[str, list[Route]] = {}
    gateways: dict[tuple[int, bytes], int] = {}
    for r in sorted(routes, key=lambda r: (r.rdid, r.vsid, r.destination_prefix)):
        if rdid_of.setdefault(r.vsid, r.rdid) != r.rdid:
            continue
        net = ipaddress.IPv4Network(r.destination_prefix)
        hop = None if r.on_link else ipaddress.IPv4Address(r.next_hop).packed
        by_rdid.setdefault(r.rdid, []).append(
            Route(int(net.network_address), int(net.netmask), net.prefixlen, r.vsid, hop, r.metric)
        )
        gw = r.gateway_address
        if gw is not None:
            key = (r.vsid, ipaddress.IPv4Address(gw).packed)
            if key not in hosts:  # an address a VM has (a gateway VM) is that VM's, not the router's
                gateways[key] = router_mac(r.rdid)
    ordered = {
        rdid: tuple(sorted(rs, key=lambda x: (-x.prefixlen, x.metric, x.vsid)))
        for rdid, rs in by_rdid.items()
    }
    macs = {vsid: router_mac(rdid) for vsid, rdid in rdid_of.items()}
    return RouterTables(rdid_of, macs, ordered, gateways, dict(hosts))


class Tunnels:
    """Keeps the forwarder's tunnel tables equal to the agent's views (``engine.set_tunnel_tables``)."""

    def __init__(self, agent: ClusterAgent, engine: object, datapath: str = "python") -> None:
        self.agent = agent
        self.engine = engine
        self.datapath = datapath  # which tunnel device the port opens (with_tunnel)
        self.active = False  # whether the running configuration has a tunnel port
        self.pushes = 0
        self._lock = threading.Lock()
        self._prepared_at = -PREPARED_FRESH_S  # when prepare() last handed the engine tables (monotonic)

    def configured(self, cfg: HostConfig) -> None:
        """After a commit: the tunnel port exists (or not) as ``cfg`` says, and has the newest tables."""
        self.active = tunnel_switch(cfg) is not None
        self.refresh()

    def staged(self, cfg: HostConfig) -> None:
        """Before a commit whose ``cfg`` makes the tunnel port: the engine is handed the tables now and gives them
        to the port it opens, which so never forwards with empty ones (a VM arriving by live migration asks ARP
        at once: unanswered, it waits 1 s for its retry)."""
        if self.active or tunnel_switch(cfg) is None:
            return
        if (
            time.monotonic() - self._prepared_at > PREPARED_FRESH_S
        ):  # else prepare() has just handed them over
            self._push()

    def prepare(self, vsids: Iterable[int]) -> None:
        """A VM of these subnets is about to arrive (a live migration's destination validates; the agent has their
        views): the forwarder makes the tunnel's device for them now, with the tables, so the adoption only
        connects it (daemon/migration.py)."""
        with self._lock:
            tables = tables_of(
                self.agent.subnets(), self.agent.host.provider_address, self.agent.customer_routes()
            )
            self.engine.set_tunnel_tables(TUNNEL_PORT, tables)  # type: ignore[attr-defined]
            interface = tunnel_interface(self.agent.host.provider_address, self.datapath)
            self.engine.prepare_tunnel(TUNNEL_PORT, interface, sorted(vsids))  # type: ignore[attr-defined]
            self._prepared_at = time.monotonic()

    def refresh(self, vsid: int | None = None) -> None:
        if self.active:
            self._push()

    def _push(self) -> None:
        with self._lock:  # watch threads and commits: one table at a time, the newest last
            tables = tables_of(
                self.agent.subnets(), self.agent.host.provider_address, self.agent.customer_routes()
            )
            try:
                self.engine.set_tunnel_tables(TUNNEL_PORT, tables)  # type: ignore[attr-defined]
                self.pushes += 1
            except Exception as exc:  # the forwarder restarting: the next commit or change pushes again
                log.warning("cannot update the tunnel's tables: %s", exc)
