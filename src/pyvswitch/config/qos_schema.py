"""The QoS part of the desired-state schema (config/schema.py re-exports it): NetQos policies, traffic classes
and DCB (hyperv-networking.md §5.4-5.6)."""

from __future__ import annotations

import ipaddress
from enum import StrEnum
from typing import Annotated

from pydantic import Field, field_validator, model_validator

from pyvswitch.config.model import Model


class QosTemplate(StrEnum):
    """New-NetQosPolicy's built-in filters (each used alone, hyperv-networking.md §5.4)."""

    SMB = "SMB"  # TCP 445
    ISCSI = "iSCSI"  # TCP 3260
    NFS = "NFS"  # 2049
    LIVE_MIGRATION = "LiveMigration"  # TCP 6600
    CLUSTER = "Cluster"  # 3343
    FCOE = "FCOE"  # EtherType 0x8906
    DEFAULT = "Default"  # everything no other policy matches


class IpProtocolMatch(StrEnum):
    TCP = "TCP"
    UDP = "UDP"
    BOTH = "Both"


Port16 = Annotated[int, Field(ge=0, le=65535)]


class QosPolicyConfig(Model):
    """New-NetQosPolicy: classifies traffic the management OS sends (from host vNICs and team interfaces) and
    acts on it. Conditions combine (all must hold); a template must be used alone."""

    name: str
    template: QosTemplate | None = None
    ip_protocol: IpProtocolMatch = IpProtocolMatch.BOTH
    ip_src_prefix: str | None = None
    ip_dst_prefix: str | None = None
    ip_src_port: Port16 | None = None
    ip_dst_port: Port16 | None = None
    ip_port: Port16 | None = None  # IPPortMatchCondition: either port
    ip_src_port_start: Port16 | None = None
    ip_src_port_end: Port16 | None = None
    ip_dst_port_start: Port16 | None = None
    ip_dst_port_end: Port16 | None = None
    # Actions
    min_bandwidth_weight: Annotated[int, Field(ge=1, le=100)] | None = None  # MinBandwidthWeightAction
    throttle_rate: Annotated[int, Field(ge=8, le=10**13)] | None = None  # ThrottleRateActionBitsPerSecond
    dscp: Annotated[int, Field(ge=0, le=63)] | None = None  # DSCPAction
    priority_8021: Annotated[int, Field(ge=0, le=7)] | None = None  # PriorityValue8021Action
    precedence: Annotated[int, Field(ge=0, le=255)] = 127  # 255 wins

    @field_validator("name")
    @classmethod
    def _policy_name(cls, v: str) -> str:
        if not v.strip() or len(v) > 64:
            raise ValueError("a policy name is 1-64 characters")
        return v

    @field_validator("ip_src_prefix", "ip_dst_prefix")
    @classmethod
    def _prefix(cls, v: str | None) -> str | None:
        if v is not None:
            return str(ipaddress.ip_network(v, strict=False))
        return v

    @model_validator(mode="after")
    def _rules(self) -> QosPolicyConfig:
        conditions = [
            f
            for f in (
                "ip_src_prefix",
                "ip_dst_prefix",
                "ip_src_port",
                "ip_dst_port",
                "ip_port",
                "ip_src_port_start",
                "ip_dst_port_start",
            )
            if getattr(self, f) is not None
        ]
        if self.ip_protocol is not IpProtocolMatch.BOTH:
            conditions.append("ip_protocol")
        if self.template is not None and conditions:
            raise ValueError(
                f"template {self.template.value} must be used alone, not with {', '.join(conditions)}"
            )
        if self.template is None and not conditions:
            raise ValueError("a policy needs a template or at least one condition")
        for a, b in (("ip_src_port_start", "ip_src_port_end"), ("ip_dst_port_start", "ip_dst_port_end")):
            lo, hi = getattr(self, a), getattr(self, b)
            if (lo is None) != (hi is None):
                raise ValueError(f"{a} and {b} go together")
            if lo is not None and hi is not None and lo > hi:
                raise ValueError(f"{a} is above {b}")
        if all(
            getattr(self, f) is None
            for f in ("min_bandwidth_weight", "throttle_rate", "dscp", "priority_8021")
        ):
            raise ValueError(
                "a policy needs an action: min_bandwidth_weight, throttle_rate, dscp or priority_8021"
            )
        return self


class TrafficClassAlgorithm(StrEnum):
    ETS = "ETS"
    STRICT = "Strict"


Priority = Annotated[int, Field(ge=0, le=7)]


class TrafficClassConfig(Model):
    """New-NetQosTrafficClass: 802.1p priorities served as one class, by ETS share or strictly first."""

    name: str
    priorities: Annotated[list[Priority], Field(min_length=1, max_length=8)]
    algorithm: TrafficClassAlgorithm = TrafficClassAlgorithm.ETS
    bandwidth_percentage: Annotated[int, Field(ge=1, le=99)] = 1  # ETS only

    @field_validator("priorities")
    @classmethod
    def _unique(cls, v: list[int]) -> list[int]:
        if len(set(v)) != len(v):
            raise ValueError("a priority is listed twice")
        return sorted(v)


class DcbConfig(Model):
    """DCB (hyperv-networking.md §5.5): the traffic classes besides the default one (which owns the priorities
    and bandwidth no class claims), PFC per priority, DCBX willing, and the adapters it is enabled on.

    With willing = True (Windows' default) the adapter takes its configuration from the peer switch by DCBX and
    the local classes are not applied; there is no DCBX peer here, so set it False to enforce them."""

    traffic_classes: Annotated[list[TrafficClassConfig], Field(max_length=7)] = []
    flow_control_priorities: list[Priority] = []  # Enable-NetQosFlowControl: lossless (PFC) priorities
    willing: bool = True  # Set-NetQosDcbxSetting -Willing
    adapters: list[str] = []  # Enable-NetAdapterQos: uplink/interface names or team names

    @model_validator(mode="after")
    def _classes(self) -> DcbConfig:
        names = [c.name for c in self.traffic_classes]
        if len(set(names)) != len(names) or "[Default]" in names:
            raise ValueError("traffic class names must be unique (and not [Default])")
        seen: dict[int, str] = {}
        for c in self.traffic_classes:
            for p in c.priorities:
                if p in seen:
                    raise ValueError(f"priority {p} is in both {seen[p]!r} and {c.name!r}")
                seen[p] = c.name
        ets = sum(
            c.bandwidth_percentage for c in self.traffic_classes if c.algorithm is TrafficClassAlgorithm.ETS
        )
        if ets > 99:
            raise ValueError(f"ETS classes take {ets} %: at most 99 %, the default class keeps at least 1 %")
        if len(set(self.flow_control_priorities)) != len(self.flow_control_priorities):
            raise ValueError("a flow-control priority is listed twice")
        return self
