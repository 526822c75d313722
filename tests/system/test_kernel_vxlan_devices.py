"""The kernel vxlan datapath's devices (datapath/kernel_vxlan.py) in a namespace of their own: one device per
subnet with a port here, read through a full ring and polled; one per subnet this host only routes to (customer
routes, datapath/distributed_router.py), send-only with a one-block ring and not polled; a routed-to subnet that
gains a port here gets the full device; devices go with their subnet and with the port."""

from __future__ import annotations

import json
import subprocess
import sys

from pyvswitch.testing.netns import NetnsPool, sh

SCRIPT = r"""
import json, sys
from pyvswitch.cluster.records import CustomerRoute
from pyvswitch.daemon.tunnels import router_of
from pyvswitch.datapath.kernel_vxlan import KernelVxlanTunnel
from pyvswitch.datapath.tunnel import TunnelTables

RD = "{0000000B-0000-0000-0000-000000000001}"
routes = [CustomerRoute(RD, 5201, "10.1.0.0/24"), CustomerRoute(RD, 5202, "10.2.0.0/24"),
          CustomerRoute(RD, 5203, "10.3.0.0/24")]
tables = TunnelTables(flood={5201: ("10.99.0.2",), 5202: ("10.99.0.2",), 5203: ("10.99.0.2",)},
                      router=router_of(routes, {}))
t = KernelVxlanTunnel("vx", "10.99.0.1")
steps = []

def state():
    return {"devices": sorted(t._subs), "send_only": sorted(t._send_only), "polled": sorted(t._polled),
            "read": sorted(t.vsid_of[c] for _, c in t._read),
            "rx_frames": {v: d.ring.rx_frames for v, d in t._subs.items()}}

t.set_codes({5201: 1})
t.set_tables(tables)
steps.append(state())
t.set_codes({5201: 1, 5202: 2})  # a VM of 5202 arrives here
steps.append(state())
t.set_tables(TunnelTables(flood=tables.flood, router=router_of(routes[:2], {})))  # 5203's route removed
steps.append(state())
t.close()
print(json.dumps(steps))
"""


def test_send_only_devices_for_routed_subnets_and_full_ones_for_local_ports(pool: NetnsPool) -> None:
    ns = pool.netns("pvk")
    sh("ip", "link", "add", "pa0", "type", "veth", "peer", "name", "pa1", netns=ns)  # no dummy driver here
    sh("ip", "addr", "add", "10.99.0.1/24", "dev", "pa0", netns=ns)
    sh("ip", "link", "set", "pa0", "up", netns=ns)
    res = subprocess.run(["ip", "netns", "exec", ns, sys.executable, "-c", SCRIPT],
                         capture_output=True, text=True, timeout=60)  # fmt: skip
    assert res.returncode == 0, res.stderr[-2000:]
    first, second, third = json.loads(res.stdout.strip().splitlines()[-1])
    assert first["devices"] == [5201, 5202, 5203] and first["send_only"] == [5202, 5203]
    assert first["polled"] == [5201] and first["read"] == [5201]
    assert first["rx_frames"]["5202"] < first["rx_frames"]["5201"]
    # 5202 got a port: its device is a full one now, read and polled.
    assert (
        second["send_only"] == [5203] and second["polled"] == [5201, 5202] and second["read"] == [5201, 5202]
    )
    assert second["rx_frames"]["5202"] == second["rx_frames"]["5201"]
    assert third["devices"] == [5201, 5202]  # no route to 5203 any more: its device went
    links = sh("ip", "-br", "link", netns=ns)
    assert "pvx52" not in links, links  # and close() removed the rest
