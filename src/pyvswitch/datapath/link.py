"""Kernel interface facts and the one link change a device makes (bring it up), via sysfs and pyroute2."""

from __future__ import annotations

IFF_UP = 0x1


def sysfs_int(ifname: str, attr: str, default: int) -> int:
    """An integer attribute of /sys/class/net/IF (decimal or 0x-hex), or ``default`` if unreadable."""
    try:
        with open(f"/sys/class/net/{ifname}/{attr}") as f:
            return int(f.read(), 0)
    except (OSError, ValueError):
        return default


def mtu(ifname: str) -> int:
    return sysfs_int(ifname, "mtu", 1500)


def set_up(ifname: str) -> None:
    """Ports forward only on an interface that is up; idempotent and cheap when it already is."""
    if sysfs_int(ifname, "flags", 0) & IFF_UP:
        return
    from pyroute2 import IPRoute

    with IPRoute() as ipr:
        idx = ipr.link_lookup(ifname=ifname)
        if idx:
            ipr.link("set", index=idx[0], state="up")
