"""Bandwidth QoS: a switch's QoS status and the host's QoS policies (hyperv-networking.md §5).

A switch's minimum-bandwidth mode (Weight or Absolute, fixed at creation) and its ports' reservations and limits
are switch and port settings (``switches.py``, ``ports.py``); this module shows what they add up to
(``qos_status``, QS-06) and keeps the host's QoS policies (New-/Set-/Remove-NetQosPolicy, QS-07/QS-08). DCB and
traffic classes are ``dcb.py``'s.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pyvswitch.config.schema import HostConfig, MinimumBandwidthMode, QosPolicyConfig
from pyvswitch.config.validate import default_flow_reservation, effective_mode, switch_capacity
from pyvswitch.daemon.service import switches
from pyvswitch.daemon.service.commit import Change, Transaction, changed
from pyvswitch.daemon.service.errors import build
from pyvswitch.daemon.service.named import appended, find, replaced
from pyvswitch.errors import ConfigError


def configured_qos(cfg: HostConfig, switch: str) -> dict[str, object]:
    """The QoS status of ``switch`` as its configuration alone determines it: the shape of the engine's
    ``qos_status`` with zero counters. BandwidthPercentage (QS-06): Weight mode, a port's weight over the sum of
    the weights plus the default flow's; Absolute mode, its reservation over the capacity; 0 otherwise (a port in
    the default flow shares the default flow's percentage)."""
    sw = next(s for s in cfg.switches if s.name == switch)
    mode = effective_mode(sw)
    capacity = switch_capacity(cfg, sw)
    ports = [p for p in cfg.ports if p.switch == switch]
    reservation = 0
    default_pct = 0.0
    pct: dict[str, float] = {}
    if mode is MinimumBandwidthMode.WEIGHT:
        total = sum(p.minimum_bandwidth_weight for p in ports) + sw.default_flow_minimum_bandwidth_weight
        for p in ports:
            pct[p.name] = 100.0 * p.minimum_bandwidth_weight / total if total else 0.0
        default_pct = 100.0 * sw.default_flow_minimum_bandwidth_weight / total if total else 0.0
    elif mode is MinimumBandwidthMode.ABSOLUTE:
        default = default_flow_reservation(sw, capacity)
        reservation = default + sum(p.minimum_bandwidth_absolute for p in ports)
        for p in ports:
            pct[p.name] = 100.0 * p.minimum_bandwidth_absolute / capacity if capacity else 0.0
        default_pct = 100.0 * default / capacity if capacity else 0.0
    dcb = cfg.dcb
    adapter_on = sw.net_adapter is not None and sw.net_adapter in dcb.adapters
    return {
        "switch": switch,
        "mode": mode.value,
        "capacity": capacity,
        "reservation": reservation,
        "default_flow": {
            "weight": sw.default_flow_minimum_bandwidth_weight,
            "absolute": default_flow_reservation(sw, capacity)
            if mode is MinimumBandwidthMode.ABSOLUTE
            else 0,
            "bandwidth_percentage": round(default_pct, 2),
        },
        "ports": {
            p.name: {
                "sent_bytes": 0,
                "drops": 0,
                "rate_bps": 0,
                "bandwidth_percentage": round(pct.get(p.name, 0.0), 2),
                "maximum_bandwidth": p.maximum_bandwidth,
                "minimum_bandwidth_weight": p.minimum_bandwidth_weight,
                "minimum_bandwidth_absolute": p.minimum_bandwidth_absolute,
            }
            for p in ports
        },
        "classes": [],
        # DCB applies local classes only where enabled, and only when not willing to take the peer's (QS-10).
        "dcb": {"enabled": adapter_on, "operational": adapter_on and not dcb.willing},
    }


def get_policy(cfg: HostConfig, name: str) -> QosPolicyConfig:
    return find(cfg.qos_policies, name, "QoS policy")


def add_policy(cfg: HostConfig, policy: QosPolicyConfig) -> Change:
    """New-NetQosPolicy."""
    return appended(cfg, "qos_policies", policy, "QoS policy")


def update_policy(cfg: HostConfig, name: str, changes: Mapping[str, Any]) -> Change:
    """Set-NetQosPolicy: only the given fields change (null clears a condition or an action)."""
    old = get_policy(cfg, name)
    if changes.get("name", name) != name:
        raise ConfigError([("name", "a QoS policy cannot be renamed")])
    new = build(QosPolicyConfig, {**old.model_dump(), **changes})
    return replaced(cfg, "qos_policies", new, f"set QoS policy {name}: {changed(changes)}")


def delete_policy(cfg: HostConfig, name: str) -> Change:
    """Remove-NetQosPolicy."""
    get_policy(cfg, name)
    policies = [q for q in cfg.qos_policies if q.name != name]
    return Change(cfg.model_copy(update={"qos_policies": policies}), f"remove QoS policy {name}")


class QosOps(Transaction):
    """The service's QoS status and QoS policy requests."""

    def qos_status(self, switch: str) -> dict[str, object]:
        """QS-06: the engine's QoS status of ``switch`` (capacity, reservation, default flow, per port and per
        class: bytes, drops, rate, BandwidthPercentage). An engine without QoS status gets what the
        configuration alone says (no counters), marked ``"running": false``."""
        switches.get(self._cfg, switch)
        status_of = getattr(self._engine, "qos_status", None)
        live = status_of(switch) if callable(status_of) else None
        if isinstance(live, dict):
            return {**live, "running": True}
        return {**configured_qos(self._cfg, switch), "running": False}

    def qos_policies(self) -> list[QosPolicyConfig]:
        return list(self._cfg.qos_policies)

    def qos_policy(self, name: str) -> QosPolicyConfig:
        return get_policy(self._cfg, name)

    def add_qos_policy(self, policy: QosPolicyConfig) -> QosPolicyConfig:
        """New-NetQosPolicy."""
        with self._lock:
            self._commit(add_policy(self._cfg, policy))
            return self.qos_policy(policy.name)

    def update_qos_policy(self, name: str, changes: Mapping[str, Any]) -> QosPolicyConfig:
        """Set-NetQosPolicy: only the given fields change (null clears a condition or an action)."""
        with self._lock:
            self._commit(update_policy(self._cfg, name, changes))
            return self.qos_policy(name)

    def delete_qos_policy(self, name: str) -> None:
        """Remove-NetQosPolicy."""
        with self._lock:
            self._commit(delete_policy(self._cfg, name))
