"""Several pyvswitchd "hosts" on one machine, each in its own network namespace, on one shared "physical LAN".

A lab ``<lab>`` is:

* ``<lab>-lan``: a namespace holding the Linux bridge ``br0`` (the physical switch);
* ``<lab>-peer``: a LAN host (``eth0``, default 10.90.0.100/24) plugged into ``br0``, for ping/iperf3 peers;
* per host X (``hostA``, ``hostB``, ...): a namespace ``<lab>-X`` whose ``eth1`` is plugged into ``br0``
  (``to-X`` on the bridge), a state directory ``<root>/<lab>/X/`` holding the API socket
  ``pyvswitchd.sock`` and the log, a pyvswitchd running inside ``<lab>-X``, and an External switch ``ext``
  on ``eth1`` (no management OS), the same name on every host so a VM can move between hosts.

The lab is recorded in ``<root>/<lab>/lab.json`` (root: ``$PYVSWITCH_LAB_DIR`` or /run/pyvswitch-lab) before
anything is created and after each host, so ``Lab.down`` removes everything even after a crash half-way.
``lookup_host(name)`` resolves a host to its socket and namespace (``pyvswitch --host NAME`` uses it; the
daemons get ``PYVSWITCH_LAB`` / ``PYVSWITCH_LAB_HOST`` in their environment so they resolve within their lab).

How a daemon enters its namespace matters: ``ip netns exec`` gives the process a private (slave) mount
namespace, so the VM namespaces the daemon creates (bind mounts under /run/netns) would be invisible outside
it. The daemon is therefore started with ``nsenter --net`` plus its own mount namespace whose propagation is
left shared (the /run/netns mounts reach everybody) and in which only /sys is made private and re-mounted (lab/launch.py), so
sysfs (MTU, carrier, flags read by the data path) shows the host namespace's interfaces. No daemon change.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import signal
import string
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx

from pyvswitch.guest.image import DEFAULT_CACHE_DIR, ImageError, build_image
from pyvswitch.guest.qemu import guests_unavailable
from pyvswitch.lab.etcd import EtcdCluster
from pyvswitch.lab.harness import answers, venv_bin
from pyvswitch.testing.netns import process_gone, unique, wait_for

log = logging.getLogger(__name__)

DEFAULT_ROOT = "/run/pyvswitch-lab"
SWITCH = "ext"  # the External switch every host gets, on its uplink
UPLINK = "eth1"  # the uplink's name inside a host namespace
PROVIDER_SUBNET = "10.91.0"  # cluster mode: host N's provider address is PROVIDER_SUBNET.N+1, etcd's .201-
PROVIDER_BRIDGE = "pnet"
PROVIDER_IF = "pa0"  # a host's interface on the provider network
PROVIDER_MTU = 1600
ETCD_MEMBERS = 3
BRIDGE = "br0"
LAN_HOST_IF = "eth0"
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,11}$")  # "to-" + name must fit IFNAMSIZ (15)
LAB_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,39}$")


class LabError(Exception):
    """A lab that cannot be built, found or resolved; the message is for the operator."""


def lab_root() -> Path:
    return Path(os.environ.get("PYVSWITCH_LAB_DIR", DEFAULT_ROOT))


@dataclass(frozen=True, slots=True)
class HostRecord:
    """One host of a lab: what another process needs to reach it."""

    name: str
    lab: str
    netns: str  # the host's network namespace (its pyvswitchd, uplink and VM-side veth ends live there)
    socket: str  # pyvswitchd's API socket, on the shared filesystem
    state_dir: str
    uplink: str  # the uplink interface inside ``netns``
    lan_port: str  # its peer on the LAN bridge (in the LAN namespace)
    host_id: int  # --host-id: distinct MAC pools, so VMs of different hosts never share a MAC
    pid: int | None = None  # the daemon's pid while it runs
    # Cluster mode (issue 13): etcd endpoints, this host's provider address, its registration's lease TTL.
    cluster: str | None = None
    provider_address: str | None = None
    lease_ttl_s: int = 10
    tunnel_datapath: str = "kernel"  # pyvswitchd --tunnel-datapath

    @property
    def log(self) -> str:
        return str(Path(self.state_dir) / "pyvswitchd.log")


@dataclass(slots=True)
class LabRecord:
    """The registry file's content."""

    name: str
    lan_netns: str
    lan_host_netns: str
    lan_host_ip: str  # with prefix, e.g. 10.90.0.100/24
    bridge: str = BRIDGE
    lan_host_if: str = LAN_HOST_IF
    switch: str = SWITCH
    hosts: dict[str, HostRecord] = field(default_factory=dict)
    # Cluster mode (issue 13): the provider network's namespace (a bridge; each host's ``pa0`` and the etcd
    # members' addresses on it) and the etcd endpoints the hosts join; None without --cluster.
    pnet_netns: str | None = None
    etcd_endpoints: str | None = None

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["hosts"] = {n: asdict(h) for n, h in self.hosts.items()}
        return d

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> LabRecord:
        hosts = {n: HostRecord(**h) for n, h in d.get("hosts", {}).items()}
        return cls(**{**d, "hosts": hosts})


def host_names(count: int) -> list[str]:
    """hostA, hostB, ... (hostAA after hostZ)."""
    letters = string.ascii_uppercase
    out = []
    for i in range(count):
        tag = letters[i] if i < 26 else letters[i // 26 - 1] + letters[i % 26]
        out.append(f"host{tag}")
    return out


def registry_path(lab: str, root: Path | None = None) -> Path:
    return (root or lab_root()) / lab / "lab.json"


def load(lab: str, root: Path | None = None) -> LabRecord:
    path = registry_path(lab, root)
    try:
        return LabRecord.from_json(json.loads(path.read_text()))
    except FileNotFoundError:
        raise LabError(f"no lab {lab!r} (no {path})") from None
    except (ValueError, TypeError) as exc:
        raise LabError(f"unreadable lab registry {path}: {exc}") from exc


def list_labs(root: Path | None = None) -> list[str]:
    base = root or lab_root()
    if not base.is_dir():
        return []
    return sorted(p.parent.name for p in base.glob("*/lab.json"))


def lookup_host(name: str, lab: str | None = None, root: Path | None = None) -> HostRecord:
    """Resolve host ``name`` (or ``lab/name``) to its record: socket path, namespace, state directory.

    The lab is, in order: the ``lab/`` prefix, ``lab``, ``$PYVSWITCH_LAB`` (set for every lab daemon), or the
    only lab there is. Raises ``LabError`` when it cannot decide or the host does not exist.
    """
    if "/" in name:
        lab, name = name.split("/", 1)
    lab = lab or os.environ.get("PYVSWITCH_LAB") or None
    if lab is None:
        labs = list_labs(root)
        if len(labs) != 1:
            raise LabError(
                f"host {name!r}: {'no lab is up' if not labs else 'several labs are up: ' + ', '.join(labs)}"
                " (say LAB/HOST or set PYVSWITCH_LAB)"
            )
        lab = labs[0]
    rec = load(lab, root)
    try:
        return rec.hosts[name]
    except KeyError:
        raise LabError(
            f"lab {lab!r} has no host {name!r} (hosts: {', '.join(rec.hosts) or 'none'})"
        ) from None


def _run(*args: str, netns: str | None = None, check: bool = True, timeout: float = 60) -> str:
    cmd = (["ip", "netns", "exec", netns] if netns else []) + list(args)
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if check and res.returncode != 0:
        raise LabError(
            f"{' '.join(cmd)} failed ({res.returncode}): {res.stderr.strip() or res.stdout.strip()}"
        )
    return res.stdout


def _netns_exists(name: str) -> bool:
    return os.path.exists(f"/run/netns/{name}")


def _ensure_netns(name: str) -> None:
    if not _netns_exists(name):
        _run("ip", "netns", "add", name)
    _run("ip", "-n", name, "link", "set", "lo", "up")


def _link_exists(netns: str, ifname: str) -> bool:
    return subprocess.run(["ip", "-n", netns, "link", "show", ifname], capture_output=True).returncode == 0


def _warm_guest_image() -> None:
    """Build the QEMU guest image (if QEMU is here and the image is not cached yet) from this, the host's, network
    namespace: a lab host's daemon runs in a namespace with no route to the package mirror, so its first
    `vm add --kind qemu` could not run `apt-get download` itself. ~5 s once; a cache check afterwards."""
    if guests_unavailable() is not None:
        return
    try:
        build_image(DEFAULT_CACHE_DIR)
    except ImageError as exc:  # the guest's own start reports it again, as its status
        log.warning("cannot build the QEMU guest image: %s", exc)


def _daemon_alive(h: HostRecord) -> bool:
    """Whether ``h.pid`` is still this host's pyvswitchd (not a reused pid)."""
    if h.pid is None:
        return False
    try:
        cmdline = Path(f"/proc/{h.pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return h.socket.encode() in cmdline


def _api(h: HostRecord, method: str, path: str, timeout_s: float = 30) -> httpx.Response:
    with httpx.Client(transport=httpx.HTTPTransport(uds=h.socket), timeout=timeout_s) as c:
        return c.request(method, f"http://pyvswitchd/v1{path}")


def _healthy(h: HostRecord) -> bool:
    return answers(h.socket)


class LabHost:
    """A host of a running lab, with helpers to drive its daemon through the real CLI."""

    def __init__(self, record: HostRecord) -> None:
        self.record = record

    @property
    def name(self) -> str:
        return self.record.name

    @property
    def netns(self) -> str:
        return self.record.netns

    @property
    def socket(self) -> str:
        return self.record.socket

    def cli(self, *args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        """``pyvswitch --socket <this host's socket> ARGS``; raises ``LabError`` on failure when ``check``."""
        res = subprocess.run(
            [str(venv_bin() / "pyvswitch"), "--socket", self.socket, *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            # Host names in ARGS (migrate --to hostB) are this lab's, also when other labs are up.
            env={**os.environ, "PYVSWITCH_LAB": self.record.lab},
        )
        if check and res.returncode != 0:
            raise LabError(
                f"{self.name}: pyvswitch {' '.join(args)} -> {res.returncode}\n{res.stdout}{res.stderr}"
            )
        return res

    def json(self, *args: str) -> Any:
        return json.loads(self.cli("--json", *args).stdout)

    def exec(self, *cmd: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        """Run ``cmd`` in this host's namespace (the management OS of the host)."""
        res = subprocess.run(
            ["ip", "netns", "exec", self.netns, *cmd], capture_output=True, text=True, timeout=timeout
        )
        if check and res.returncode != 0:
            raise LabError(f"{self.name}: {' '.join(cmd)} -> {res.returncode}: {res.stderr.strip()}")
        return res

    def vm_add(self, name: str, ip: str, *extra: str, switch: str = SWITCH) -> str:
        """Create VM ``name`` with one adapter on ``switch``; returns its namespace."""
        self.cli("vm", "add", name, "--switch", switch, "--ip", ip, *extra)
        return str(self.json("vm", "show", name)["netns"])


class Lab:
    """Builds, finds and removes a lab. ``Lab(name).up(hosts=2)``; ``Lab(name).down()``; ``with Lab.running()``."""

    def __init__(
        self, name: str | None = None, *, root: Path | None = None, lan_subnet: str = "10.90.0"
    ) -> None:
        self.name = name or unique("lab")
        if not LAB_RE.match(self.name):
            raise LabError(f"lab name {self.name!r}: letters, digits, '_', '-', '.', at most 40")
        self.root = root or lab_root()
        self.dir = self.root / self.name
        self.lan_subnet = lan_subnet
        self._lease_ttl_s = 10  # up()'s, for the hosts it adds
        self._tunnel_datapath = "kernel"
        self.record = LabRecord(
            name=self.name,
            lan_netns=f"{self.name}-lan",
            lan_host_netns=f"{self.name}-peer",
            lan_host_ip=f"{lan_subnet}.100/24",
        )

    # ---------------------------------------------------------------- views

    @property
    def hosts(self) -> dict[str, LabHost]:
        return {n: LabHost(h) for n, h in self.record.hosts.items()}

    def host(self, name: str) -> LabHost:
        return LabHost(self.record.hosts[name])

    @property
    def lan_host_netns(self) -> str:
        return self.record.lan_host_netns

    @property
    def lan_host_ip(self) -> str:
        """The LAN host's address without prefix (a ping/iperf3 target)."""
        return self.record.lan_host_ip.split("/")[0]

    @classmethod
    def open(cls, name: str, root: Path | None = None) -> Lab:
        """An existing lab from its registry."""
        lab = cls(name, root=root)
        lab.record = load(name, lab.root)
        return lab

    def _save(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        tmp = self.dir / "lab.json.tmp"
        tmp.write_text(json.dumps(self.record.to_json(), indent=2) + "\n")
        tmp.replace(self.dir / "lab.json")

    # ---------------------------------------------------------------- up

    def up(
        self,
        hosts: int | list[str] = 2,
        timeout_s: float = 30,
        cluster: bool = False,
        lease_ttl_s: int = 10,
        tunnel_datapath: str = "kernel",
    ) -> Lab:
        """Create (or converge to) the LAN and the hosts; idempotent: what exists and works is kept.
        ``cluster``: also a provider network with a 3-member etcd cluster on it, which the hosts' daemons join
        (``pyvswitchd --cluster``; each host has its provider address on ``pa0``)."""
        names = host_names(hosts) if isinstance(hosts, int) else list(hosts)
        for n in names:
            if not NAME_RE.match(n):
                raise LabError(f"host name {n!r}: letters, digits, '_', '-', at most 12")
        if registry_path(self.name, self.root).exists():
            self.record = load(self.name, self.root)
        self._save()  # first: a crash from here on leaves a registry that down() can follow
        _warm_guest_image()
        self._make_lan()
        if cluster or self.record.pnet_netns is not None:
            self._make_provider_net()
        self._lease_ttl_s = lease_ttl_s
        self._tunnel_datapath = tunnel_datapath
        for i, n in enumerate(names):
            self._make_host(n, i, timeout_s)
        return self

    def _make_provider_net(self) -> None:
        """The provider network: a bridge in its own namespace, etcd's members on addresses of it."""
        rec = self.record
        rec.pnet_netns = rec.pnet_netns or f"{self.name}-pnet"
        self._save()
        _ensure_netns(rec.pnet_netns)
        if not _link_exists(rec.pnet_netns, PROVIDER_BRIDGE):
            _run(
                "ip", "-n", rec.pnet_netns, "link", "add", PROVIDER_BRIDGE, "type", "bridge", "stp_state", "0"
            )
        _run("ip", "-n", rec.pnet_netns, "link", "set", PROVIDER_BRIDGE, "up")
        _run("ip", "-n", rec.pnet_netns, "link", "set", "lo", "up")
        addresses = [f"{PROVIDER_SUBNET}.{201 + i}" for i in range(ETCD_MEMBERS)]
        for a in addresses:
            _run("ip", "-n", rec.pnet_netns, "addr", "replace", f"{a}/24", "dev", PROVIDER_BRIDGE)
        etcd = EtcdCluster(ETCD_MEMBERS, root=self.dir / "etcd", netns=rec.pnet_netns, addresses=addresses)
        rec.etcd_endpoints = ",".join(f"http://{a}:2379" for a in addresses)
        self._save()
        etcd.converge()  # members that are down start again on their data: keys and leases survive

    def _plug_provider(self, rec: HostRecord) -> None:
        """Host ``rec``'s ``pa0`` on the provider bridge, with its provider address."""
        pnet = self.record.pnet_netns
        assert pnet is not None and rec.provider_address is not None
        port = f"p-{rec.name}"[:15]
        if not (_link_exists(rec.netns, PROVIDER_IF) and _link_exists(pnet, port)):
            for ns, ifn in ((rec.netns, PROVIDER_IF), (pnet, port)):
                _run("ip", "-n", ns, "link", "del", ifn, check=False)
            _run("ip", "link", "add", PROVIDER_IF, "netns", rec.netns, "type", "veth", "peer", "name", port,
                 "netns", pnet)  # fmt: skip
        # MTU 1600: a VM's 1500-byte frame plus VXLAN's 50 bytes crosses unfragmented (as on a real provider
        # network configured for overlays).
        _run("ip", "-n", pnet, "link", "set", port, "mtu", str(PROVIDER_MTU), "master", PROVIDER_BRIDGE, "up")
        _run("ip", "-n", rec.netns, "addr", "replace", f"{rec.provider_address}/24", "dev", PROVIDER_IF)
        _run("ip", "-n", rec.netns, "link", "set", PROVIDER_IF, "mtu", str(PROVIDER_MTU), "up")

    def _make_lan(self) -> None:
        rec = self.record
        _ensure_netns(rec.lan_netns)
        if not _link_exists(rec.lan_netns, rec.bridge):
            _run("ip", "-n", rec.lan_netns, "link", "add", rec.bridge, "type", "bridge", "stp_state", "0")
        _run("ip", "-n", rec.lan_netns, "link", "set", rec.bridge, "up")
        _ensure_netns(rec.lan_host_netns)
        self._plug(rec.lan_host_netns, rec.lan_host_if, "to-peer")
        _run("ip", "-n", rec.lan_host_netns, "addr", "replace", rec.lan_host_ip, "dev", rec.lan_host_if)

    def _plug(self, netns: str, ifname: str, bridge_port: str) -> None:
        """veth ``netns:ifname`` <-> ``lan:bridge_port``, enslaved to the bridge, both up."""
        lan = self.record.lan_netns
        if not (_link_exists(netns, ifname) and _link_exists(lan, bridge_port)):
            for ns, ifn in ((netns, ifname), (lan, bridge_port)):
                _run("ip", "-n", ns, "link", "del", ifn, check=False)
            _run(
                "ip",
                "link",
                "add",
                ifname,
                "netns",
                netns,
                "type",
                "veth",
                "peer",
                "name",
                bridge_port,
                "netns",
                lan,
            )
        _run("ip", "-n", lan, "link", "set", bridge_port, "master", self.record.bridge, "up")
        _run("ip", "-n", netns, "link", "set", ifname, "up")

    def _make_host(self, name: str, index: int, timeout_s: float) -> None:
        old = self.record.hosts.get(name)
        state_dir = self.dir / name
        rec = HostRecord(
            name=name,
            lab=self.name,
            netns=f"{self.name}-{name}",
            socket=str(state_dir / "pyvswitchd.sock"),
            state_dir=str(state_dir),
            uplink=UPLINK,
            lan_port=f"to-{name}",
            host_id=old.host_id if old else _host_id(self.name, index),
            pid=old.pid if old else None,
            cluster=old.cluster if old else self.record.etcd_endpoints,
            provider_address=old.provider_address if old else f"{PROVIDER_SUBNET}.{index + 1}",
            lease_ttl_s=old.lease_ttl_s if old else self._lease_ttl_s,
            tunnel_datapath=old.tunnel_datapath if old else self._tunnel_datapath,
        )
        self.record.hosts[name] = rec
        self._save()
        _ensure_netns(rec.netns)
        self._plug(rec.netns, rec.uplink, rec.lan_port)
        if rec.cluster is not None:
            self._plug_provider(rec)
        if not (_daemon_alive(rec) and _healthy(rec)):
            rec = self._start_daemon(rec, timeout_s)
            self.record.hosts[name] = rec
            self._save()
        host = LabHost(rec)
        if not any(s.get("name") == SWITCH for s in host.json("switch", "list")):
            host.cli("switch", "add", SWITCH, "--uplink", rec.uplink, "--no-management-os")

    def restart(
        self, name: str, env: dict[str, str] | None = None, timeout_s: float = 30, leave: bool = True
    ) -> LabHost:
        """Stop host ``name``'s daemon (if it still runs) and start it again on the same state, with ``env``
        added to its environment (tests: ``PYVSWITCH_FAULT``, daemon/faults.py). ``leave``: a full stop
        (SIGINT: the forwarder stops, the host leaves the cluster); otherwise a restart as systemd's is
        (SIGTERM: the forwarder and the cluster lease are kept for the successor)."""
        rec = self.record.hosts[name]
        _stop(rec, sig=signal.SIGINT if leave else signal.SIGTERM)
        rec = self._start_daemon(rec, timeout_s, env)
        self.record.hosts[name] = rec
        self._save()
        return LabHost(rec)

    def kill(self, name: str) -> None:
        """kill -9 host ``name``'s daemon and wait until it is gone (its namespace, VMs and state stay)."""
        rec = self.record.hosts[name]
        if _daemon_alive(rec):
            assert rec.pid is not None
            with contextlib.suppress(ProcessLookupError):
                os.kill(rec.pid, signal.SIGKILL)
        self.wait_dead(name)

    def wait_dead(self, name: str, timeout_s: float = 30) -> None:
        """Wait until host ``name``'s daemon has exited (killed, or dying at an injected fault)."""
        rec = self.record.hosts[name]
        if rec.pid is None:
            return
        pid = rec.pid

        def gone() -> bool:
            with contextlib.suppress(ChildProcessError, OSError):
                os.waitpid(pid, os.WNOHANG)  # reap it if we started it
            return process_gone(pid) or not _daemon_alive(rec)

        wait_for(gone, timeout_s=timeout_s, interval_s=0.02, what=f"pyvswitchd of {name} to exit")

    def _start_daemon(
        self, rec: HostRecord, timeout_s: float, extra_env: dict[str, str] | None = None
    ) -> HostRecord:
        state_dir = Path(rec.state_dir)
        state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        # Net namespace only (nsenter), plus a mount namespace of our own that keeps /run/netns shared and
        # re-mounts just /sys privately (lab/launch.py, no shell): see the module docstring for why not
        # `ip netns exec`.
        argv = [
            "nsenter", f"--net=/run/netns/{rec.netns}",
            sys.executable, "-m", "pyvswitch.lab.launch", "--own-sysfs", "--",
            str(venv_bin() / "pyvswitchd"),
            "--socket", rec.socket,
            "--state-dir", rec.state_dir,
            "--host-id", str(rec.host_id),
            "--forwarding-cpu", "none",
            # One guest image for every host of every lab (and the tests), built once.
            "--guest-image-cache", str(DEFAULT_CACHE_DIR),
        ]  # fmt: skip
        if rec.cluster is not None and rec.provider_address is not None:
            argv += ["--cluster", rec.cluster, "--provider-address", rec.provider_address, "--host-name", rec.name,
                     "--cluster-lease-ttl", str(rec.lease_ttl_s), "--tunnel-datapath", rec.tunnel_datapath]  # fmt: skip
        env = {**os.environ, "PYVSWITCH_LAB": self.name, "PYVSWITCH_LAB_HOST": rec.name, **(extra_env or {})}
        env.pop("PYVSWITCH_SOCKET", None)
        with open(rec.log, "ab") as logf:
            proc = subprocess.Popen(
                argv, stdout=logf, stderr=subprocess.STDOUT, env=env, start_new_session=True
            )  # a session of its own: it outlives `pyvswitch lab up` and the terminal's Ctrl-C
        rec = HostRecord(**{**asdict(rec), "pid": proc.pid})

        def ready() -> bool:
            if proc.poll() is not None:
                tail = Path(rec.log).read_text(errors="replace")[-2000:]
                raise LabError(f"pyvswitchd of {rec.name} exited with {proc.returncode}: {tail}")
            return _healthy(rec)

        wait_for(ready, timeout_s=timeout_s, interval_s=0.05, what=f"pyvswitchd of {rec.name} ({rec.log})")
        log.info("host %s: pyvswitchd %d in %s on %s", rec.name, proc.pid, rec.netns, rec.socket)
        return rec

    # ---------------------------------------------------------------- down

    def down(self) -> list[str]:
        """Remove everything the lab made: VMs (through their daemons, or found by namespace id if a daemon is
        dead), daemons, processes in the lab's namespaces, namespaces, state and the registry. Never raises
        for something already gone; returns the problems it could not fix."""
        problems: list[str] = []
        rec = self.record
        own = {rec.lan_netns, rec.lan_host_netns, *(h.netns for h in rec.hosts.values())}
        if rec.pnet_netns is not None:
            own.add(rec.pnet_netns)  # the etcd members are its processes
        vm_namespaces: set[str] = set()
        for h in rec.hosts.values():
            vm_namespaces |= _peer_namespaces(h.netns) - own
            if _daemon_alive(h) and _healthy(h):
                with contextlib.suppress(httpx.HTTPError, OSError, ValueError):
                    for vm in _api(h, "GET", "/vms").json():
                        vm_namespaces.add(str(vm.get("netns") or vm["name"]))
                        _api(h, "DELETE", f"/vms/{vm['name']}")
            _stop(h)
        for ns in sorted(vm_namespaces) + sorted(own):
            _kill_netns_pids(ns)
            if _netns_exists(ns):
                res = subprocess.run(["ip", "netns", "del", ns], capture_output=True, text=True)
                if res.returncode != 0:
                    problems.append(f"namespace {ns}: {res.stderr.strip()}")
        for h in rec.hosts.values():
            for name in ("pyvswitchd.sock", "pyvswitchd.log"):
                with contextlib.suppress(OSError):
                    (Path(h.state_dir) / name).unlink()
        subprocess.run(["rm", "-rf", str(self.dir)], capture_output=True)
        if self.dir.exists():
            problems.append(f"cannot remove {self.dir}")
        return problems

    @classmethod
    @contextlib.contextmanager
    def running(
        cls,
        hosts: int | list[str] = 2,
        name: str | None = None,
        root: Path | None = None,
        cluster: bool = False,
        lease_ttl_s: int = 10,
        tunnel_datapath: str = "kernel",
    ) -> Iterator[Lab]:
        """A lab that is always taken down at the end, also when ``up`` fails half-way."""
        lab = cls(name, root=root)
        try:
            yield lab.up(hosts, cluster=cluster, lease_ttl_s=lease_ttl_s, tunnel_datapath=tunnel_datapath)
        finally:
            lab.down()

    # ---------------------------------------------------------------- status

    def status(self) -> dict[str, Any]:
        """The registry plus, per host, whether its daemon answers and its switch and VM counts."""
        out = self.record.to_json()
        for n, h in self.record.hosts.items():
            entry = out["hosts"][n]
            entry["running"] = _daemon_alive(h) and _healthy(h)
            entry["switches"] = entry["vms"] = None
            if entry["running"]:
                with contextlib.suppress(httpx.HTTPError, OSError, ValueError):
                    entry["switches"] = len(_api(h, "GET", "/switches").json())
                    entry["vms"] = len(_api(h, "GET", "/vms").json())
        return out


def _host_id(lab: str, index: int) -> int:
    """A MAC pool per host: distinct within a lab (consecutive), spread across labs by the lab name."""
    import zlib

    return (zlib.crc32(lab.encode()) + index) % 0xFFFF


def _peer_namespaces(netns: str) -> set[str]:
    """Named namespaces that ``netns`` has an id for: those a veth from it leads into (its VMs, the LAN)."""
    if not _netns_exists(netns):
        return set()
    res = subprocess.run(["ip", "-n", netns, "-j", "netns", "list-id"], capture_output=True, text=True)
    try:
        return {str(e["name"]) for e in json.loads(res.stdout or "[]") if e.get("name")}
    except ValueError:
        return set()


def _stop(h: HostRecord, timeout_s: float = 10, sig: signal.Signals = signal.SIGINT) -> None:
    if not _daemon_alive(h):
        return
    assert h.pid is not None
    with contextlib.suppress(ProcessLookupError):
        os.kill(h.pid, sig)  # SIGINT: the forwarder stops too (SIGTERM keeps it for a successor)
    deadline = time.monotonic() + timeout_s
    while _daemon_alive(h) and time.monotonic() < deadline:
        time.sleep(0.05)
    if _daemon_alive(h):
        with contextlib.suppress(ProcessLookupError):
            os.kill(h.pid, signal.SIGKILL)
    # Not our child when `lab up` ran in another process: wait for it to leave the process table.
    deadline = time.monotonic() + timeout_s
    while Path(f"/proc/{h.pid}").exists() and time.monotonic() < deadline:
        with contextlib.suppress(ChildProcessError, OSError):
            os.waitpid(h.pid, os.WNOHANG)
        if process_gone(h.pid):
            break
        time.sleep(0.05)


def _kill_netns_pids(netns: str) -> None:
    if not _netns_exists(netns):
        return
    res = subprocess.run(["ip", "netns", "pids", netns], capture_output=True, text=True)
    for pid in res.stdout.split():
        with contextlib.suppress(ProcessLookupError, ValueError):
            os.kill(int(pid), signal.SIGKILL)
