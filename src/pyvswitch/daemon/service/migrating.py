"""The configuration half of live migration: a VM arriving with its ports, a VM leaving without its veths.

``daemon/migration.py`` drives a migration (hyperv-networking.md §8) and calls these: the destination checks an
arriving VM (``check_incoming_vm``) and then adopts it with the veths the source moved into its namespace
(``adopt_vm``); the source drops the VM from its configuration but leaves its veths and namespace to the
destination (``release_vm``). Both go through the one commit, which the ``_adopting``/``_keep`` sets tell which
OS objects to leave alone.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from pyvswitch.cluster.ports import records_of
from pyvswitch.config.schema import HostConfig, PortConfig, VmConfig, VmKind
from pyvswitch.config.validate import validate
from pyvswitch.daemon.guests import Guests, guest_spec_of
from pyvswitch.daemon.service import vms
from pyvswitch.daemon.service.commit import Change, Transaction, _no_step, _on_thread
from pyvswitch.daemon.service.errors import Conflict, NotFound
from pyvswitch.errors import ConfigError


def with_vm(cfg: HostConfig, vm: VmConfig, ports: list[PortConfig]) -> HostConfig:
    """``cfg`` plus an arriving VM and its ports (resolved on the source), or Conflict."""
    if any(v.name == vm.name for v in cfg.vms):
        raise Conflict("vm", f"VM {vm.name!r} already exists on this host")
    names = {p.name for p in cfg.ports}
    switches = {s.name for s in cfg.switches}
    for p in ports:
        if p.name in names:
            raise Conflict("ports", f"port {p.name!r} already exists on this host")
        if p.switch is not None and p.switch not in switches:
            raise NotFound(
                "ports", f"no switch {p.switch!r} on this host (port {p.name!r} needs one of that name)"
            )
    return cfg.model_copy(update={"vms": [*cfg.vms, vm], "ports": [*cfg.ports, *ports]})


class MigrationOps(Transaction):
    """What daemon/migration.py asks of the service."""

    @property
    def state_dir(self) -> Path:
        """Where this daemon keeps its state (the store's directory; migration records go beside it)."""
        return Path(self._store.path).parent

    def has_link(self, ifname: str) -> bool:
        """Whether ``ifname`` exists in this daemon's namespace."""
        return self._os.link_exists(ifname)

    def mark_link_owned(self, ifname: str) -> None:
        """Give an adopted veth this daemon's ownership mark, once the migration's commit mark on it has done its
        work (daemon/migration.py clears that mark when both sides have settled)."""
        mark = getattr(self._os, "mark_link", None)
        if callable(mark):
            mark(ifname)

    def check_incoming_vm(self, vm: VmConfig, ports: list[PortConfig]) -> None:
        """Would ``vm`` with ``ports`` be accepted here? Configuration only (the validation port is the
        engine's, ``migration``): raises ConfigError/Conflict/NotFound, changes nothing."""
        with self._lock:
            candidate = with_vm(self._cfg, vm, ports)
            problems = validate(candidate, self._cfg)
            for p in ports:
                if p.interface is not None and self._os.link_exists(p.interface):
                    problems.append(("ports", f"interface {p.interface!r} of {p.name!r} exists on this host"))
            if problems:
                raise ConfigError(problems)

    def adopt_vm(
        self,
        vm: VmConfig,
        ports: list[PortConfig],
        summary: str,
        missing_ok: bool = False,
        step: Callable[[str], None] | None = None,
        later: Callable[[Callable[[], None]], None] | None = None,
    ) -> VmConfig:
        """Add ``vm`` whose veths already exist in this namespace (moved here by a live migration): provisioning
        converges the existing pair (no new veth), the engine opens it, the store records it. ``missing_ok``
        (taking a VM back after a failed migration, issue 11): a veth that could not be found anywhere is
        provisioned anew instead of failing the adoption, so the VM is at least reachable again."""
        with self._lock:
            interfaces = [p.interface for p in ports if p.interface]
            if missing_ok:
                interfaces = [i for i in interfaces if self._os.link_exists(i)]
            self._adopting = {vm.namespace, *interfaces}
            if step is not None:
                self._step = step
            if later is not None:
                self._later = later
            candidate = with_vm(self._cfg, vm, ports)
            # The VM is this host's from the commit mark on (the caller set it): its lookup records move now,
            # so the other hosts' redirect (etcd, their watches, their tunnels' FDB: 20-100 ms) overlaps the
            # adoption instead of following it. Their frames may reach this host a little before its port runs,
            # which costs nothing: the source no longer has the VM either. A failed adoption publishes back.
            self._publish_lookup(candidate)
            self._step("publish_ahead")
            try:
                self._commit(Change(candidate, summary))
            except BaseException:
                self._arriving.pop(vm.name, None)
                self._publish_lookup(self._cfg)
                raise
            finally:
                self._arriving.pop(vm.name, None)
                self._adopting = set()
                self._step = _no_step
                self._later = _on_thread
            return vms.get(self._cfg, vm.name)

    def publish_arriving(self, vm: VmConfig, ports: list[PortConfig]) -> None:
        """Cluster mode: the lookup records of a VM arriving by live migration point here from now on, before the
        veths are here (the commit request travels while the source moves them). The other hosts' redirect
        (etcd, their watches, their tunnels' tables: 40-100 ms on the loaded lab) so overlaps the move and the
        adoption instead of following them. ``withdraw_arriving`` undoes it if the VM is given back."""
        if self.cluster is None:
            return
        with self._lock:
            self._arriving[vm.name] = list(ports)
            self._publish_lookup(self._cfg)

    def withdraw_arriving(self, vm_name: str, ports: list[PortConfig]) -> None:
        """The arriving VM goes back to its source: its records stop pointing here (deleted if they still hold
        this host's value, so the source's own come back: cluster/agent.py ``_note_deletions``)."""
        if self.cluster is None:
            return
        with self._lock:
            # Republished only if this process published them: at start-up (a crash's recovery, before the
            # configuration is loaded) publishing would hand the agent an empty set, which deletes every record.
            if self._arriving.pop(vm_name, None) is not None:
                self._publish_lookup(self._cfg)
        self.cluster.withdraw(records_of(ports, self.cluster.host))

    def release_vm(self, name: str, summary: str) -> tuple[VmConfig, list[PortConfig]]:
        """Drop VM ``name`` from this host's configuration and switches but leave its veths and namespace
        alone (another host adopts them). Returns what was dropped."""
        with self._lock:
            cfg = self._cfg
            vm = vms.get(cfg, name)
            ports = [p for p in cfg.ports if p.vm == name]
            # A QEMU guest's TAPs are this host's own (the destination made its own): they go with the VM, and
            # so does its QEMU (paused since its memory went to the destination).
            if vm.kind is not VmKind.QEMU:
                self._keep = {vm.namespace, *(p.interface for p in ports if p.interface)}
            try:
                self._commit(Change(vms.without(cfg, name), summary))
            finally:
                self._keep = set()
            return vm, ports

    # ---- a QEMU guest arriving (its memory copied by QEMU, its TAPs made here) ----

    def prepare_incoming_guest(self, vm: VmConfig, ports: list[PortConfig]) -> str:
        """Make the arriving guest's TAPs and a QEMU waiting for its memory; returns the URI to send it to.
        Nothing is configured: the commit adopts the VM (the TAPs exist then, the QEMU is found running)."""
        guests = self._guests_manager()
        made: list[str] = []
        try:
            for p in ports:
                if p.interface is not None:
                    self._os.create_guest_tap(p.interface)
                    made.append(p.interface)
            return guests.receive(guest_spec_of(vm, ports))
        except Exception:
            for ifname in made:
                self._os.delete_link(ifname)
            raise

    def cancel_incoming_guest(self, vm_name: str, ports: list[PortConfig]) -> None:
        """The arriving guest will not be configured here: its QEMU and TAPs go (not ones a configured port
        uses: a commit that won keeps them)."""
        self._guests_manager().cancel_incoming(vm_name)
        if any(v.name == vm_name for v in self._cfg.vms):
            return
        for p in ports:
            if p.interface is not None and self._os.link_exists(p.interface):
                self._os.delete_link(p.interface)

    def _guests_manager(self) -> Guests:
        if not isinstance(self.guests, Guests):
            raise Conflict("vm", "this host runs no QEMU guests")
        return self.guests

    # ---- before start(): settling migrations a crash interrupted (daemon/migration.py, issue 11) ----

    def stored_vm_names(self) -> set[str]:
        """The VMs the store holds (read before ``start``, when the configuration is not loaded yet)."""
        return {v.name for v in self._store.load().vms}

    def put_back_stored_vm(self, vm: VmConfig, ports: list[PortConfig], summary: str) -> bool:
        """Before ``start``: make the store hold ``vm`` and ``ports`` (a VM this host turned out to own after a
        migration was interrupted), so that start-up provisions and opens it as any other. False if it
        already did."""
        stored = self._store.load()
        if any(v.name == vm.name for v in stored.vms):
            return False
        self._store.save(with_vm(stored, vm, ports), summary)
        return True

    def drop_stored_vm(self, name: str, summary: str) -> bool:
        """Before ``start``: make the store forget VM ``name`` (another host owns it now) without touching its
        veths or namespace, which start-up then never sees. False if it was not there."""
        stored = self._store.load()
        if not any(v.name == name for v in stored.vms):
            return False
        self._store.save(vms.without(stored, name), summary)
        return True
