"""The daemon's provisioning: OS objects for VMs and host vNICs, i.e. network namespaces and veth pairs, made
idempotently with pyroute2.

A "VM" is a named network namespace (``/run/netns/<name>``); each of its network adapters is a veth pair whose
switch-side end stays in the daemon's namespace and whose other end is ``eth<N>`` inside the VM. A host vNIC
is a veth pair with both ends in the daemon's namespace: one end the switch opens, the other the management
OS uses. Every function converges: calling it again with the same arguments (as the daemon does at each
start-up) leaves things as they are, and with different MAC or addresses it changes just those.

Ownership (issue 11, ``daemon/ownership.py``): ``Kernel`` is these functions with one daemon's mark set on
what they make (alias on the veth ends in the daemon's namespace, on ``lo`` in a VM's namespace) and the
questions start-up's garbage collection asks: which links and namespaces carry our mark, whose is this one.

Netlink is pyroute2's synchronous ``IPRoute`` (``IPRoute(netns=..., flags=0)`` for inside a namespace: pyroute2's
default flag O_CREAT would re-create a namespace deleted meanwhile, and a helper process of a killed daemon
did exactly that after start-up's garbage collection had removed it) and
``pyroute2.netns`` for creating/removing namespaces; a subprocess only for RPS (datapath/rps.py). Offloads are left at the kernel's
defaults (TSO/GSO/GRO on): the switch's devices carry them with virtio-net headers.
"""

from __future__ import annotations

import errno
import ipaddress
import logging
import os

from pyroute2 import IPRoute
from pyroute2 import netns as pr_netns
from pyroute2.netlink.exceptions import NetlinkError

from pyvswitch.daemon.handover import MARK_PREFIX as MIGRATION_MARK_PREFIX
from pyvswitch.daemon.ownership import mark, owner_of
from pyvswitch.datapath.rps import steer_receive
from pyvswitch.errors import DeviceError
from pyvswitch.guest.qemu import create_tap

log = logging.getLogger(__name__)

NETNS_DIR = "/run/netns"

# CPUs on which a new guest NIC's receive processing runs (RPS on its vNIC), set by the daemon's receive
# steering (daemon/steering.py). Empty: the kernel's default, i.e. on whichever CPU delivered the frame.
_guest_rx_cpus: frozenset[int] = frozenset()


def configure_guest_rx(cpus: frozenset[int]) -> None:
    """Steer the receive processing of VM adapters and host vNICs created from now on to ``cpus``
    (why and when: daemon/steering.py)."""
    global _guest_rx_cpus
    _guest_rx_cpus = frozenset(cpus)


def netns_exists(name: str) -> bool:
    return os.path.exists(os.path.join(NETNS_DIR, name))


def ensure_netns(name: str, alias: str | None = None) -> None:
    """Create the namespace unless it exists, and bring its loopback up (with ``alias``, the ownership mark)."""
    if not netns_exists(name):
        try:
            pr_netns.create(name)
        except FileExistsError:
            pass  # created concurrently; fine
        except OSError as exc:
            raise DeviceError(f"cannot create namespace {name!r}: {exc}") from exc
        log.info("created namespace %s", name)
    with IPRoute(netns=name, flags=0) as ipr:
        lo = _index(ipr, "lo")
        ipr.link("set", index=lo, state="up")
        if alias is not None:
            ipr.link("set", index=lo, ifalias=alias)


def delete_netns(name: str) -> None:
    """Remove the namespace and the veths in it; no error if absent.

    The kernel destroys a namespace's devices asynchronously after the last reference goes, so the host-side
    ends of its veths could linger for a moment and block a re-creation under the same names. Deleting the
    veths explicitly first makes removal synchronous.
    """
    if not netns_exists(name):
        return
    try:
        with IPRoute(netns=name, flags=0) as ipr:
            for link in ipr.link("dump"):
                if link.get("ifname") != "lo":
                    _quiet_del(ipr, int(link["index"]))
    except (NetlinkError, OSError) as exc:
        log.warning("cleaning links in namespace %s: %s", name, exc)
    try:
        pr_netns.remove(name)
    except FileNotFoundError:
        pass
    log.info("deleted namespace %s", name)


def link_exists(ifname: str, netns: str | None = None) -> bool:
    """Whether ``ifname`` exists in the daemon's namespace (or in ``netns``)."""
    if netns is not None and not netns_exists(netns):
        return False
    with IPRoute(netns=netns, flags=0) if netns else IPRoute() as ipr:
        return bool(ipr.link_lookup(ifname=ifname))


def link_mac(ifname: str) -> str | None:
    """The MAC address of an interface in the daemon's namespace, or None if it does not exist."""
    with IPRoute() as ipr:
        idx = ipr.link_lookup(ifname=ifname)
        if not idx:
            return None
        addr = ipr.link("get", index=idx[0])[0].get("address")
        return str(addr) if addr else None


def delete_link(ifname: str) -> None:
    """Delete an interface (a veth takes its peer with it); no error if absent."""
    with IPRoute() as ipr:
        for idx in ipr.link_lookup(ifname=ifname):
            _quiet_del(ipr, idx)


def create_vm_nic(
    netns: str,
    host_if: str,
    vm_if: str,
    mac: str,
    ips: list[str],
    alias: str | None = None,
    ns_alias: str | None = None,
) -> None:
    """A VM adapter: veth ``host_if`` (daemon side) <-> ``vm_if`` in ``netns`` with ``mac`` and ``ips``.

    Creates the namespace if needed (marked ``ns_alias``). If the pair exists it is kept and its MAC and
    addresses are set to the given ones; a half-present pair (one end gone, a stray name in the way) is
    replaced. ``alias``: the ownership mark of ``host_if``.
    """
    ensure_netns(netns, ns_alias)
    try:
        with IPRoute() as ipr, IPRoute(netns=netns, flags=0) as vm:
            host_idx = ipr.link_lookup(ifname=host_if)
            vm_idx = vm.link_lookup(ifname=vm_if)
            if not (host_idx and vm_idx and _peers(ipr, host_idx[0], vm, vm_idx[0])):
                for idx in host_idx:
                    _quiet_del(ipr, idx)
                for idx in vm.link_lookup(ifname=vm_if):
                    _quiet_del(vm, idx)
                # Create the peer directly inside the namespace: its name (eth0...) may exist in ours.
                ipr.link("add", ifname=host_if, kind="veth", peer={"ifname": vm_if, "net_ns_fd": netns})
                log.info("created veth %s <-> %s:%s", host_if, netns, vm_if)
            host = _index(ipr, host_if)
            if alias is not None:
                ipr.link("set", index=host, ifalias=alias)
            inner = _index(vm, vm_if)
            vm.link("set", index=inner, address=mac)
            _set_addresses(vm, inner, ips)
            vm.link("set", index=inner, state="up")
            ipr.link("set", index=host, state="up")
    except NetlinkError as exc:
        msg = f"cannot create VM adapter {host_if} <-> {netns}:{vm_if}: {exc}"
        raise DeviceError(msg, interface=host_if) from exc
    if _guest_rx_cpus:
        steer_receive(vm_if, _guest_rx_cpus, netns)


def create_host_vnic(
    host_if: str, switch_if: str, mac: str, ips: list[str], alias: str | None = None
) -> None:
    """A management-OS vNIC: veth ``host_if`` (the host's, with ``mac`` and ``ips``) <-> ``switch_if``; both
    ends get ``alias`` (the ownership mark) if given."""
    try:
        with IPRoute() as ipr:
            host_idx = ipr.link_lookup(ifname=host_if)
            sw_idx = ipr.link_lookup(ifname=switch_if)
            if not (host_idx and sw_idx and _peers(ipr, host_idx[0], ipr, sw_idx[0])):
                for idx in host_idx + sw_idx:
                    _quiet_del(ipr, idx)
                ipr.link("add", ifname=switch_if, kind="veth", peer={"ifname": host_if})
                log.info("created host vNIC %s <-> %s", host_if, switch_if)
            host = _index(ipr, host_if)
            if alias is not None:
                for idx in (host, _index(ipr, switch_if)):
                    ipr.link("set", index=idx, ifalias=alias)
            ipr.link("set", index=host, address=mac)
            _set_addresses(ipr, host, ips)
            ipr.link("set", index=host, state="up")
            ipr.link("set", index=_index(ipr, switch_if), state="up")
    except NetlinkError as exc:
        msg = f"cannot create host vNIC {host_if} <-> {switch_if}: {exc}"
        raise DeviceError(msg, interface=switch_if) from exc
    if _guest_rx_cpus:
        steer_receive(host_if, _guest_rx_cpus)


def link_aliases() -> dict[str, str]:
    """Interface name -> alias, for every link with an alias in the daemon's namespace (one netlink dump)."""
    out: dict[str, str] = {}
    with IPRoute() as ipr:
        for link in ipr.link("dump"):
            alias = link.get("IFLA_IFALIAS")
            if alias:
                out[str(link.get("ifname"))] = str(alias)
    return out


def netns_alias(name: str) -> str | None:
    """The alias of ``lo`` inside namespace ``name`` ("" if none); None if the namespace cannot be entered."""
    if not netns_exists(name):
        return None
    try:
        with IPRoute(netns=name, flags=0) as ipr:
            idx = ipr.link_lookup(ifname="lo")
            if not idx:
                return ""
            return str(ipr.link("get", index=idx[0])[0].get("IFLA_IFALIAS") or "")
    except (NetlinkError, OSError):
        return None  # removed meanwhile, or not a namespace mount


class Kernel:
    """The daemon's provisioner: this module's functions, marking what they make as ``owner``'s, plus what
    start-up's garbage collection asks (``service.provisioning.OwnedObjects``)."""

    def __init__(self, owner: str) -> None:
        self.owner = owner

    def create_vm_nic(self, netns: str, host_if: str, vm_if: str, mac: str, ips: list[str]) -> None:
        create_vm_nic(
            netns, host_if, vm_if, mac, ips, mark(self.owner, "port", host_if), mark(self.owner, "vm", netns)
        )

    def create_host_vnic(self, host_if: str, switch_if: str, mac: str, ips: list[str]) -> None:
        create_host_vnic(host_if, switch_if, mac, ips, mark(self.owner, "port", switch_if))

    def create_guest_tap(self, host_if: str) -> None:
        create_tap(host_if, mark(self.owner, "port", host_if))  # a QEMU guest's adapter (guest/qemu.py)

    def ensure_netns(self, name: str) -> None:
        ensure_netns(name, mark(self.owner, "vm", name))

    def delete_link(self, ifname: str) -> None:
        delete_link(ifname)

    def delete_netns(self, name: str) -> None:
        delete_netns(name)

    def link_exists(self, ifname: str) -> bool:
        return link_exists(ifname)

    def netns_exists(self, name: str) -> bool:
        return netns_exists(name)

    # ---- ownership ----

    def link_owner(self, ifname: str) -> str | None:
        """The owner id a link's mark names: "" for a link without a mark, None for no such link."""
        with IPRoute() as ipr:
            idx = ipr.link_lookup(ifname=ifname)
            if not idx:
                return None
            return owner_of(ipr.link("get", index=idx[0])[0].get("IFLA_IFALIAS")) or ""

    def netns_owner(self, name: str) -> str | None:
        """As ``link_owner``, for a namespace (the mark on its loopback device)."""
        alias = netns_alias(name)
        return None if alias is None else owner_of(alias) or ""

    def owned_links(self) -> set[str]:
        """Links in the daemon's namespace that carry this daemon's mark."""
        return {n for n, a in link_aliases().items() if owner_of(a) == self.owner}

    def owned_namespaces(self) -> set[str]:
        """Namespaces under /run/netns whose loopback carries this daemon's mark (one netlink round trip
        into each, ~10 ms: start-up only)."""
        try:
            names = os.listdir(NETNS_DIR)
        except FileNotFoundError:
            return set()
        return {n for n in names if owner_of(netns_alias(n)) == self.owner}

    def mark_link(self, ifname: str) -> None:
        """Mark a link as ours (a veth a live migration handed to this daemon). A live migration's commit mark
        (daemon/handover.py) is left in place: both hosts read it to settle the migration after a crash, and
        the migration gives the link this mark when it clears its own."""
        with IPRoute() as ipr:
            for idx in ipr.link_lookup(ifname=ifname):
                current = ipr.get_links(idx)[0].get_attr("IFLA_IFALIAS") or ""
                if current.startswith(MIGRATION_MARK_PREFIX):
                    continue
                ipr.link("set", index=idx, ifalias=mark(self.owner, "port", ifname))

    def mark_netns(self, name: str) -> None:
        """Mark a namespace as ours (a VM a live migration handed to this daemon)."""
        if netns_exists(name):
            with IPRoute(netns=name, flags=0) as ipr:
                ipr.link("set", index=_index(ipr, "lo"), ifalias=mark(self.owner, "vm", name))


def _index(ipr: IPRoute, ifname: str) -> int:
    idx = ipr.link_lookup(ifname=ifname)
    if not idx:
        raise DeviceError(f"interface {ifname!r} not found", interface=ifname)
    return int(idx[0])


def _quiet_del(ipr: IPRoute, index: int) -> None:
    try:
        ipr.link("del", index=index)
    except NetlinkError as exc:
        if exc.code != errno.ENODEV:
            raise


def _peers(a: IPRoute, a_idx: int, b: IPRoute, b_idx: int) -> bool:
    """Whether two existing links are the two ends of one veth (each one's IFLA_LINK is the other's index)."""
    la = a.link("get", index=a_idx)[0]
    lb = b.link("get", index=b_idx)[0]
    if la.get_nested("IFLA_LINKINFO", "IFLA_INFO_KIND") != "veth":
        return False
    return bool(la.get("IFLA_LINK") == b_idx and lb.get("IFLA_LINK") == a_idx)


def _set_addresses(ipr: IPRoute, index: int, ips: list[str]) -> None:
    """Make the interface's global addresses exactly ``ips`` (link-local IPv6 is the kernel's; left alone)."""
    wanted = {ipaddress.ip_interface(a) for a in ips}
    have: dict[ipaddress.IPv4Interface | ipaddress.IPv6Interface, tuple[str, int]] = {}
    for msg in ipr.addr("dump", index=index):
        addr = msg.get("address")
        if addr is None:
            continue
        iface = ipaddress.ip_interface(f"{addr}/{msg['prefixlen']}")
        if iface.ip.is_link_local and iface.version == 6:
            continue
        have[iface] = (str(addr), int(msg["prefixlen"]))
    for iface, (addr, plen) in have.items():
        if iface not in wanted:
            ipr.addr("del", index=index, address=addr, prefixlen=plen)
    for iface in wanted - have.keys():
        ipr.addr("add", index=index, address=str(iface.ip), prefixlen=iface.network.prefixlen)
