"""SwitchHarness: a whole engine on memory devices with a fake clock — send, expect, expect nothing, advance."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

from pyvswitch.config.schema import HostConfig, PortConfig, SwitchConfig
from pyvswitch.datapath.memory import MemoryDevice
from pyvswitch.ext.registry import Registry
from pyvswitch.observe.capture import DEFAULT_SNAPLEN, CaptureDirection, CaptureFilter, CaptureSession
from pyvswitch.packet.frame import UNTAGGED
from pyvswitch.switch import switch as switch_module
from pyvswitch.switch.engine import Engine
from pyvswitch.testing.clock import FakeClock
from pyvswitch.testing.frames import strip_tag


@contextmanager
def flow_cache(on: bool) -> Iterator[None]:
    """Switches created inside have their flow cache on or off (switch/flowcache.py): to compare."""
    was = switch_module.FLOW_CACHE
    switch_module.FLOW_CACHE = on
    try:
        yield
    finally:
        switch_module.FLOW_CACHE = was


class SwitchHarness:
    """Drives an Engine synchronously (no thread): every ``send`` is processed before it returns.

    Ports' ``interface`` fields name their memory devices; when omitted, the port name is used.
    """

    def __init__(
        self, switches: Iterable[SwitchConfig], ports: Iterable[PortConfig], registry: Registry | None = None
    ) -> None:
        self.clock = FakeClock()
        self.devices: dict[str, MemoryDevice] = {}
        # No entry-point discovery unless asked: a test's extensions are the ones it names.
        self.engine = Engine(clock=self.clock, open_device=self._open, registry=registry or Registry({}))
        self._capture_ids = 0
        self.configure(switches, ports)

    def _open(self, kind: str, ifname: str) -> MemoryDevice:
        dev = self.devices.get(ifname)
        if dev is None or getattr(dev, "closed", False):
            dev = self.devices[ifname] = MemoryDevice(ifname)
        return dev

    def configure(self, switches: Iterable[SwitchConfig], ports: Iterable[PortConfig]) -> None:
        ports = [p if p.interface else p.model_copy(update={"interface": p.name}) for p in ports]
        self.config = HostConfig(switches=list(switches), ports=ports)
        self.engine.apply(self.config)

    def port_device(self, port: str) -> MemoryDevice:
        iface = next((p.interface for p in self.config.ports if p.name == port), port)
        assert iface is not None
        return self.devices[iface]

    def send(self, port: str, frame: bytes, tci: int = UNTAGGED, vnet: bytes | None = None) -> None:
        """Frame arrives on ``port`` (tci: tag delivered out of band, as the kernel does on veth)."""
        self.port_device(port).inject(frame, tci=tci, vnet=vnet)
        while self.engine.run_once():
            pass

    def take(self, port: str) -> list[bytes]:
        """Everything sent on ``port`` since the last take (wire bytes, tags inline)."""
        dev = self.port_device(port)
        out = list(dev.sent)
        dev.sent.clear()
        return out

    def expect(self, port: str, frame: bytes, vlan: int | None = None) -> None:
        """Exactly one frame was sent on ``port``, equal to ``frame`` and tagged with ``vlan`` (None = untagged)."""
        got = self.take(port)
        assert len(got) == 1, f"expected one frame on {port}, got {len(got)}"
        vid, untagged = strip_tag(got[0])
        assert vid == vlan, f"frame on {port}: expected VLAN {vlan}, got {vid}"
        assert untagged == frame, f"frame on {port} differs:\n got {untagged.hex()}\nwant {frame.hex()}"

    def expect_nothing(self, *ports: str) -> None:
        for port in ports or [p.name for p in self.config.ports]:
            got = self.take(port)
            assert not got, f"expected nothing on {port}, got {len(got)} frame(s)"

    def advance(self, seconds: float) -> None:
        self.clock.advance(seconds)
        self.engine.run_once()

    def capture(
        self,
        path: str | os.PathLike[str],
        ports: Iterable[str] = (),
        direction: CaptureDirection = "both",
        snaplen: int = DEFAULT_SNAPLEN,
        filter: CaptureFilter | None = None,
        max_bytes: int | None = None,
        ring_files: int = 0,
    ) -> CaptureSession:
        """Start a capture session on the engine (stop it with :meth:`stop_capture` to flush the file)."""
        self._capture_ids += 1
        session = CaptureSession(
            str(self._capture_ids),
            path,
            ports=ports,
            direction=direction,
            snaplen=snaplen,
            filter=filter,
            max_bytes=max_bytes,
            ring_files=ring_files,
        )
        self.engine.add_capture(session)
        return session

    def stop_capture(self, session: CaptureSession) -> None:
        self.engine.remove_capture(session.id)

    def drops(self, switch: str) -> dict[str, int]:
        counters = self.engine.counters()["switches"]
        assert isinstance(counters, dict)
        result = counters[switch]["drops"]
        assert isinstance(result, dict)
        return result
