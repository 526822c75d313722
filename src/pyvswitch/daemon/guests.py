"""The daemon's QEMU guests (VMs of kind qemu): started, restarted and stopped to match the configuration.

The commit (service/commit.py) makes each guest adapter's TAP and opens it as a switch port; ``reconcile`` then
starts QEMU for every qemu VM that has no guest yet, restarts one whose guest-visible spec changed (adapters,
MACs, addresses, memory, CPUs: QEMU has no hot-plug here, so a restart is the honest way), and stops guests
whose VM is gone. Starting returns once QEMU runs (~0.2 s, under the commit's lock); the boot itself is waited
for on a thread, so one guest's 5-10 s boot under TCG holds up no other request. ``status`` says booting,
running or failed (with the boot time or the console's last lines), which the CLI's ``vm add`` waits on.

Guests outlive the daemon: QEMU runs in its own session with a run directory under
``/run/pyvswitch-guests/<owner>/<vm>`` (guest/qemu.py), so a restarted pyvswitchd finds them there and adopts
the ones whose spec still matches, without rebooting them; SIGINT (a full stop) stops them.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from pyvswitch.config.schema import HostConfig, PortConfig, PortKind, VmConfig, VmKind
from pyvswitch.guest.agent import ExecResult
from pyvswitch.guest.image import DEFAULT_CACHE_DIR, ImageError, build_image
from pyvswitch.guest.qemu import (
    DEFAULT_RUN_DIR,
    Guest,
    GuestError,
    GuestNic,
    GuestSpec,
    MigrationStats,
    adopt_guest,
    guests_unavailable,
    remove_run_dir,
    resume_migrated,
    send_checked,
    start_guest,
    start_incoming,
    wait_booted,
)

log = logging.getLogger(__name__)

BOOT_TIMEOUT_S = 120.0  # TCG on a busy 2-CPU host: ~6 s typical, 20 s seen under a full test run
SUN_PATH_MAX = 107  # a unix socket path's bytes (QEMU's agent and QMP sockets live in the run directory)


@dataclass(frozen=True)
class GuestStatus:
    state: str  # booting | running | failed
    boot_s: float | None = None
    error: str | None = None
    pid: int | None = None


def guest_spec_of(vm: VmConfig, ports: list[PortConfig]) -> GuestSpec:
    """The guest VM ``vm`` with ``ports`` needs (as ``guest_specs`` gives it once they are configured)."""
    return guest_specs(HostConfig.model_construct(vms=[vm], ports=ports))[vm.name]


def guest_specs(cfg: HostConfig) -> dict[str, GuestSpec]:
    """VM name -> the QEMU guest it needs: one NIC per adapter in eth<N> order (the guest names its NICs in
    PCI order, which is the order QEMU is given them), MAC and addresses as configured."""
    out: dict[str, GuestSpec] = {}
    for vm in cfg.vms:
        if vm.kind is not VmKind.QEMU:
            continue
        ports = sorted(
            (p for p in cfg.ports if p.kind is PortKind.VM and p.vm == vm.name and p.interface and p.mac),
            key=lambda p: int((p.peer_interface or "eth0").removeprefix("eth") or 0),
        )
        nics = tuple(GuestNic(str(p.interface), str(p.mac), tuple(p.ip)) for p in ports)
        out[vm.name] = GuestSpec(vm.name, nics, memory_mb=vm.memory_mb, cpus=vm.cpus)
    return out


class Guests:
    """The guests of one daemon; ``start`` and ``adopt`` are injectable for tests (guest/qemu.py by default)."""

    def __init__(
        self,
        owner: str,
        image_cache: Path = DEFAULT_CACHE_DIR,
        run_root: Path = DEFAULT_RUN_DIR,
        cpus: frozenset[int] = frozenset(),
        start: Callable[[GuestSpec, Path], Guest] | None = None,
        adopt: Callable[[Path], Guest | None] = adopt_guest,
        wait: Callable[[Guest, float], None] = wait_booted,
    ) -> None:
        self.run_root = run_root / owner
        self._start = start or (
            lambda spec, root: start_guest(
                spec, run_root=root, image=build_image(image_cache), wait=False, cpus=cpus
            )
        )
        self._adopt = adopt
        self._wait = wait
        self._lock = threading.Lock()
        self._guests: dict[str, Guest] = {}
        self._status: dict[str, GuestStatus] = {}
        # Guests arriving by live migration, not configured here yet: QEMU waits (paused) for the memory copy,
        # and reconcile leaves it alone until the commit configures the VM (then it is adopted, like a guest
        # left by an earlier daemon).
        self._incoming: set[str] = set()
        self._image_cache = image_cache
        self._cpus = cpus

    def problems(self, cfg: HostConfig) -> list[tuple[str, str]]:
        """What would keep a qemu VM of ``cfg`` from starting, as (field, message): no QEMU on this host, or its
        name too long for the run directory's socket paths."""
        out = []
        for i, vm in enumerate(cfg.vms):
            if vm.kind is VmKind.QEMU and (why := guests_unavailable()) is not None:
                out.append((f"vms[{i}].kind", f"QEMU guests cannot run on this host: {why}"))
            if (
                vm.kind is VmKind.QEMU
                and len(str(self.run_root / vm.name / "agent.sock").encode()) > SUN_PATH_MAX
            ):
                out.append(
                    (f"vms[{i}].name", f"too long for a QEMU guest's socket path under {self.run_root}")
                )
        return out

    def reconcile(self, cfg: HostConfig) -> None:
        """Start, restart or stop guests so that each qemu VM of ``cfg`` has one with its spec. Failures are
        recorded in ``status`` (and logged), never raised: the configuration is already committed."""
        wanted = guest_specs(cfg)
        with self._lock:
            for name in sorted(set(self._guests) - set(wanted)):
                self._stop(name)
            for stale in self._run_dirs() - set(wanted) - set(self._guests) - self._incoming:
                found = self._adopt(self.run_root / stale)
                if found is not None:
                    log.info("stopping guest %s left by an earlier run (its VM is gone)", stale)
                    found.stop()
                remove_run_dir(self.run_root / stale)
            for name, spec in wanted.items():
                current = self._guests.get(name)
                if current is not None and current.spec == spec and current.alive():
                    continue
                if current is None:
                    found = self._adopt(self.run_root / name)
                    self._incoming.discard(name)
                    if found is not None and found.spec == spec:
                        log.info("adopted running guest %s (pid %d)", name, found.pid)
                        self._guests[name] = found
                        self._status[name] = GuestStatus("running", pid=found.pid)
                        continue
                    if found is not None:
                        found.stop()
                else:
                    self._stop(name)
                self._launch(spec)
            self._tidy()

    def _tidy(self) -> None:
        """The owner's run directory goes with its last guest."""
        if not self._guests:
            with contextlib.suppress(OSError):
                self.run_root.rmdir()

    def _run_dirs(self) -> set[str]:
        try:
            return {p.name for p in self.run_root.iterdir() if p.is_dir()}
        except FileNotFoundError:
            return set()

    def _launch(self, spec: GuestSpec) -> None:
        try:
            guest = self._start(spec, self.run_root)
        except (GuestError, ImageError, OSError) as exc:  # its status says why (`vm show`, `vm add` fails)
            log.error("guest %s did not start: %s", spec.name, exc)
            self._status[spec.name] = GuestStatus("failed", error=str(exc))
            return
        self._guests[spec.name] = guest
        self._status[spec.name] = GuestStatus("booting", pid=guest.pid)
        threading.Thread(
            target=self._boot, args=(guest,), name=f"pyvswitch-boot-{spec.name}", daemon=True
        ).start()

    def _boot(self, guest: Guest) -> None:
        try:
            self._wait(guest, BOOT_TIMEOUT_S)
        except Exception as exc:  # recorded, not raised: this is a background thread
            status = GuestStatus("failed", error=str(exc), pid=guest.pid)
            log.error("guest %s did not boot: %s", guest.spec.name, exc)
        else:
            boot_s = round(guest.uptime(), 2)
            status = GuestStatus("running", boot_s=boot_s, pid=guest.pid)
            log.info("guest %s up in %.2f s", guest.spec.name, boot_s)
        with self._lock:
            if self._guests.get(guest.spec.name) is guest:
                self._status[guest.spec.name] = status

    def _stop(self, name: str) -> None:
        guest = self._guests.pop(name, None)
        self._status.pop(name, None)
        if guest is not None:
            log.info("stopping guest %s", name)
            guest.stop()

    def stop_all(self) -> None:
        with self._lock:
            for name in sorted(self._guests):
                self._stop(name)
            self._tidy()

    # ---- live migration (daemon/migration.py drives these) ----

    def receive(self, spec: GuestSpec) -> str:
        """Start a QEMU waiting for guest ``spec`` to arrive by live migration (its TAPs must exist); returns the
        URI the source's QEMU sends to."""
        with self._lock:
            guest = start_incoming(
                spec, run_root=self.run_root, image=build_image(self._image_cache), cpus=self._cpus
            )
            self._incoming.add(spec.name)
            return guest.incoming_uri

    def cancel_incoming(self, name: str) -> None:
        """The migration will not commit here: its waiting (or arrived, paused) QEMU goes."""
        with self._lock:
            self._incoming.discard(name)
            if name in self._guests:
                return  # configured here after all (the commit won): not ours to stop
            found = self._adopt(self.run_root / name)
            if found is not None:
                found.stop()
            remove_run_dir(self.run_root / name)
            self._tidy()

    def send(self, name: str, uri: str) -> MigrationStats:
        """Copy running guest ``name`` to the QEMU at ``uri``; it is paused here once this returns."""
        guest = self._guests.get(name)
        if guest is None or not guest.alive():
            raise GuestError(f"guest {name!r} is not running here")
        with guest.lock:
            return send_checked(guest, uri)

    def resume(self, name: str) -> None:
        """Run guest ``name`` after a live migration (the arrived copy, or the source's after an abort), with
        its MACs announced."""
        guest = self._guests.get(name)
        if guest is None:
            raise GuestError(f"guest {name!r} is not here")
        resume_migrated(guest)
        self._status[name] = GuestStatus("running", pid=guest.pid)

    def status(self, name: str) -> GuestStatus | None:
        return self._status.get(name)

    def run(self, name: str, argv: list[str], timeout_s: float) -> ExecResult:
        """A command in guest ``name`` through its agent (GuestError if it has none running)."""
        guest = self._guests.get(name)
        status = self._status.get(name)
        if guest is None or status is None or status.state != "running":
            raise GuestError(f"guest {name!r} is not running ({status.state if status else 'not started'})")
        with guest.lock:
            return guest.run(argv, timeout_s)
