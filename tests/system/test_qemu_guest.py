"""Real virtual machines (issue 12): QEMU guests with virtio-net NICs on TAP ports of a real pyvswitchd.

The guest is the image guest/image.py builds from Debian packages (kernel 6.1 cloud, busybox, 8021q); it runs
under KVM where KVM can run it and under TCG elsewhere (this Firecracker host: see guest/qemu.py). Skipped with
the reason when QEMU is missing. Boot time and TCP rates are measured by `make bench-guests`, not here.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import replace

import pytest

from pyvswitch.guest.image import DEFAULT_CACHE_DIR
from pyvswitch.guest.qemu import (
    DEFAULT_RUN_DIR,
    Guest,
    GuestNic,
    GuestSpec,
    create_tap,
    delete_tap,
    guests_unavailable,
    migrate_guest,
    start_guest,
)
from pyvswitch.lab.hosts import Lab
from pyvswitch.lab.migrationbench import firewall
from pyvswitch.lab.traffic import GapPinger, iperf3_server, parse_iperf3_json
from pyvswitch.testing.netns import NetnsPool, sh, unique, wait_for
from tests.system.conftest import Host, ping

pytestmark = [
    pytest.mark.system,
    pytest.mark.skipif(guests_unavailable() is not None, reason=str(guests_unavailable())),
]

StartGuest = Callable[..., Guest]


@pytest.fixture
def guests(host: Host) -> Iterator[StartGuest]:
    """``start(switch, cidr, vlan=None)``: a TAP port on ``switch`` and a guest on it; all stopped, their TAPs
    removed, after the test (pass or fail)."""
    started: list[Guest] = []
    taps: list[str] = []

    def start(switch: str, cidr: str | None, vlan: str | None = None) -> Guest:
        name, tap = unique("pvg"), unique("pvq")
        create_tap(tap)
        taps.append(tap)
        host.cli(
            "port", "add", name, "--interface", tap, "--switch", switch, *(["--vlan", vlan] if vlan else [])
        )
        mac = "52:54:00:" + ":".join(f"{b:02x}" for b in os.urandom(3))  # QEMU's OUI, a random tail
        guest = start_guest(GuestSpec(name, (GuestNic(tap, mac, (cidr,) if cidr else ()),)), timeout_s=90)
        started.append(guest)
        return guest

    try:
        yield start
    finally:
        for g in started:
            g.stop()
        for tap in taps:
            delete_tap(tap)


def guest_console(name: str) -> str:
    """The tail of guest ``name``'s console, wherever its daemon runs it (a kernel panic shows there)."""
    logs = sorted(DEFAULT_RUN_DIR.glob(f"*/{name}/console.log"), key=lambda p: p.stat().st_mtime)
    return logs[-1].read_text(errors="replace")[-3000:] if logs else "(no console log)"


def guest_ping(g: Guest, dst: str, size: int = 56, count: int = 3) -> tuple[int, str]:
    res = g.run(f"ping -c {count} -s {size} -W 2 {dst}", timeout_s=30)
    return res.returncode, res.stdout + res.stderr


def test_a_guest_on_a_tap_port_pings_a_namespace_vm_at_56_1472_8000_bytes_and_runs_commands(
    host: Host, guests: StartGuest
) -> None:
    """Item 1: the guest's virtio-net NIC is configured at boot and talks through the switch both ways;
    8000-byte payloads travel as IP fragments at MTU 1500. The agent returns exit status, stdout, stderr."""
    host.cli("switch", "add", "g", "--type", "private")
    vm = host.vm_add("g", "10.97.0.1/24")
    guest = guests("g", "10.97.0.10/24")
    assert guest.boot_s is not None and guest.boot_s < 60, guest.boot_s
    for size in (56, 1472, 8000):
        res = ping(vm, "10.97.0.10", size=size, count=5)
        assert res.returncode == 0 and " 0% packet loss" in res.stdout, res.stdout + res.stderr
        rc, out = guest_ping(guest, "10.97.0.1", size=size)
        assert rc == 0 and " 0% packet loss" in out, out
    # Offloads through the TAP's virtio-net header: the guest may hand the switch unchecksummed TSO frames.
    offloads = guest.offloads()
    assert offloads["csum"] and offloads["host_tso4"] and offloads["guest_tso4"], offloads
    res = guest.run("echo out; echo err >&2; exit 3")
    assert (res.returncode, res.stdout, res.stderr) == (3, "out\n", "err\n")
    assert guest.run(["cat", "/sys/class/net/eth0/address"]).stdout.strip() == guest.spec.nics[0].mac
    ports = host.json("counters")["switches"]["g"]["ports"]  # type: ignore[index]
    assert ports[guest.spec.name]["rx_frames"] > 0  # type: ignore[index]


def test_a_tagging_guest_on_a_trunk_port_reaches_each_vlan_and_not_across(
    host: Host, guests: StartGuest
) -> None:
    """Item 3: the guest kernel's own 802.1Q stack (eth0.10, eth0.20) on a trunk port meets an access-10 and an
    access-20 VM; an address of the VLAN-20 VM inside VLAN 10's subnet is unreachable (no leak across VLANs);
    tshark on the TAP (the guest's wire) sees frames tagged 10 and 20."""
    host.cli("switch", "add", "t", "--type", "private")
    vm10 = host.vm_add("t", "10.98.10.1/24", "--vlan", "access:10")
    host.vm_add("t", "10.98.20.1/24", "--ip", "10.98.10.2/24", "--vlan", "access:20")
    guest = guests("t", None, vlan="trunk:10,20")
    for vid in (10, 20):
        res = guest.run(
            f"ip link add link eth0 name eth0.{vid} type vlan id {vid} && "
            f"ip addr add 10.98.{vid}.5/24 dev eth0.{vid} && ip link set eth0.{vid} up"
        )
        assert res.returncode == 0, res.stderr
    tap = guest.spec.nics[0].tap
    tshark = subprocess.Popen(
        ["tshark", "-l", "-n", "-i", tap, "-f", "vlan", "-T", "fields", "-e", "vlan.id", "-a", "duration:8"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        _wait_tshark_capturing(tshark)
        assert guest_ping(guest, "10.98.10.1")[0] == 0
        assert guest_ping(guest, "10.98.20.1")[0] == 0
        assert ping(vm10, "10.98.10.5").returncode == 0
        assert guest_ping(guest, "10.98.10.2", count=2)[0] != 0  # VLAN 20's VM, addressed in VLAN 10's subnet
    finally:
        out, _ = tshark.communicate(timeout=30)
    assert {line.strip() for line in out.splitlines() if line.strip()} == {"10", "20"}, out


def _wait_tshark_capturing(proc: subprocess.Popen[str]) -> None:
    """tshark says "Capturing on ..." on stderr once its capture is open."""
    assert proc.stderr is not None
    for line in proc.stderr:
        if "Capturing on" in line:
            return
    raise AssertionError("tshark exited before capturing")


def test_pvlan_isolation_holds_for_a_guest(host: Host, guests: StartGuest) -> None:
    """Item 3: an isolated guest reaches the promiscuous VM, not an isolated one."""
    host.cli("switch", "add", "pv", "--type", "private")
    iso = host.vm_add("pv", "10.99.0.1/24", "--vlan", "isolated:100:101")
    host.vm_add("pv", "10.99.0.254/24", "--vlan", "promiscuous:100:101")
    guest = guests("pv", "10.99.0.10/24", vlan="isolated:100:101")
    assert guest_ping(guest, "10.99.0.254")[0] == 0
    assert guest_ping(guest, "10.99.0.1", count=2)[0] != 0
    assert ping(iso, "10.99.0.10", count=2, timeout_s=1).returncode != 0


@pytest.mark.daemon_args("--guest-image-cache", str(DEFAULT_CACHE_DIR))
def test_vm_add_kind_qemu_boots_a_guest_the_daemon_keeps_across_a_restart_and_removes(host: Host) -> None:
    """Item 1 through the daemon: `vm add --kind qemu` returns once the guest's NIC is configured; `vm exec`
    runs in the guest with its exit status; `vm list` shows the kind; a kill -9 + restart of pyvswitchd adopts
    the running guest (same QEMU process, still forwarding); `vm del` stops QEMU and removes the TAP."""
    host.cli("switch", "add", "q", "--type", "private")
    ns_vm = host.vm_add("q", "10.96.0.1/24")
    name = unique("pvg")
    host.vms.append(name)
    vm = host.json("vm", "add", name, "--kind", "qemu", "--switch", "q", "--ip", "10.96.0.10/24")
    assert isinstance(vm, dict) and vm["kind"] == "qemu" and vm["state"] == "running", vm
    assert 0 < vm["boot_s"] < 60 and vm["netns"] is None
    tap = vm["ports"][0]["interface"]
    pid = vm["pid"]
    res = host.cli("vm", "exec", name, "--", "sh", "-c", "ip -o -4 addr show dev eth0; exit 7", check=False)
    assert res.returncode == 7 and "10.96.0.10/24" in res.stdout, res
    res = host.cli("vm", "exec", name, "--", "ping", "-c", "3", "-W", "2", "10.96.0.1", check=False)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "qemu (running)" in host.cli("vm", "list").stdout

    host.kill9()
    host.start()
    again = host.json("vm", "show", name)
    assert isinstance(again, dict) and again["state"] == "running" and again["pid"] == pid, again
    assert ping(ns_vm, "10.96.0.10").returncode == 0
    # The agent outlived its client (the killed daemon): the new daemon's exec reaches it.
    assert host.cli("vm", "exec", name, "--", "true", check=False).returncode == 0

    host.cli("vm", "del", name)
    wait_for(lambda: not os.path.exists(f"/proc/{pid}"), timeout_s=15, what="QEMU gone")
    assert subprocess.run(["ip", "link", "show", tap], capture_output=True).returncode != 0


def test_a_guest_on_a_team_switch_reaches_the_lan_through_either_member(
    host: Host, guests: StartGuest, pool: NetnsPool
) -> None:
    """Item 3: a guest behind a 2-member SwitchIndependent team (members' peers on a Linux bridge, the
    "physical switch", with a LAN host) pings the LAN host with both members up, then with each member cut in
    turn (the team fails the guest's traffic over to the other member)."""
    psw, lan = pool.netns("pvp", ipv6=False), pool.netns("pvl", ipv6=False)
    sh("ip", "link", "add", "br0", "type", "bridge", netns=psw)
    members = [unique("pvm"), unique("pvm")]
    for i, member in enumerate(members):
        pool.veth(member, f"p{i}", b_ns=psw)
        sh("ip", "link", "set", f"p{i}", "master", "br0", netns=psw)
    pool.veth("plan", "eth0", a_ns=psw, b_ns=lan)
    sh("ip", "link", "set", "plan", "master", "br0", netns=psw)
    sh("ip", "link", "set", "br0", "up", netns=psw)
    sh("ip", "addr", "add", "10.94.0.100/24", "dev", "eth0", netns=lan)
    team = unique("pvt")
    host.cli("New-NetLbfoTeam", "-Name", team, "-TeamMembers", ",".join(members),
             "-TeamingMode", "SwitchIndependent")  # fmt: skip
    host.cli("switch", "add", "tsw", "--uplink", team, "--no-management-os")
    guest = guests("tsw", "10.94.0.10/24")
    try:
        rc, out = guest_ping(guest, "10.94.0.100", count=5)
        assert rc == 0 and " 0% packet loss" in out, out
        for i in range(2):
            sh("ip", "link", "set", f"p{i}", "down", netns=psw)  # the cable to member i pulled
            wait_for(
                lambda i=i: _member_down(host, team, members[i]), timeout_s=10, what=f"{members[i]} down"
            )
            rc, out = guest_ping(guest, "10.94.0.100", count=5)
            assert rc == 0, f"with {members[i]} cut: {out}"
            sh("ip", "link", "set", f"p{i}", "up", netns=psw)
            wait_for(
                lambda i=i: not _member_down(host, team, members[i]), timeout_s=10, what=f"{members[i]} up"
            )
    finally:
        host.cli("switch", "del", "tsw", check=False)
        host.cli("Remove-NetLbfoTeam", "-Name", team, check=False)


def _member_down(host: Host, team: str, member: str) -> bool:
    rows = host.json("Get-NetLbfoTeamMember", "-Team", team)
    assert isinstance(rows, list)
    return any(r["Name"] == member and r["OperationalStatus"] != "Active" for r in rows)


def test_a_guest_migrates_live_to_another_tap_port_under_tcp_and_1ms_pings(
    host: Host, guests: StartGuest
) -> None:
    """Item 4's QEMU half: the running guest (memory, devices, its TCP socket) moves into a new QEMU on another
    TAP port of the switch; QEMU announces its MAC there; a TCP flow from a namespace VM to the guest survives,
    and the longest gap of 1 ms pings is well under a second. (Moving between hosts adds the switch ports'
    hand-over: not yet, see the README.)"""
    host.cli("switch", "add", "m", "--type", "private")
    vm = host.vm_add("m", "10.93.0.1/24")
    src = guests("m", "10.93.0.10/24")
    tap2 = unique("pvq")
    create_tap(tap2)
    try:
        host.cli("port", "add", "dst", "--interface", tap2, "--switch", "m")
        src.run("iperf3 -s -D")
        dst_spec = replace(src.spec, name=unique("pvg"), nics=(replace(src.spec.nics[0], tap=tap2),))
        flow = subprocess.Popen(
            ["ip", "netns", "exec", vm, "iperf3", "-c", "10.93.0.10", "-t", "8", "-J"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        with GapPinger(vm, "10.93.0.10", 1) as pinger:
            time.sleep(2)  # the flow and the pings established before the move (they are what is measured)
            dst, stats = migrate_guest(src, dst_spec)
            try:
                time.sleep(1)
                gaps = pinger.stop()
                out, err = flow.communicate(timeout=60)
                assert flow.returncode == 0, err + out[-500:]
                result = parse_iperf3_json(out)
                assert result.bytes_received > 0
                assert dst.run("cat /proc/uptime").returncode == 0  # the agent answers on the destination
                assert not src.alive()
            finally:
                dst.stop()
        gap_ms = gaps.longest_gap() * 1000
        print(f"migration: total {stats.total_s:.2f} s, QEMU downtime {stats.downtime_ms:.0f} ms, "
              f"{stats.transferred_mb:.0f} MB, {stats.repaired_pages} pages repaired in {stats.repair_ms:.0f} ms, "
              f"longest ping gap {gap_ms:.0f} ms")  # fmt: skip
        assert gap_ms < 1000, gaps
        counters = host.json("counters")["switches"]["m"]["ports"]  # type: ignore[index]
        assert counters["dst"]["tx_frames"] > 0  # type: ignore[index]
    finally:
        delete_tap(tap2)


def test_migrate_moves_a_running_guest_to_another_host_under_tcp_and_1ms_pings(two_hosts: Lab) -> None:
    """Item 4: `pyvswitch migrate GUEST --to hostB` moves the running guest (QEMU's live migration, memory
    included) with its switch port and firewall state; the guest's own outbound TCP flow (admitted inbound
    only as established) survives, the LAN host's 1 ms pings come back from hostB, hostA keeps no QEMU, TAP or
    configuration of it."""
    lab = two_hosts
    a, b = lab.host("hostA"), lab.host("hostB")
    name = unique("pvg")
    ip = lab.lan_host_ip.rsplit(".", 1)[0] + ".20"
    a.cli("vm", "add", name, "--kind", "qemu", "--switch", "ext", "--ip", f"{ip}/24")
    firewall(a, name)
    tap = a.json("vm", "show", name)["ports"][0]["interface"]
    pid = a.json("vm", "show", name)["pid"]
    with iperf3_server(lab.lan_host_netns):
        a.cli("vm", "exec", name, "--", "sh", "-c",
              f"iperf3 -c {lab.lan_host_ip} -R -t 8 -J --logfile /tmp/flow.json >/dev/null 2>&1 &")  # fmt: skip
        with GapPinger(lab.lan_host_netns, ip, 1) as pinger:
            time.sleep(2)
            out = a.json("migrate", name, "--to", "hostB")
            time.sleep(1)
            gaps = pinger.stop()
        try:
            wait_for(lambda: "end" in b.cli("vm", "exec", name, "--", "cat", "/tmp/flow.json", check=False).stdout,
                     timeout_s=30, what="the flow's end")  # fmt: skip
        except TimeoutError as exc:  # say what the guest was doing (a panic shows on its console)
            raise AssertionError(
                f"{exc}; migration: {json.dumps(out)}; guest console: {guest_console(name)}"
            ) from exc
    flow = json.loads(b.cli("vm", "exec", name, "--", "cat", "/tmp/flow.json").stdout)
    assert "error" not in flow, flow.get("error")
    assert flow["end"]["sum_received"]["bytes"] > 0
    gap_ms = gaps.longest_gap() * 1000
    print(f"guest migration: {json.dumps(out)}, longest ping gap {gap_ms:.0f} ms")
    assert "BUG" not in guest_console(name) and out["guest"]["repaired_pages"] >= 0
    assert gap_ms < 1500, gaps
    view = b.json("vm", "show", name)
    assert view["state"] == "running" and view["pid"] != pid
    assert [v["name"] for v in a.json("vm", "list")] == []
    assert not os.path.exists(f"/proc/{pid}")
    assert subprocess.run(["ip", "-n", a.netns, "link", "show", tap], capture_output=True).returncode != 0
    b.cli("vm", "del", name)
