"""LACP interop, control plane: our LACP machines negotiate with an Open vSwitch bond (lacp=active, fast) over
real veths, to collecting+distributing on both members, as OVS's own lacp/show confirms (issue 4, TM-03).

The team data path is not built yet; this drives pyvswitch.switch.lacp_port from raw AF_PACKET sockets in real
time, which is what the team will do in the forwarding loop.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import pytest

from pyvswitch.switch.lacp import ETH_P_SLOW, Lacpdu, decode
from pyvswitch.switch.lacp_port import ActorConfig, LacpAggregator, LacpPort, MuxState
from pyvswitch.testing import ovs as ovs_peer
from pyvswitch.testing.netns import NetnsPool, unique

pytestmark = [
    pytest.mark.system,
    pytest.mark.skipif(not ovs_peer.available(), reason="Open vSwitch is not installed"),
]


@pytest.fixture
def ovs_bond(pool: NetnsPool) -> Iterator[tuple[ovs_peer.Ovs, list[str]]]:
    ns = pool.netns("pvo", ipv6=False)
    ours = [unique("pvo"), unique("pvo")]
    for i, name in enumerate(ours):
        pool.veth(name, f"eth{i + 1}", b_ns=ns)
    peer = ovs_peer.Ovs(ns)
    try:
        peer.start()
        peer.lacp_bond(["eth1", "eth2"])
        yield peer, ours
    finally:
        peer.close()


def test_our_lacp_negotiates_with_an_ovs_bond(ovs_bond: tuple[ovs_peer.Ovs, list[str]]) -> None:
    peer, ours = ovs_bond
    socks = []
    ports = []
    for i, name in enumerate(ours):
        s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_SLOW))
        s.bind((name, ETH_P_SLOW))
        s.setblocking(False)
        socks.append(s)
        mac = int.from_bytes(s.getsockname()[4][:6], "big")
        ports.append(LacpPort(name, mac, ActorConfig(system=0x02AA00000001, key=7, port=i + 1)))
    agg = LacpAggregator(ports)
    start = time.monotonic()
    for p in ports:
        p.set_enabled(True, 0.0)
    try:
        negotiated_at = None
        while time.monotonic() - start < 12:
            now = time.monotonic() - start
            for s, p in zip(socks, ports, strict=True):
                while True:
                    try:
                        frame = s.recv(2048)
                    except BlockingIOError:
                        break
                    pdu = decode(frame)
                    if isinstance(pdu, Lacpdu):
                        p.receive(pdu, now)
            for port, frame in agg.tick(now):
                socks[ports.index(port)].send(frame)
            if negotiated_at is None and all(p.mux is MuxState.COLLECTING_DISTRIBUTING for p in ports):
                negotiated_at = now
            if negotiated_at is not None and now - negotiated_at > 2:
                break
            time.sleep(0.05)
        assert negotiated_at is not None and negotiated_at < 8, agg.show()
        show = peer.appctl("lacp/show", "bond0")
        assert "status: active negotiated" in show, show
        assert show.count("current attached") == 2, show
        assert "partner sys_id: 02:aa:00:00:00:01" in show
        assert (
            show.count("partner state: activity timeout aggregation synchronized collecting distributing")
            == 2
        ), show
    finally:
        for s in socks:
            s.close()
