"""The public extension API (version 1.4): what a third-party capture, filter or forwarding extension writes against.

An extension is a class registered in the entry-point group ``pyvswitch.extensions``::

    [project.entry-points."pyvswitch.extensions"]
    flowcount = "my_package:FlowCounter"

pyvswitch makes one instance per switch, bound but disabled until enabled on that switch
(``Enable-VMSwitchExtension``), and calls it with whole batches. The three kinds have Hyper-V's powers, and the
switch enforces them by what it hands over:

- **capture** (``CaptureExtension``): sees every frame read-only (``CapturedFrame``: data is a read-only view)
  on ingress and egress, and may originate new frames (``Context.originate``). It cannot drop or change anything.
- **filter** (``FilterExtension``): gets the live packets with a ``Gate``: drop with a reason, replace a packet's
  data (copy-on-write: received data is read-only, so a filter builds new bytes), clone, inject new frames, and on
  egress exclude a destination. It may veto port creation and connection.
- **forwarding** (``ForwardingExtension``): a filter that also decides destinations: ``forward`` sets
  ``pkt.dsts`` for each packet. At most one is enabled per switch; without one, the built-in learning forwarder
  decides.

The stack runs capture* -> filter* -> forwarding on ingress and the reverse on egress; the order within a kind is
the switch's configuration.

The flow cache (API 1.2): a switch remembers what its chain did to a packet per flow key and replays it for the
next packets of that flow without running the chain (switch/flowcache.py). It does so on a port only while every
enabled extension declares ``flow_cacheable = True``: a promise that what it decides about a packet depends only on
the packet's Ethernet, VLAN and IPv4/TCP/UDP/ICMP header fields and on state it keeps, and that whatever per-packet
work a replay must still do (a connection's idle timer) it hands over with ``Gate.cache(pkt, token)``; ``token.hit(now, packets)``
is then called for the cached packets of the flow (consecutive ones of a batch in one call) and returns False
when the decision no longer holds. An extension
that drops, excludes, replaces or injects for a packet, or fails, makes that packet's flow uncached for the moment.
Capture extensions, which must see every frame, are never flow-cacheable.

An exception escaping an extension is contained: counted, logged with a rate limit,
and then ``on_error`` decides: ``"bypass"`` (the batch continues as if the extension were not there) or
``"drop"`` (the batch is dropped with reason ``extension-error``).

Packets (``pyvswitch.packet.frame.Packet``) are untagged inside the switch: ``pkt.vlan`` is the VLAN, ``pkt.tci``
the received tag; ``pkt.src``/``pkt.dst`` are MACs as 48-bit ints; ``pkt.in_port`` is the source port index
(``Context.port(i)`` names it); ``pkt.vnet`` the virtio-net header (offsets relative to ``data``).

Traces (API 1.3): ``explain(pkt, text)`` says what decided a packet (the rule, with its fields) when the packet is
being traced (``pyvswitch trace``, what-if traces); the trace prints it on the extension's line, after the drop
reason. It costs nothing otherwise: test ``pkt.trace is not None`` before building an expensive text, or pass a
callable.

Sampling (API 1.4): a ``SamplingExtension`` (a capture extension, as the sFlow and IPFIX exporters are) sees not
every frame but one in ``sampling_rate`` of each port's received frames, picked at random intervals (sFlow's
"skip" countdown: the mean interval is the rate), after the switch has decided them: each ``Sample`` says where the
frame went. It does not take the port off the flow cache nor add a step to any chain, so its cost is per sample,
not per frame; ``tick`` is called about once a second, and ``Context.counters`` gives a port's interface counters
(sFlow's counter samples).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, ClassVar

from pydantic import BaseModel

from pyvswitch.ext.rules import ExtendedRule
from pyvswitch.observe.trace import explain
from pyvswitch.packet.frame import UNTAGGED, Buffer, FlowToken, Packet

# 1.1: Direction enum, Gate.decisions()/take_injected(), Context.take_originated(); 1.2: flow cache (flow_cacheable,
# Gate.cache); 1.3: explain() for traces; 1.4: SamplingExtension, Sample, Context.counters
API_VERSION = "1.4"
ENTRY_POINT_GROUP = "pyvswitch.extensions"


class ExtensionKind(StrEnum):
    CAPTURE = "capture"
    FILTER = "filter"
    FORWARDING = "forwarding"


class OnError(StrEnum):
    BYPASS = "bypass"
    DROP = "drop"


class PortEvent(StrEnum):
    """A port's life (Hyper-V's create -> connect -> disconnect -> delete), delivered in stack order."""

    CREATE = "create"
    CONNECT = "connect"
    UPDATE = "update"  # the port's policies (VLAN, security) change
    DISCONNECT = "disconnect"
    DELETE = "delete"


class Veto(Exception):
    """Raised by a filter or forwarding extension from ``port_event`` (create, connect, update) to refuse a
    port or a policy change; the configuration change is then rejected as a whole."""


@dataclass(frozen=True, slots=True)
class PortInfo:
    """A port as extensions see it."""

    name: str
    index: int
    kind: str  # vm, host, interface, tap, uplink
    switch: str
    mac: str | None
    vm: str | None
    vlan_mode: str
    #: Add-VMNetworkAdapterExtendedAcl entries of the port, compiled (enforced by the built-in firewall).
    extended_acls: tuple[ExtendedRule, ...] = ()
    #: A validation port (Hyper-V §2.4): offered on a live migration's destination before the move, created then
    #: deleted at once. Check its policies and veto if they cannot work here; reserve nothing for it.
    validation: bool = False


@dataclass(frozen=True, slots=True)
class CapturedFrame:
    """What a capture extension sees of a packet: nothing it can change."""

    data: memoryview
    vlan: int
    tci: int
    in_port: int
    src: int
    dst: int
    dsts: tuple[int, ...] | None

    @classmethod
    def of(cls, pkt: Packet) -> CapturedFrame:
        return cls(
            memoryview(pkt.data).toreadonly(),
            pkt.vlan,
            pkt.tci,
            pkt.in_port,
            pkt.src,
            pkt.dst,
            None if pkt.dsts is None else tuple(pkt.dsts),
        )


@dataclass(frozen=True, slots=True)
class PortCounters:
    """A port's interface counters as the switch saw them (frames and bytes at the port's device; ``rx_drops``
    the frames it received and did not forward, ``tx_drops`` those it could not send)."""

    rx_frames: int
    rx_bytes: int
    tx_frames: int
    tx_bytes: int
    rx_drops: int
    tx_drops: int


@dataclass(frozen=True, slots=True)
class Sample:
    """One sampled frame (API 1.4), after the switch decided it.

    ``header``: the first bytes of the frame as received (at most the extension's ``header_bytes``), a copy;
    ``length``: the whole frame's length; ``outputs``: the port indices it was delivered to (empty: dropped);
    ``pool``: frames received on ``in_port`` since sampling began there, sampled or not (sFlow's sample_pool).
    ``vlan`` is the VLAN the switch put it in (0 when ingress dropped it before deciding), ``tci`` the tag it
    arrived with."""

    header: bytes
    length: int
    in_port: int
    vlan: int
    tci: int
    outputs: tuple[int, ...]
    pool: int


@dataclass(slots=True)
class Context:
    """The switch as an extension sees it during a call: names of ports, the clock, and origination."""

    switch: str
    now: Callable[[], float]
    ports: dict[int, PortInfo]
    _originated: list[tuple[bytes, int | None, int]] = field(default_factory=list)
    _vf_requests: list[tuple[str, bool]] = field(default_factory=list)
    _counters: Callable[[int], PortCounters | None] = lambda index: None

    def port(self, index: int) -> PortInfo | None:
        return self.ports.get(index)

    def port_index(self, name: str) -> int | None:
        return next((i for i, p in self.ports.items() if p.name == name), None)

    def counters(self, index: int) -> PortCounters | None:
        """API 1.4: port ``index``'s interface counters now (None: no such port)."""
        return self._counters(index)

    def originate(self, frame: Buffer, source_port: int | None = None, vlan: int = 0) -> None:
        """Send a new frame into the switch's ingress (next batch). ``source_port`` None = the trusted default
        port (bypasses port policies, as in Hyper-V); a real port index gets that port's policies."""
        self._originated.append((bytes(frame), source_port, vlan))

    def revoke_vf(self, port: str, revoke: bool = True) -> None:
        """For forwarding extensions (Hyper-V's NDIS_STATUS_SWITCH_PORT_REMOVE_VF): take ``port`` off its SR-IOV
        VF so its traffic crosses the switch, its policies and the extensions again; ``revoke=False`` lets it
        have a VF again. Applied by the daemon shortly after, with the port's traffic kept flowing."""
        self._vf_requests.append((port, revoke))

    def take_originated(self) -> list[tuple[bytes, int | None, int]]:
        """The frames originated since the last call (the stack forwards them with the next batch)."""
        out = self._originated
        if out:  # called after every batch: no new list while nothing was originated
            self._originated = []
        return out

    def take_vf_requests(self) -> list[tuple[str, bool]]:
        """The switch's side of revoke_vf: the requests since the last call."""
        out, self._vf_requests = self._vf_requests, []
        return out


class Direction(StrEnum):
    """Which way a batch crosses the extension stack: ``ingress`` (received from ``port``, before forwarding)
    or ``egress`` (going to ``port``, after). A str, so code written against API 1.0 comparing with
    "ingress"/"egress" keeps working."""

    INGRESS = "ingress"
    EGRESS = "egress"


class Gate:
    """A filter's powers over one batch. Decisions take effect when the extension returns."""

    __slots__ = ("_drops", "_excluded", "_injected", "direction", "out_port")

    def __init__(self, direction: Direction, out_port: int | None = None) -> None:
        self.direction = Direction(direction)
        self.out_port = out_port  # egress: the destination port this batch is going to
        self._drops: dict[int, str] = {}  # id(pkt) -> reason
        self._excluded: dict[int, str] = {}
        self._injected: list[tuple[bytes, int | None, int]] = []

    def drop(self, pkt: Packet, reason: str) -> None:
        """Drop ``pkt`` here; counted under ``reason``."""
        self._drops[id(pkt)] = reason
        if pkt.flow is not None:
            pkt.flow.ok = False  # drops are counted where they happen: never replayed from the flow cache

    def cache(self, pkt: Packet, token: FlowToken) -> None:
        """A flow-cacheable extension's per-packet work for the packets of ``pkt``'s flow that the flow cache
        will replay (see the module doc); a no-op when the switch is not recording ``pkt``."""
        if pkt.flow is not None:
            pkt.flow.tokens.append(token)

    def exclude(self, pkt: Packet, reason: str) -> None:
        """Egress: do not deliver ``pkt`` to this batch's destination (sticky; counted under ``reason``)."""
        if self.direction is not Direction.EGRESS:
            raise ValueError("exclude is an egress decision; on ingress, drop or change pkt.dsts")
        self._excluded[id(pkt)] = reason
        if pkt.flow is not None:
            pkt.flow.ok = False

    def take_injected(self) -> list[tuple[bytes, int | None, int]]:
        """The frames injected during the call (the stack forwards them with the next batch)."""
        out, self._injected = self._injected, []
        return out

    def decisions(self) -> dict[int, str]:
        """Every packet this batch will not deliver, by id, with its reason: drops and excludes together (a drop
        wins when a filter did both to one packet, as it is the stronger decision)."""
        if not self._excluded:
            return self._drops
        return {**self._excluded, **self._drops}

    def replace(self, pkt: Packet, data: Buffer) -> None:
        """Change a packet's bytes (copy-on-write: the received data is read-only)."""
        pkt.data = bytes(data)
        pkt.flow = None  # the next packets of its flow need the extension again
        pkt.vnet = None  # offsets of the old header no longer describe the new bytes
        pkt.l3 = None  # nor does what was parsed from the old bytes

    def clone(self, pkt: Packet) -> Packet:
        """A copy that can be changed and injected without touching the original."""
        return pkt.detach()

    def inject(self, frame: Buffer, source_port: int | None = None, vlan: int = 0) -> None:
        """A new frame into ingress (next batch), as ``Context.originate``."""
        self._injected.append((bytes(frame), source_port, vlan))


class Extension:
    """Base of every extension. One instance per switch; called from the forwarding thread only."""

    name: ClassVar[str] = ""
    kind: ClassVar[ExtensionKind]
    api_version: ClassVar[str] = API_VERSION
    description: ClassVar[str] = ""
    #: What the switch does with a batch when this extension raises.
    on_error: ClassVar[OnError] = OnError.BYPASS
    #: Built-ins that ship enabled (Hyper-V's WFP filter); third-party extensions start disabled.
    enabled_by_default: ClassVar[bool] = False
    #: The settings the extension takes, as a pydantic model (API 1.1). A switch's configuration carries them
    #: per extension (``{"name": ..., "settings": {...}}``); the daemon validates them against this model, so a
    #: bad value rejects the whole change with the field named, and hands the result to ``configure``. None:
    #: the extension takes no settings (giving some is then an error).
    settings_model: ClassVar[type[BaseModel] | None] = None
    #: API 1.2: the extension lets the switch cache its decisions per flow (see the module doc). Capture
    #: extensions never do.
    flow_cacheable: ClassVar[bool] = False

    def __init__(self, switch: str) -> None:
        self.switch = switch

    def configure(self, settings: BaseModel) -> None:
        """Apply validated settings (an instance of ``settings_model``), between batches: after construction,
        and whenever the switch's configuration changes them (defaults when none are given)."""

    def port_event(self, event: PortEvent, port: PortInfo) -> None:
        """A port was created/connected/disconnected/deleted. Filters and forwarders may raise Veto on
        create and connect."""

    def idle(self) -> bool:
        """True when the extension has nothing to do on any packet right now (e.g. a firewall with no rules):
        the switch then leaves it out of the data path until the next configuration change."""
        return False

    def status(self) -> dict[str, Any]:
        """Run-time data shown by the API (``GET /v1/switches/{name}/extensions``); JSON-able."""
        return {}

    def save_state(self, port: str) -> bytes | None:
        """Per-port run-time state to carry across a restart or live migration (None: nothing)."""
        return None

    def restore_state(self, port: str, blob: bytes) -> None:
        """Take back what ``save_state`` gave, on a port that may have another index now."""


class CaptureExtension(Extension):
    kind = ExtensionKind.CAPTURE

    def capture(self, ctx: Context, frames: Sequence[CapturedFrame], direction: Direction, port: int) -> None:
        """Frames received from (ingress) or about to be sent to (egress) port index ``port``."""


class SamplingExtension(CaptureExtension):
    """API 1.4: a capture extension that sees one in ``sampling_rate`` received frames of every port, decided
    (see the module doc). ``capture`` is never called, and what it originates is discarded. Set
    ``sampling_rate`` (and ``header_bytes``) in ``configure``: the switch reads them after every configuration
    change."""

    sampling_rate: int = 400
    header_bytes: int = 128

    def sampled(self, ctx: Context, samples: Sequence[Sample]) -> None:
        """Samples in the order they were taken, of any ports: a few dozen at a time, and whatever is left just
        before each ``tick`` (so a sample is at most about a second old)."""

    def tick(self, ctx: Context, now: float) -> None:
        """About once a second, from the forwarding thread, with or without traffic: export what is due."""


class FilterExtension(Extension):
    kind = ExtensionKind.FILTER

    def ingress(self, ctx: Context, pkts: Sequence[Packet], gate: Gate) -> None:
        """Packets received from one port (``pkts[i].in_port``), before forwarding."""

    def egress(self, ctx: Context, pkts: Sequence[Packet], gate: Gate) -> None:
        """Packets about to be sent to ``gate.out_port``."""


class ForwardingExtension(FilterExtension):
    kind = ExtensionKind.FORWARDING

    def forward(self, ctx: Context, pkts: Sequence[Packet]) -> None:
        """Set ``pkt.dsts`` (port indices) for every packet; an empty list or None drops it ("no-destination")."""
        raise NotImplementedError


__all__ = [
    "API_VERSION",
    "ENTRY_POINT_GROUP",
    "UNTAGGED",
    "CaptureExtension",
    "CapturedFrame",
    "Context",
    "Direction",
    "Extension",
    "ExtensionKind",
    "FilterExtension",
    "FlowToken",
    "ForwardingExtension",
    "Gate",
    "OnError",
    "PortCounters",
    "PortEvent",
    "PortInfo",
    "Sample",
    "SamplingExtension",
    "Veto",
    "explain",
]
