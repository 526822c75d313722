"""pyvswitchd's desired state and its only writer, the Service (the REST API in ``daemon/api`` drives it).

The package is laid out around the one commit transaction:

- ``commit.py``: the transaction every change goes through (validate -> resolve -> provision -> apply ->
  persist, rolled back as a whole on failure) and start-up; its module docstring tells the steps.
- ``resolve.py``, ``provisioning.py``, ``paths.py``: the transaction's parts: names and MACs the daemon
  chooses, the namespaces and veths it makes, and problems named as the request's fields.
- one module per resource: ``switches``, ``ports``, ``vms``, ``teams``, ``team_interfaces``, ``qos``, ``dcb``,
  ``migrating`` (the configuration half of live migration) and ``diagnostics`` (read-only engine queries).
  Each has pure candidate builders (current HostConfig + request -> ``Change``, or ConfigError, NotFound,
  Conflict) and a small class that commits them under the service's lock.

``Service`` is all of these together. Run-time state that is not configuration (capture sessions, the SR-IOV
plan) lives in its managers, ``daemon/capture.py`` and ``daemon/iov.py``.
"""

from __future__ import annotations

from collections.abc import Callable

from pyvswitch.config.store import Store
from pyvswitch.daemon.capture import CaptureManager
from pyvswitch.daemon.iov import IovManager, StoreTcRecord
from pyvswitch.daemon.macpool import MacPool
from pyvswitch.daemon.service.commit import Change, EngineLike, Transaction
from pyvswitch.daemon.service.dcb import DEFAULT_CLASS, DcbOps
from pyvswitch.daemon.service.diagnostics import DiagnosticOps
from pyvswitch.daemon.service.errors import Conflict, NotFound, build
from pyvswitch.daemon.service.migrating import MigrationOps
from pyvswitch.daemon.service.paths import request_paths
from pyvswitch.daemon.service.ports import PortOps
from pyvswitch.daemon.service.provisioning import NicSpec, Provisioner, nic_specs, vm_namespaces
from pyvswitch.daemon.service.qos import QosOps, configured_qos
from pyvswitch.daemon.service.switches import SwitchOps, switch_ports, uplink_port_name
from pyvswitch.daemon.service.team_interfaces import TeamNicOps
from pyvswitch.daemon.service.teams import TeamOps
from pyvswitch.daemon.service.vms import VmOps

__all__ = [
    "DEFAULT_CLASS",
    "Change",
    "Conflict",
    "EngineLike",
    "NicSpec",
    "NotFound",
    "Provisioner",
    "Service",
    "Transaction",
    "build",
    "configured_qos",
    "nic_specs",
    "request_paths",
    "switch_ports",
    "uplink_port_name",
    "vm_namespaces",
]


class Service(SwitchOps, PortOps, VmOps, TeamOps, TeamNicOps, QosOps, DcbOps, MigrationOps, DiagnosticOps):
    """Desired state, its validation and its realisation: the daemon's only writer.

    Each resource's requests are a class over the one Transaction (one lock, one committed configuration), and
    the Service is their union, so the API, daemon/migration.py and daemon/iov.py keep calling one object with
    the methods it always had."""

    def __init__(
        self,
        store: Store,
        engine: EngineLike,
        provisioner: Provisioner,
        macpool: MacPool,
        new_ifname: Callable[[str], str] | None = None,
        captures: CaptureManager | None = None,
    ) -> None:
        super().__init__(store, engine, provisioner, macpool, new_ifname)
        # Capture sessions and NetEvent session definitions: run-time state, not persisted. They live where the
        # frames are: pyvswitchd passes the forwarder's (daemon/forwarder_link.py RemoteCaptures).
        self.captures = captures if captures is not None else CaptureManager(engine, lambda: self._cfg)
        # SR-IOV (daemon/iov.py): the VF plan and the emulated NIC switch; None with an engine that cannot
        # program one (the API's test fakes).
        self.iov: IovManager | None = (
            IovManager(
                engine,  # type: ignore[arg-type]
                lambda: self._cfg,
                self.replace_config,
                record=StoreTcRecord(store),  # tc filters a crash leaves are cleared at the next start
            )
            if hasattr(engine, "set_nic_switched")
            else None
        )

    def stop(self) -> None:
        """Stop the service's own threads (the SR-IOV reconciler) before the engine goes away."""
        if self.iov is not None:
            self.iov.stop()
