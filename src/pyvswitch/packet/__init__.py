"""Frames and their forwarding context: Packet, MAC helpers, 802.1Q and virtio-net header operations."""

from pyvswitch.packet.frame import (
    ETH_P_8021AD,
    ETH_P_8021Q,
    ETH_P_ARP,
    ETH_P_IPV4,
    ETH_P_IPV6,
    UNTAGGED,
    Packet,
)
from pyvswitch.packet.mac import (
    BROADCAST,
    format_mac,
    is_local_admin,
    is_multicast,
    parse_mac,
)

__all__ = [
    "BROADCAST",
    "ETH_P_8021AD",
    "ETH_P_8021Q",
    "ETH_P_ARP",
    "ETH_P_IPV4",
    "ETH_P_IPV6",
    "UNTAGGED",
    "Packet",
    "format_mac",
    "is_local_admin",
    "is_multicast",
    "parse_mac",
]
