"""The built-in stateful firewall on real TCP between namespaced VMs (AC-04, AC-05), and port ACLs (AC-01/02).

The client VM allows itself outbound HTTP statefully and denies everything inbound: its HTTP requests get their
replies, while a new connection from the server to the client is refused, until the firewall is disabled.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator

import httpx
import pytest

from pyvswitch.testing.netns import sh, wait_for
from tests.system.conftest import Host, ns_python, ping

pytestmark = pytest.mark.system

CONNECT = """
import socket, sys
s = socket.socket()
s.settimeout(2)
try:
    s.connect(({ip!r}, {port}))
    s.sendall(b"GET / HTTP/1.0\\r\\n\\r\\n")
    print("ok" if s.recv(100).startswith(b"HTTP/1.0") else "bad")
except OSError as e:
    print("refused", e)
"""


def patch_port(h: Host, port: str, body: dict[str, object]) -> None:
    with httpx.Client(transport=httpx.HTTPTransport(uds=str(h.socket)), timeout=30) as c:
        r = c.patch(f"http://pyvswitchd/v1/ports/{port}", json=body)
        assert r.status_code == 200, r.text


def http_server(netns: str, port: int) -> subprocess.Popen[bytes]:
    p = subprocess.Popen(
        ["ip", "netns", "exec", netns, "python3", "-m", "http.server", str(port), "--bind", "0.0.0.0"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wait_for(lambda: f":{port}" in sh("ss", "-ltn", netns=netns), what=f"http.server on {port}")
    return p


@pytest.fixture
def servers(host: Host) -> Iterator[tuple[str, str]]:
    host.cli("switch", "add", "sw", "--type", "private")
    client = host.vm_add("sw", "10.95.0.1/24")
    server = host.vm_add("sw", "10.95.0.2/24")
    procs = [http_server(server, 80), http_server(client, 2222)]
    try:
        yield client, server
    finally:
        for p in procs:
            p.kill()
            p.wait()


def test_stateful_firewall_admits_replies_but_not_new_inbound(host: Host, servers: tuple[str, str]) -> None:
    client, server = servers
    assert ns_python(server, CONNECT.format(ip="10.95.0.1", port=2222)).startswith("ok")  # open before rules
    rules = [
        {"action": "Deny", "direction": "Inbound", "weight": 1},
        {"action": "Allow", "direction": "Outbound", "weight": 10, "remote_port": "80", "protocol": "TCP",
         "stateful": True, "idle_session_timeout_s": 60},
    ]  # fmt: skip
    patch_port(host, f"{client}-eth0", {"extended_acls": rules})
    assert ns_python(client, CONNECT.format(ip="10.95.0.2", port=80)).startswith("ok")  # replies admitted
    assert ns_python(server, CONNECT.format(ip="10.95.0.1", port=2222)).startswith("refused")
    stack = {e["name"]: e for e in host.json("extension", "show", "sw")}  # type: ignore[union-attr]
    fw = stack["pyvswitch-firewall"]
    assert fw["drops"].get("extended-acl-deny", 0) >= 1  # type: ignore[union-attr]
    assert fw["status"]["ports"][f"{client}-eth0"]["rules"] == 2  # type: ignore[index]
    host.cli("extension", "disable", "sw", "pyvswitch-firewall")
    assert ns_python(server, CONNECT.format(ip="10.95.0.1", port=2222)).startswith("ok")


def test_port_acl_allows_only_a_subnet(host: Host, servers: tuple[str, str]) -> None:
    client, _ = servers
    acls = [
        {"action": "Deny", "direction": "Both", "remote_ip": "ANY"},
        {"action": "Allow", "direction": "Both", "remote_ip": "10.95.0.2/32"},
    ]
    patch_port(host, f"{client}-eth0", {"acls": acls})
    assert ping(client, "10.95.0.2").returncode == 0
    third = host.vm_add("sw", "10.95.0.3/24")
    assert ping(client, "10.95.0.3", count=2, timeout_s=1).returncode != 0
    assert ping(third, "10.95.0.2").returncode == 0  # other ports are not affected
    counters = host.json("counters")
    assert counters["switches"]["sw"]["ports"][f"{client}-eth0"]["port_drops"]["acl-deny"] >= 2  # type: ignore[index]


def test_stateful_icmp_admits_the_vms_ping_replies_not_the_peers_pings(host: Host) -> None:
    """AC-05 with the kernel's ping: an Outbound ICMP stateful Allow under Deny Inbound lets the VM's echo
    requests get their replies (state per identifier), while the peer's own pings stay refused."""
    host.cli("switch", "add", "sw", "--type", "private")
    client = host.vm_add("sw", "10.97.0.1/24")
    peer = host.vm_add("sw", "10.97.0.2/24")
    rules = [
        {"action": "Deny", "direction": "Inbound", "weight": 1},
        {"action": "Allow", "direction": "Outbound", "weight": 10, "protocol": "ICMP", "stateful": True,
         "idle_session_timeout_s": 60},
    ]  # fmt: skip
    patch_port(host, f"{client}-eth0", {"extended_acls": rules})
    assert ping(client, "10.97.0.2").returncode == 0
    assert ping(peer, "10.97.0.1", count=2, timeout_s=1).returncode != 0
    fw = {e["name"]: e for e in host.json("extension", "show", "sw")}["pyvswitch-firewall"]  # type: ignore[union-attr]
    assert fw["status"]["ports"][f"{client}-eth0"]["flows"] == 1  # type: ignore[index]
    assert fw["drops"]["extended-acl-deny"] >= 2  # type: ignore[index]
