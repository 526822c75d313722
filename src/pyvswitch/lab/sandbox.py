"""A disposable machine for a shell script that drives pyvswitch (the README's examples, issue 15): NICs that
exist, a LAN behind them that answers, and nothing left behind.

``python -m pyvswitch.lab.sandbox examples/using-it.sh`` runs the script (with bash) in its own PID, mount and
network namespaces (``unshare``): interfaces ``eth1``..``eth8`` are there under those names, every ``ip netns``
name is private (a tmpfs on /run/netns), as are guests' run directories and RAM files, and when the script ends, fails or is killed, the PID namespace takes
every process it started with it (pyvswitchd, its forwarder, QEMU, lab daemons, etcd, Open vSwitch), which
takes the namespaces and interfaces. Only the state directory (``--workdir``, a temporary one by default)
stays on disk.

The LAN is Open vSwitch (userspace datapath, ``testing/ovs.py``) in namespace ``lan``; the far end of ``ethN``
is its port ``pN``::

    eth1, eth7, eth8 ── p1, p7, p8: trunk ports (untagged = the LAN, tagged VLANs pass)
    eth2, eth3, eth4 ── bond0 = p2+p3+p4, LACP active, fast      (team t1's partner)
    eth5, eth6       ── bond1 = p5+p6, LACP active, fast         (team t2's partner)
    br0 10.0.0.1/24 (the untagged LAN host) · vlan10 10.0.10.1/24 (an access port of VLAN 10)

The script gets ``STATE_DIR``, ``PYVSWITCH_SOCKET`` (its daemon's, under the work directory),
``PYVSWITCH_LAB_DIR`` (labs registered there only) and the QEMU guest image already built (the sandbox has no
route to a package mirror).
"""

from __future__ import annotations

import argparse
import functools
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from pyvswitch.testing import ovs as ovs_peer
from pyvswitch.testing.netns import sh, wait_for

LAN_NETNS = "lan"
NICS = 8
TRUNK = (1, 7, 8)
BONDS = {"bond0": (2, 3, 4), "bond1": (5, 6)}
LAN_HOST = "10.0.0.1/24"
VLAN10_HOST = "10.0.10.1/24"


def build_lan() -> ovs_peer.Ovs:
    """``eth1``..``eth8`` in this namespace, their peers on Open vSwitch in namespace ``lan``."""
    sh("ip", "link", "set", "lo", "up")
    sh("ip", "netns", "add", LAN_NETNS)
    sh("ip", "link", "set", "lo", "up", netns=LAN_NETNS)
    for scope in ("all", "default"):  # a quiet LAN: no router solicitations or DAD
        sh("sysctl", "-qw", f"net.ipv6.conf.{scope}.disable_ipv6=1", netns=LAN_NETNS)
    # Two addresses in one namespace: each interface answers ARP for its own only.
    sh("sysctl", "-qw", "net.ipv4.conf.all.arp_ignore=1", netns=LAN_NETNS)
    for i in range(1, NICS + 1):
        sh("ip", "link", "add", f"eth{i}", "type", "veth", "peer", "name", f"p{i}", "netns", LAN_NETNS)
        sh("ip", "link", "set", f"p{i}", "up", netns=LAN_NETNS)
        sh("ip", "link", "set", f"eth{i}", "up")
    ovs = ovs_peer.Ovs(LAN_NETNS)
    ovs.start()
    ovs.vsctl("add-br", "br0", "--", "set", "bridge", "br0", "datapath_type=netdev")
    for i in TRUNK:
        ovs.vsctl("add-port", "br0", f"p{i}")
    for bond, members in BONDS.items():
        ovs.vsctl("add-bond", "br0", bond, *(f"p{i}" for i in members), "lacp=active", "--", "set", "port",
                  bond, "other_config:lacp-time=fast", "bond_mode=balance-tcp")  # fmt: skip
    ovs.vsctl("add-port", "br0", "vlan10", "tag=10", "--", "set", "interface", "vlan10", "type=internal")
    for ifname, address in (("br0", LAN_HOST), ("vlan10", VLAN10_HOST)):
        wait_for(functools.partial(_link_exists, LAN_NETNS, ifname), what=f"OVS port {ifname}")
        sh("ip", "addr", "add", address, "dev", ifname, netns=LAN_NETNS)
        sh("ip", "link", "set", ifname, "up", netns=LAN_NETNS)
    return ovs


def _link_exists(netns: str, ifname: str) -> bool:
    return subprocess.run(["ip", "-n", netns, "link", "show", ifname], capture_output=True).returncode == 0


def _inside(script: Path, workdir: Path) -> int:
    """PID 1 of the sandbox: private /run/netns, the LAN, then the script; its exit status."""
    # Private too: the guests' run directories and their RAM files (a TCG guest's RAM is a 256 MiB file in
    # /dev/shm, guest/ram.py). The PID namespace kills QEMU without a `vm del`, and each run of the README
    # script left web04's directory and 256 MiB of the host's memory behind.
    for path in ("/run/netns", "/run/pyvswitch-guests", "/dev/shm"):
        Path(path).mkdir(parents=True, exist_ok=True)
        sh("mount", "-t", "tmpfs", "pyvswitch-sandbox", path)
    # /sys/class/net shows the namespace that mounted sysfs: this one's, as `ip netns exec` does it.
    sh("mount", "-t", "sysfs", "sysfs", "/sys")
    build_lan()
    state = workdir / "state"
    state.mkdir(parents=True, exist_ok=True)
    env = {
        **os.environ,
        "STATE_DIR": str(state),
        "PYVSWITCH_SOCKET": str(workdir / "pyvswitchd.sock"),
        "PYVSWITCH_LAB_DIR": str(workdir / "labs"),
    }
    image = Path(os.environ.get("PYVSWITCH_GUEST_IMAGE_CACHE", "/var/tmp/pyvswitch-guest-image"))
    if image.is_dir() and not (state / "guest-image").exists():
        (state / "guest-image").symlink_to(image)  # built outside (the sandbox has no route to a mirror)
    env["PATH"] = f"{Path(sys.executable).parent}:{env.get('PATH', '/usr/sbin:/usr/bin:/sbin:/bin')}"
    return subprocess.run(["bash", str(script)], env=env).returncode


def run(script: Path, workdir: Path | None = None, timeout_s: float | None = None) -> int:
    """Run ``script`` in a fresh sandbox; its exit status (124 after ``timeout_s``). Nothing outlives it."""
    from pyvswitch.guest.image import DEFAULT_CACHE_DIR, ImageError, build_image
    from pyvswitch.guest.qemu import guests_unavailable

    if guests_unavailable() is None:
        try:
            build_image(DEFAULT_CACHE_DIR)  # here, where apt-get can reach a mirror
        except ImageError as exc:
            print(f"sandbox: no QEMU guest image: {exc}", file=sys.stderr)
    work = workdir or Path(tempfile.mkdtemp(prefix="pyvswitch-sandbox-"))
    cmd = ["unshare", "--pid", "--fork", "--mount-proc", "--mount", "--propagation", "private", "--net",
           "--kill-child", sys.executable, "-m", "pyvswitch.lab.sandbox", "--inside", "--workdir", str(work),
           str(script.resolve())]  # fmt: skip
    (work / "tmp").mkdir(parents=True, exist_ok=True)  # the LAN's OVS directory and the like: gone with work
    proc = subprocess.Popen(cmd, start_new_session=True, env={**os.environ, "TMPDIR": str(work / "tmp")})
    try:
        return proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        print(f"sandbox: {script} still running after {timeout_s:.0f} s: killed", file=sys.stderr)
        return 124
    finally:
        if proc.poll() is None:
            proc.kill()  # --kill-child: PID 1 of the sandbox dies, and with it everything in it
            proc.wait()
        if workdir is None:
            shutil.rmtree(work, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m pyvswitch.lab.sandbox", description=__doc__.split("\n\n")[0])
    ap.add_argument("script", type=Path, help="a bash script (e.g. examples/using-it.sh)")
    ap.add_argument("--workdir", type=Path, help="state directory, kept (default: a temporary one, removed)")
    ap.add_argument("--timeout", type=float, help="kill the sandbox after this many seconds")
    ap.add_argument("--inside", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if os.geteuid() != 0:
        ap.error("needs root (namespaces, interfaces)")
    if not ovs_peer.available():
        ap.error("needs Open vSwitch (openvswitch-switch) for the LAN's switch")
    if args.inside:
        return _inside(args.script, args.workdir)
    return run(args.script, args.workdir, args.timeout)


if __name__ == "__main__":
    sys.exit(main())
