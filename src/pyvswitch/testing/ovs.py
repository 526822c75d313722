"""Open vSwitch as an independent peer in a namespace (userspace 'netdev' datapath, no kernel module), for
interop tests: ovsdb-server and ovs-vswitchd with a private run/db/log directory, removed on close."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path

from pyvswitch.testing.netns import wait_for

SCHEMA = "/usr/share/openvswitch/vswitch.ovsschema"


def available() -> bool:
    return all(
        shutil.which(t) for t in ("ovsdb-server", "ovs-vswitchd", "ovs-vsctl", "ovs-appctl", "ovsdb-tool")
    ) and (os.path.exists(SCHEMA))


class Ovs:
    """One OVS instance inside ``netns``."""

    def __init__(self, netns: str) -> None:
        self.netns = netns
        self.dir = Path(tempfile.mkdtemp(prefix="pyvswitch-ovs-"))
        self.env = {
            **os.environ,
            "OVS_RUNDIR": str(self.dir),
            "OVS_DBDIR": str(self.dir),
            "OVS_LOGDIR": str(self.dir),
        }
        self.db = self.dir / "db.sock"
        self.ctl = self.dir / "vswitchd.ctl"

    def _run(self, *args: str) -> str:
        res = subprocess.run(["ip", "netns", "exec", self.netns, *args], capture_output=True, text=True,
                             env=self.env, timeout=30)  # fmt: skip
        if res.returncode != 0:
            raise RuntimeError(f"{' '.join(args)} failed: {res.stderr.strip()}")
        return res.stdout

    def start(self) -> None:
        d = self.dir
        self._run("ovsdb-tool", "create", str(d / "conf.db"), SCHEMA)
        self._run("ovsdb-server", str(d / "conf.db"), f"--remote=punix:{self.db}", f"--pidfile={d}/ovsdb.pid",
                  f"--unixctl={d}/ovsdb.ctl", "--detach", f"--log-file={d}/ovsdb.log")  # fmt: skip
        self.vsctl("--no-wait", "init")
        self._run("ovs-vswitchd", f"unix:{self.db}", f"--pidfile={d}/vswitchd.pid", f"--unixctl={self.ctl}",
                  "--detach", f"--log-file={d}/vswitchd.log")  # fmt: skip
        wait_for(lambda: self.ctl.exists(), what="ovs-vswitchd control socket")

    def lacp_bond(self, members: list[str], address: str | None = None) -> None:
        """Bridge br0 (netdev datapath) with bond0 over ``members`` (LACP active, fast, balance-tcp), and
        ``address`` (CIDR) on the bridge's own port if given."""
        self.vsctl("add-br", "br0", "--", "set", "bridge", "br0", "datapath_type=netdev")
        self.vsctl("add-bond", "br0", "bond0", *members, "lacp=active", "--", "set", "port", "bond0",
                   "other_config:lacp-time=fast", "bond_mode=balance-tcp")  # fmt: skip
        if address is not None:
            wait_for(lambda: "br0" in self._run("ip", "link"), what="OVS bridge port br0")
            self._run("ip", "addr", "add", address, "dev", "br0")
            self._run("ip", "link", "set", "br0", "up")

    def static_bond(
        self, members: list[str], address: str | None = None, bond_mode: str = "balance-slb"
    ) -> None:
        """Bridge br0 (netdev datapath) with bond0 over ``members`` without LACP (``lacp=off``), and ``address``
        (CIDR) on the bridge's own port if given. OVS has no "static LAG" mode: balance-slb (the default here)
        and active-backup are the bond modes that work without LACP; balance-tcp without LACP drops everything
        it receives (OVS's bond_check_admissibility) unless ``lacp-fallback-ab`` turns it into active-backup.
        In both usable modes OVS accepts multicast and broadcast only on its active member
        (``bond/show``: "active member"; ``appctl bond/set-active-member`` moves it)."""
        self.vsctl("add-br", "br0", "--", "set", "bridge", "br0", "datapath_type=netdev")
        self.vsctl("add-bond", "br0", "bond0", *members, "lacp=off", "--", "set", "port", "bond0",
                   f"bond_mode={bond_mode}")  # fmt: skip
        if address is not None:
            wait_for(lambda: "br0" in self._run("ip", "link"), what="OVS bridge port br0")
            self._run("ip", "addr", "add", address, "dev", "br0")
            self._run("ip", "link", "set", "br0", "up")

    def vsctl(self, *args: str) -> str:
        return self._run("ovs-vsctl", f"--db=unix:{self.db}", *args)

    def appctl(self, *args: str) -> str:
        return self._run("ovs-appctl", "-t", str(self.ctl), *args)

    def close(self) -> None:
        for pidfile in ("vswitchd.pid", "ovsdb.pid"):
            try:
                os.kill(int((self.dir / pidfile).read_text().strip()), signal.SIGTERM)
            except (OSError, ValueError):
                pass
        shutil.rmtree(self.dir, ignore_errors=True)
