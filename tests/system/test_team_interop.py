"""Team interop and load balancing at system level (issue 4 acceptance; hyperv-networking.md §3, TM-xx).

Peers, each in its own namespace:

- Open vSwitch (netdev datapath) with a static bond (``lacp=off``, balance-slb) or an LACP bond;
- a "physical switch": a Linux bridge with our members' peers and a LAN host on it (switch-independent teams).

A VM behind a pyvswitch External switch whose uplink is the team talks to the peer with ping and iperf3; the
bridge's FDB (``bridge monitor fdb`` from before the traffic until after it) shows where the physical switch
learned each MAC. Load balancing is measured with each member shaped by tbf in a cable namespace
(testing/shaping.py: pyvswitch bypasses the qdisc of the interfaces it owns).
"""

from __future__ import annotations

import contextlib
import json
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from pyvswitch.lab.traffic import iperf3_server
from pyvswitch.testing import ovs as ovs_peer
from pyvswitch.testing.netns import NetnsPool, sh, unique, wait_for
from pyvswitch.testing.shaping import shaped_cable
from tests.system.conftest import Host, ping

pytestmark = [
    pytest.mark.system,
    pytest.mark.skipif(shutil.which("iperf3") is None, reason="iperf3 is not installed"),
]
needs_ovs = pytest.mark.skipif(not ovs_peer.available(), reason="Open vSwitch is not installed")

PEER_IP = "10.114.0.100"  # OVS's bridge
LAN_IP = "10.115.0.100"  # the LAN host behind the Linux bridge
RATE_MBIT = 200  # per member, in the load-balancing test


# ---------------------------------------------------------------- helpers


def no_offloads(dev: str, netns: str | None = None) -> None:
    """Towards OVS: its userspace datapath reads its veths with AF_PACKET and forwards neither GSO super-frames
    nor partial checksums (platform.md), so our members compute checksums (``tx off``, which also turns TSO
    off). The VM keeps TSO: its super-frames reach a member that cannot segment them, and the kernel segments
    them in software on our send path (datapath/afpacket.py; test_forwarding covers it on its own)."""
    sh("ethtool", "-K", dev, "tx", "off", netns=netns)


def vm_mac(vm: str) -> str:
    return sh("cat", "/sys/class/net/eth0/address", netns=vm).strip()


def if_mac(dev: str, netns: str | None = None) -> str:
    return sh("cat", f"/sys/class/net/{dev}/address", netns=netns).strip()


def team_status(host: Host, team: str = "t1") -> dict[str, object]:
    status = host.json("team", "show", team)["status"]  # type: ignore[index]
    assert isinstance(status, dict), status
    return status


def team_members(host: Host) -> list[dict[str, Any]]:
    """Per member: name, up, active, counters (tx_bytes, tx_frames, drops...), as ``team show`` reports them."""
    members = team_status(host)["members"]
    assert isinstance(members, list)
    return members


def member_tx(host: Host, key: str = "tx_bytes") -> list[int]:
    return [int(m["counters"][key]) for m in team_members(host)]


def actives(host: Host) -> list[bool]:
    return [bool(m["active"]) for m in team_members(host)]


def iperf3(netns: str, server: str, *args: str, timeout: float = 60) -> dict[str, object]:
    """Run an iperf3 client (``--json``) in ``netns``; fail with iperf3's own error if it did not exit 0."""
    res = subprocess.run(["ip", "netns", "exec", netns, "iperf3", "-c", server, "--json", *args],
                         capture_output=True, text=True, timeout=timeout)  # fmt: skip
    try:
        out = json.loads(res.stdout)
    except json.JSONDecodeError:
        out = {"error": res.stderr or res.stdout}
    assert res.returncode == 0 and "error" not in out, f"iperf3 -> {res.returncode}: {out.get('error')}"
    assert isinstance(out, dict)
    return out


def sent_mbit(result: dict[str, object]) -> float:
    return float(result["end"]["sum_sent"]["bits_per_second"]) / 1e6  # type: ignore[index]


def received_mbit(result: dict[str, object]) -> float:
    return float(result["end"]["sum_received"]["bits_per_second"]) / 1e6  # type: ignore[index]


# ---------------------------------------------------------------- a Linux bridge as the physical switch


@dataclass
class BridgeLan:
    """Namespace ``psw`` with bridge br0: ports p1.. (peers of our ``members``) and ``plan`` to the LAN host."""

    psw: str
    lan: str
    members: list[str]
    ports: list[str] = field(default_factory=list)

    def fdb(self) -> dict[str, set[str]]:
        """Learned (not permanent) MACs and the bridge ports they are on now."""
        seen: dict[str, set[str]] = {}
        for line in sh("bridge", "fdb", "show", "br", "br0", netns=self.psw).splitlines():
            m = re.match(r"([0-9a-f:]{17}) dev (\S+) master br0\s*$", line)
            if m:
                seen.setdefault(m.group(1), set()).add(m.group(2))
        return seen

    @contextlib.contextmanager
    def fdb_events(self, log: Path) -> Iterator[dict[str, set[str]]]:
        """Every bridge port each MAC was learned on while the block ran (``bridge monitor fdb``), starting
        from the FDB as it was on entry. The dict is filled when the block ends."""
        seen: dict[str, set[str]] = {mac: set(ports) for mac, ports in self.fdb().items()}
        with open(log, "w") as out:
            proc = subprocess.Popen(["ip", "netns", "exec", self.psw, "bridge", "monitor", "fdb"], stdout=out,
                                    stderr=subprocess.STDOUT)  # fmt: skip
        # The monitor is listening once it reports a static entry for this (documentation) MAC: it is added
        # again on each poll, as the first additions may come before the monitor subscribed.
        marker = "02:00:5e:00:53:99"
        entry = (marker, "dev", "plan", "master", "static")

        def reported() -> bool:
            sh("bridge", "fdb", "del", *entry, netns=self.psw, check=False)
            sh("bridge", "fdb", "add", *entry, netns=self.psw)
            return marker in log.read_text()

        try:
            wait_for(reported, interval_s=0.1, what="bridge monitor fdb listening")
            sh("bridge", "fdb", "del", *entry, netns=self.psw)
            yield seen
        finally:
            proc.terminate()
            proc.wait(timeout=5)
        for mac, ports in self.fdb().items():
            seen.setdefault(mac, set()).update(ports)
        for line in log.read_text().splitlines():
            m = re.match(r"([0-9a-f:]{17}) dev (\S+) master br0", line)
            if m and m.group(1) != marker:
                seen.setdefault(m.group(1), set()).add(m.group(2))


def bridge_lan(pool: NetnsPool, n_members: int = 2, rate_mbit: float | None = None) -> BridgeLan:
    """The physical switch and LAN host; with ``rate_mbit`` each member's link is shaped to it both ways."""
    psw = pool.netns("pvp", ipv6=False)
    lan = pool.netns("pvl", ipv6=False)
    sh("ip", "link", "add", "br0", "type", "bridge", netns=psw)  # STP off: ports forward at once
    lab = BridgeLan(psw, lan, [unique("pvm") for _ in range(n_members)])
    for i, member in enumerate(lab.members):
        port = f"p{i + 1}"
        if rate_mbit is None:
            pool.veth(member, port, b_ns=psw)
        else:
            shaped_cable(pool, member, port, rate_mbit, far_ns=psw)
        # The member's own kernel interface stays quiet (no IPv6 RS/MLD with the member's MAC): a member MAC
        # the bridge learns then comes from frames pyvswitch sent.
        sh("sysctl", "-qw", f"net.ipv6.conf.{member}.disable_ipv6=1")
        sh("ip", "link", "set", port, "master", "br0", netns=psw)
        lab.ports.append(port)
    pool.veth("plan", "eth0", a_ns=psw, b_ns=lan)
    sh("ip", "link", "set", "plan", "master", "br0", netns=psw)
    sh("ip", "link", "set", "br0", "up", netns=psw)
    sh("ip", "addr", "add", f"{LAN_IP}/24", "dev", "eth0", netns=lan)
    return lab


def si_team(host: Host, lab: BridgeLan, algorithm: str) -> None:
    host.cli("New-NetLbfoTeam", "-Name", "t1", "-TeamMembers", ",".join(lab.members), "-TeamingMode",
             "SwitchIndependent", "-LoadBalancingAlgorithm", algorithm)  # fmt: skip
    host.cli("New-VMSwitch", "-Name", "ext", "-NetAdapterName", "t1", "-AllowManagementOS:false")


def reachable(vm: str, ip: str) -> None:
    wait_for(lambda: ping(vm, ip, count=1).returncode == 0, timeout_s=20, interval_s=0.2,
             what=f"{ip} answering pings from {vm}")  # fmt: skip


BROADCAST_RECEIVER = """
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", 9998))
print("ready", flush=True)
s.settimeout(10)  # until the first datagram; then a quiet second ends the count
got = []
try:
    while True:
        got.append(int(s.recv(64)))
        s.settimeout(1.0)
except socket.timeout:
    pass
print(" ".join(map(str, got)), flush=True)
"""
BROADCAST_SENDER = """
import socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
for n in range(int(sys.argv[2])):
    s.sendto(str(n).encode(), (sys.argv[1], 9998))
    time.sleep(0.01)
"""


def broadcasts_received(vm: str, lan: str, count: int = 20) -> list[int]:
    """The LAN host sends ``count`` numbered UDP broadcasts; the numbers the VM received, duplicates included."""
    recv = subprocess.Popen(["ip", "netns", "exec", vm, sys.executable, "-c", BROADCAST_RECEIVER],
                            stdout=subprocess.PIPE, text=True)  # fmt: skip
    try:
        assert recv.stdout is not None and recv.stdout.readline().strip() == "ready"
        sh(sys.executable, "-c", BROADCAST_SENDER, LAN_IP.rsplit(".", 1)[0] + ".255", str(count), netns=lan)
        out, _ = recv.communicate(timeout=30)
    finally:
        if recv.poll() is None:
            recv.kill()
            recv.wait(timeout=5)
    return [int(x) for x in out.split()]


# ---------------------------------------------------------------- 1. Static vs an OVS static bond


@pytest.fixture
def ovs_static(pool: NetnsPool) -> Iterator[tuple[ovs_peer.Ovs, list[str]]]:
    ns = pool.netns("pvo", ipv6=False)
    sh(
        "sysctl", "-qw", "net.ipv4.conf.all.arp_ignore=1", netns=ns
    )  # eth1/eth2 must not answer ARP themselves
    ours = [unique("pvm"), unique("pvm")]
    for i, name in enumerate(ours):
        pool.veth(name, f"eth{i + 1}", b_ns=ns)
        no_offloads(name)
    peer = ovs_peer.Ovs(ns)
    try:
        peer.start()
        peer.static_bond(["eth1", "eth2"], f"{PEER_IP}/24", bond_mode="balance-slb")
        yield peer, ours
    finally:
        peer.close()


@needs_ovs
def test_static_team_to_ovs_balance_slb_bond_ping_and_iperf3(
    host: Host, ovs_static: tuple[ovs_peer.Ovs, list[str]]
) -> None:
    """TM-02 (Static: both ends configured by hand, no protocol), TM-03 (TransportPorts hash over all members),
    TM-08 (switch-dependent: no MAC rewrite, inbound accepted on any member); set up with the cmdlets
    (New-NetLbfoTeam -TeamingMode Static, New-VMSwitch -NetAdapterName).

    The OVS side is ``bond_mode=balance-slb, lacp=off``: balance-tcp without LACP drops everything it receives
    (OVS bond_check_admissibility). OVS has no static-LAG mode that accepts broadcasts on every member (as a
    physical switch's "channel-group mode on" does): balance-slb takes them only on its active member. So the
    test makes OVS's active member the one our hash puts the VM's broadcasts on (ARP requests); unicast is
    accepted on either member, and our Static team accepts everything on every member (TM-08: no MAC
    replacement, the switch decides inbound)."""
    peer, (m1, m2) = ovs_static
    host.cli("New-NetLbfoTeam", "-Name", "t1", "-TeamMembers", f"{m1},{m2}", "-TeamingMode", "Static",
             "-LoadBalancingAlgorithm", "TransportPorts")  # fmt: skip
    host.cli("New-VMSwitch", "-Name", "ext", "-NetAdapterName", "t1", "-AllowManagementOS:false")
    vm = host.vm_add("ext", f"{PEER_IP.rsplit('.', 1)[0]}.1/24")
    wait_for(lambda: actives(host) == [True, True], what="both Static members active")

    # Which member carries the VM's broadcasts: 20 ARP requests from the VM's MAC, as its kernel sends them.
    mac = vm_mac(vm)
    before = member_tx(host, "tx_frames")
    sh(sys.executable, "-c", "from scapy.all import Ether, ARP, sendp; "
       f"sendp(Ether(src='{mac}', dst='ff:ff:ff:ff:ff:ff') / ARP(hwsrc='{mac}', psrc='{PEER_IP[:-3]}1', "
       f"pdst='{PEER_IP}'), iface='eth0', count=20, verbose=False)", netns=vm)  # fmt: skip

    def arp_member() -> int | None:
        grew = [b - a for a, b in zip(before, member_tx(host, "tx_frames"), strict=True)]
        return next((i for i, g in enumerate(grew) if g >= 20), None)

    wait_for(lambda: arp_member() is not None, what="the VM's broadcasts sent on one member")
    k = arp_member()
    assert k is not None
    peer.appctl("bond/set-active-member", "bond0", f"eth{k + 1}")
    wait_for(lambda: re.search(rf"member eth{k + 1}: enabled\s+active member", peer.appctl("bond/show", "bond0"))
             is not None, what="OVS's active member moved")  # fmt: skip

    reachable(vm, PEER_IP)
    assert ping(vm, PEER_IP, count=10).returncode == 0
    with iperf3_server(peer.netns, bind=PEER_IP):
        before = member_tx(host)
        # 16 flows: with random source ports, 4 flows all hashed onto one of two members 1 time in 8 (a
        # fresh-clone CI run, 2026-12-07: [361497807, 0]); 16 do it about once in 30,000.
        result = iperf3(vm, PEER_IP, "-t", "3", "-P", "16")
    used = [b - a for a, b in zip(before, member_tx(host), strict=True)]
    print(f"\nstatic team -> OVS balance-slb: {received_mbit(result):.0f} Mbit/s TCP (16 flows); "
          f"bytes per member {used}")  # fmt: skip
    assert received_mbit(result) > 50
    assert all(u > 0 for u in used), f"TCP flows hashed over both members (TM-03): {used}"
    bond = peer.appctl("bond/show", "bond0")
    assert bond.count(": enabled") == 2, bond


# ---------------------------------------------------------------- 2. SwitchIndependent vs a Linux bridge


def test_switch_independent_address_hash_to_linux_bridge(host: Host, pool: NetnsPool, tmp_path: Path) -> None:
    """TM-02 (SwitchIndependent: the physical switch knows nothing of the team), TM-03 (address hash over all
    members), TM-06 (SI + address hash: inbound broadcast/multicast only on the primary, ARP/NS only on the
    primary, frames sent on a non-primary member carry that member's MAC; §3.4), TM-09 (one primary member).

    Observed on the physical switch (a Linux bridge) while iperf3 runs 16 flows VM -> LAN: the VM's MAC is only
    ever learned on one member's port (no flapping), a non-primary member's own MAC is learned on its port
    (its frames were sent with it), both members carried the flows; and a broadcast from the LAN, which the
    bridge floods to both members, reaches the VM exactly once."""
    lab = bridge_lan(pool)
    si_team(host, lab, "TransportPorts")
    vm = host.vm_add("ext", f"{LAN_IP.rsplit('.', 1)[0]}.1/24")
    mac = vm_mac(vm)
    reachable(vm, LAN_IP)
    assert ping(vm, LAN_IP, count=10).returncode == 0

    own_macs = [if_mac(m) for m in lab.members]
    for own in own_macs:  # forget what the members' kernel interfaces sent before IPv6 was off on them
        for port in lab.ports:
            sh("bridge", "fdb", "del", own, "dev", port, "master", netns=lab.psw, check=False)
    with iperf3_server(lab.lan, bind=LAN_IP), lab.fdb_events(tmp_path / "fdb.log") as seen:
        before = member_tx(host)
        result = iperf3(vm, LAN_IP, "-t", "4", "-P", "16")  # 8 flows on one member: 1 time in 128
        used = [b - a for a, b in zip(before, member_tx(host), strict=True)]
    print(f"\nSI TransportPorts -> Linux bridge: {received_mbit(result):.0f} Mbit/s TCP (16 flows); bytes per "
          f"member {used}; FDB ports seen per MAC {dict((k, sorted(v)) for k, v in seen.items())}")  # fmt: skip
    assert received_mbit(result) > 50
    assert all(u > 0 for u in used), f"16 flows hashed over both members (TM-03): {used}"

    # Every rule is checked, and all that do not hold are reported together.
    problems: list[str] = []
    vm_ports = seen.get(mac, set())
    reported = team_status(host).get("primary")  # if the team names its primary member
    if len(vm_ports) != 1:
        problems.append(
            f"the VM's MAC {mac} was learned on {sorted(vm_ports)}: it must stay on the primary's port"
        )
    if len(vm_ports) == 1:
        primary = lab.ports.index(next(iter(vm_ports)))
        if reported is not None and reported != lab.members[primary]:
            problems.append(
                f"the bridge saw the VM on {lab.members[primary]}'s port; the team's primary: {reported}"
            )
    else:
        primary = lab.members.index(str(reported)) if reported in lab.members else 0
    for i, (member, own) in enumerate(zip(lab.members, own_macs, strict=True)):
        if i != primary and used[i] > 0 and seen.get(own) != {lab.ports[i]}:
            problems.append(f"frames sent on non-primary member {member} carry its own MAC {own} (TM-06): the bridge "
                            f"learned it on {sorted(seen.get(own, set()))}, expected [{lab.ports[i]}]")  # fmt: skip
    got = broadcasts_received(vm, lab.lan)
    if sorted(got) != list(range(20)):
        problems.append(
            f"each of 20 LAN broadcasts reaches the VM once, through the primary only (TM-06): got {got}"
        )
    assert not problems, "\n".join(problems)


def test_switch_independent_hyperv_port_pins_each_vm_to_one_member(
    host: Host, pool: NetnsPool, tmp_path: Path
) -> None:
    """TM-04/§3.3 HyperVPort: each switch port is affinitized to one member, so the physical switch sees each
    VM's MAC on exactly one link; with more than one VM, the VMs spread over the members. TM-07/§3.4: SI +
    HyperVPort sends with the VM's own MAC (no replacement). Asserted from the Linux bridge's FDB while every VM pings
    and runs a short iperf3 to the LAN host."""
    lab = bridge_lan(pool)
    si_team(host, lab, "HyperVPort")
    prefix = LAN_IP.rsplit(".", 1)[0]
    vms: list[tuple[str, str]] = []
    with lab.fdb_events(tmp_path / "fdb.log") as seen, iperf3_server(lab.lan, bind=LAN_IP):
        # Add VMs until two of them sit on different members (two suffice when ports go round-robin).
        for n in range(1, 7):
            vm = host.vm_add("ext", f"{prefix}.{n}/24")
            vms.append((vm, vm_mac(vm)))
            reachable(vm, LAN_IP)
            iperf3(vm, LAN_IP, "-t", "1", "-P", "4")
            ports = {p for _, m in vms for p in lab.fdb().get(m, set())}
            if len(ports) > 1:
                break
    where = {m: sorted(seen.get(m, set())) for _, m in vms}
    print(f"\nHyperVPort: bridge port(s) per VM MAC {where}")
    for m, on in where.items():
        assert len(on) == 1, f"VM MAC {m} learned on {on}: HyperVPort pins a VM to one member"
    assert len({on[0] for on in where.values()}) == 2, f"{len(vms)} VMs all on one member: {where}"


# ---------------------------------------------------------------- 3. load balancing, shaped members


def outbound(host: Host, lab: BridgeLan, vm: str, seconds: int = 5) -> tuple[float, list[int]]:
    """8 TCP flows VM -> LAN host (after a 1 s warm-up that is not counted): Mbit/s received, and the bytes each
    member sent meanwhile."""
    with iperf3_server(lab.lan, bind=LAN_IP):
        before = member_tx(host)
        result = iperf3(vm, LAN_IP, "-t", str(seconds), "-P", "8", "-O", "1")
    return received_mbit(result), [b - a for a, b in zip(before, member_tx(host), strict=True)]


@pytest.mark.timeout(120)
def test_transport_ports_two_shaped_members_give_1_7x_one(host: Host, pool: NetnsPool) -> None:
    """Issue 4 acceptance, load balancing (TM-03, §3.3 TransportPorts): each member shaped to the same rate
    (tbf, both directions, in a cable namespace), 8 TCP flows VM -> LAN over a 2-member SwitchIndependent
    TransportPorts team reach >= 1.7x the same test with one member (the other's carrier down).

    VM -> LAN is our outbound hashing; inbound in SI + address hash arrives on the primary only (TM-06), so the
    other direction would measure one member whatever the team does. An unshaped member path carried several
    Gbit/s here, so the shaped rate leaves the data path a wide margin."""
    lab = bridge_lan(pool, rate_mbit=RATE_MBIT)
    si_team(host, lab, "TransportPorts")
    vm = host.vm_add("ext", f"{LAN_IP.rsplit('.', 1)[0]}.1/24")
    reachable(vm, LAN_IP)

    def run() -> tuple[float, list[int]]:
        return outbound(host, lab, vm)

    two, used = run()
    if min(used) < 0.1 * max(used):
        # 8 flows' ports are random: all of them hash to one member once in 128 runs. That is address
        # hashing, not a fault; measure once more with new ports.
        print(f"\nall flows hashed to one member ({used}); measuring again")
        two, used = run()
    # Keep the member the bridge reaches the VM through (the primary, TM-06): the other one goes down.
    on = lab.fdb().get(vm_mac(vm), set())
    survivor = next((i for i, p in enumerate(lab.ports) if p in on), 0)
    other = lab.members[1 - survivor]
    sh("ip", "link", "set", other, "down")
    wait_for(lambda: actives(host).count(True) == 1, what="one member active")
    try:
        one, used_one = run()
    finally:
        sh("ip", "link", "set", other, "up")
    ratio = two / one
    print(f"\nshaped {RATE_MBIT} Mbit/s per member, 8 TCP flows VM -> LAN: 2 members {two:.1f} Mbit/s "
          f"(bytes per member {used}), 1 member {one:.1f} Mbit/s (bytes per member {used_one}); "
          f"ratio {ratio:.2f}")  # fmt: skip
    assert one <= RATE_MBIT * 1.05, f"one member is limited by its shaping: {one:.1f} Mbit/s"
    assert ratio >= 1.7, f"2 members {two:.1f} Mbit/s vs 1 member {one:.1f}: ratio {ratio:.2f} < 1.7"


@pytest.mark.parametrize("algorithm", ["HyperVPort", "Dynamic"])
def test_one_vm_gets_one_member_with_hyperv_port_and_both_with_dynamic(
    host: Host, pool: NetnsPool, algorithm: str
) -> None:
    """TM-04/TM-05, §3.3: HyperVPort affinitizes a switch port to one member, so "one VM NIC never exceeds one
    member's bandwidth"; Dynamic spreads the same VM's flows over the members (TransportPorts hash, re-balanced
    at flowlets). One VM, 8 TCP flows VM -> LAN, members shaped to RATE_MBIT each (as in the test above, whose
    one-member figure was 0.96 of the rate): HyperVPort stays at one member's rate, Dynamic exceeds
    1.7 x 0.95 x the rate."""
    lab = bridge_lan(pool, rate_mbit=RATE_MBIT)
    si_team(host, lab, algorithm)
    vm = host.vm_add("ext", f"{LAN_IP.rsplit('.', 1)[0]}.1/24")
    reachable(vm, LAN_IP)
    mbit, used = outbound(host, lab, vm, seconds=4)
    if algorithm == "Dynamic" and min(used) < 0.1 * max(used):
        print(f"\nall flows hashed to one member ({used}); measuring again")  # 1 in 128: see the test above
        mbit, used = outbound(host, lab, vm, seconds=4)
    print(f"\n{algorithm}, one VM, 8 TCP flows VM -> LAN over 2 members shaped to {RATE_MBIT} Mbit/s: "
          f"{mbit:.1f} Mbit/s, bytes per member {used}")  # fmt: skip
    if algorithm == "HyperVPort":
        assert min(used) < 0.01 * max(used), f"the VM's flows all on its member: {used}"
        assert mbit <= RATE_MBIT * 1.05, f"one VM pinned to one member: {mbit:.1f} Mbit/s"
    else:
        assert min(used) > 0.2 * max(used), f"the VM's flows spread over both members: {used}"
        assert mbit >= 1.7 * 0.95 * RATE_MBIT, f"{mbit:.1f} Mbit/s over two {RATE_MBIT} Mbit/s members"


# ---------------------------------------------------------------- 4. a long TCP flow across a member cut


@pytest.fixture
def ovs_lacp(pool: NetnsPool) -> Iterator[tuple[ovs_peer.Ovs, list[str]]]:
    ns = pool.netns("pvo", ipv6=False)
    sh("sysctl", "-qw", "net.ipv4.conf.all.arp_ignore=1", netns=ns)
    ours = [unique("pvm"), unique("pvm")]
    for i, name in enumerate(ours):
        pool.veth(name, f"eth{i + 1}", b_ns=ns)
        no_offloads(name)
    peer = ovs_peer.Ovs(ns)
    try:
        peer.start()
        peer.lacp_bond(["eth1", "eth2"], f"{PEER_IP}/24")
        yield peer, ours
    finally:
        peer.close()


@needs_ovs
@pytest.mark.timeout(120)
def test_lacp_long_tcp_flow_survives_cut_and_restore_of_its_member(
    host: Host, ovs_lacp: tuple[ovs_peer.Ovs, list[str]]
) -> None:
    """Issue 4 acceptance ("a long-running TCP flow survives with no reset"), TM-02 (LACP), TM-10 (failover
    on carrier loss moves the flows to the survivors at once; failback when the member returns).

    One iperf3 TCP flow VM -> OVS for 9 s with 0.25 s intervals; the member carrying it is cut ~2 s in and
    restored ~1.5 s later. iperf3 must exit 0 (no reset), and from one second after the cut on, no interval
    may be empty."""
    peer, (m1, m2) = ovs_lacp
    host.cli("New-NetLbfoTeam", "-Name", "t1", "-TeamMembers", f"{m1},{m2}", "-TeamingMode", "Lacp",
             "-LoadBalancingAlgorithm", "TransportPorts", "-LacpTimer", "Fast")  # fmt: skip
    host.cli("New-VMSwitch", "-Name", "ext", "-NetAdapterName", "t1", "-AllowManagementOS:false")
    vm = host.vm_add("ext", f"{PEER_IP.rsplit('.', 1)[0]}.1/24")
    wait_for(lambda: peer.appctl("lacp/show", "bond0").count("current attached") == 2, timeout_s=20,
             what="OVS: both members attached")  # fmt: skip
    wait_for(
        lambda: actives(host) == [True, True], timeout_s=10, what="both members collecting+distributing here"
    )
    reachable(vm, PEER_IP)

    seconds, step = 9.0, 0.25
    with iperf3_server(peer.netns, bind=PEER_IP):
        before = member_tx(host)
        client = subprocess.Popen(["ip", "netns", "exec", vm, "iperf3", "-c", PEER_IP, "--json", "-t", str(seconds),
                                   "-i", str(step), "-b", "150M"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  text=True)  # fmt: skip
        started = time.monotonic()
        try:

            def carrier() -> int | None:
                grew = [b - a for a, b in zip(before, member_tx(host), strict=True)]
                big, small = max(grew), min(grew)
                return grew.index(big) if big >= 20_000_000 and big > 10 * small else None

            wait_for(lambda: carrier() is not None, timeout_s=5, interval_s=0.1, what="the flow under way")
            k = carrier()
            assert k is not None
            wait_for(lambda: time.monotonic() - started >= 2.0, interval_s=0.05, what="2 s of the flow")
            victim = (m1, m2)[k]
            sh("ip", "link", "set", victim, "down")
            cut_at = time.monotonic() - started
            wait_for(lambda: time.monotonic() - started >= cut_at + 1.5, interval_s=0.05, what="1.5 s after")
            sh("ip", "link", "set", victim, "up")
            restored_at = time.monotonic() - started
            out, err = client.communicate(timeout=seconds + 30)
        finally:
            if client.poll() is None:
                client.kill()
                client.wait(timeout=5)
    result: dict[str, Any] = json.loads(out) if out.strip() else {"error": err}
    assert client.returncode == 0 and "error" not in result, (
        f"iperf3 -> {client.returncode}: {result.get('error')}"
    )
    intervals = [(float(i["sum"]["start"]), int(i["sum"]["bytes"])) for i in result["intervals"]]
    after = [(t, b) for t, b in intervals if t + step > cut_at]
    run = longest = 0
    for _, b in after:
        run = run + 1 if b == 0 else 0
        longest = max(longest, run)
    late_zero = [t for t, b in intervals if t >= cut_at + 1.0 and b == 0]
    mbit = [round(b * 8 / step / 1e6) for _, b in intervals]
    print(f"\nLACP, one TCP flow VM -> OVS: cut member {k + 1} at {cut_at:.2f} s, restored at {restored_at:.2f} s; "
          f"Mbit/s per {step} s: {mbit}; longest empty run after the cut {longest * step:.2f} s; "
          f"retransmits {result['end']['sum_sent'].get('retransmits')}; member drops "
          f"{[m['counters']['drops'] for m in team_members(host)]}")  # fmt: skip
    assert not late_zero, f"no bytes in the intervals starting at {late_zero} s (cut at {cut_at:.2f} s)"
    assert received_mbit(result) > 20
    wait_for(lambda: peer.appctl("lacp/show", "bond0").count("current attached") == 2, timeout_s=15,
             what="re-aggregated after the member returned")  # fmt: skip
