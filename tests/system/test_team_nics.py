"""Team interfaces of a team no switch uses, on real interfaces (issue 4 item 4; hyperv-networking.md §3.6).

A 2-member SwitchIndependent team whose members' peers sit on a Linux bridge (the "physical switch", in its
own namespace) with a LAN host behind it. The LAN host's kernel speaks untagged IP; on VLAN 10 a scapy
responder answers ARP and ping only for 802.1Q-tagged VLAN-10 frames and replies tagged (the kernel here has
no VLAN devices, platform.md). On our side the team gets a VLAN-10 team interface and keeps its primary one
in Default mode, both real host interfaces (TAPs) with addresses, pinged from the host.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from pyvswitch.testing.netns import NetnsPool, sh, unique, wait_for
from tests.system.conftest import Host

pytestmark = pytest.mark.system

LAN_IP = "10.116.0.100"  # untagged, the LAN host's own kernel
HOST_IP = "10.116.0.1"  # on the primary team interface (Default mode)
VLAN = 10
VLAN_LAN_IP = "10.116.10.100"  # answered by the responder, tagged VLAN 10 only
VLAN_HOST_IP = "10.116.10.1"  # on the VLAN-10 team interface

# Answers ARP who-has and ICMP echo for {ip} only when they come tagged with VLAN {vlan}, replying tagged;
# counts what it saw. Runs until terminated, then prints JSON. Like a real IP stack it replies to the MAC its
# ARP cache holds, not to a frame's source MAC: a SwitchIndependent team sends on non-primary members with
# that member's MAC (TM-06), and only its ARP, sent on the primary, carries the team interface's own MAC.
RESPONDER = """
import json, signal, sys, time
from scapy.all import ARP, ICMP, IP, AsyncSniffer, Dot1Q, Ether, conf, sendp
conf.verb = 0
iface, ip, vlan = {iface!r}, {ip!r}, {vlan}
mac = open(f"/sys/class/net/{{iface}}/address").read().strip()
seen = {{"tagged_requests": 0, "other_vlans": 0, "untagged_to_ip": 0}}
arp_cache = {{}}

def handle(p):
    if Ether not in p or p[Ether].src == mac:
        return
    if Dot1Q not in p:
        if (ARP in p and p[ARP].pdst == ip) or (IP in p and p[IP].dst == ip):
            seen["untagged_to_ip"] += 1
        return
    if p[Dot1Q].vlan != vlan:
        seen["other_vlans"] += 1
        return
    if ARP in p and p[ARP].op == 1 and p[ARP].pdst == ip:
        seen["tagged_requests"] += 1
        arp_cache[p[ARP].psrc] = p[ARP].hwsrc
        sendp(Ether(dst=p[ARP].hwsrc, src=mac) / Dot1Q(vlan=vlan)
              / ARP(op=2, hwsrc=mac, psrc=ip, hwdst=p[ARP].hwsrc, pdst=p[ARP].psrc), iface=iface)
    elif IP in p and ICMP in p and p[IP].dst == ip and p[ICMP].type == 8:
        seen["tagged_requests"] += 1
        reply = IP(src=ip, dst=p[IP].src) / ICMP(type=0, id=p[ICMP].id, seq=p[ICMP].seq) / p[ICMP].payload
        sendp(Ether(dst=arp_cache.get(p[IP].src, p.src), src=mac) / Dot1Q(vlan=vlan) / reply, iface=iface)

def stop(*_):
    sniffer.stop()
    print(json.dumps(seen), flush=True)
    sys.exit(0)

sniffer = AsyncSniffer(iface=iface, prn=handle, store=False)
sniffer.start()
time.sleep(0.5)  # AsyncSniffer has no 'ready' signal
signal.signal(signal.SIGTERM, stop)
print("ready", flush=True)
while True:
    time.sleep(1)
"""


def ping_from_host(dev: str, dst: str, count: int = 3) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ping", "-c", str(count), "-i", "0.2", "-W", "2", "-I", dev, dst],
                          capture_output=True, text=True, timeout=60)  # fmt: skip


@pytest.fixture
def lan(pool: NetnsPool) -> Iterator[tuple[list[str], str]]:
    """The physical switch (bridge br0, STP off) with our members' peers and the LAN host; yields
    (member names, LAN host namespace)."""
    psw = pool.netns("pvp", ipv6=False)
    host_ns = pool.netns("pvl", ipv6=False)
    sh("ip", "link", "add", "br0", "type", "bridge", netns=psw)
    members = [unique("pvm"), unique("pvm")]
    for i, member in enumerate(members):
        pool.veth(member, f"p{i + 1}", b_ns=psw)
        sh("sysctl", "-qw", f"net.ipv6.conf.{member}.disable_ipv6=1")
        sh("ip", "link", "set", f"p{i + 1}", "master", "br0", netns=psw)
    pool.veth("plan", "eth0", a_ns=psw, b_ns=host_ns)
    sh("ip", "link", "set", "plan", "master", "br0", netns=psw)
    sh("ip", "link", "set", "br0", "up", netns=psw)
    sh("ip", "addr", "add", f"{LAN_IP}/24", "dev", "eth0", netns=host_ns)
    yield members, host_ns


@pytest.fixture
def responder(lan: tuple[list[str], str]) -> Iterator[subprocess.Popen[str]]:
    _, host_ns = lan
    code = RESPONDER.format(iface="eth0", ip=VLAN_LAN_IP, vlan=VLAN)
    proc = subprocess.Popen(["ip", "netns", "exec", host_ns, sys.executable, "-c", code],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.strip() == "ready", f"responder: {line!r} {proc.stderr.read() if proc.stderr else ''}"
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)


def responder_counts(proc: subprocess.Popen[str]) -> dict[str, int]:
    proc.terminate()
    out, err = proc.communicate(timeout=10)
    assert out.strip(), f"responder printed nothing: {err[-2000:]}"
    counts: dict[str, int] = json.loads(out.strip().splitlines()[-1])
    return counts


def interface_exists(name: str) -> bool:
    return Path(f"/sys/class/net/{name}").exists()


def test_vlan_and_default_team_interfaces_carry_traffic_to_the_physical_lan(
    host: Host, lan: tuple[list[str], str], responder: subprocess.Popen[str]
) -> None:
    """TM-12 (default + VLAN team interfaces, VLAN 0 < id < 4095) on a TM-01/TM-02 SwitchIndependent team of
    two members: the VLAN-10 tNIC's frames leave the team tagged 10 and the replies tagged 10 reach it
    untagged; the primary tNIC in Default mode carries untagged traffic. Removing the tNIC removes its
    interface."""
    members, _ = lan
    team = unique("pvt")  # 11 characters: '<team>.10' still fits an interface name
    nic = f"{team}.{VLAN}"
    host.cli("New-NetLbfoTeam", "-Name", team, "-TeamMembers", ",".join(members),
             "-TeamingMode", "SwitchIndependent")  # fmt: skip
    try:
        out = host.cli("Add-NetLbfoTeamNic", "-Team", team, "-VlanID", str(VLAN)).stdout
        assert nic in out and f"{team} - VLAN {VLAN}" in out  # Linux name and Windows' display name
        nics = host.json("Get-NetLbfoTeamNic", "-Team", team)
        assert [(n["Name"], n["VlanID"], n["Primary"]) for n in nics] == [  # type: ignore[index, union-attr]
            (team, None, True),
            (nic, VLAN, False),
        ]
        # Both team interfaces are real host interfaces; GET /v1/switches lists no hidden switch.
        assert interface_exists(team) and interface_exists(nic)
        assert host.json("switch", "list") == []
        sh("ip", "addr", "add", f"{HOST_IP}/24", "dev", team)
        sh("ip", "addr", "add", f"{VLAN_HOST_IP}/24", "dev", nic)

        wait_for(lambda: ping_from_host(nic, VLAN_LAN_IP, count=1).returncode == 0, timeout_s=20,
                 interval_s=0.2, what="the VLAN-10 responder answering the VLAN team interface")  # fmt: skip
        res = ping_from_host(nic, VLAN_LAN_IP, count=5)
        assert res.returncode == 0 and " 0% packet loss" in res.stdout, res.stdout
        wait_for(lambda: ping_from_host(team, LAN_IP, count=1).returncode == 0, timeout_s=20,
                 interval_s=0.2, what="the LAN host answering the Default team interface")  # fmt: skip
        res = ping_from_host(team, LAN_IP, count=5)
        assert res.returncode == 0 and " 0% packet loss" in res.stdout, res.stdout

        members_status = host.json("Get-NetLbfoTeamMember", "-Team", team)
        assert {m["OperationalStatus"] for m in members_status} == {"Active"}  # type: ignore[index, union-attr]

        counts = responder_counts(responder)
        # Everything the VLAN tNIC sent to the VLAN address arrived tagged 10 (ARP and 6+ echo requests),
        # and nothing reached it untagged.
        assert counts["tagged_requests"] >= 6 and counts["untagged_to_ip"] == 0, counts

        host.cli("Remove-NetLbfoTeamNic", "-Team", team, "-VlanID", str(VLAN))
        wait_for(lambda: not interface_exists(nic), what=f"{nic} removed with its team interface")
        assert interface_exists(team)
    finally:
        host.cli("Remove-NetLbfoTeam", "-Name", team, check=False)
    wait_for(lambda: not interface_exists(team), what=f"{team} removed with its team")
