"""Port security end to end (PS-01, PS-04, PS-05, PS-07): a real pyvswitchd, VMs in namespaces, crafted frames
sent with scapy or a raw AF_PACKET socket from inside a VM, drops read from `pyvswitch --json counters` and
deliveries seen by tcpdump in the other VM."""

from __future__ import annotations

from typing import Any

import pytest

from pyvswitch.lab.traffic import Capture
from pyvswitch.testing.netns import unique, wait_for
from tests.system.conftest import Host, ns_python

pytestmark = pytest.mark.system

SEND = """
from scapy.all import *
conf.verb = 0
sendp({frames}, iface="eth0")
"""

# Broadcast frames of an unused EtherType (IEEE local experimental), paced at ``rate`` a second for
# ``seconds`` by a plain AF_PACKET socket: scapy cannot keep an even pace at thousands of frames a second.
STORM = """
import json, socket, time
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind(("eth0", 0))
frame = b"\\xff" * 6 + bytes.fromhex({src!r}.replace(":", "")) + b"\\x88\\xb5" + bytes(46)
rate, seconds = {rate}, {seconds}
total = int(rate * seconds)
start = time.monotonic()
for i in range(total):
    delay = start + i / rate - time.monotonic()
    if delay > 0:
        time.sleep(delay)
    s.send(frame)
print(json.dumps({{"sent": total, "elapsed": time.monotonic() - start}}))
"""

N = 5
A_IP, B_IP = "10.61.0.1", "10.61.0.2"
CASES = {
    "rogue-dhcp-offer": (
        "dhcp-guard",
        ["--dhcp-guard"],
        ["--no-dhcp-guard"],
        "Ether(dst='ff:ff:ff:ff:ff:ff', src={A!r})/IP(src='10.61.0.1', dst='255.255.255.255')"
        "/UDP(sport=67, dport=68)/BOOTP(op=2, yiaddr='10.61.0.50', chaddr=b'\\x02' * 6)"
        "/DHCP(options=[('message-type', 'offer'), ('server_id', '10.61.0.1'), 'end'])",
        "udp src port 67",
    ),
    "ipv6-router-advertisement": (
        "router-guard",
        ["--router-guard"],
        ["--no-router-guard"],
        "Ether(dst='33:33:00:00:00:01', src={A!r})/IPv6(src='fe80::61:1', dst='ff02::1')/ICMPv6ND_RA()",
        "icmp6 and ip6[40] == 134",
    ),
    "icmpv4-redirect": (
        "router-guard",
        ["--router-guard"],
        ["--no-router-guard"],
        "Ether(dst={B!r}, src={A!r})/IP(src='10.61.0.1', dst='10.61.0.2')/ICMP(type=5, code=1, gw='10.61.0.1')"
        "/IP(src='10.61.0.2', dst='10.61.0.9')/UDP(sport=9, dport=9)",
        "icmp and icmp[0] == 5",
    ),
    "spoofed-source-mac": (
        "mac-spoofing",
        ["--no-mac-spoofing"],  # the default; set explicitly to show the switch
        ["--mac-spoofing"],
        "Ether(dst='ff:ff:ff:ff:ff:ff', src='02:de:ad:be:ef:01')/IP(src='10.61.0.1', dst='10.61.0.255')"
        "/UDP(sport=9, dport=9)",
        "ether src 02:de:ad:be:ef:01",
    ),
}


def add_vm(host: Host, switch: str, ip: str) -> str:
    name = unique("pvg")
    host.vms.append(name)
    host.cli("vm", "add", name, "--switch", switch, "--ip", ip)
    return name


def counters(host: Host, switch: str) -> dict[str, Any]:
    data = host.json("counters")
    assert isinstance(data, dict)
    result: dict[str, Any] = data["switches"][switch]
    return result


def two_vms(host: Host) -> tuple[str, str, dict[str, str]]:
    host.cli("switch", "add", "sw", "--type", "private")
    a = add_vm(host, "sw", f"{A_IP}/24")
    b = add_vm(host, "sw", f"{B_IP}/24")
    macs = {vm: str(host.json("port", "show", f"{vm}-eth0")["mac"]) for vm in (a, b)}  # type: ignore[index]
    return a, b, macs


@pytest.mark.parametrize("case", list(CASES))
def test_crafted_frame_dropped_with_reason_when_guarded_and_delivered_when_not(host: Host, case: str) -> None:
    """PS-01 (spoofed source), PS-04 (rogue DHCP offer), PS-05 (IPv6 RA, ICMPv4 redirect)."""
    reason, on, off, expr, bpf = CASES[case]
    a, b, macs = two_vms(host)
    port = f"{a}-eth0"
    frames = "[" + expr.format(A=macs[a], B=macs[b]) + f"] * {N}"

    host.cli("port", "set", port, *on)
    cap = Capture(b, "eth0", bpf)
    try:
        ns_python(a, SEND.format(frames=frames))
        wait_for(
            lambda: counters(host, "sw")["drops"].get(reason, 0) >= N,
            timeout_s=10,
            what=f"{N} drops with reason {reason}",
        )
    finally:
        lines = cap.stop()
    assert lines == [], f"guarded frames reached the other VM: {lines}"
    sw = counters(host, "sw")
    assert sw["drops"][reason] == N
    assert sw["ports"][port]["port_drops"][reason] == N
    elements = sw["ports"][port]["security"]
    assert sum(e["drops"].get(reason, 0) for e in elements.values()) == N

    host.cli("port", "set", port, *off)
    cap = Capture(b, "eth0", bpf)
    try:
        ns_python(a, SEND.format(frames=frames))
        lines = cap.wait_lines(N)
    finally:
        cap.stop()
    assert len(lines) == N, lines
    assert counters(host, "sw")["drops"][reason] == N  # nothing more dropped
