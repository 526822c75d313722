"""Unified tracing through the real daemon and CLI (TR): a traced ping, and a what-if that explains a drop."""

from __future__ import annotations

import subprocess
from pathlib import Path

import httpx
import pytest

from tests.system.conftest import Host, ping

pytestmark = pytest.mark.system


def test_trace_a_ping_then_what_if_a_blocked_connection(host: Host) -> None:
    host.cli("switch", "add", "sw", "--type", "private")
    a = host.vm_add("sw", "10.98.0.1/24")
    b = host.vm_add("sw", "10.98.0.2/24")
    host.cli("trace", "start", "--port", a, "--count", "3")
    assert ping(a, "10.98.0.2", count=3).returncode == 0  # ARP + 3 ICMP from a: more than the budget
    recs = host.json("trace", "show", "--port", f"{a}-eth0")
    assert isinstance(recs, list) and len(recs) == 3  # the budget, then tracing stops by itself
    assert all(r["verdict"] == f"delivered to {b}-eth0" for r in recs)
    assert recs[0]["steps"][0]["stage"] == "ingress"

    mac_b = host.json("vm", "show", b)["ports"][0]["mac"]  # type: ignore[index]
    deny = [{"action": "Deny", "direction": "Inbound", "weight": 5, "local_port": "22", "protocol": "TCP"}]
    with httpx.Client(transport=httpx.HTTPTransport(uds=str(host.socket)), timeout=30) as c:
        c.patch(f"http://pyvswitchd/v1/ports/{b}-eth0", json={"extended_acls": deny}).raise_for_status()
    before = host.json("counters")
    dropped = host.cli("trace", a, f"dst={mac_b}", "tcp", "ip=10.98.0.1>10.98.0.2", "dport=22", check=False)
    tree = dropped.stdout
    assert dropped.returncode == 1  # it would be dropped: a script can test it
    assert (
        "what-if" in tree
        and "extended-acl-deny" in tree
        and "dropped at extension pyvswitch-firewall" in tree
        and "extended ACL entry Deny Inbound weight 5 (LocalPort 22, Protocol TCP)" in tree
        and "10.98.0.1:49152 > 10.98.0.2:22 TCP [S]" in tree
    )
    ok = host.cli("trace", a, f"dst={mac_b}", "tcp", "ip=10.98.0.1>10.98.0.2", "dport=80").stdout
    assert f"delivered to {b}-eth0" in ok
    after = host.json("counters")
    fw = lambda c: next(e for e in c["switches"]["sw"]["extensions"] if e["name"] == "pyvswitch-firewall")  # noqa: E731
    assert fw(after)["drops"] == fw(before)["drops"]  # type: ignore[arg-type]  # what-if counted nothing
    bad = host.cli("trace", a, "bogus=1", check=False)
    assert bad.returncode == 2 and "bogus" in bad.stderr  # bad input, not "would be dropped"
    hits = host.json("Get-VMNetworkAdapterExtendedAcl", "-VMName", b)
    assert [h["Hits"] for h in hits] == [0]  # type: ignore[index, union-attr]  # what-ifs count nothing


def test_a_capture_of_a_traced_port_carries_the_trace_as_comments(host: Host, tmp_path: Path) -> None:
    """TR: tshark shows each traced packet's trace tree as its comment."""
    host.cli("switch", "add", "sw", "--type", "private")
    a = host.vm_add("sw", "10.99.0.1/24")
    host.vm_add("sw", "10.99.0.2/24")
    path = tmp_path / "traced.pcapng"
    cap_id = host.cli("capture", "start", str(path), "--port", f"{a}-eth0").stdout.strip().split()[-1]
    host.cli("trace", "start", "--port", a, "--count", "2")
    assert ping(a, "10.99.0.2", count=2).returncode == 0
    host.cli("capture", "stop", cap_id)
    res = subprocess.run(
        ["tshark", "-r", str(path), "-T", "fields", "-e", "frame.comment"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert res.returncode == 0, res.stderr
    comments = [ln for ln in res.stdout.splitlines() if ln.strip()]
    assert len(comments) == 2 and all("ingress" in c and "delivered to" in c for c in comments), res.stdout
