"""Which lookup records a host's configuration asks for (issue 13 item 2): one per address of each connected VM
port with a virtual subnet id and a MAC, pointing at this host's provider address."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from pyvswitch.cluster.records import HostInfo, LookupRecord
from pyvswitch.config.schema import HostConfig, PortConfig, PortKind


def port_records(cfg: HostConfig, host: HostInfo) -> list[LookupRecord]:
    return records_of(cfg.ports, host)


def records_of(ports: Iterable[PortConfig], host: HostInfo) -> list[LookupRecord]:
    """The records of ``ports`` (a configuration's, or a VM's arriving by live migration) on ``host``."""
    out = []
    for p in ports:
        if p.kind is not PortKind.VM or not p.virtual_subnet_id or p.switch is None or p.mac is None:
            continue
        for cidr in p.ip:
            ca = str(ipaddress.ip_interface(cidr).ip)
            out.append(
                LookupRecord(
                    p.virtual_subnet_id,
                    ca,
                    p.mac,
                    host.provider_address,
                    host=host.name,
                    vm=p.vm,
                    port=p.name,
                )
            )
    return out
