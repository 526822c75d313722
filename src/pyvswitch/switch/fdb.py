"""The MAC table: learned (filtering-id, MAC) -> port entries with aging, a size limit and oldest-first eviction.

Static entries (the MACs configured on VM ports and host vNICs, which the switch knows from management, as
Hyper-V does) live apart: they never age, are never evicted and cannot be moved by learning.

Order of the learned table is the order of last refresh, so the front is always the oldest entry: aging
sweeps from the front and stops at the first live entry, and overflow evicts the front. To keep the
per-packet cost low, an entry is re-stamped (and moved to the back) at most once per ``refresh_s``.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass


@dataclass(slots=True)
class FdbEntry:
    port: int
    seen: float


class MacTable:
    """Learning table of one switch. Keys are (fid, mac) where fid is the learning domain of a VLAN."""

    __slots__ = ("aging_s", "evictions", "learned", "max_entries", "moves", "refresh_s", "static")

    def __init__(self, max_entries: int = 8192, aging_s: float = 300.0, refresh_s: float = 1.0) -> None:
        self.max_entries = max_entries
        self.aging_s = aging_s
        self.refresh_s = min(refresh_s, aging_s / 4)
        self.learned: OrderedDict[tuple[int, int], FdbEntry] = OrderedDict()
        self.static: dict[int, int] = {}  # mac -> port, any VLAN
        self.evictions = 0
        self.moves = 0

    def learn(self, fid: int, mac: int, port: int, now: float) -> None:
        """Record that ``mac`` was seen on ``port`` in learning domain ``fid``."""
        if mac in self.static:
            return
        key = (fid, mac)
        entry = self.learned.get(key)
        if entry is not None:
            if entry.port != port:
                entry.port = port
                self.moves += 1
            elif now - entry.seen < self.refresh_s:
                return
            entry.seen = now
            self.learned.move_to_end(key)
            return
        if len(self.learned) >= self.max_entries:
            self.learned.popitem(last=False)
            self.evictions += 1
        self.learned[key] = FdbEntry(port, now)

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
        while learned:
            key, entry = next(iter(learned.items()))
            if entry.seen > limit:
                break
            del learned[key]
            removed += 1
        return removed

    def flush_port(self, port: int) -> None:
        """Forget everything learned on ``port`` (port removed, disconnected or moved)."""
        for key in [k for k, e in self.learned.items() if e.port == port]:
            del self.learned[key]

    def set_static(self, entries: dict[int, int]) -> None:
        """Replace the static entries (mac -> port); learned copies of those MACs are dropped."""
        self.static = dict(entries)
        for key in [k for k in self.learned if k[1] in self.static]:
            del self.learned[key]
