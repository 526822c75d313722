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


def mac(ifname: str) -> int:
    """An interface's MAC address as an int (0 if unreadable)."""
    try:
        with open(f"/sys/class/net/{ifname}/address") as f:
            return int(f.read().strip().replace(":", ""), 16)
    except (OSError, ValueError):
        return 0


def carrier(ifname: str) -> bool:
    """Carrier from sysfs. An interface that is down (reading fails with EINVAL) or gone has none."""
    return sysfs_int(ifname, "carrier", 0) == 1


class LinkEvents:
    """Netlink link notifications (RTM_NEWLINK/DELLINK): a team hears at once that a member was set down,
    removed or renamed. Carrier loss itself is read from sysfs by the team's poll, because the kernel's
    linkwatch delays carrier notifications by up to a second (measured here: 2 ms to 1.2 s after the peer
    went down, while sysfs changed within 2-12 ms). ``changed()`` never blocks; any thread may call it.

    pyroute2's IPRSocket is used directly: the IPRoute object of pyroute2 0.9 is bound to the thread
    that made it (its get() hangs in another one), and the forwarding thread is not the one that opens."""

    def __init__(self) -> None:
        import select

        from pyroute2.netlink.rtnl import RTMGRP_LINK
        from pyroute2.netlink.rtnl.iprsocket import IPRSocket

        self._sock = IPRSocket()
        self._sock.bind(groups=RTMGRP_LINK)
        self._poll = select.poll()
        self._poll.register(self._sock.fileno(), select.POLLIN)

    def fileno(self) -> int:
        return int(self._sock.fileno())

    def changed(self) -> set[str]:
        """Names of the links with a notification since the last call (empty, cheaply, if none)."""
        names: set[str] = set()
        while self._poll.poll(0):
            try:
                data = self._sock.recv(1 << 16)
            except OSError:  # ENOBUFS after an overrun: something changed, the poll will tell what
                names.add("")
                continue
            for msg in self._sock.marshal.parse(data):
                name = msg.get_attr("IFLA_IFNAME")
                if name:
                    names.add(str(name))
        return names

    def close(self) -> None:
        self._sock.close()
