"""The sFlow agent: ``pyvswitch-sflow``, a sampling capture extension (ext/api.py, API 1.4), as Hyper-V's ecosystem
exports flows with the sFlow switch extension (InMon's) and Open vSwitch with its sFlow agent.

Every port of the switch is a data source (ifIndex = port index + 1; 0 is sFlow's "unknown"). Flow samples: one in
``sampling_rate`` received frames per port (switch/sampling.py), each with the frame's first ``header_bytes``
(raw packet header record), the VLANs and priorities (extended switch record), and where it went (the output
ifIndex, a count of ports for a flood, or "discarded"). Counter samples: every ``polling_interval_s`` the
generic interface counters of each port. Datagrams of at most ``MAX_DATAGRAM`` bytes go to every collector when
full, and at least once a second while samples wait.

Enable and point it at a collector::

    pyvswitch extension enable sw pyvswitch-sflow
    pyvswitch extension set sw pyvswitch-sflow collectors=10.0.0.9:6343 sampling_rate=400
"""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Sequence
from typing import Any, ClassVar

from pydantic import BaseModel, Field, field_validator

from pyvswitch.builtin.collectors import Collectors, ExporterSettings
from pyvswitch.ext.api import Context, Sample, SamplingExtension
from pyvswitch.packet import sflow
from pyvswitch.packet.frame import UNTAGGED

MAX_DATAGRAM = 1400  # bytes of sFlow payload: one unfragmented UDP datagram on a 1500-byte path


class SflowSettings(ExporterSettings):
    """``extensions[i].settings`` of pyvswitch-sflow: collectors and sampling_rate (builtin/collectors.py), and:"""

    default_port: ClassVar[int] = sflow.SFLOW_PORT
    #: Seconds between two counter samples of a port; 0: no counter samples.
    polling_interval_s: float = Field(default=30.0, ge=0, le=3600)
    #: Bytes of each sampled frame sent (sFlow's header record).
    header_bytes: int = Field(default=128, ge=14, le=256)
    #: The agent address in the datagrams; by default the local address towards the first collector.
    agent_address: str | None = None
    sub_agent_id: int = Field(default=0, ge=0, le=2**32 - 1)

    @field_validator("agent_address")
    @classmethod
    def _agent(cls, value: str | None) -> str | None:
        if value is not None:
            ipaddress.ip_address(value)
        return value


class SflowAgent(SamplingExtension):
    name = "pyvswitch-sflow"
    description = "sFlow v5 agent: 1-in-N packet samples and interface counters to collectors"
    settings_model = SflowSettings

    def __init__(self, switch: str) -> None:
        super().__init__(switch)
        self.settings = SflowSettings()
        self.collectors = Collectors([])
        self.agent = "0.0.0.0"
        self.agent_header = sflow.agent_header(self.agent)
        self.started = time.monotonic()
        self.datagrams = 0  # datagram sequence number
        self.flow_sequence: dict[int, int] = {}  # per data source (ifIndex)
        self.counter_sequence: dict[int, int] = {}
        self.pending: list[bytes] = []
        self.pending_bytes = sflow.DATAGRAM_HEADER_V4
        self.samples = 0
        self.counter_samples = 0
        self.next_poll = 0.0
        self.last_flush = 0.0

    def configure(self, settings: BaseModel) -> None:
        assert isinstance(settings, SflowSettings)
        self.settings = settings
        self.sampling_rate = settings.sampling_rate
        self.header_bytes = settings.header_bytes
        self.collectors.close()
        self.collectors = Collectors(settings.targets())
        self.agent = settings.agent_address or self.collectors.source_address()
        self.agent_header = sflow.agent_header(self.agent)
        self.next_poll = 0.0

    # ---- flow samples ----

    def sampled(self, ctx: Context, samples: Sequence[Sample]) -> None:
        rate = self.sampling_rate
        for s in samples:
            source = s.in_port + 1
            seq = self.flow_sequence.get(source, 0) + 1
            self.flow_sequence[source] = seq
            self._add(
                sflow.flow_sample(
                    seq,
                    source,
                    rate,
                    s.pool,
                    source,
                    sflow.output_port([o + 1 for o in s.outputs]),  # ifIndex = port index + 1
                    s.header,
                    s.length,
                    s.vlan,
                    0 if s.tci == UNTAGGED else s.tci >> 13,
                )
            )
        self.samples += len(samples)

    # ---- counter samples and the periodic flush ----

    def tick(self, ctx: Context, now: float) -> None:
        interval = self.settings.polling_interval_s
        if interval and now >= self.next_poll:
            self.next_poll = now + interval
            for index in sorted(ctx.ports):
                c = ctx.counters(index)
                if c is None:
                    continue
                source = index + 1
                seq = self.counter_sequence.get(source, 0) + 1
                self.counter_sequence[source] = seq
                counters = sflow.InterfaceCounters(
                    if_index=source,
                    speed_bps=0,
                    in_octets=c.rx_bytes,
                    in_packets=c.rx_frames,
                    in_discards=c.rx_drops,
                    out_octets=c.tx_bytes,
                    out_packets=c.tx_frames,
                    out_discards=c.tx_drops,
                )
                self._add(sflow.CounterSample(seq, counters).encode())
                self.counter_samples += 1
        if self.pending:
            self.flush()

    def _add(self, sample: bytes) -> None:
        if self.pending and self.pending_bytes + len(sample) > MAX_DATAGRAM:
            self.flush()
        self.pending.append(sample)
        self.pending_bytes += len(sample)

    def flush(self) -> None:
        self.datagrams += 1
        uptime_ms = int((time.monotonic() - self.started) * 1000)
        data = sflow.datagram(
            self.agent_header, self.settings.sub_agent_id, self.datagrams, uptime_ms, self.pending
        )
        self.pending = []
        self.pending_bytes = sflow.DATAGRAM_HEADER_V4
        self.collectors.send(data)

    def status(self) -> dict[str, Any]:
        return {
            "sampling_rate": self.sampling_rate,
            "collectors": [f"{h}:{p}" for h, p in self.collectors.targets],
            "agent": self.agent,
            "flow_samples": self.samples,
            "counter_samples": self.counter_samples,
            "datagrams": self.collectors.sent,
            "send_errors": self.collectors.errors,
        }
