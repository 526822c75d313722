"""Which kernel objects belong to this pyvswitchd: the ownership mark (issue 11).

A mark is an interface alias (``IFLA_IFALIAS``, what ``ip link set X alias A`` sets and ``ip -d link`` shows):
``pyvswitch:<owner>:<kind>:<name>``. It is set on the switch-side end of a VM adapter's veth and on both ends
of a host vNIC (``kind`` "port", ``name`` the interface), and, since a namespace has no alias of its own, on
the loopback device inside a VM's namespace (``kind`` "vm", ``name`` the namespace).

``owner`` is derived from the resolved state directory: stable across restarts and across a database moved
aside as corrupt, and different for every pyvswitchd on the machine (tests run several at once; lab hosts
each have their own), so one daemon never collects another's objects, nor anything unmarked (other software's).

The kernel does not take an alias when it creates a link, only afterwards, so a crash can leave a link or a
namespace made and not yet marked; the store's intent records (``config.store``, written before creating)
cover that window. TAP devices carry no mark: the engine opens them without ``TUNSETPERSIST``, so the kernel
deletes them when the process dies, however it dies.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

PREFIX = "pyvswitch"


def owner_id(state_dir: str | Path) -> str:
    """This daemon's owner id: 12 hex digits of the SHA-256 of its resolved state directory."""
    return hashlib.sha256(str(Path(state_dir).resolve()).encode()).hexdigest()[:12]


def mark(owner: str, kind: str, name: str) -> str:
    """The alias that says ``owner`` made ``name`` (an interface or a namespace) as a ``kind``."""
    return f"{PREFIX}:{owner}:{kind}:{name}"


def owner_of(alias: str | None) -> str | None:
    """The owner a mark names; None for no alias or an alias that is not a pyvswitch mark."""
    if not alias:
        return None
    parts = alias.split(":", 3)
    if len(parts) != 4 or parts[0] != PREFIX:
        return None
    return parts[1]
