"""A QEMU guest: one process per VM, one virtio-net NIC per adapter on a persistent TAP.

QEMU holds the TAP's user side (its userspace virtio-net backend with IFF_VNET_HDR: this host has no
/dev/vhost-net), the switch binds the TAP's kernel side like any interface. Each guest has a run directory with
its pid file, console log, agent socket (guest/agent.py) and QMP socket; QEMU runs in its own session, so a
restarting daemon leaves the guest running and finds it again from the pid file.

Acceleration: KVM when it can run this kernel, else TCG. On this machine /dev/kvm opens and answers, but a
64-bit guest kernel stops at its first instruction under KVM (a Firecracker VM without nested VMX: no ``vmx``
in /proc/cpuinfo), so ``accelerator()`` boots the kernel once with earlyprintk and uses KVM only if the kernel
printed its banner within 3 s. ``PYVSWITCH_GUEST_ACCEL=kvm|tcg`` overrides the probe.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

from pyvswitch.errors import DeviceError
from pyvswitch.guest.agent import Agent, ExecResult
from pyvswitch.guest.image import READY_LINE, GuestImage, build_image
from pyvswitch.guest.ram import RamPair, ram_file, repaired_copy, run_dir_of

log = logging.getLogger(__name__)

QEMU = "qemu-system-x86_64"
DEFAULT_RUN_DIR = Path("/run/pyvswitch-guests")
# virtio-net feature bits (virtio 1.x spec §5.1.3): host_* = the guest may send unchecksummed / TSO frames.
VIRTIO_NET_FEATURES = {"csum": 0, "guest_csum": 1, "guest_tso4": 7, "host_tso4": 11, "mrg_rxbuf": 15}


class GuestError(RuntimeError):
    """A guest could not be started, did not boot, or did not stop."""


def guests_unavailable() -> str | None:
    """Why QEMU guests cannot run here (None when they can): what a test's skip line and the demo print."""
    if shutil.which(QEMU) is None:
        return f"{QEMU} is not installed (apt install qemu-system-x86)"
    if not os.path.exists("/dev/net/tun"):
        return "/dev/net/tun is missing"
    return None


@functools.cache
def accelerator() -> str:
    """'kvm' when a guest kernel actually runs under KVM here, else 'tcg' (see the module's note). The probe's
    answer is kept in /run (a tmpfs: forgotten at reboot, when the host may have changed), so each process does
    not pay its 3 s."""
    forced = os.environ.get("PYVSWITCH_GUEST_ACCEL")
    if forced in ("kvm", "tcg"):
        return forced
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        return "tcg"
    image = build_image()
    known = DEFAULT_RUN_DIR / f"accel-{image.kernel_version}"
    with contextlib.suppress(OSError):
        if (answer := known.read_text().strip()) in ("kvm", "tcg"):
            return answer
    answer = _probe_kvm(image)
    with contextlib.suppress(OSError):
        DEFAULT_RUN_DIR.mkdir(parents=True, exist_ok=True)
        known.write_text(answer + "\n")
    return answer


def _probe_kvm(image: GuestImage) -> str:
    with tempfile.TemporaryDirectory(prefix="pyvswitch-kvm-probe-") as tmp:
        out = Path(tmp) / "console"
        proc = subprocess.Popen(
            [QEMU, "-accel", "kvm", "-nodefaults", "-no-user-config", "-display", "none", "-m", "128",
             "-kernel", str(image.kernel), "-append", "console=ttyS0 earlyprintk=ttyS0",
             "-serial", f"file:{out}"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            deadline = time.monotonic() + 3.0
            while time.monotonic() < deadline and proc.poll() is None:
                if out.exists() and b"Linux version" in out.read_bytes():
                    log.info("guests run under KVM")
                    return "kvm"
                time.sleep(0.1)
        finally:
            proc.kill()
            proc.wait()
    log.warning("KVM does not run a guest kernel on this host (no nested virtualization?): guests use TCG")
    return "tcg"


@dataclass(frozen=True)
class GuestNic:
    tap: str
    mac: str
    addresses: tuple[str, ...] = ()  # CIDRs the guest's init configures on this NIC
    gateway: str | None = None


@dataclass(frozen=True)
class GuestSpec:
    name: str
    nics: tuple[GuestNic, ...]
    memory_mb: int = 256
    cpus: int = 1
    # Wait for a live migration (on a unix socket in the run directory, ``Guest.incoming_uri``) instead of
    # booting; the guest stays paused once it has arrived until ``cont`` (so its switch port can be ready first).
    incoming: bool = False
    extra_cmdline: str = ""


@dataclass
class Guest:
    """A running (or adopted) QEMU process for ``spec``, with its run directory."""

    spec: GuestSpec
    run_dir: Path
    pid: int = 0
    boot_s: float | None = None
    started: float = field(default_factory=time.monotonic)
    # One agent request at a time per guest (the agent's connection is one stream).
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _agent: Agent | None = field(default=None, repr=False)

    def uptime(self) -> float:
        return time.monotonic() - self.started

    @property
    def console_log(self) -> Path:
        return self.run_dir / "console.log"

    @property
    def agent_sock(self) -> Path:
        return self.run_dir / "agent.sock"

    @property
    def qmp_sock(self) -> Path:
        return self.run_dir / "qmp.sock"

    @property
    def pid_file(self) -> Path:
        return self.run_dir / "qemu.pid"

    def alive(self) -> bool:
        if self.pid <= 0:
            return False
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        with contextlib.suppress(OSError):
            return "qemu" in Path(f"/proc/{self.pid}/comm").read_text()
        return False

    @property
    def agent(self) -> Agent:
        if self._agent is None:
            self._agent = Agent(self.agent_sock)
        return self._agent

    def run(self, argv: list[str] | str, timeout_s: float = 30.0) -> ExecResult:
        return self.agent.run(argv, timeout_s)

    @property
    def incoming_uri(self) -> str:
        return f"unix:{self.run_dir / 'incoming.sock'}"

    def offloads(self, nic: str = "eth0") -> dict[str, bool]:
        """The virtio-net offload features ``nic`` negotiated with QEMU's backend (which offers them when its
        TAP has virtio-net headers): checksum and TSO4 in each direction, mergeable receive buffers."""
        bits = self.run(["cat", f"/sys/class/net/{nic}/device/features"]).stdout.strip()
        return {name: len(bits) > bit and bits[bit] == "1" for name, bit in VIRTIO_NET_FEATURES.items()}

    def qmp(self, command: str, **arguments: object) -> dict[str, object]:
        """One QMP command (a fresh connection: QMP greets, wants capabilities negotiated, then answers)."""
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(10)
            s.connect(str(self.qmp_sock))
            f = s.makefile("rwb")
            json.loads(f.readline())
            for msg in ({"execute": "qmp_capabilities"}, {"execute": command, "arguments": arguments}):
                f.write(json.dumps(msg).encode() + b"\n")
                f.flush()
                while True:
                    reply = json.loads(f.readline())
                    if "return" in reply or "error" in reply:
                        break
                if "error" in reply:
                    raise GuestError(f"QMP {msg['execute']}: {reply['error']}")
            return reply["return"] if isinstance(reply["return"], dict) else {}

    def stop(self, timeout_s: float = 5.0) -> None:
        """QMP quit, then SIGKILL if QEMU is still there after ``timeout_s``; the run directory goes too."""
        if self._agent is not None:
            self._agent.close()
        if self.alive():
            with contextlib.suppress(OSError, GuestError, ValueError):
                self.qmp("quit")
            deadline = time.monotonic() + timeout_s
            while self.alive() and time.monotonic() < deadline:
                time.sleep(0.05)
            if self.alive():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(self.pid, signal.SIGKILL)
                while self.alive():
                    time.sleep(0.02)
        remove_run_dir(self.run_dir)


def kernel_cmdline(spec: GuestSpec) -> str:
    nics = " ".join(
        "pyvswitch.nic=" + ",".join([n.mac, "+".join(n.addresses)] + ([n.gateway] if n.gateway else []))
        for n in spec.nics
    )
    return f"console=ttyS0 quiet panic=-1 pyvswitch.hostname={spec.name} {nics} {spec.extra_cmdline}".strip()


def qemu_argv(spec: GuestSpec, image: GuestImage, run_dir: Path, accel: str) -> list[str]:
    argv = [
        QEMU, "-name", spec.name, "-accel", accel if accel == "kvm" else "tcg,thread=multi",
        "-nodefaults", "-no-user-config", "-display", "none", "-no-reboot",
        "-m", str(spec.memory_mb), "-smp", str(spec.cpus),
        "-kernel", str(image.kernel), "-initrd", str(image.initramfs), "-append", kernel_cmdline(spec),
        "-chardev", f"file,id=con,path={run_dir / 'console.log'}", "-serial", "chardev:con",
        "-device", "virtio-serial-pci",
        "-chardev", f"socket,id=agent,path={run_dir / 'agent.sock'},server=on,wait=off",
        "-device", "virtserialport,chardev=agent,name=pyvswitch.agent",
        "-qmp", f"unix:{run_dir / 'qmp.sock'},server=on,wait=off",
        "-pidfile", str(run_dir / "qemu.pid"), "-daemonize",
    ]  # fmt: skip
    if accel == "kvm":
        argv += ["-cpu", "host"]
    else:
        # The guest's RAM in a file others can map: a live migration's copy is checked against it (guest/ram.py).
        argv += [
            "-object", f"memory-backend-file,id=ram0,size={spec.memory_mb}M,mem-path={ram_file(run_dir)},share=on",
            "-machine", "memory-backend=ram0",
        ]  # fmt: skip
    for i, nic in enumerate(spec.nics):
        argv += [
            "-netdev", f"tap,id=n{i},ifname={nic.tap},script=no,downscript=no,vhost=off",
            # romfile= : no iPXE option ROM to load (we boot a kernel directly; saves ~0.3 s under TCG)
            "-device", f"virtio-net-pci,netdev=n{i},mac={nic.mac},romfile=",
        ]  # fmt: skip
    if spec.incoming:
        argv += ["-incoming", f"unix:{run_dir / 'incoming.sock'}", "-S"]
    return argv


def start_guest(
    spec: GuestSpec,
    *,
    run_root: Path = DEFAULT_RUN_DIR,
    image: GuestImage | None = None,
    wait: bool = True,
    timeout_s: float = 60.0,
    cpus: frozenset[int] = frozenset(),
) -> Guest:
    """Start QEMU for ``spec`` (its TAPs must exist) and, with ``wait``, until the guest's NICs are configured
    and its agent answers; ``boot_s`` is the time from starting QEMU to that point. ``cpus``: the CPUs QEMU's
    threads may run on (default: any)."""
    image = image or build_image()
    run_dir = run_root / spec.name
    remove_run_dir(run_dir)
    run_dir.mkdir(parents=True, mode=0o700)
    (run_dir / "spec.json").write_text(json.dumps(spec_to_json(spec)))
    started = time.monotonic()
    pin = ["taskset", "-c", ",".join(map(str, sorted(cpus)))] if cpus else []
    res = subprocess.run(
        [*pin, *qemu_argv(spec, image, run_dir, accelerator())], capture_output=True, text=True
    )
    if res.returncode != 0:
        remove_run_dir(run_dir)
        raise GuestError(f"QEMU for {spec.name} did not start: {res.stderr.strip()[-500:]}")
    guest = Guest(spec, run_dir, pid=int((run_dir / "qemu.pid").read_text().strip()), started=started)
    if wait and not spec.incoming:
        try:
            wait_booted(guest, timeout_s)
        except GuestError:
            guest.stop()
            raise
        guest.boot_s = guest.uptime()
        log.info("guest %s up in %.2f s", spec.name, guest.boot_s)
    return guest


def wait_booted(guest: Guest, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while READY_LINE.encode() not in _read(guest.console_log):
        if not guest.alive():
            raise GuestError(f"guest {guest.spec.name} exited: {_read(guest.console_log)[-800:]!r}")
        if time.monotonic() > deadline:
            raise GuestError(f"guest {guest.spec.name} did not boot in {timeout_s:.0f} s")
        time.sleep(0.05)
    try:
        guest.agent.wait_up(max(1.0, deadline - time.monotonic()))
    except Exception as exc:
        raise GuestError(f"guest {guest.spec.name}: agent did not come up: {exc}") from exc


def adopt_guest(run_dir: Path) -> Guest | None:
    """The guest whose run directory this is, if its QEMU still runs (after a daemon restart)."""
    try:
        spec = spec_from_json(json.loads((run_dir / "spec.json").read_text()))
        pid = int((run_dir / "qemu.pid").read_text().strip())
    except (OSError, ValueError, KeyError, TypeError):
        return None
    guest = Guest(spec, run_dir, pid=pid)
    return guest if guest.alive() else None


@dataclass(frozen=True)
class MigrationStats:
    """QEMU's own account of a finished live migration (``query-migrate``) and our wall-clock total."""

    total_s: float  # from the migrate command to "completed"
    downtime_ms: float  # QEMU's: the guest paused on the source until the destination could run it
    transferred_mb: float
    setup_ms: float
    # Pages of the copy that differed from the paused source and were rewritten (guest/ram.py; 0 under KVM), and
    # how long the check took: the guest is paused meanwhile, so it belongs to the blackout.
    repaired_pages: int = 0
    repair_ms: float = 0.0


def migrate_guest(
    src: Guest,
    dst_spec: GuestSpec,
    *,
    run_root: Path = DEFAULT_RUN_DIR,
    image: GuestImage | None = None,
    cpus: frozenset[int] = frozenset(),
    resume: bool = True,
    timeout_s: float = 120.0,
) -> tuple[Guest, MigrationStats]:
    """Live-migrate running guest ``src`` (memory, devices, CPU state) into a new QEMU for ``dst_spec`` (the same
    devices and MACs; its TAPs may be other ones, on another host's switch). The destination waits on a unix
    socket in its run directory (the hosts share a filesystem: a lab's hosts are namespaces of one machine) and
    stays paused after the copy; ``resume`` continues it at once (``resume_migrated``), else the caller does when
    the switch side is ready. The source QEMU is stopped on success; on failure it keeps running the guest and
    the destination is stopped."""
    dst = start_incoming(dst_spec, run_root=run_root, image=image, cpus=cpus)
    try:
        stats = send_checked(src, dst.incoming_uri, timeout_s)
    except BaseException:
        dst.stop()
        raise
    if resume:
        resume_migrated(dst)
    src.stop()
    return dst, stats


def start_incoming(
    spec: GuestSpec, *, run_root: Path = DEFAULT_RUN_DIR, image: GuestImage | None = None,
    cpus: frozenset[int] = frozenset(),
) -> Guest:  # fmt: skip
    """A QEMU for ``spec`` waiting for a live migration at its ``incoming_uri`` (paused once it arrived)."""
    guest = start_guest(replace(spec, incoming=True), run_root=run_root, image=image, wait=False, cpus=cpus)
    try:
        wait_until(lambda: guest.qmp_sock.exists(), timeout_s=10, what="the incoming QEMU's QMP socket")
    except GuestError:
        guest.stop()
        raise
    return guest


def send_migration(src: Guest, uri: str, timeout_s: float = 120.0) -> MigrationStats:
    """Copy running guest ``src`` to the QEMU waiting at ``uri``; returns once QEMU says completed (the source
    is then paused, "postmigrate"). On failure or timeout the migration is cancelled and the source runs on."""
    started = time.monotonic()
    # A 100 ms downtime target (QEMU's default is 300) and no bandwidth cap below a local socket's speed.
    src.qmp("migrate-set-parameters", **{"downtime-limit": 100, "max-bandwidth": 8 << 30})
    src.qmp("migrate", uri=uri)
    while True:
        info = src.qmp("query-migrate")
        status = info.get("status")
        if status == "completed":
            break
        if status in ("failed", "cancelled"):
            raise GuestError(f"migration of {src.spec.name} {status}: {info.get('error-desc', '')}")
        if time.monotonic() - started > timeout_s:
            src.qmp("migrate_cancel")
            raise GuestError(f"migration of {src.spec.name} did not finish in {timeout_s:.0f} s")
        time.sleep(0.01)
    ram: dict[str, object] = info["ram"] if isinstance(info.get("ram"), dict) else {}  # type: ignore[assignment]
    return MigrationStats(
        total_s=time.monotonic() - started,
        downtime_ms=float(str(info.get("downtime", 0))),
        transferred_mb=float(str(ram.get("transferred", 0))) / 2**20,
        setup_ms=float(str(info.get("setup-time", 0))),
    )


def resume_migrated(guest: Guest) -> None:
    """Run a guest that arrived by live migration, and announce its MACs from QEMU itself at once (RARPs, as
    after every migration, but not waiting for the guest's own announcement, which under TCG comes late)."""
    # The source says "completed" once it has sent everything; the destination may still be loading it (a loaded
    # host, make test): continue it only once it has (its status leaves "inmigrate").
    wait_until(
        lambda: guest.qmp("query-status").get("status") != "inmigrate",
        timeout_s=30,
        what=f"guest {guest.spec.name} to finish loading the migrated state",
    )
    guest.qmp("cont")
    guest.qmp("announce-self", initial=0, max=100, rounds=5, step=50)


def remove_run_dir(run_dir: Path) -> None:
    """A guest's run directory and its RAM file (a QEMU that ran there is gone)."""
    shutil.rmtree(run_dir, ignore_errors=True)
    ram_file(run_dir).unlink(missing_ok=True)


def send_checked(src: Guest, uri: str, timeout_s: float = 120.0) -> MigrationStats:
    """``send_migration``, then the copy checked against the paused source and repaired where QEMU's TCG dirty
    tracking missed a store (guest/ram.py; nothing to check under KVM). The RAM files are mapped while the copy
    runs, so only the comparison (~30 ms) adds to the blackout; ``repair_ms`` says how long it took."""
    with contextlib.ExitStack() as stack:
        pair = RamPair.open(src.run_dir, uri)
        if pair is not None:
            stack.enter_context(pair)
        stats = send_migration(src, uri, timeout_s)
        t0 = time.monotonic()
        dst_dir = run_dir_of(uri)
        dst = Guest(src.spec, dst_dir) if dst_dir is not None else None

        def loaded() -> None:
            assert dst is not None
            wait_until(lambda: dst.qmp("query-status").get("status") != "inmigrate", 30,
                       f"guest {src.spec.name}'s copy to finish loading")  # fmt: skip

        pages = repaired_copy(pair, loaded, src.spec.name)
        return replace(stats, repaired_pages=pages, repair_ms=(time.monotonic() - t0) * 1000)


def wait_until(cond: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not cond():
        if time.monotonic() > deadline:
            raise GuestError(f"timed out waiting for {what}")
        time.sleep(0.01)


def spec_to_json(spec: GuestSpec) -> dict[str, object]:
    return {
        "name": spec.name,
        "nics": [
            {"tap": n.tap, "mac": n.mac, "addresses": list(n.addresses), "gateway": n.gateway}
            for n in spec.nics
        ],
        "memory_mb": spec.memory_mb,
        "cpus": spec.cpus,
        "extra_cmdline": spec.extra_cmdline,
    }


def spec_from_json(doc: dict[str, object]) -> GuestSpec:
    nics = doc["nics"]
    assert isinstance(nics, list)
    return GuestSpec(
        name=str(doc["name"]),
        nics=tuple(
            GuestNic(str(n["tap"]), str(n["mac"]), tuple(n.get("addresses") or ()), n.get("gateway"))
            for n in nics
        ),
        memory_mb=int(str(doc["memory_mb"])),
        cpus=int(str(doc["cpus"])),
        extra_cmdline=str(doc.get("extra_cmdline", "")),
    )


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError:
        return b""


def create_tap(ifname: str, alias: str | None = None) -> None:
    """A persistent TAP for QEMU to open (no packet info, virtio-net headers: what QEMU opens it with, so the
    guest negotiates its offloads through it), up, with ``alias`` (the daemon's ownership mark) if given. An
    existing TAP of that name is kept (a running guest holds it); any other link of that name is replaced."""
    try:
        with IPRoute() as ipr:
            idx = ipr.link_lookup(ifname=ifname)
            if idx and _link_kind(ipr, idx[0]) != "tun":
                ipr.link("del", index=idx[0])
                idx = []
            if not idx:
                ipr.link(
                    "add", ifname=ifname, kind="tuntap", mode="tap", ifr={"no_pi": True, "vnet_hdr": True}
                )
                log.info("created guest TAP %s", ifname)
            index = ipr.link_lookup(ifname=ifname)[0]
            if alias is not None:
                ipr.link("set", index=index, ifalias=alias)
            ipr.link("set", index=index, state="up")
    except NetlinkError as exc:
        raise DeviceError(f"cannot create guest TAP {ifname}: {exc}", interface=ifname) from exc


def delete_tap(ifname: str) -> None:
    """Remove a guest's TAP; no error if it is gone."""
    with IPRoute() as ipr:
        for index in ipr.link_lookup(ifname=ifname):
            with contextlib.suppress(NetlinkError):
                ipr.link("del", index=index)


def _link_kind(ipr: IPRoute, index: int) -> str | None:
    info = ipr.link("get", index=index)[0].get_attr("IFLA_LINKINFO")
    return info.get_attr("IFLA_INFO_KIND") if info is not None else None
