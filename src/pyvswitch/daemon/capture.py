"""Capture sessions in the daemon: requests checked and started on the engine, and Hyper-V's NetEvent sessions.

Capture sessions are run-time state, never persisted: a restart ends them (their files stay). ``start``
checks a request whole (every problem named by its field, like configuration requests), creates the file in
the API's thread, then hands the session to the engine, which adds it between batches. ``stop`` removes it
from the engine, flushes and closes its file(s) and returns its final status; stopped sessions stay listed
(state ``stopped``) until the daemon restarts, at most ``KEEP_STOPPED`` of them.

NetEvent sessions (hyperv-networking.md §7.2, TR-01..03) are definitions kept here, by name, until removed:
``New-NetEventSession`` defines one (one at a time, as in Windows), ``Add-NetEventPacketCaptureProvider``
gives it its one provider (type, direction, filters, truncation), ``Add-NetEventVmSwitch`` /
``Add-NetEventVmNetworkAdapter`` narrow the provider to switches / adapters, and ``Start-NetEventSession``
starts an ordinary capture session from it:

- CaptureType: Physical = uplink and bound-interface ports, Switch = VM, host-vNIC and TAP ports,
  BothPhysicalAndSwitch = every port (including ports added later when nothing narrows it). Default Physical.
- VmCaptureDirection: Ingress (VM -> switch) = ``in``, Egress = ``out``, IngressAndEgress = ``both``.
- Switch and adapter filters: values of one kind are OR-ed, the kinds AND-ed (like the provider's fields).
- MaxFileSize (MB, default 250): the file is circular, as in Windows: the newest frames are always at exactly
  the LocalFilePath given; when it reaches half the size it becomes ``<stem>_00001<suffix>`` (the half before
  it is discarded) and a new file starts at the path. 0 = one unlimited file at the path.

Files (issue 11): every file of a capture is created, never overwritten: a request naming an existing file
(the path, any ring file name it would use, the circular ``_00001``) is refused, and files are opened
``O_EXCL | O_NOFOLLOW``, mode 0600 (pcapng.py). A capture request without ``max_bytes`` is capped at
DEFAULT_MAX_BYTES (Windows' 250 MB default of New-NetEventSession); ``max_bytes`` 0 asks for no cap. A NetEvent
session started again replaces the files its own earlier runs wrote, and only those.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import stat
import threading
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field, field_validator

from pyvswitch.config.schema import HostConfig, PortKind
from pyvswitch.errors import ConfigError, ConflictError, NotFoundError
from pyvswitch.observe.capture import DEFAULT_SNAPLEN, MAX_SNAPLEN, CaptureFilter, CaptureSession
from pyvswitch.observe.pcapng import ring_file_name

log = logging.getLogger(__name__)

MIN_MAX_BYTES = 64 * 1024  # room for the headers of a few hundred ports' interface descriptions
KEEP_STOPPED = 32
MIB = 1024 * 1024
DEFAULT_MAX_FILE_SIZE_MB = 250  # New-NetEventSession's default
DEFAULT_MAX_BYTES = DEFAULT_MAX_FILE_SIZE_MB * MIB  # a capture request without max_bytes (0 = no cap)
NETEVENT_RING_FILES = 2  # the circular file: the path and the half before it

PHYSICAL_KINDS = frozenset({PortKind.UPLINK, PortKind.INTERFACE})
SWITCH_KINDS = frozenset({PortKind.VM, PortKind.HOST, PortKind.TAP})
CAPTURE_TYPES: dict[str, frozenset[PortKind]] = {
    "Physical": PHYSICAL_KINDS,
    "Switch": SWITCH_KINDS,
    "BothPhysicalAndSwitch": PHYSICAL_KINDS | SWITCH_KINDS,
}
VM_DIRECTIONS: dict[str, Literal["in", "out", "both"]] = {
    "Ingress": "in",
    "Egress": "out",
    "IngressAndEgress": "both",
}


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CaptureFilterSpec(_Request):
    """Frames to keep (each list OR-ed, the lists AND-ed; empty: all)."""

    ethertypes: list[int | str] = []  # 2048, "0x0800", "ipv4", "arp", "ipv6"...
    ips: list[str] = []  # addresses or networks, IPv4 or IPv6, either end
    protocols: list[int | str] = []  # 6, "tcp", "udp", "icmp", "icmpv6"...
    macs: list[str] = []  # either end


class CaptureRequest(_Request):
    """POST /v1/captures."""

    path: str
    ports: list[str] = []
    direction: Literal["in", "out", "both"] = "both"
    snaplen: int = Field(DEFAULT_SNAPLEN, ge=0, le=MAX_SNAPLEN)
    # None: DEFAULT_MAX_BYTES; 0: no cap (an explicit choice, never the default: a forgotten capture must not
    # fill the disk of the host it runs on).
    max_bytes: int | None = Field(None, ge=0)
    ring_files: int = Field(0, ge=0, le=100_000)
    filter: CaptureFilterSpec | None = None

    @field_validator("max_bytes")
    @classmethod
    def _cap(cls, v: int | None) -> int | None:
        if v is not None and 0 < v < MIN_MAX_BYTES:
            raise ValueError(f"must be 0 (no cap) or at least {MIN_MAX_BYTES} bytes")
        return v


class NetEventSessionCreate(_Request):
    """New-NetEventSession."""

    name: str = Field(min_length=1, max_length=256)
    path: str
    max_file_size_mb: int = Field(DEFAULT_MAX_FILE_SIZE_MB, ge=0, le=1024 * 1024)
    capture_mode: str = "SaveToFile"


class PacketCaptureProvider(_Request):
    """Add-NetEventPacketCaptureProvider (Hyper-V's parameters)."""

    capture_type: Literal["Physical", "Switch", "BothPhysicalAndSwitch"] = "Physical"
    vm_capture_direction: Literal["Ingress", "Egress", "IngressAndEgress"] = "IngressAndEgress"
    truncation_length: int = Field(DEFAULT_SNAPLEN, ge=0, le=0xFFFF)
    ethertypes: list[int | str] = []
    ip_addresses: list[str] = []
    ip_protocols: list[int | str] = []
    link_layer_addresses: list[str] = []


class NameBody(_Request):
    name: str


class CaptureEngine(Protocol):
    """What capture needs of the engine."""

    def add_capture(self, session: CaptureSession) -> None: ...
    def remove_capture(self, session_id: str) -> CaptureSession | None: ...


class _NotFound(NotFoundError):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


class _Conflict(ConflictError):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


class _NetEvent:
    """A NetEvent session definition and the capture it runs (if any)."""

    def __init__(self, spec: NetEventSessionCreate) -> None:
        self.spec = spec
        self.provider: PacketCaptureProvider | None = None
        self.switches: list[str] = []
        self.adapters: list[str] = []
        self.capture_id: str | None = None
        # The files this session's captures wrote, as they were when it stopped: the only files a new run may
        # replace. Size and mtime too, because a file someone puts there after ours is deleted may reuse its inode.
        self.written: set[tuple[int, int, int, int]] = set()


def _filter(spec: CaptureFilterSpec | None) -> CaptureFilter:
    if spec is None:
        return CaptureFilter()
    try:
        return CaptureFilter.parse(spec.ethertypes, spec.ips, spec.protocols, spec.macs)
    except ConfigError as exc:
        raise ConfigError([(f"filter.{f}", m) for f, m in exc.problems]) from exc


def _provider_filter(p: PacketCaptureProvider) -> CaptureFilter:
    return CaptureFilter.parse(
        p.ethertypes,
        p.ip_addresses,
        p.ip_protocols,
        p.link_layer_addresses,
        fields={
            "ethertypes": "ethertypes",
            "ips": "ip_addresses",
            "protocols": "ip_protocols",
            "macs": "link_layer_addresses",
        },
    )


def _identity(st: os.stat_result) -> tuple[int, int, int, int]:
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


def _file_names(path: Path, ring_files: int, circular: bool) -> list[Path]:
    """The names a capture at ``path`` writes that exist now (a ring: every ``<stem>_<number><suffix>``)."""
    if ring_files:
        pattern = re.compile(re.escape(path.stem) + r"_\d{5,}" + re.escape(path.suffix))
        try:
            return sorted(path.parent / n for n in os.listdir(path.parent) if pattern.fullmatch(n))
        except OSError:
            return []
    names = [path, ring_file_name(path, 1)] if circular else [path]
    return [n for n in names if os.path.lexists(n)]


def _path_problem(path: str, ring_files: int = 0, circular: bool = False) -> str | None:
    p = Path(path)
    if not p.is_absolute():
        return "must be an absolute path (the daemon does not share the client's working directory)"
    if not p.parent.is_dir():
        return f"directory {str(p.parent)!r} does not exist"
    if p.is_dir():
        return "is a directory; give a file name"
    existing = _file_names(p, ring_files, circular)
    if existing:
        # The daemon runs as root: a capture creates its files, it never overwrites one (nor writes through a
        # symlink); every name of a ring counts, not only the base (issue 11).
        which = (
            "exists" if existing == [p] else f"would write {', '.join(str(e) for e in existing)}, which exist"
        )
        return f"{which}; a capture never overwrites a file: remove it or give another path"
    return None


class CaptureManager:
    """Running and stopped capture sessions, and the NetEvent session definitions, of one daemon."""

    def __init__(self, engine: CaptureEngine, config: Callable[[], HostConfig]) -> None:
        self._engine = engine
        self._config = config
        self._lock = threading.RLock()
        self._running: dict[str, CaptureSession] = {}
        self._stopped: OrderedDict[str, CaptureSession] = OrderedDict()
        self._next_id = 1
        self._netevent: dict[str, _NetEvent] = {}

    # ---- capture sessions ----

    def sessions(self) -> list[dict[str, Any]]:
        with self._lock:
            sessions = [*self._running.values(), *self._stopped.values()]
        return [s.status() for s in sorted(sessions, key=lambda s: int(s.id))]

    def session(self, capture_id: str) -> dict[str, Any]:
        with self._lock:
            s = self._running.get(capture_id) or self._stopped.get(capture_id)
        if s is None:
            raise _NotFound("id", f"no capture {capture_id!r}")
        return s.status()

    def start(self, req: CaptureRequest, name: str = "", circular: bool = False) -> dict[str, Any]:
        """Check ``req`` whole, create its file and start recording; returns its status (with its id).
        ``circular``: a NetEvent session's file (pcapng.py), the newest frames at exactly ``req.path``."""
        with self._lock:
            cfg = self._config()
            problems: list[tuple[str, str]] = []
            # A running capture's own file is a conflict (409), before it counts as an existing file (400).
            resolved = Path(req.path).resolve()
            for other in self._running.values():
                if other.path.resolve() == resolved:
                    raise _Conflict("path", f"capture {other.id} is writing {req.path!r}")
            path_problem = _path_problem(req.path, req.ring_files, circular)
            if path_problem:
                problems.append(("path", path_problem))
            known = {p.name for p in cfg.ports}
            for i, port in enumerate(req.ports):
                if port not in known:
                    problems.append((f"ports[{i}]", f"no port {port!r}"))
            if req.ring_files and not req.max_bytes:
                problems.append(("ring_files", "needs max_bytes (the size at which the next file starts)"))
            try:
                flt = _filter(req.filter)
            except ConfigError as exc:
                problems += exc.problems
                flt = CaptureFilter()
            if problems:
                raise ConfigError(problems)
            capture_id = str(self._next_id)
            try:
                session = CaptureSession(
                    capture_id,
                    req.path,
                    ports=req.ports,
                    direction=req.direction,
                    snaplen=req.snaplen,
                    max_bytes=DEFAULT_MAX_BYTES if req.max_bytes is None else (req.max_bytes or None),
                    ring_files=req.ring_files,
                    circular=circular,
                    filter=flt,
                    name=name,
                )
            except OSError as exc:
                raise ConfigError([("path", f"cannot create the file: {exc.strerror or exc}")]) from exc
            except ValueError as exc:
                raise ConfigError([("max_bytes", str(exc))]) from exc
            self._next_id += 1
            try:
                self._engine.add_capture(session)
            except BaseException:
                session.close()
                raise
            self._running[capture_id] = session
            log.info(
                "capture %s started: %s, ports %s, direction %s, snaplen %d",
                capture_id,
                req.path,
                ", ".join(req.ports) or "all",
                req.direction,
                req.snaplen,
            )
            return session.status()

    def stop(self, capture_id: str) -> dict[str, Any]:
        """Stop recording, flush and close the file(s); the final status."""
        with self._lock:
            session = self._running.get(capture_id)
            if session is None:
                if capture_id in self._stopped:
                    raise _Conflict("id", f"capture {capture_id!r} is already stopped")
                raise _NotFound("id", f"no capture {capture_id!r}")
            self._engine.remove_capture(capture_id)
            session.close()
            del self._running[capture_id]
            self._stopped[capture_id] = session
            while len(self._stopped) > KEEP_STOPPED:
                self._stopped.popitem(last=False)
            log.info(
                "capture %s stopped: %d captured, %d filtered out, %d dropped",
                capture_id,
                session.captured,
                session.filtered,
                session.dropped,
            )
            return session.status()

    def stop_all(self) -> None:
        with self._lock:
            for capture_id in list(self._running):
                self.stop(capture_id)

    # ---- NetEvent sessions (the cmdlets' definitions) ----

    def _netevent_session(self, name: str) -> _NetEvent:
        ne = self._netevent.get(name)
        if ne is None:
            raise _NotFound("name", f"no NetEvent session {name!r}")
        return ne

    def _running_capture(self, ne: _NetEvent) -> CaptureSession | None:
        return self._running.get(ne.capture_id) if ne.capture_id else None

    def _view(self, ne: _NetEvent) -> dict[str, Any]:
        running = self._running_capture(ne)
        last = running or (self._stopped.get(ne.capture_id) if ne.capture_id else None)
        return {
            "name": ne.spec.name,
            "capture_mode": ne.spec.capture_mode,
            "path": ne.spec.path,
            "max_file_size_mb": ne.spec.max_file_size_mb,
            "status": "Running" if running else "NotRunning",
            "provider": ne.provider.model_dump() if ne.provider else None,
            "vm_switches": list(ne.switches),
            "vm_network_adapters": list(ne.adapters),
            "capture": last.status() if last else None,
        }

    def netevent_sessions(self) -> list[dict[str, Any]]:
        with self._lock:
            return [self._view(ne) for ne in self._netevent.values()]

    def netevent_session(self, name: str) -> dict[str, Any]:
        with self._lock:
            return self._view(self._netevent_session(name))

    def new_netevent_session(self, spec: NetEventSessionCreate) -> dict[str, Any]:
        with self._lock:
            if spec.name in self._netevent:
                raise _Conflict("name", f"a NetEvent session named {spec.name!r} already exists")
            if self._netevent:
                other = next(iter(self._netevent))
                raise _Conflict(
                    "name",
                    f"only one NetEvent session at a time: remove {other!r} first (Remove-NetEventSession)",
                )
            problems: list[tuple[str, str]] = []
            if spec.capture_mode != "SaveToFile":
                problems.append(("capture_mode", f"{spec.capture_mode!r} is not supported; use SaveToFile"))
            path_problem = _path_problem(spec.path, circular=bool(spec.max_file_size_mb))
            if path_problem:
                problems.append(("path", path_problem))
            if problems:
                raise ConfigError(problems)
            ne = self._netevent[spec.name] = _NetEvent(spec)
            return self._view(ne)

    def _stopped_session(self, name: str) -> _NetEvent:
        ne = self._netevent_session(name)
        if self._running_capture(ne) is not None:
            raise _Conflict(
                "name", f"NetEvent session {name!r} is running; stop it first (Stop-NetEventSession)"
            )
        return ne

    def _provider_of(self, name: str) -> _NetEvent:
        ne = self._stopped_session(name)
        if ne.provider is None:
            raise _Conflict(
                "name",
                f"NetEvent session {name!r} has no packet capture provider; "
                "add one first (Add-NetEventPacketCaptureProvider)",
            )
        return ne

    def add_provider(self, name: str, provider: PacketCaptureProvider) -> dict[str, Any]:
        with self._lock:
            ne = self._stopped_session(name)
            if ne.provider is not None:
                raise _Conflict(
                    "name",
                    f"NetEvent session {name!r} already has a packet capture provider; one at a time "
                    "(Remove-NetEventPacketCaptureProvider first)",
                )
            _provider_filter(provider)  # every bad value named now, not at Start
            ne.provider = provider
            return self._view(ne)

    def remove_provider(self, name: str) -> dict[str, Any]:
        with self._lock:
            ne = self._provider_of(name)
            ne.provider = None
            ne.switches = []
            ne.adapters = []
            return self._view(ne)

    def add_vm_switch(self, name: str, switch: str) -> dict[str, Any]:
        with self._lock:
            ne = self._provider_of(name)
            if not any(s.name == switch for s in self._config().switches):
                raise _NotFound("switch", f"no switch {switch!r}")
            if switch not in ne.switches:
                ne.switches.append(switch)
            return self._view(ne)

    def add_vm_network_adapter(self, name: str, port: str) -> dict[str, Any]:
        with self._lock:
            ne = self._provider_of(name)
            if not any(p.name == port for p in self._config().ports):
                raise _NotFound("adapter", f"no network adapter (port) {port!r}")
            if port not in ne.adapters:
                ne.adapters.append(port)
            return self._view(ne)

    def start_netevent_session(self, name: str) -> dict[str, Any]:
        with self._lock:
            ne = self._netevent_session(name)
            if self._running_capture(ne) is not None:
                raise _Conflict("name", f"NetEvent session {name!r} is already running")
            p = ne.provider
            if p is None:
                raise _Conflict(
                    "name",
                    f"NetEvent session {name!r} has no packet capture provider "
                    "(Add-NetEventPacketCaptureProvider); it would record nothing",
                )
            ports = self._select_ports(ne, p)
            size = ne.spec.max_file_size_mb
            self._remove_earlier_files(ne)
            req = CaptureRequest(
                path=ne.spec.path,
                ports=ports,
                direction=VM_DIRECTIONS[p.vm_capture_direction],
                snaplen=p.truncation_length,
                max_bytes=max(size * MIB // NETEVENT_RING_FILES, MIN_MAX_BYTES) if size else 0,
                ring_files=0,
                filter=CaptureFilterSpec(
                    ethertypes=p.ethertypes,
                    ips=p.ip_addresses,
                    protocols=p.ip_protocols,
                    macs=p.link_layer_addresses,
                ),
            )
            status = self.start(req, name=name, circular=bool(size))
            ne.capture_id = str(status["id"])
            return self._view(ne)

    def _remove_earlier_files(self, ne: _NetEvent) -> None:
        """Windows' Start-NetEventSession writes its file afresh: here the files this session wrote before
        go, identified by inode, so that a file someone else put at the path since is refused, not removed."""
        path = Path(ne.spec.path)
        for name in _file_names(path, 0, circular=True):
            with contextlib.suppress(OSError):
                st = os.lstat(name)
                if stat.S_ISREG(st.st_mode) and _identity(st) in ne.written:
                    name.unlink()

    def _select_ports(self, ne: _NetEvent, p: PacketCaptureProvider) -> list[str]:
        """The ports the provider covers; [] (= all, ports added later too) for both types unnarrowed."""
        if p.capture_type == "BothPhysicalAndSwitch" and not ne.switches and not ne.adapters:
            return []
        kinds = CAPTURE_TYPES[p.capture_type]
        ports = [
            q.name
            for q in self._config().ports
            if q.kind in kinds
            and (not ne.switches or q.switch in ne.switches)
            and (not ne.adapters or q.name in ne.adapters)
        ]
        if not ports:
            narrowed = ""
            if ne.switches:
                narrowed += f" on switches {', '.join(ne.switches)}"
            if ne.adapters:
                narrowed += f" among adapters {', '.join(ne.adapters)}"
            raise ConfigError(
                [
                    (
                        "provider.capture_type",
                        f"CaptureType {p.capture_type} selects no port{narrowed} "
                        f"(it covers ports of kind {', '.join(sorted(k.value for k in kinds))})",
                    )
                ]
            )
        return ports

    def stop_netevent_session(self, name: str) -> dict[str, Any]:
        with self._lock:
            ne = self._netevent_session(name)
            if self._running_capture(ne) is None or ne.capture_id is None:
                raise _Conflict("name", f"NetEvent session {name!r} is not running")
            self._stop_netevent_capture(ne, ne.capture_id)
            return self._view(ne)

    def _stop_netevent_capture(self, ne: _NetEvent, capture_id: str) -> None:
        status = self.stop(capture_id)
        for f in status["files"]:
            with contextlib.suppress(OSError):
                st = os.lstat(f)
                ne.written.add(_identity(st))

    def remove_netevent_session(self, name: str) -> None:
        """Remove-NetEventSession; a running session is stopped (its file flushed) first."""
        with self._lock:
            ne = self._netevent_session(name)
            if self._running_capture(ne) is not None and ne.capture_id is not None:
                self._stop_netevent_capture(ne, ne.capture_id)
            del self._netevent[name]
