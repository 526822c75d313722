"""Where the flow exporters (builtin/sflow.py, builtin/ipfix.py) send: collectors named "host:port", over UDP.

Sent from the forwarding thread, so never blocking: a non-blocking socket, and a datagram the kernel will not take
(a full socket buffer, an unreachable collector's ICMP error reported on the next send) is counted and dropped, as
an sFlow agent or an IPFIX exporter over UDP does.
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass, field
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, field_validator


def parse_collector(text: str, default_port: int) -> tuple[str, int]:
    """ "10.0.0.5", "10.0.0.5:6343", "[2001:db8::5]:6343" or "2001:db8::5" -> (address, port). A name is not
    accepted: resolving it would block the forwarding thread, and an exporter should not depend on DNS."""
    text = text.strip()
    host, port = text, default_port
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        if not sep or (rest and not rest.startswith(":")):
            raise ValueError(f"{text!r}: expected [IPv6]:port")
        if rest:
            port = int(rest[1:])
    elif text.count(":") == 1:
        host, _, p = text.partition(":")
        port = int(p)
    try:
        ipaddress.ip_address(host)
    except ValueError:
        raise ValueError(f"{text!r}: the collector must be an IP address (with an optional :port)") from None
    if not 0 < port < 65536:
        raise ValueError(f"{text!r}: port {port} out of range")
    return host, port


class ExporterSettings(BaseModel):
    """What both exporters take: where to send, and how often to sample."""

    model_config = ConfigDict(extra="forbid")
    default_port: ClassVar[int]
    #: Collectors as "address[:port]" (a list, or one text with commas); none: counted, not sent.
    collectors: list[str] = Field(default_factory=list, max_length=8)
    #: One in N received frames of each port is sampled (N = 1: every frame).
    sampling_rate: int = Field(default=400, ge=1, le=2**24)

    @field_validator("collectors", mode="before")
    @classmethod
    def _split(cls, value: Any) -> Any:
        if isinstance(value, str):  # `extension set sw pyvswitch-sflow collectors=10.0.0.9,10.0.0.10`
            return [c for c in value.split(",") if c.strip()]
        return value

    @field_validator("collectors")
    @classmethod
    def _addresses(cls, value: list[str]) -> list[str]:
        for c in value:
            parse_collector(c, cls.default_port)
        return value

    def targets(self) -> list[tuple[str, int]]:
        return [parse_collector(c, self.default_port) for c in self.collectors]


@dataclass
class Collectors:
    """UDP senders to each collector; ``sent``/``errors`` count datagrams."""

    targets: list[tuple[str, int]]
    sent: int = 0
    errors: int = 0
    sent_bytes: int = 0
    _socks: dict[tuple[str, int], socket.socket] = field(default_factory=dict)

    def _sock(self, target: tuple[str, int]) -> socket.socket:
        s = self._socks.get(target)
        if s is None:
            family = socket.AF_INET6 if ":" in target[0] else socket.AF_INET
            s = socket.socket(family, socket.SOCK_DGRAM)
            s.setblocking(False)
            s.connect(target)  # the route decides the source address: the agent address by default
            self._socks[target] = s
        return s

    def source_address(self) -> str:
        """The local address towards the first collector (sFlow's agent address when none is configured)."""
        if not self.targets:
            return "0.0.0.0"
        try:
            return str(self._sock(self.targets[0]).getsockname()[0])
        except OSError:
            return "0.0.0.0"

    def send(self, data: bytes) -> None:
        for target in self.targets:
            try:
                self._sock(target).send(data)
                self.sent += 1
                self.sent_bytes += len(data)
            except OSError:
                self.errors += 1

    def close(self) -> None:
        for s in self._socks.values():
            s.close()
        self._socks.clear()
