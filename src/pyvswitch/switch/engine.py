"""The engine: the facade of one host's data path over its switches, devices (switch/devices.py), forwarding loop
(switch/runner.py) and mobility (switch/mobility.py: SR-IOV's NIC switch, live migration).

- ``runner`` (switch/runner.py) is the forwarding thread and what only it touches;
- ``opener`` (switch/devices.py) opens devices in the caller's thread (netlink and system calls never stall
  forwarding);
- each ``Switch`` (switch/switch.py) holds its ports, MAC table and compiled chains;
- ``mobility`` (switch/mobility.py) moves a VM's traffic off the switch and back (SR-IOV, live migration); the
  engine keeps one-line delegates, which the daemon calls.

Management calls (apply, counters, fdb, traces, live migration) come from other threads. ``apply`` opens what
is new, then hands the swap to the forwarding thread and waits until it has happened between two batches;
readers see structures that are replaced, never mutated in place, so they need no lock. Supervision
(switch/supervision.py): the loop never dies silently, and ``health()`` says why forwarding is degraded.

Capture sessions (observe/capture.py) are added and removed through the forwarding thread like a configuration
change. The loop holds a ``CaptureTaps`` only while some session covers a port, so without one a batch costs a
single attribute check; with one, the received batch is recorded before the switch sees it (the tag it came
with) and each destination's batch just before its device sends it (the tag the switch chose).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from functools import partial
from typing import Any

from pyvswitch.clock import Clock, MonotonicClock
from pyvswitch.config.schema import HostConfig, PortConfig, PortKind, SwitchConfig, TeamConfig
from pyvswitch.datapath.device import Device
from pyvswitch.drops import descriptions as drop_descriptions
from pyvswitch.errors import ConfigError, DeviceError
from pyvswitch.ext.api import PortInfo
from pyvswitch.ext.registry import Registry
from pyvswitch.ext.stack import ExtensionStack, ExtensionVeto, settings_problems
from pyvswitch.observe.capture import CaptureSession, CaptureTaps, build_taps
from pyvswitch.switch import qos
from pyvswitch.switch.devices import (
    DeviceKey,
    DeviceOpener,
    OpenDevice,
    close_all,
    device_kind,
    team_settings,
)
from pyvswitch.switch.mobility import Mobility
from pyvswitch.switch.runner import BATCH_BOUNDS, BUSY_POLL_MODES, Runner
from pyvswitch.switch.security import team_macs
from pyvswitch.switch.switch import CompiledPorts, Switch, SwitchPort
from pyvswitch.switch.team import Member, TeamDevice

log = logging.getLogger(__name__)

AGING_INTERVAL_S = 1.0
# Team carrier is polled this often (sysfs; netlink notifications come late, see datapath.link.LinkEvents):
# the failover detection time. Two sysfs reads per member per tick: ~0.5 % of a CPU for a 2-member team.
TEAM_TICK_S = 0.005
IDLE_POLL_MS = 10


def _lost(dev: Device) -> bool:
    """A device whose interface went away under it (AfPacketDevice.lost_interface): reopen it."""
    lost = getattr(dev, "lost_interface", None)
    return bool(lost()) if callable(lost) else False


class Engine:
    """Switches, their devices and the forwarding loop of one host."""

    def __init__(
        self,
        clock: Clock | None = None,
        open_device: OpenDevice | None = None,
        batch_size: int = 256,
        busy_poll_s: float = 0.05,
        cpu: int | None = None,
        registry: Registry | None = None,
    ) -> None:
        self.clock: Clock = clock or MonotonicClock()
        self.opener = DeviceOpener(self.clock, open_device)
        self.runner = Runner(self.clock, batch_size, busy_poll_s, cpu)
        self._registry = registry
        self.switches: dict[str, Switch] = {}
        self._devices: dict[DeviceKey, Device] = {}
        self._captures: tuple[CaptureSession, ...] = ()
        # QoS (switch/qos.py): egress schedulers by (switch, port), kept across configuration changes that do
        # not touch them (the runner drains the ports that have one after every round of receiving).
        self._qos: dict[tuple[str, str], tuple[object, qos.EgressQos]] = {}
        self._port_cfgs: dict[str, list[PortConfig]] = {}
        self._tunnel_tables: dict[str, object] = {}  # tunnel port -> the tables it was last given
        self.mobility = Mobility(lambda: self.switches, self._run_in_loop, self.opener)

    # ---- life cycle ----

    def start(self) -> None:
        self.runner.start()

    def stop(self) -> None:
        self.runner.stop()
        for session in self._captures:
            session.close()
        self._captures = ()
        self.runner.taps = None
        close_all(list(self._devices.values()))
        self._devices = {}
        self.opener.close_prepared()
        self.switches = {}

    def run_once(self) -> int:
        """One pass of the forwarding loop (Runner.run_once); tests call this directly."""
        return self.runner.run_once()

    def _run_in_loop(self, fn: Callable[[], None]) -> None:
        self.runner.call(fn)

    # What operators, the receive-steering controller and tests read of the loop.
    @property
    def busy_poll_s(self) -> float:
        return self.runner.spin.busy_poll_s

    @busy_poll_s.setter
    def busy_poll_s(self, value: float) -> None:
        self.runner.spin.busy_poll_s = value

    def set_busy_poll(self, mode: str) -> None:
        """When the forwarding loop busy-polls (switch/runner.py BUSY_POLL_MODES; pyvswitchd --busy-poll)."""
        if mode not in BUSY_POLL_MODES:
            raise ValueError(f"busy-poll mode {mode!r}: expected one of {', '.join(BUSY_POLL_MODES)}")
        self.runner.spin.mode = mode

    @property
    def busy_s(self) -> float:
        return self.runner.busy_s

    @property
    def loop_errors(self) -> int:
        return self.runner.loop_errors

    # ---- configuration ----

    @property
    def registry(self) -> Registry:
        """Installed extensions (entry points), discovered on first use."""
        if self._registry is None:
            self._registry = Registry()
        return self._registry

    def apply(self, cfg: HostConfig) -> None:
        """Make the data path match ``cfg``. All-or-nothing: if a device cannot be opened or an extension
        vetoes a port, nothing changes (ConfigError names the field)."""
        problems = [
            (f"switches[{i}].{path}", msg)
            for i, sc in enumerate(cfg.switches)
            for path, msg in settings_problems(self.registry, sc.extensions)
        ]
        if problems:
            raise ConfigError(problems)
        wanted: dict[str, tuple[DeviceKey, PortConfig]] = {}
        teams = {t.name: t for t in cfg.teams}
        self.opener.team_configs = teams
        switch_names = {s.name for s in cfg.switches}
        for port in cfg.ports:
            if port.switch is None or port.switch not in switch_names:
                continue
            if port.interface is None:
                raise DeviceError(f"port {port.name!r} has no interface", port=port.name)
            kind = "team" if port.interface in teams else device_kind(port)
            wanted[port.name] = (DeviceKey(port.name, kind, port.interface), port)
        opened: dict[DeviceKey, Device] = {}
        # Live teams whose configuration changed (Set-NetLbfoTeam, members added or removed): the new
        # members' devices are opened here, the change itself is made between batches.
        retuned: list[tuple[TeamDevice, TeamConfig, list[Member], list[Device]]] = []
        try:
            for key, _ in wanted.values():
                live = self._devices.get(key)
                if live is None:
                    opened[key] = self.opener.open(key)
                elif _lost(live):
                    # Re-bound when the interface is back; while it is not, the port stays as it was (dead), as it
                    # would have before this check: an absent interface must not block every other change.
                    try:
                        opened[key] = self.opener.open(key)
                        log.info("port %s: interface %s had gone away; re-bound", key.port, key.ifname)
                    except DeviceError as e:
                        log.warning("port %s: interface %s has gone away: %s", key.port, key.ifname, e)
                elif key.kind == "team":
                    live = self._devices[key]
                    assert isinstance(live, TeamDevice)
                    if self.opener.team_built.get(id(live)) != teams[key.ifname]:
                        retuned.append(self.opener.retune_team(live, teams[key.ifname]))
        except Exception:
            close_all(list(opened.values()))
            for team, _, members, _ in retuned:
                close_all([m.device for m in members if m not in team.members])
            raise
        for key, dev in opened.items():
            # A new tunnel port forwards with the tables it was last given (set_tunnel_tables), not empty ones:
            # a VM that has just arrived by live migration asks ARP at once and must be answered.
            tables = self._tunnel_tables.get(key.port)
            if tables is not None and hasattr(dev, "set_tables"):
                dev.set_tables(tables)
        devices = {
            **{k: d for k, d in self._devices.items() if k in {w[0] for w in wanted.values()}},
            **opened,
        }
        stale = [d for k, d in self._devices.items() if devices.get(k) is not d]
        # Closing an AF_PACKET socket waits for an RCU grace period in the kernel (packet_release ->
        # synchronize_net: 20-50 ms measured), which nothing here needs to wait for: the port left the data
        # path at the swap. A running engine closes them off the caller's path (a live migration's blackout
        # runs through this call). TAPs and teams close in line: re-creating a TAP needs the old one gone.
        background = (
            [d for k, d in self._devices.items() if devices.get(k) is not d and k.kind == "afpacket"]
            if self.runner.thread is not None
            else []
        )

        # Everything configuration alone decides is compiled here, on the caller's thread; the forwarding thread
        # only runs the extensions' port events (their API promises them that thread) and swaps.
        switches = {
            sc.name: self.switches.get(sc.name) or Switch(sc, self.clock, self.registry)
            for sc in cfg.switches
        }
        compiled = {
            sc.name: switches[sc.name].compile_ports(
                sc,
                [pc for _, pc in wanted.values() if pc.switch == sc.name],
                {pc.name: devices[key] for key, pc in wanted.values() if pc.switch == sc.name},
            )
            for sc in cfg.switches
        }

        def install() -> None:
            for team, tc, members, _ in retuned:
                team.reconfigure(members, team_settings(tc))
                self.opener.team_built[id(team)] = tc
            self._install(cfg, wanted, devices, switches, compiled)

        try:
            self._run_in_loop(install)
        except ExtensionVeto as veto:
            close_all(list(opened.values()))
            index = next((i for i, p in enumerate(cfg.ports) if p.name == veto.port), None)
            raise ConfigError([(f"ports[{index}]" if index is not None else "ports", str(veto))]) from veto
        for dev in stale:
            self.opener.team_built.pop(id(dev), None)
        close_all([dev for dev in stale if not any(dev is b for b in background)])
        if background:
            threading.Thread(
                target=close_all, args=(background,), name="pyvswitch-close", daemon=True
            ).start()
        for _, _, _, removed in retuned:
            close_all(removed)

    def _install(
        self,
        cfg: HostConfig,
        wanted: dict[str, tuple[DeviceKey, PortConfig]],
        devices: dict[DeviceKey, Device],
        built: dict[str, Switch],
        compiled: dict[str, CompiledPorts],
    ) -> None:
        """Runs in the forwarding thread, between batches: ``built`` and ``compiled`` were made before."""
        switches: dict[str, Switch] = {}
        rx: list[tuple[Device, Switch, SwitchPort]] = []
        # Extensions hear of every port change first, and may veto, before any switch changes.
        prepared: list[tuple[Switch, SwitchConfig, list[PortConfig], ExtensionStack, list[PortInfo]]] = []
        try:
            for sc in cfg.switches:
                sw = built[sc.name]
                ports = [pc for _, pc in wanted.values() if pc.switch == sc.name]
                stack, created = sw.prepare(sc, ports, compiled[sc.name])
                prepared.append((sw, sc, ports, stack, created))
        except ExtensionVeto:
            for _, _, _, stack, created in prepared:
                stack.abandon(created)
            raise
        gone = [sw for name, sw in self.switches.items() if name not in {sc.name for sc in cfg.switches}]
        for sw in gone:
            sw.prepare(sw.config, [])  # removed switch: its extensions see its ports go
        # Guest teaming (PS-03) spans switches: a VM's teamed adapters sit on different External switches.
        team = team_macs(cfg)
        for sw, sc, ports, stack, _ in prepared:
            sw.reconfigure(
                sc,
                ports,
                {pc.name: devices[key] for key, pc in wanted.values() if pc.switch == sc.name},
                stack,
                team=team,
                compiled=compiled[sc.name],
            )
            switches[sc.name] = sw
            for p in sw.ports:
                if p is not None:
                    rx.append((p.device, sw, p))
        qos_kept: dict[tuple[str, str], tuple[object, qos.EgressQos]] = {}
        now = self.clock.now()
        for sw, sc, ports, _, _ in prepared:
            placed = [
                (sw.index_of[pc.name], pc, sw.ports[sw.index_of[pc.name]])
                for pc in ports
                if pc.name in sw.index_of
            ]
            qos_kept.update(qos.install(cfg, sc, placed, self._qos, now))
        self._qos = qos_kept
        self._port_cfgs = {sc.name: ports for _, sc, ports, _, _ in prepared}
        run = self.runner
        run.egress = [
            (sw, p, p.egress)
            for sw in switches.values()
            for p in sw.ports
            if p is not None and p.egress is not None
        ]
        run.held = set()
        self.switches = run.switches = switches
        self._devices = devices
        run.rx = rx
        run.teams = [d for d in devices.values() if isinstance(d, TeamDevice)]
        for sw in switches.values():
            for p in sw.ports:
                if p is not None and isinstance(p.device, TeamDevice):
                    p.device.announce = partial(sw.macs_behind, p.index)
        run.taps = self._build_taps()

    # ---- capture sessions ----

    def add_capture(self, session: CaptureSession) -> None:
        """Start recording ``session`` (between batches); it covers ports connected later too."""

        def install() -> None:
            self._captures = (*self._captures, session)
            self.runner.taps = self._build_taps()

        self._run_in_loop(install)

    def remove_capture(self, session_id: str) -> CaptureSession | None:
        """Stop recording the session ``session_id`` and close (flush) its file; None if there is none."""
        found: list[CaptureSession] = []

        def uninstall() -> None:
            found.extend(s for s in self._captures if s.id == session_id)
            self._captures = tuple(s for s in self._captures if s.id != session_id)
            self.runner.taps = self._build_taps()

        self._run_in_loop(uninstall)
        for session in found:
            session.close()  # the forwarding thread no longer sees it
        return found[0] if found else None

    def captures(self) -> list[CaptureSession]:
        return list(self._captures)

    def _build_taps(self) -> CaptureTaps | None:
        """Forwarding thread: which sessions record which connected port."""
        if not self._captures:
            return None
        ports = [
            (sw.name, p.name, p.device.name)
            for sw in self.switches.values()
            for p in sw.ports
            if p is not None
        ]
        return build_taps(self._captures, ports)

    # ---- observation ----

    def qos_status(self, switch: str) -> dict[str, object] | None:
        """The switch's QoS: mode, capacity, reservation, default flow, and per egress port its ports' and
        classes' sent bytes, drops, rates and guaranteed shares (Get-VMSwitch's bandwidth fields)."""
        sw = self.switches.get(switch)
        if sw is None:
            return None
        sc = sw.config
        now = self.clock.now()
        egress = {
            p.name: p.egress.status(now) for p in list(sw.ports) if p is not None and p.egress is not None
        }
        capacity = sum(int(e["capacity"]) for e in egress.values())  # type: ignore[call-overload]
        cfgs = self._port_cfgs.get(switch, [])
        first: dict[str, Any] = next(iter(egress.values()), {})
        measured: dict[str, dict[str, object]] = first.get("ports", {})
        ports = {
            pc.name: {
                "sent_bytes": 0,
                "drops": 0,
                "rate_bps": 0,
                "bandwidth_percentage": None,
                **measured.get(pc.name, {}),
                "maximum_bandwidth": pc.maximum_bandwidth,
                "minimum_bandwidth_weight": pc.minimum_bandwidth_weight,
                "minimum_bandwidth_absolute": pc.minimum_bandwidth_absolute,
            }
            for pc in cfgs
            if pc.kind not in (PortKind.UPLINK, PortKind.INTERFACE) or pc.name not in egress
        }
        return {
            "switch": sw.name,
            "mode": qos.effective_mode(sc).value,
            "capacity": capacity,
            "reservation": qos.reservation(sc, cfgs, capacity) if capacity else 0,
            "default_flow": {
                "weight": sc.default_flow_minimum_bandwidth_weight,
                "absolute": qos.default_flow_absolute(sc, capacity),
                "bandwidth_percentage": first.get("default_flow_percentage"),
            },
            "ports": ports,
            "classes": first.get("classes", []),
            "policies": first.get("policies", {}),
            "dcb": {"enabled": bool(first.get("dcb")), "operational": bool(first.get("dcb"))},
            "egress": egress,
        }

    def counters(self) -> dict[str, object]:
        return {
            "switches": {name: sw.counters() for name, sw in list(self.switches.items())},
            "loop_errors": self.loop_errors,
            "loop_restarts": self.loop_restarts,
            "resyncs": self.resyncs,
            "busy_s": round(self.busy_s, 3),
            # Frames per received batch (metrics' histogram): counts per bound, the last past the largest.
            "batches": {
                "bounds": list(BATCH_BOUNDS),
                "counts": list(self.runner.batch_counts),
                "frames": self.runner.batch_frames,
            },
            "drop_reasons": drop_descriptions(),  # what each reason means, for `show drops`
        }

    def health(self) -> dict[str, object]:
        """Whether forwarding is progressing, and if not why (read from any thread; no lock needed)."""
        problems = self.runner.supervisor.problems(self.runner.thread)
        now = self.clock.now()
        for sw in list(self.switches.values()):
            if sw.ext is not None:
                problems += sw.ext.problems(now)
        return {
            "state": "degraded" if problems else "ok",
            "problems": problems,
            "busy_poll": self.runner.spin.mode,
            **self.runner.supervisor.status(self.runner.thread),
        }

    @property
    def loop_restarts(self) -> int:
        return self.runner.supervisor.loop_restarts

    @property
    def resyncs(self) -> int:
        return self.runner.supervisor.resyncs

    # ---- SR-IOV (daemon/iov.py drives these; switch/iov.py, datapath/nicswitch.py) ----

    def port_fileno(self, port: str) -> int | None:
        """The receive socket of ``port``'s device (for a NIC-switch socket filter), None if it has none."""
        for key, dev in list(self._devices.items()):
            if key.port == port and key.kind == "afpacket":
                fd = dev.fileno()
                return fd if fd >= 0 else None
        return None

    # ---- mobility (switch/mobility.py): SR-IOV's NIC switch and live migration ----

    def set_nic_switched(self, switch: str, served: dict[str, frozenset[str]]) -> None:
        self.mobility.set_nic_switched(switch, served)

    def take_vf_requests(self) -> list[tuple[str, str, bool]]:
        return self.mobility.take_vf_requests()

    def prepare_device(self, ifname: str) -> None:
        self.mobility.prepare_device(ifname)

    def validate_port(self, port: PortConfig) -> None:
        self.mobility.validate_port(port)

    def save_port_state(self, switch: str, port: str) -> dict[str, bytes]:
        return self.mobility.save_port_state(switch, port)

    def restore_port_state(self, switch: str, port: str, blobs: dict[str, bytes]) -> list[str]:
        return self.mobility.restore_port_state(switch, port, blobs)

    def prepare_tunnel(self, port: str, interface: str, vsids: list[int]) -> None:
        """Make ready what VMs of virtual subnets ``vsids`` arriving by live migration will need of tunnel port
        ``port`` (bound to ``interface``): the port's device, opened now if the switch has none yet (it then
        starts with the tables last given for ``port``), and each subnet's own part of it (the kernel vxlan
        devices: ~30-60 ms each, out of the blackout)."""
        live = next((d for k, d in self._devices.items() if k.port == port and k.ifname == interface), None)
        dev = live if live is not None else self.opener.prepare_tunnel(interface)
        tables = self._tunnel_tables.get(port)
        if live is None and tables is not None and hasattr(dev, "set_tables"):
            dev.set_tables(tables)
        prepare = getattr(dev, "prepare_subnets", None)
        if callable(prepare):
            prepare(vsids)

    def set_tunnel_tables(self, port: str, tables: object) -> bool:
        """Hand the tunnel port ``port`` (datapath/tunnel.py) its lookup tables; False if no switch has it yet,
        and then ``apply`` hands them to the port when it opens it. One attribute store, which the forwarding
        thread reads once per batch: no call into the loop needed."""
        self._tunnel_tables[port] = tables
        for sw in self.switches.values():
            idx = sw.index_of.get(port)
            dev = sw.ports[idx].device if idx is not None and sw.ports[idx] is not None else None  # type: ignore[union-attr]
            if dev is not None and hasattr(dev, "set_tables"):
                dev.set_tables(tables)
                return True
        return False

    def announce(self, switch: str, port: str, copies: int = 1) -> int:
        return self.mobility.announce(switch, port, copies)

    # ---- tracing (observe/trace.py) ----

    def _switch_port(self, switch: str, port: str) -> tuple[Switch, int]:
        sw = self.switches.get(switch)
        if sw is None or port not in sw.index_of:
            raise KeyError(f"port {port!r} is not connected to switch {switch!r}")
        return sw, sw.index_of[port]

    def trace_start(self, switch: str, port: str, count: int) -> None:
        """Trace the next ``count`` packets arriving on ``port``."""
        sw, idx = self._switch_port(switch, port)
        self._run_in_loop(lambda: sw.traced.__setitem__(idx, count))

    def trace_stop(self, switch: str, port: str) -> None:
        sw, idx = self._switch_port(switch, port)

        def stop() -> None:
            sw.traced.pop(idx, None)

        self._run_in_loop(stop)

    def traces(
        self, switch: str | None = None, port: str | None = None, limit: int = 100
    ) -> list[dict[str, object]]:
        """The newest trace records (oldest first), copied in the forwarding thread."""
        out: list[dict[str, object]] = []

        def collect() -> None:
            for sw in self.switches.values():
                if switch is None or sw.name == switch:
                    out.extend(r.as_dict() for r in sw.trace_records if port is None or r.port == port)

        self._run_in_loop(collect)
        out.sort(key=lambda r: float(r["time"]))  # type: ignore[arg-type]
        return out[-limit:]

    def what_if(self, switch: str, port: str, frame: bytes, tci: int) -> dict[str, object]:
        """Trace a frame as if received on ``port``, without side effects (see Switch.what_if)."""
        sw, _ = self._switch_port(switch, port)
        result: list[dict[str, object]] = []
        self._run_in_loop(lambda: result.append(sw.what_if(port, frame, tci).as_dict()))
        return result[0]

    def team_status(self, name: str) -> dict[str, object] | None:
        """A team's members, their use and LACP state (None if no switch uses the team)."""
        team = next((t for t in self.runner.teams if t.name == name), None)
        return team.show() if team is not None else None

    def installed_extensions(self) -> list[dict[str, object]]:
        """The registry's view, plus the switches an extension could not be constructed on (issue 11): a
        constructor failure is per switch, but `extension list` is where an operator looks first."""
        broken: dict[str, list[str]] = {}
        for name, sw in list(self.switches.items()):
            stack = sw.ext
            for slot in stack.slots if stack is not None else ():
                if slot.broken:
                    broken.setdefault(slot.name, []).append(f"switch {name!r}: {slot.broken}")
        out = []
        for i in self.registry.all():
            row = i.describe()
            if i.name in broken and not row["problem"]:
                row["problem"] = "; ".join(broken[i.name])
            out.append(row)
        return out

    def fdb(self, switch: str) -> list[dict[str, object]]:
        from pyvswitch.packet.mac import format_mac

        sw = self.switches.get(switch)
        if sw is None:
            return []
        now = self.clock.now()
        names = {p.index: p.name for p in list(sw.ports) if p is not None}
        rows: list[dict[str, object]] = [
            {
                "mac": format_mac(mac),
                "vlan": fid,
                "port": names.get(e.port, "?"),
                "age_s": round(now - e.seen, 1),
                "static": False,
            }
            for (fid, mac), e in list(sw.fdb.learned.items())
        ]
        rows += [
            {"mac": format_mac(mac), "vlan": None, "port": names.get(idx, "?"), "age_s": None, "static": True}
            for mac, idx in list(sw.fdb.static.items())
        ]
        return rows
