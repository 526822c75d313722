"""The IPFIX exporter: ``pyvswitch-ipfix``, a sampling capture extension (ext/api.py, API 1.4) that turns sampled
frames into flow records (RFC 7011) for collectors such as nfcapd, as Open vSwitch's per-bridge IPFIX does.

A flow is keyed by input and output port, VLAN, MACs, EtherType and the IP 5-tuple with the TOS (packet/ipfix.py
``flow_key``). Its packet and byte counts are estimates: what was sampled times ``sampling_rate`` (exact at a rate
of 1, which costs a sample per frame). A flow is exported when it has been idle ``idle_timeout_s``, when it has
been open ``active_timeout_s`` (then counted afresh), when the table holds ``max_flows`` (the oldest goes), when
one of its ports is deleted, and when the settings change. Disabling the extension forgets the open flows.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any, ClassVar

from pydantic import BaseModel, Field

from pyvswitch.builtin.collectors import Collectors, ExporterSettings
from pyvswitch.ext.api import Context, PortEvent, PortInfo, Sample, SamplingExtension
from pyvswitch.packet import ipfix

MAX_MESSAGE = 1400  # bytes: one unfragmented UDP datagram on a 1500-byte path


class IpfixSettings(ExporterSettings):
    """``extensions[i].settings`` of pyvswitch-ipfix: collectors and sampling_rate (builtin/collectors.py; a rate of
    1 gives exact counts), and:"""

    default_port: ClassVar[int] = ipfix.IPFIX_PORT
    active_timeout_s: float = Field(default=60.0, gt=0, le=3600)
    idle_timeout_s: float = Field(default=15.0, gt=0, le=3600)
    max_flows: int = Field(default=65_536, ge=16, le=4_194_304)
    observation_domain: int = Field(default=0, ge=0, le=2**32 - 1)


class Flow:
    __slots__ = ("opened", "record", "seen")

    def __init__(self, record: ipfix.FlowRecord, now: float) -> None:
        self.record = record
        self.opened = now
        self.seen = now


class IpfixExporter(SamplingExtension):
    name = "pyvswitch-ipfix"
    description = (
        "IPFIX flow records (5-tuple, VLAN, ports, bytes, packets) from sampled frames to collectors"
    )
    settings_model = IpfixSettings

    def __init__(self, switch: str) -> None:
        super().__init__(switch)
        self.settings = IpfixSettings()
        self.collectors = Collectors([])
        self.flows: dict[ipfix.FlowKey, Flow] = {}
        self.sequence = 0  # data records exported (the message header's sequence number)
        self.samples = 0
        self.exported = 0
        self.evicted = 0

    def configure(self, settings: BaseModel) -> None:
        assert isinstance(settings, IpfixSettings)
        if self.flows:
            self._export(list(self.flows))  # counted at the old rate: sent before the rate changes
        self.settings = settings
        self.sampling_rate = settings.sampling_rate
        self.collectors.close()
        self.collectors = Collectors(settings.targets())

    def port_event(self, event: PortEvent, port: PortInfo) -> None:
        if event is PortEvent.DELETE:  # its index may be taken by another port: its flows end now
            self._export([k for k in self.flows if port.index + 1 in (k.in_if, k.out_if)])

    def sampled(self, ctx: Context, samples: Sequence[Sample]) -> None:
        rate = self.sampling_rate
        now = ctx.now()
        wall_ms = int(time.time() * 1000)
        flows = self.flows
        for s in samples:
            self.samples += 1
            out_if = s.outputs[0] + 1 if len(s.outputs) == 1 else 0
            parsed = ipfix.flow_key(s.header, s.in_port + 1, out_if, s.vlan)
            if parsed is None:
                continue
            key, flags, l2 = parsed
            flow = flows.get(key)
            if flow is None:
                if len(flows) >= self.settings.max_flows:
                    self.evicted += 1
                    self._export([next(iter(flows))])  # the oldest: dicts keep insertion order
                flow = flows[key] = Flow(ipfix.FlowRecord(key, 0, 0, wall_ms, wall_ms), now)
            r = flow.record
            r.packets += rate
            r.octets += (s.length - l2) * rate
            r.last_ms = wall_ms
            r.tcp_flags |= flags
            flow.seen = now

    def tick(self, ctx: Context, now: float) -> None:
        idle, active = self.settings.idle_timeout_s, self.settings.active_timeout_s
        due = [k for k, f in self.flows.items() if now - f.seen >= idle or now - f.opened >= active]
        if due:
            self._export(due)

    def _export(self, keys: list[ipfix.FlowKey]) -> None:
        batch: list[ipfix.FlowRecord] = []
        size = ipfix.MESSAGE_HEADER + len(ipfix.TEMPLATES)
        for key in keys:
            flow = self.flows.pop(key, None)
            if flow is None:
                continue
            # A data set's header (4 bytes) per template at most: counted for every record, to stay safe.
            need = ipfix.RECORD_SIZE[key.template] + 4
            if batch and size + need > MAX_MESSAGE:
                self._send(batch)
                batch, size = [], ipfix.MESSAGE_HEADER + len(ipfix.TEMPLATES)
            batch.append(flow.record)
            size += need
        if batch:
            self._send(batch)

    def _send(self, records: list[ipfix.FlowRecord]) -> None:
        msg = ipfix.message(records, self.sequence, int(time.time()), self.settings.observation_domain)
        self.sequence += len(records)
        self.exported += len(records)
        self.collectors.send(msg)

    def status(self) -> dict[str, Any]:
        return {
            "sampling_rate": self.sampling_rate,
            "collectors": [f"{h}:{p}" for h, p in self.collectors.targets],
            "samples": self.samples,
            "flows": len(self.flows),
            "records_exported": self.exported,
            "evicted": self.evicted,
            "messages": self.collectors.sent,
            "send_errors": self.collectors.errors,
        }
