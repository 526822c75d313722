"""Capture sessions: which frames of which ports go, filtered and truncated, into a pcapng file.

A :class:`CaptureSession` owns one :class:`~pyvswitch.observe.pcapng.PcapngWriter` with one interface
description per captured port (``if_name`` = ``<switch>/<port>``, ``if_description`` = the port's OS interface)
and counts what it saw: ``captured`` (written), ``filtered`` (did not match the filter) and ``dropped`` (refused
by the size cap, or after a write error). Frames are recorded the way the port's wire carries them: ``in``
(the switch received it from the port: Hyper-V's Ingress, VM -> switch) with the tag it arrived with, ``out``
(the switch sent it to the port: Egress) with the tag the switch chose; the writer re-inserts the 802.1Q tag
from the TCI (frames inside the switch are untagged, docs/architecture.md §10).

The engine's forwarding thread is the only caller of :meth:`CaptureSession.record` and of :func:`build_taps`
(run between batches when the sessions or the ports change), so nothing here takes a lock. The engine holds a
:class:`CaptureTaps` only while a session covers a port: with no session it checks one attribute per batch.
With one, a batch costs a dictionary lookup and one ``PcapngWriter.write_batch`` (one file write), and a frame
the filter (skipped when empty) and a record of at most ``snaplen`` bytes: bounded, whatever the frame size.
A write error (a full disk) stops the session's recording, is kept in its status, and never reaches the
data path.

:class:`CaptureFilter` follows Hyper-V's packet capture provider (hyperv-networking.md §7.2, TR-02): values
within one field are OR-ed, fields are AND-ed, an empty field matches everything. IP addresses match either
end, IPv4 or IPv6, with or without a prefix length; IP protocols are the upper-layer protocol (IPv6 extension
headers are skipped); MAC addresses match either end.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pyvswitch.errors import ConfigError
from pyvswitch.observe.pcapng import PcapngWriter
from pyvswitch.observe.trace import TraceRecord
from pyvswitch.packet.classify import l3_start, l4_header
from pyvswitch.packet.frame import (
    ETH_P_8021AD,
    ETH_P_8021Q,
    ETH_P_ARP,
    ETH_P_IPV4,
    ETH_P_IPV6,
    UNTAGGED,
    Buffer,
    Packet,
)
from pyvswitch.packet.mac import format_mac, parse_mac

log = logging.getLogger(__name__)

CaptureDirection = Literal["in", "out", "both"]
DIRECTIONS: tuple[CaptureDirection, ...] = ("in", "out", "both")
DEFAULT_SNAPLEN = 128  # Hyper-V's TruncationLength default (hyperv-networking.md §7.2)
MAX_SNAPLEN = 262144

ETHERTYPE_NAMES: dict[str, int] = {
    "ipv4": ETH_P_IPV4,
    "ip": ETH_P_IPV4,
    "arp": ETH_P_ARP,
    "ipv6": ETH_P_IPV6,
    "vlan": ETH_P_8021Q,
    "8021q": ETH_P_8021Q,
    "lldp": 0x88CC,
    "lacp": 0x8809,
}
PROTOCOL_NAMES: dict[str, int] = {
    "icmp": 1,
    "igmp": 2,
    "tcp": 6,
    "udp": 17,
    "gre": 47,
    "esp": 50,
    "ah": 51,
    "icmpv6": 58,
    "sctp": 132,
}
_TAG_TYPES = (ETH_P_8021Q, ETH_P_8021AD)


def _number(value: int | str, names: Mapping[str, int], bits: int) -> int:
    """``value`` as an int of ``bits`` bits: an int, decimal or 0x-hex text, or one of ``names``."""
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a number")
    if isinstance(value, int):
        n = value
    else:
        text = value.strip().lower()
        if text in names:
            return names[text]
        try:
            n = int(text, 0)
        except ValueError:
            known = ", ".join(sorted(names))
            raise ValueError(f"{value!r} is neither a number (decimal or 0x...) nor one of {known}") from None
    if not 0 <= n < 1 << bits:
        raise ValueError(f"{n} does not fit {bits} bits")
    return n


@dataclass(frozen=True, slots=True)
class _Nets:
    """Addresses of one IP family: exact ones in a set, prefixes as (mask, network) pairs."""

    exact: frozenset[int]
    prefixes: tuple[tuple[int, int], ...]

    def __bool__(self) -> bool:
        return bool(self.exact or self.prefixes)

    def either(self, a: int, b: int) -> bool:
        exact = self.exact
        if a in exact or b in exact:
            return True
        return any(a & mask == net or b & mask == net for mask, net in self.prefixes)


def _nets(networks: Iterable[ipaddress.IPv4Network | ipaddress.IPv6Network]) -> _Nets:
    exact: set[int] = set()
    prefixes: list[tuple[int, int]] = []
    for n in networks:
        if n.prefixlen == n.max_prefixlen:
            exact.add(int(n.network_address))
        else:
            prefixes.append((int(n.netmask), int(n.network_address)))
    return _Nets(frozenset(exact), tuple(prefixes))


class CaptureFilter:
    """Which frames a session records: EtherTypes, IP addresses, IP protocols and MAC addresses (empty: all)."""

    __slots__ = ("_v4", "_v6", "ethertypes", "ips", "macs", "protocols")

    def __init__(
        self,
        ethertypes: Iterable[int] = (),
        ips: Iterable[str | ipaddress.IPv4Network | ipaddress.IPv6Network] = (),
        protocols: Iterable[int] = (),
        macs: Iterable[int] = (),
    ) -> None:
        self.ethertypes = frozenset(ethertypes)
        self.protocols = frozenset(protocols)
        self.macs = frozenset(macs)
        networks = tuple(ipaddress.ip_network(a, strict=False) for a in ips)
        self.ips = networks
        self._v4 = _nets(n for n in networks if n.version == 4)
        self._v6 = _nets(n for n in networks if n.version == 6)

    @classmethod
    def parse(
        cls,
        ethertypes: Sequence[int | str] = (),
        ips: Sequence[str] = (),
        protocols: Sequence[int | str] = (),
        macs: Sequence[str] = (),
        *,
        fields: Mapping[str, str] | None = None,
    ) -> CaptureFilter:
        """Build a filter from request values; ConfigError names every bad one (``ips[1]``...).

        ``fields`` renames the four fields in those paths (a NetEvent provider calls them ``ip_addresses``...).
        """
        names = {"ethertypes": "ethertypes", "ips": "ips", "protocols": "protocols", "macs": "macs"}
        names.update(fields or {})
        problems: list[tuple[str, str]] = []
        etypes: list[int] = []
        for i, v in enumerate(ethertypes):
            try:
                etypes.append(_number(v, ETHERTYPE_NAMES, 16))
            except ValueError as e:
                problems.append((f"{names['ethertypes']}[{i}]", f"not an EtherType: {e}"))
        nets: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []
        for i, a in enumerate(ips):
            try:
                nets.append(ipaddress.ip_network(a.strip(), strict=False))
            except ValueError:
                problems.append(
                    (f"{names['ips']}[{i}]", f"{a!r} is not an IPv4 or IPv6 address (a /prefix is allowed)")
                )
        protos: list[int] = []
        for i, v in enumerate(protocols):
            try:
                protos.append(_number(v, PROTOCOL_NAMES, 8))
            except ValueError as e:
                problems.append((f"{names['protocols']}[{i}]", f"not an IP protocol: {e}"))
        mac_values: list[int] = []
        for i, m in enumerate(macs):
            try:
                mac_values.append(parse_mac(m))
            except ValueError as e:
                problems.append((f"{names['macs']}[{i}]", str(e)))
        if problems:
            raise ConfigError(problems)
        return cls(etypes, nets, protos, mac_values)

    @property
    def empty(self) -> bool:
        return not (self.ethertypes or self.ips or self.protocols or self.macs)

    def describe(self) -> dict[str, list[str] | list[int]]:
        """The filter as JSON: EtherTypes in hex, networks and MACs as text, protocols as numbers."""
        return {
            "ethertypes": [f"0x{e:04x}" for e in sorted(self.ethertypes)],
            "ips": [str(n) if n.prefixlen != n.max_prefixlen else str(n.network_address) for n in self.ips],
            "protocols": sorted(self.protocols),
            "macs": [format_mac(m) for m in sorted(self.macs)],
        }

    def matches(self, data: Buffer, tci: int = UNTAGGED) -> bool:
        """Whether the frame ``data`` (carrying ``tci`` out of band, or tags inline) passes; never raises.

        EtherType 0x8100 also matches a frame that is tagged out of band; the others are compared with the
        EtherType after any tags. A frame too short for a header a field needs does not match that field.
        """
        n = len(data)
        if n < 14:
            return self.empty
        macs = self.macs
        if macs:
            dst = int.from_bytes(data[0:6], "big")
            if dst not in macs and int.from_bytes(data[6:12], "big") not in macs:
                return False
        etype = (data[12] << 8) | data[13]
        off = 14
        tagged = tci != UNTAGGED
        if etype in _TAG_TYPES:
            tagged = True
            etype, off = l3_start(data)
        etypes = self.ethertypes
        if etypes and etype not in etypes and not (tagged and ETH_P_8021Q in etypes):
            return False
        protocols = self.protocols
        v4 = self._v4
        v6 = self._v6
        if not (protocols or v4 or v6):
            return True
        if etype == ETH_P_IPV4:
            if n < off + 20 or data[off] >> 4 != 4:
                return False
            if protocols and data[off + 9] not in protocols:
                return False
            if v4 or v6:
                if not v4:
                    return False
                src = int.from_bytes(data[off + 12 : off + 16], "big")
                return v4.either(src, int.from_bytes(data[off + 16 : off + 20], "big"))
            return True
        if etype == ETH_P_IPV6:
            if n < off + 40 or data[off] >> 4 != 6:
                return False
            if protocols:
                l4 = l4_header(data)
                # A non-first fragment has no upper-layer header here; its first next header is what we know.
                proto = l4[1] if l4 is not None else data[off + 6]
                if proto not in protocols:
                    return False
            if v4 or v6:
                if not v6:
                    return False
                src = int.from_bytes(data[off + 8 : off + 24], "big")
                return v6.either(src, int.from_bytes(data[off + 24 : off + 40], "big"))
            return True
        return False


class CaptureSession:
    """One capture: the ports it covers, its direction, filter and truncation, its file(s) and its counts.

    ``ports`` are port names (empty: every port of every switch, including ports added later). ``snaplen``
    cuts each recorded frame (0: whole frames); ``max_bytes`` caps each file and ``ring_files`` keeps that
    many files as a ring, ``circular`` two with the newest at ``path`` (see :mod:`pyvswitch.observe.pcapng`). The constructor creates the file: OSError when
    it cannot, ValueError for arguments the writer refuses.
    """

    def __init__(
        self,
        id: str,
        path: str | os.PathLike[str],
        *,
        ports: Iterable[str] = (),
        direction: CaptureDirection = "both",
        snaplen: int = DEFAULT_SNAPLEN,
        max_bytes: int | None = None,
        ring_files: int = 0,
        circular: bool = False,
        filter: CaptureFilter | None = None,
        name: str = "",
    ) -> None:
        if direction not in DIRECTIONS:
            raise ValueError(f"direction must be one of {', '.join(DIRECTIONS)}, not {direction!r}")
        if not 0 <= snaplen <= MAX_SNAPLEN:
            raise ValueError(f"snaplen must be 0 (whole frames) to {MAX_SNAPLEN}, not {snaplen}")
        self.id = id
        self.name = name
        self.path = Path(path)
        self.ports = frozenset(ports)
        self.direction: CaptureDirection = direction
        self.rx = direction in ("in", "both")
        self.tx = direction in ("out", "both")
        self.snaplen = snaplen
        self.max_bytes = max_bytes
        self.ring_files = ring_files
        self.filter = filter if filter is not None else CaptureFilter()
        # None when the filter is empty: record() then asks nothing per frame.
        self._match: Callable[[Buffer, int], bool] | None = None if self.filter.empty else self.filter.matches
        self.started_ns = time.time_ns()
        self.stopped_ns: int | None = None
        self.captured = 0
        self.filtered = 0
        self.dropped = 0
        self.error: str | None = None
        self.circular = circular
        self._writer = PcapngWriter(
            self.path, snaplen=snaplen, max_bytes=max_bytes, ring_files=ring_files, circular=circular
        )
        # Port name -> its interface id, and the (switch, OS interface) that interface describes.
        self._ifaces: dict[str, int] = {}
        self._described: dict[str, tuple[str, str]] = {}
        self._closed = False

    # ---- set-up (forwarding thread, between batches) ----

    @property
    def active(self) -> bool:
        return not self._closed and self.error is None

    def covers(self, port: str) -> bool:
        return not self.ports or port in self.ports

    def attach(self, switch: str, port: str, description: str) -> bool:
        """Give ``port`` an interface in the file (again if it moved to another switch or device).

        Returns False when the port cannot be captured (the size cap cannot hold another interface, or the
        file failed); the session then just does not record it.
        """
        if not self.active:
            return False
        if self._described.get(port) == (switch, description):
            return True
        try:
            iface = self._writer.add_interface(f"{switch}/{port}", description, snaplen=self.snaplen)
        except ValueError as exc:
            log.warning("capture %s: not capturing port %s: %s", self.id, port, exc)
            return False
        except OSError as exc:
            self._fail(exc)
            return False
        self._ifaces[port] = iface
        self._described[port] = (switch, description)
        return True

    # ---- the data path (forwarding thread) ----

    def record(
        self,
        port: str,
        direction: Literal["in", "out"],
        pkts: Sequence[Packet],
        tcis: Sequence[int] | None,
        now_ns: int,
    ) -> None:
        """Record ``pkts`` seen on ``port`` at ``now_ns``; ``tcis`` None means each packet's received ``tci``.

        Never raises: a write error stops the session and is kept in ``error``.
        """
        if self._closed or self.error is not None:
            self.dropped += len(pkts)
            return
        iface = self._ifaces.get(port)
        if iface is None:
            return
        frames: list[Buffer] = [p.data for p in pkts]
        tags = [p.tci for p in pkts] if tcis is None else tcis
        filtered = 0
        match = self._match
        if match is not None:
            keep = [i for i, (data, tci) in enumerate(zip(frames, tags, strict=True)) if match(data, tci)]
            filtered = len(frames) - len(keep)
            frames = [frames[i] for i in keep]
            tags = [tags[i] for i in keep]
        self.filtered += filtered
        if not frames:
            return
        traces = [p.trace for p in pkts] if any(p.trace is not None for p in pkts) else None
        try:
            if traces is not None:
                written = self._write_traced(iface, pkts, frames, tags, traces, now_ns, direction)
            else:
                written = self._writer.write_batch(iface, frames, now_ns, direction=direction, tcis=tags)
        except Exception as exc:  # an OSError from the file, or a bug: the data path must not see it
            self.dropped += len(frames)
            self._fail(exc)
            return
        self.captured += written
        self.dropped += len(frames) - written

    def _write_traced(
        self,
        iface: int,
        pkts: Sequence[Packet],
        frames: list[Buffer],
        tags: Sequence[int],
        traces: list[object | None],
        now_ns: int,
        direction: Literal["in", "out"],
    ) -> int:
        """Packets of a traced port, one by one, each with its trace tree as the comment (TR: the trace in the
        capture). Only the traced packets of a batch take this path."""
        by_data = {id(p.data): t for p, t in zip(pkts, traces, strict=True)}
        written = 0
        for data, tci in zip(frames, tags, strict=True):
            rec = by_data.get(id(data))
            comment = rec.tree() if isinstance(rec, TraceRecord) else None
            if self._writer.write(iface, data, now_ns, comment=comment, direction=direction, tci=tci):
                written += 1
        return written

    def flush(self) -> None:
        if self.active:
            try:
                self._writer.flush()
            except OSError as exc:
                self._fail(exc)

    # ---- life cycle and status (any thread once the engine no longer records into it) ----

    def close(self) -> None:
        """Flush and close the file(s). Safe to call twice."""
        if self._closed:
            return
        self._closed = True
        self.stopped_ns = time.time_ns()
        try:
            self._writer.close()
        except OSError as exc:
            if self.error is None:
                self.error = f"closing the file: {exc}"

    def _fail(self, exc: BaseException) -> None:
        if self.error is None:
            self.error = f"{type(exc).__name__}: {exc}"
            log.error("capture %s stopped recording: %s", self.id, self.error)

    @property
    def files(self) -> list[Path]:
        return self._writer.files

    def status(self) -> dict[str, Any]:
        """JSON-able status: settings, counts, files (with their sizes) and interfaces."""
        files = self.files
        size = 0
        for f in files:
            try:
                size += f.stat().st_size
            except OSError:
                pass
        return {
            "id": self.id,
            "name": self.name or None,
            "state": "stopped" if self._closed else ("failed" if self.error else "running"),
            "path": str(self.path),
            "ports": sorted(self.ports),
            "direction": self.direction,
            "snaplen": self.snaplen,
            "max_bytes": self.max_bytes,
            "ring_files": self.ring_files,
            "circular": self.circular,
            "filter": self.filter.describe(),
            "captured": self.captured,
            "filtered": self.filtered,
            "dropped": self.dropped,
            "files": [str(f) for f in files],
            "bytes": size,
            # list() copies in one step: the forwarding thread may describe a new port meanwhile.
            "interfaces": sorted(f"{sw}/{port}" for port, (sw, _) in list(self._described.items())),
            "started_ns": self.started_ns,
            "stopped_ns": self.stopped_ns,
            "error": self.error,
        }


class CaptureTaps:
    """The engine's view of the capture sessions: per port name, who records what it receives and sends.

    Built by :func:`build_taps` between batches; the forwarding thread calls :meth:`received` before the
    switch processes a batch and :meth:`sent` just before a destination's device sends it.
    """

    __slots__ = ("now_ns", "rx", "sessions", "tx")

    def __init__(
        self,
        rx: Mapping[str, tuple[CaptureSession, ...]],
        tx: Mapping[str, tuple[CaptureSession, ...]],
        sessions: Sequence[CaptureSession],
        now_ns: Callable[[], int] = time.time_ns,
    ) -> None:
        self.rx = dict(rx)
        self.tx = dict(tx)
        self.sessions = tuple(sessions)
        self.now_ns = now_ns

    def received(self, port: str, pkts: Sequence[Packet]) -> None:
        sessions = self.rx.get(port)
        if sessions:
            now = self.now_ns()
            for s in sessions:
                s.record(port, "in", pkts, None, now)

    def sent(self, port: str, pkts: Sequence[Packet], tcis: Sequence[int]) -> None:
        sessions = self.tx.get(port)
        if sessions:
            now = self.now_ns()
            for s in sessions:
                s.record(port, "out", pkts, tcis, now)

    def flush(self) -> None:
        for s in self.sessions:
            s.flush()


def build_taps(
    sessions: Sequence[CaptureSession],
    ports: Iterable[tuple[str, str, str]],
    now_ns: Callable[[], int] = time.time_ns,
) -> CaptureTaps | None:
    """The taps for ``ports`` = (switch, port, OS interface) triples; None when no session covers any of them.

    Gives each covered port its interface in each session's file (forwarding thread, between batches).
    """
    rx: dict[str, list[CaptureSession]] = {}
    tx: dict[str, list[CaptureSession]] = {}
    live = [s for s in sessions if s.active]
    for switch, port, description in ports:
        for s in live:
            if s.covers(port) and s.attach(switch, port, description):
                if s.rx:
                    rx.setdefault(port, []).append(s)
                if s.tx:
                    tx.setdefault(port, []).append(s)
    if not rx and not tx:
        return None
    return CaptureTaps(
        {p: tuple(v) for p, v in rx.items()}, {p: tuple(v) for p, v in tx.items()}, live, now_ns
    )
