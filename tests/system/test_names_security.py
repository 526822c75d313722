"""Issue 11 (security, item 1) against a real pyvswitchd and the kernel: hostile names are refused before
anything is created, and the lab's launcher runs a command in a private sysfs without a shell."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from pyvswitch.testing.netns import sh, unique
from tests.system.conftest import Host

pytestmark = pytest.mark.system


def api(host: Host) -> httpx.Client:
    return httpx.Client(transport=httpx.HTTPTransport(uds=str(host.socket)), base_url="http://pyvswitchd")


@pytest.mark.daemon_args("--receive-steering", "on")
def test_peer_interface_with_shell_text_is_refused(host: Host) -> None:
    """issue 11: a VM adapter whose peer_interface was `touch${IFS}Q` (backticks) made the daemon create Q
    with --receive-steering on; now the API refuses the name and the daemon runs nothing."""
    assert host.proc is not None
    cwd = Path(os.readlink(f"/proc/{host.proc.pid}/cwd"))
    marker = cwd / "Q"  # the very name: `touch${IFS}Q` is 14 characters, a valid length
    assert not marker.exists()
    vm = unique("pvs")
    host.vms.append(vm)
    host.cli("switch", "add", "sw", "--type", "private")
    host.cli("vm", "add", vm, "--no-adapter")
    port = {"name": f"{vm}-e0", "kind": "vm", "vm": vm, "switch": "sw", "peer_interface": "`touch${IFS}Q`"}
    with api(host) as c:
        r = c.post("/v1/ports", json=port)
    created = marker.exists()
    if created:
        marker.unlink()
    assert r.status_code == 400, r.text
    assert [e["field"] for e in r.json()["errors"]] == ["peer_interface"]
    assert not created


def test_netns_outside_run_netns_is_refused(host: Host, tmp_path: Path) -> None:
    """issue 11: a VM's netns with '/' became a namespace mount outside /run/netns, hidden from `ip netns
    list`, and deleting the VM unlinked that path."""
    target = tmp_path / "hidden-ns"
    netns = "../.." + str(target)  # /run/netns/../../<tmp>/hidden-ns
    vm = unique("pvs")
    try:
        res = host.cli("vm", "add", vm, "--netns", netns, "--no-adapter", check=False)
        assert res.returncode != 0
        assert "netns" in res.stderr
        assert not target.exists()
    finally:
        if target.exists():  # main's behaviour: take its mount away again
            host.cli("vm", "del", vm, check=False)
            subprocess.run(["umount", str(target)], capture_output=True)


def test_launch_mounts_a_private_sysfs_without_a_shell() -> None:
    """issue 11: lab hosts started pyvswitchd through `sh -c 'mount ... && exec "$0" "$@"'`; the launcher does
    the mounts itself, and an argument with shell text arrives verbatim."""
    ns = unique("pvl")
    sh("ip", "netns", "add", ns)
    try:
        sh("ip", "link", "add", "pvl-a", "type", "veth", "peer", "name", "pvl-b", netns=ns)
        argv = [
                "nsenter",
                f"--net=/run/netns/{ns}",
                sys.executable,
                "-m",
                "pyvswitch.lab.launch",
                "--own-sysfs",
                "--",
                sys.executable,
                "-c",
                "import os, sys; print(sorted(os.listdir('/sys/class/net')), sys.argv[1:])",
                "$(id)`id`;x",
        ]  # fmt: skip
        out = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=True).stdout.strip()
        assert out == f"{['lo', 'pvl-a', 'pvl-b']} {['$(id)`id`;x']}"
        # The host's own /sys is untouched: the new sysfs was mounted in the launcher's mount namespace only.
        assert "pvl-a" not in os.listdir("/sys/class/net")
    finally:
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)
