"""The tunnel's tables from the lookup records (daemon/tunnels.py): remote records only, by MAC and IPv4, and
each subnet's other hosts for head-end replication; the tunnel port joins what the engine runs only when a VM
port is on a virtual subnet."""

from __future__ import annotations

import socket

from pyvswitch.cluster.agent import SubnetView
from pyvswitch.cluster.records import HostInfo, LookupRecord
from pyvswitch.config.schema import HostConfig, PortConfig, PortKind, SwitchConfig, VmConfig
from pyvswitch.daemon.tunnels import TUNNEL_PORT, tables_of, with_tunnel

ME, OTHER, THIRD = "10.91.0.1", "10.91.0.2", "10.91.0.3"


def test_tables_hold_remote_records_and_the_other_hosts() -> None:
    view = SubnetView(
        7,
        {
            "10.0.0.1": LookupRecord(5001, "10.0.0.1", "02:00:00:00:00:01", ME, host="a"),
            "10.0.0.2": LookupRecord(5001, "10.0.0.2", "02:00:00:00:00:02", OTHER, host="b"),
            "fd00::3": LookupRecord(5001, "fd00::3", "02:00:00:00:00:03", THIRD),
        },
        {"a": HostInfo("a", ME), "b": HostInfo("b", OTHER)},
    )
    t = tables_of({5001: view}, ME)
    assert t.unicast == {(5001, 0x020000000002): OTHER, (5001, 0x020000000003): THIRD}
    assert t.arp == {(5001, socket.inet_aton("10.0.0.2")): 0x020000000002}  # IPv4 only; not our own VM
    assert t.flood == {5001: (OTHER,)}
    assert t.local == {(5001, socket.inet_aton("10.0.0.1"))}  # ours: its ARP requests stay on the switch


def test_the_tunnel_port_is_added_on_the_switch_of_the_subnets_only_when_there_is_one() -> None:
    sw = SwitchConfig(name="ext")
    plain = HostConfig(
        switches=[sw], vms=[VmConfig(name="a")],
        ports=[PortConfig(name="a", kind=PortKind.VM, vm="a", switch="ext", mac="02:00:00:00:00:01")],
    )  # fmt: skip
    assert with_tunnel(plain, ME) is plain
    hnv = plain.model_copy(update={"ports": [plain.ports[0].model_copy(update={"virtual_subnet_id": 5001})]})
    tunnel = [p for p in with_tunnel(hnv, ME).ports if p.kind is PortKind.TUNNEL]
    assert [(p.name, p.switch, p.interface) for p in tunnel] == [(TUNNEL_PORT, "ext", ME)]
