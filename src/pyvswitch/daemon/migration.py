"""Live migration of a VM's network adapters between hosts (issue 6 item 4; hyperv-networking.md §2.4-2.5, §8).

The source daemon (A) drives; the destination (B) answers two calls. A VM here is a namespace with veth pairs
whose switch-side ends live in the daemon's network namespace, so "moving the VM" is moving those ends into B's
namespace: the VM, its addresses and its open sockets never notice.

1. ``POST /v1/migrations {vm, to, socket}`` on A. ``to`` names B; ``socket`` is B's API socket (the CLI resolves a
   lab host name to it; the daemon knows no lab). ``to`` alone may be B's socket path.
2. A -> B ``POST /v1/migrations/validate`` with the VM and its ports as A resolved them (interface names, MACs,
   VLAN, security, ACLs, extended ACLs, QoS...). B checks them against its configuration (the switch of the same
   name must exist) and offers each connected port to its extensions as a *validation port*: they see it
   created and may veto, nothing is reserved, it is deleted at once. A veto or any problem aborts: A has changed
   nothing. B answers with its network namespace (pid and inode).
3. A takes away the port's VF (``IovManager.set_migrating``: the software path carries it, no blackout yet).
   Meanwhile B has allocated the AF_PACKET rings for the arriving veths (``Engine.prepare_device``).
4. Blackout starts. A saves each extension's state of each port (``save_state``; the firewall's connection
   table) and moves the switch-side veth ends into B's namespace (netlink ``IFLA_NET_NS_PID``), which takes them
   out of A's data path at once; A drops the VM from its configuration, switches and store (keeping the veths
   and the namespace) on a thread while step 5 runs. (Daemons sharing one namespace: A drops the VM first.)
5. A -> B ``POST /v1/migrations/commit`` with the VM, the ports and the saved state: B adopts the existing veths
   (no provisioning; the prepared rings are bound), the store records the VM; B hands the state to its
   extensions (``restore_state``), sends a RARP from each port's MAC out of its uplink so the LAN relearns the
   MAC at once, and gives the port a VF if it has one. The blackout ends when B answers.
6. A answers with the timings: validation, blackout (switch-over), total.

Failure after step 4 never loses the VM: if B cannot adopt it, B moves the veths back into A's namespace
(it holds them), and A re-adopts the VM with its saved state, so it keeps working on A. If B is unreachable
after the move, A pulls the veths back itself from B's namespace (``/proc/<pid>/ns/net``) and re-adopts.
"""

from __future__ import annotations

import base64
import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from time import perf_counter
from typing import Any, Protocol

import httpx
from fastapi import FastAPI
from pydantic import BaseModel, ConfigDict

from pyvswitch.config.schema import PortConfig, VmConfig
from pyvswitch.daemon.service import NotFound, Service
from pyvswitch.errors import ConfigError, DeviceError, PyvswitchError

log = logging.getLogger(__name__)

NETNS_SELF = "/proc/self/ns/net"


class MigrationError(PyvswitchError):
    """The destination refused or failed; ``problems`` are its (field, message) pairs."""

    def __init__(self, problems: list[tuple[str, str]]) -> None:
        self.problems = problems
        super().__init__("; ".join(f"{f}: {m}" if f else m for f, m in problems))


@dataclass(frozen=True, slots=True)
class Netns:
    """A daemon's network namespace: its pid (to move links there), the namespace inode (to tell whether two
    daemons share one) and its /run/netns name when it has one."""

    pid: int
    inode: int
    name: str | None = None

    @classmethod
    def mine(cls) -> Netns:
        inode = os.stat(NETNS_SELF).st_ino
        name = None
        try:
            for entry in os.scandir("/run/netns"):
                if os.stat(entry.path).st_ino == inode:
                    name = entry.name
                    break
        except OSError:
            pass
        return cls(os.getpid(), inode, name)

    def as_json(self) -> dict[str, Any]:
        return {"pid": self.pid, "inode": self.inode, "name": self.name}

    @classmethod
    def of(cls, data: dict[str, Any]) -> Netns:
        return cls(int(data["pid"]), int(data["inode"]), data.get("name"))


class Phases:
    """Durations of consecutive steps (seconds), for the answer: where a blackout goes."""

    def __init__(self) -> None:
        self.done: dict[str, float] = {}
        self._last = perf_counter()

    def mark(self, name: str) -> None:
        now = perf_counter()
        self.done[name] = round(now - self._last, 6)
        self._last = now


class _Background:
    """Run ``fn`` on a thread; ``wait`` returns the exception it raised, or None."""

    def __init__(self, fn: Callable[[], object]) -> None:
        self._error: BaseException | None = None

        def run() -> None:
            try:
                fn()
            except BaseException as exc:  # handed to wait()
                self._error = exc

        self._thread = threading.Thread(target=run, name="pyvswitch-migration-release", daemon=True)
        self._thread.start()

    def wait(self) -> BaseException | None:
        self._thread.join()
        return self._error


class Peer(Protocol):
    """The destination daemon's two migration calls."""

    def validate(self, body: dict[str, Any]) -> dict[str, Any]: ...
    def commit(self, body: dict[str, Any]) -> dict[str, Any]: ...


class HttpPeer:
    """The destination over its unix socket."""

    def __init__(self, socket_path: str, timeout_s: float = 60.0) -> None:
        self.socket_path = socket_path
        # One client for both calls, made before the blackout. verify=False: a unix socket has no TLS, and
        # loading the CA bundle for nothing costs ~65 ms per transport.
        self._client = httpx.Client(
            base_url="http://pyvswitchd/v1",
            transport=httpx.HTTPTransport(uds=socket_path, verify=False),
            timeout=timeout_s,
        )

    def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        try:
            resp = self._client.post(path, json=body)
        except httpx.TransportError as exc:
            raise MigrationError(
                [("to", f"cannot reach the destination at {self.socket_path}: {exc}")]
            ) from exc
        if resp.status_code >= 400:
            try:
                errors = resp.json().get("errors") or []
            except ValueError:
                errors = []
            raise MigrationError(
                [(str(e.get("field") or ""), str(e.get("message") or "")) for e in errors]
                or [("", f"destination answered HTTP {resp.status_code}")]
            )
        out = resp.json()
        assert isinstance(out, dict)
        return out

    def close(self) -> None:
        self._client.close()

    def validate(self, body: dict[str, Any]) -> dict[str, Any]:
        return self._post("/migrations/validate", body)

    def commit(self, body: dict[str, Any]) -> dict[str, Any]:
        return self._post("/migrations/commit", body)


def resolve_target(to: str) -> str:
    """The destination's API socket when ``to`` is one (a path). A host name is resolved by whoever knows the
    hosts (the CLI, from a lab's registry) and sent as ``socket``: the daemon depends on no lab."""
    if "/" in to:
        return to
    raise NotFound(
        "to",
        f"no host {to!r} known to this daemon: give the destination daemon's API socket path "
        "(the pyvswitch CLI resolves lab host names when a lab is up)",
    )


class LinkMover(Protocol):
    def move(self, ifnames: list[str], dest: Netns, src: Netns | None = None) -> None:
        """Move interfaces from ``src`` (None: ours) into namespace ``dest``."""


class NetlinkMover:
    """``ip link set dev X netns <pid>`` through pyroute2 (no subprocess: it is on the blackout's path)."""

    def move(self, ifnames: list[str], dest: Netns, src: Netns | None = None) -> None:
        from pyroute2 import IPRoute

        ipr = IPRoute() if src is None else IPRoute(netns=f"/proc/{src.pid}/ns/net", flags=0)
        try:
            for name in ifnames:
                idx = ipr.link_lookup(ifname=name)
                if not idx:
                    raise DeviceError(f"interface {name!r} is not in the namespace it should be in")
                ipr.link("set", index=idx[0], net_ns_pid=dest.pid)
        finally:
            ipr.close()


# SR-IOV (daemon/iov.py): a migrating port loses its VF before it moves (hyperv-networking.md §4.4: its traffic
# falls back to the software path without a reset) and gets one on the destination if that host can give one.
def release_vf(service: Service, port: str) -> None:
    """Source, before the blackout: the port's VF goes and its traffic takes the software path."""
    if service.iov is not None:
        service.iov.set_migrating(port, True)


def forget_vf(service: Service, port: str) -> None:
    """Source, after the VM left (or came back): the port is no longer held off its VF."""
    if service.iov is not None:
        service.iov.set_migrating(port, False)


def assign_vf(service: Service, port: str) -> None:
    """Destination (or the source taking the VM back): a VF if the port asks for one and one is free."""
    if service.iov is not None:
        service.iov.set_migrating(port, False)  # reconciles now: the VF plan includes the new port


def _engine_call(engine: object, method: str, *args: Any) -> Any:
    fn = getattr(engine, method, None)
    return fn(*args) if callable(fn) else None


class Migrations:
    """Both ends of a live migration for one daemon."""

    def __init__(
        self,
        service: Service,
        engine: object,
        peer_for: Callable[[str], Peer] | None = None,
        mover: LinkMover | None = None,
        netns: Callable[[], Netns] = Netns.mine,
    ) -> None:
        self.service = service
        self.engine = engine
        self._peer_for = peer_for or (lambda to: HttpPeer(resolve_target(to)))
        self.mover: LinkMover = mover or NetlinkMover()
        self._netns = netns

    # ---- source ----

    def migrate(self, name: str, to: str, socket: str | None = None) -> dict[str, Any]:
        """Live-migrate VM ``name`` to host ``to`` (its API at ``socket`` when given); the answer has the timings
        (see the module docstring)."""
        self.service.vm(name)  # 404 before anything is resolved
        peer: Peer = HttpPeer(socket) if socket else self._peer_for(to)
        try:
            return self._migrate(name, to, peer)
        finally:
            close = getattr(peer, "close", None)
            if callable(close):
                close()

    def _migrate(self, name: str, to: str, peer: Peer) -> dict[str, Any]:
        t0 = perf_counter()
        svc = self.service
        vm = svc.vm(name)
        ports = svc.ports(vm=name)
        here = self._netns()
        body: dict[str, Any] = {
            "vm": vm.model_dump(mode="json"),
            "ports": [p.model_dump(mode="json") for p in ports],
            "source": here.as_json(),
        }
        answer = peer.validate(body)
        dest = Netns.of(answer["netns"])
        t_valid = perf_counter()
        connected = [p for p in ports if p.switch is not None]
        for p in connected:
            release_vf(svc, p.name)  # no blackout: the software path carries the port from here
        t1 = perf_counter()
        # ---- blackout ----
        phases = Phases()
        ifnames = [p.interface for p in ports if p.interface]
        moved = dest.inode != here.inode
        leave = f"migrate VM {name} to {to}: leaves"
        try:
            states = {
                p.name: _engine_call(self.engine, "save_port_state", p.switch, p.name) or {}
                for p in connected
            }
            phases.mark("save_state")
            if moved:
                # The move itself takes the ports out of this switch's data path (their sockets lose the
                # device), so this host's own bookkeeping (configuration, engine, store: 20-60 ms under load)
                # runs while the destination adopts the VM instead of before.
                self.mover.move(ifnames, dest)
                phases.mark("move")
                releasing = _Background(lambda: svc.release_vm(name, leave))
            else:
                svc.release_vm(name, leave)  # one namespace: no two switches may hold the veth at once
                phases.mark("release")
                releasing = None
        except Exception:
            for p in connected:  # nothing moved: the VM stays here, with its VF back
                forget_vf(svc, p.name)
            raise
        try:
            result = peer.commit({**body, "state": _encode(states)})
            phases.mark("commit")
            t2 = perf_counter()  # the destination forwards and has announced the MAC: the blackout is over
        except Exception as exc:
            log.error(
                "migration of %s to %s failed after the switch-over began: %s; keeping it here", name, to, exc
            )
            if releasing is not None and releasing.wait() is not None:
                svc.release_vm(name, leave)  # the VM's ports must go before it is adopted again
            try:
                self._take_back(vm, ports, states, ifnames, dest if moved else None, to)
            finally:
                for p in connected:
                    forget_vf(svc, p.name)
            raise
        if releasing is not None:
            error = releasing.wait()
            phases.mark("release_joined")
            if error is not None:
                log.error("VM %s is on %s but this host could not drop it (%s); retrying", name, to, error)
                svc.release_vm(name, leave)
        for p in connected:
            forget_vf(svc, p.name)  # the ports are gone from here: the hold has done its work
        t3 = perf_counter()
        log.info("migrated VM %s to %s: blackout %.1f ms", name, to, (t2 - t1) * 1000)
        return {
            "vm": name,
            "to": to,
            "ports": [p.name for p in ports],
            "timings": {
                "validation_s": t_valid - t0,
                "vf_release_s": t1 - t_valid,
                "blackout_s": t2 - t1,
                "total_s": t3 - t0,
            },
            "blackout_phases_s": phases.done,
            "destination": result,
        }

    def _take_back(
        self,
        vm: VmConfig,
        ports: list[PortConfig],
        states: dict[str, dict[str, bytes]],
        ifnames: list[str],
        dest: Netns | None,
        to: str,
    ) -> None:
        """The destination did not take the VM: get its veths back (if the destination did not send them
        back) and adopt it again with its saved state."""
        if dest is not None:
            missing = [i for i in ifnames if not self.service.has_link(i)]
            if missing:
                try:
                    self.mover.move(missing, self._netns(), src=dest)
                except Exception:
                    log.exception("cannot pull %s back from the destination's namespace", missing)
        self._adopt(vm, ports, states, f"migration of VM {vm.name} to {to} failed: VM back")

    def _adopt(
        self, vm: VmConfig, ports: list[PortConfig], states: dict[str, dict[str, bytes]], summary: str
    ) -> dict[str, Any]:
        svc = self.service
        phases = Phases()
        svc.adopt_vm(vm, ports, summary)
        phases.mark("adopt")
        orphans: dict[str, list[str]] = {}
        announced = 0
        for p in ports:
            if p.switch is None:
                continue
            blobs = states.get(p.name) or {}
            if blobs:
                orphans[p.name] = (
                    _engine_call(self.engine, "restore_port_state", p.switch, p.name, blobs) or []
                )
        phases.mark("restore_state")
        for p in ports:
            if p.switch is not None:
                announced += _engine_call(self.engine, "announce", p.switch, p.name) or 0
        phases.mark("announce")
        for p in ports:
            if p.switch is not None:
                assign_vf(svc, p.name)
        phases.mark("assign_vf")
        return {"orphaned_state": orphans, "announced": announced, "phases_s": phases.done}

    # ---- destination ----

    def _incoming(self, body: dict[str, Any]) -> tuple[VmConfig, list[PortConfig]]:
        try:
            vm = VmConfig.model_validate(body["vm"])
            ports = [PortConfig.model_validate(p) for p in body["ports"]]
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError([("body", f"not a migration request: {exc}")]) from exc
        if any(p.vm != vm.name for p in ports):
            raise ConfigError([("ports", f"every port must belong to VM {vm.name!r}")])
        return vm, ports

    def validate(self, body: dict[str, Any]) -> dict[str, Any]:
        """Would this host take the VM? Configuration, then a validation port per connected port."""
        vm, ports = self._incoming(body)
        self.service.check_incoming_vm(vm, ports)
        from pyvswitch.ext.stack import ExtensionVeto

        for i, p in enumerate(ports):
            if p.switch is None:
                continue
            try:
                _engine_call(self.engine, "validate_port", p)
            except ExtensionVeto as veto:
                raise ConfigError([(f"ports[{i}]", f"destination: {veto}")]) from veto
        for p in ports:
            if p.switch is not None and p.interface is not None:
                # Rings allocated now, bound when the veth arrives: ~20 ms out of the blackout.
                _engine_call(self.engine, "prepare_device", p.interface)
        return {"netns": self._netns().as_json()}

    def commit(self, body: dict[str, Any]) -> dict[str, Any]:
        """Adopt the VM whose veths were just moved here; on failure send them back to the source."""
        t0 = perf_counter()
        vm, ports = self._incoming(body)
        states = _decode(body.get("state") or {})
        try:
            out = self._adopt(vm, ports, states, f"VM {vm.name} arrives by live migration")
        except Exception:
            src = body.get("source")
            here = self._netns()
            if isinstance(src, dict):
                source = Netns.of(src)
                if source.inode != here.inode:
                    try:
                        self.mover.move([p.interface for p in ports if p.interface], source)
                    except Exception:
                        log.exception("cannot send the veths of VM %s back to the source", vm.name)
            raise
        return {**out, "adopt_s": perf_counter() - t0}


def _encode(states: dict[str, dict[str, bytes]]) -> dict[str, dict[str, str]]:
    return {
        port: {ext: base64.b64encode(b).decode() for ext, b in blobs.items()}
        for port, blobs in states.items()
    }


def _decode(data: dict[str, dict[str, str]]) -> dict[str, dict[str, bytes]]:
    return {port: {ext: base64.b64decode(s) for ext, s in blobs.items()} for port, blobs in data.items()}


class MigrationRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    vm: str
    to: str
    socket: str | None = None  # the destination's API socket; without it, ``to`` must be that path


def add_migration_routes(app: FastAPI, service: Service, migrations: Migrations | None = None) -> Migrations:
    """POST /v1/migrations (source), /v1/migrations/validate and /v1/migrations/commit (destination)."""
    mig = migrations or Migrations(service, service.engine)

    @app.post("/v1/migrations")
    def migrate(body: MigrationRequest) -> dict[str, Any]:
        """Move-VM -Name VM -DestinationHost HOST: live-migrate the VM's adapters to another host."""
        try:
            return mig.migrate(body.vm, body.to, body.socket)
        except MigrationError as exc:
            # The destination's own field paths, under "destination" (a veto names the port it refused).
            raise ConfigError(
                [(f"destination.{f}" if f else "destination", m) for f, m in exc.problems]
            ) from exc

    @app.post("/v1/migrations/validate")
    def migration_validate(body: dict[str, Any]) -> dict[str, Any]:
        return mig.validate(body)

    @app.post("/v1/migrations/commit")
    def migration_commit(body: dict[str, Any]) -> dict[str, Any]:
        return mig.commit(body)

    return mig
