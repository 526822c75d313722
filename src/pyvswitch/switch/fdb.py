"""The MAC table: learned (filtering-id, MAC) -> port entries with aging, a size limit and oldest-first eviction.

Static entries (the MACs configured on VM ports and host vNICs, which the switch knows from management, as
Hyper-V does) live apart: they never age, are never evicted and cannot be moved by learning.

Order of the learned table is the order of last refresh, so the front is always the oldest entry: aging
sweeps from the front and stops at the first live entry, and overflow evicts the front. To keep the
per-packet cost low, an entry is re-stamped (and moved to the back) at most once per ``refresh_s``.

A port may have a limit on the MACs learned on it (``PortConfig.mac_limit``; vSphere's MAC learning limit,
OVS-style bounded learning; Hyper-V documents only DynamicIPAddressLimit). At its limit a new source from
that port, or a MAC moving to it, is not learned, and each refused attempt is counted in ``not_learned``
(ingress tries to learn once per run of frames from one source). The frame itself is still forwarded: the
limit protects the table, it is not a filter (a port that must not use other MACs has MAC spoofing off).
Without it, one port sending from 10,000 made-up MACs would evict every other port's learned entries once
the table is full. Entries already learned are kept when a limit is lowered; they age out as usual.
"""

from __future__ import annotations

from collections import Counter, OrderedDict
from dataclasses import dataclass


@dataclass(slots=True)
class FdbEntry:
    port: int
    seen: float


class MacTable:
    """Learning table of one switch. Keys are (fid, mac) where fid is the learning domain of a VLAN."""

    __slots__ = (
        "aging_s",
        "evictions",
        "generation",
        "learned",
        "max_entries",
        "moves",
        "not_learned",
        "per_port",
        "port_limits",
        "refresh_s",
        "static",
    )

    def __init__(self, max_entries: int = 8192, aging_s: float = 300.0, refresh_s: float = 1.0) -> None:
        self.max_entries = max_entries
        self.aging_s = aging_s
        self.refresh_s = min(refresh_s, aging_s / 4)
        self.learned: OrderedDict[tuple[int, int], FdbEntry] = OrderedDict()
        self.static: dict[int, int] = {}  # mac -> port, any VLAN
        self.evictions = 0
        self.moves = 0
        self.port_limits: dict[int, int] = {}  # port -> most learned entries it may have
        self.per_port: Counter[int] = Counter()  # port -> learned entries on it (kept for every port)
        self.not_learned: Counter[int] = Counter()  # port -> sources not learned because of its limit
        # Bumped by every change of what a lookup answers (an entry added, moved or removed; not a refresh):
        # the flow caches (switch/flowcache.py) forget their decisions when it moves.
        self.generation = 0

    def learn(self, fid: int, mac: int, port: int, now: float) -> None:
        """Record that ``mac`` was seen on ``port`` in learning domain ``fid`` (unless the port is at its
        MAC limit: then nothing changes but ``not_learned``)."""
        if mac in self.static:
            return
        key = (fid, mac)
        entry = self.learned.get(key)
        if entry is not None:
            if entry.port != port:
                if self.port_limits and self._at_limit(port):
                    return
                self.per_port[entry.port] -= 1
                self.per_port[port] += 1
                entry.port = port
                self.moves += 1
                self.generation += 1
            elif now - entry.seen < self.refresh_s:
                return
            entry.seen = now
            self.learned.move_to_end(key)
            return
        if self.port_limits and self._at_limit(port):
            return
        if len(self.learned) >= self.max_entries:
            _, old = self.learned.popitem(last=False)
            self.per_port[old.port] -= 1
            self.evictions += 1
        self.learned[key] = FdbEntry(port, now)
        self.per_port[port] += 1
        self.generation += 1

    def _at_limit(self, port: int) -> bool:
        limit = self.port_limits.get(port)
        if limit is None or self.per_port[port] < limit:
            return False
        self.not_learned[port] += 1
        return True

    def set_port_limits(self, limits: dict[int, int]) -> None:
        """Replace the per-port MAC limits (port -> most learned entries); ports not named have none."""
        self.port_limits = dict(limits)

    def lookup(self, fid: int, mac: int) -> int | None:
        """The port for ``mac``, or None if unknown. Aged entries are removed by ``age``, not here."""
        entry = self.learned.get((fid, mac))
        if entry is not None:
            return entry.port
        return self.static.get(mac)

    def age(self, now: float) -> int:
        """Remove entries not seen for ``aging_s``; returns how many."""
        removed = 0
        limit = now - self.aging_s
        learned = self.learned
        per_port = self.per_port
        while learned:
            key, entry = next(iter(learned.items()))
            if entry.seen > limit:
                break
            del learned[key]
            per_port[entry.port] -= 1
            removed += 1
        if removed:
            self.generation += 1
        return removed

    def flush_port(self, port: int) -> None:
        """Forget everything learned on ``port`` (port removed, disconnected or moved)."""
        for key in [k for k, e in self.learned.items() if e.port == port]:
            del self.learned[key]
        self.per_port.pop(port, None)
        self.not_learned.pop(port, None)
        self.generation += 1

    def set_static(self, entries: dict[int, int]) -> None:
        """Replace the static entries (mac -> port); learned copies of those MACs are dropped."""
        self.static = dict(entries)
        for key in [k for k in self.learned if k[1] in self.static]:
            self.per_port[self.learned.pop(key).port] -= 1
        self.generation += 1
