"""Devices: the OS endpoints of switch ports (AF_PACKET rings, TAP, pcap file, memory for tests)."""

from __future__ import annotations

from pyvswitch.datapath.device import Device, DeviceCounters
from pyvswitch.errors import DeviceError

KINDS = ("afpacket", "tap", "pcap", "vxlan")


def open_device(kind: str, ifname: str) -> Device:
    """Open the device of a port. ``ifname`` names the interface; for "pcap" it is ``replay=PATH,record=PATH``.

    Raises DeviceError naming the interface when it cannot be opened.
    """
    if kind == "afpacket":
        from pyvswitch.datapath.afpacket import AfPacketDevice

        return AfPacketDevice(ifname)
    if kind == "tap":
        from pyvswitch.datapath.tap import TapDevice

        return TapDevice(ifname)
    if kind == "vxlan":
        # ifname: the provider address it listens on, then ",kernel" for the kernel vxlan fast path
        address, _, datapath = ifname.partition(",")
        if datapath == "kernel":
            from pyvswitch.datapath.kernel_vxlan import KernelVxlanTunnel

            return KernelVxlanTunnel("vxlan", address)
        from pyvswitch.datapath.tunnel import VxlanTunnel

        return VxlanTunnel("vxlan", address)
    if kind == "pcap":
        from pyvswitch.datapath.pcapfile import PcapDevice

        opts = dict(part.split("=", 1) for part in ifname.split(",") if "=" in part)
        unknown = set(opts) - {"replay", "record"}
        if unknown or not opts:
            raise DeviceError(f"pcap device spec {ifname!r}: use replay=PATH and/or record=PATH")
        return PcapDevice(ifname, replay=opts.get("replay"), record=opts.get("record"))
    raise DeviceError(f"unknown device kind {kind!r} for interface {ifname!r} (one of {', '.join(KINDS)})")


__all__ = ["KINDS", "Device", "DeviceCounters", "DeviceError", "open_device"]
