"""The kernel vxlan datapath's FDB (issue 13 item 3, datapath/kernel_vxlan.py): exactly the records of one
subnet (a remote MAC -> its provider address) plus one all-zeros entry per other host of the subnet, which is
how the kernel replicates broadcast; nothing of another subnet."""

from __future__ import annotations

from pyvswitch.config.schema import HostConfig, PortConfig, PortKind, SwitchConfig, SwitchType
from pyvswitch.daemon.tunnels import TUNNEL_PORT, with_tunnel
from pyvswitch.datapath.kernel_vxlan import ZERO_MAC, device_name, fdb_of, mac_text
from pyvswitch.datapath.tunnel import TunnelTables


def test_fdb_is_the_subnets_remote_macs_and_one_flood_entry_per_other_host() -> None:
    tables = TunnelTables(
        unicast={(5001, 0x02155D000001): "10.91.0.2", (5001, 0x02155D000002): "10.91.0.3",
                 (6001, 0x02155D000009): "10.91.0.2"},
        flood={5001: ("10.91.0.2", "10.91.0.3"), 6001: ("10.91.0.2",)},
    )  # fmt: skip
    assert fdb_of(tables, 5001) == {
        ("02:15:5d:00:00:01", "10.91.0.2"),
        ("02:15:5d:00:00:02", "10.91.0.3"),
        (ZERO_MAC, "10.91.0.2"),
        (ZERO_MAC, "10.91.0.3"),
    }
    assert fdb_of(tables, 6001) == {("02:15:5d:00:00:09", "10.91.0.2"), (ZERO_MAC, "10.91.0.2")}
    assert fdb_of(tables, 7001) == set()  # a subnet no other host has: nothing leaves
    assert mac_text(0x0A0B0C0D0E0F) == "0a:0b:0c:0d:0e:0f"
    assert device_name(16777215) == "pvx16777215" and len(device_name(16777215)) <= 15


def test_the_tunnel_port_names_its_datapath_after_the_provider_address() -> None:
    cfg = HostConfig(
        switches=[SwitchConfig(name="sw", type=SwitchType.PRIVATE)],
        ports=[
            PortConfig(
                name="vm-eth0",
                kind=PortKind.VM,
                vm="vm",
                switch="sw",
                interface="pvm0",
                virtual_subnet_id=5001,
            )
        ],
    )
    kernel = next(p for p in with_tunnel(cfg, "10.91.0.1", "kernel").ports if p.name == TUNNEL_PORT)
    python = next(p for p in with_tunnel(cfg, "10.91.0.1").ports if p.name == TUNNEL_PORT)
    assert (kernel.interface, python.interface) == ("10.91.0.1,kernel", "10.91.0.1")
