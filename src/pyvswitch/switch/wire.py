"""What "the wire" means to the switch: one definition for every policy that asks."""

from __future__ import annotations

from pyvswitch.config.schema import PortKind

# "The wire": ports whose far side the switch does not configure (an uplink, a bound NIC, a QEMU guest's TAP).
# Unknown MACs may live behind them, so unknown unicast goes there (SW-07), and what leaves on them is seen as on
# a link, priority tags included (PS-06, QoS PriorityValue8021Action). One definition for every policy that asks.
WIRE_KINDS = frozenset({PortKind.UPLINK, PortKind.INTERFACE, PortKind.TAP})
