"""Which IP message a frame carries: the L4 header of IPv4/IPv6 frames, DHCP server messages, router messages.

These read raw frame bytes (``bytes``, ``bytearray`` or a ``memoryview`` into a receive ring) and never raise:
a frame too short for the header a question needs simply does not match. Frames inside the switch are
untagged (see ``packet.frame``), but the classifiers also skip 802.1Q/802.1ad tags left in the data (a QinQ
frame keeps its inner tag once the outer one is stripped, and a guarded message must not hide behind it).

- IPv4: the header length comes from IHL, so options are skipped; a non-first fragment has no L4 header and
  is not matched (the first fragment, which carries the ports or the ICMP type, is).
- IPv6: the chain of extension headers (hop-by-hop, routing, destination options, fragment, AH; at most
  ``MAX_IPV6_EXT_HEADERS``) is walked to the upper-layer header, so a router advertisement behind a
  destination-options header is still found (the RA-guard evasion of RFC 7113). A non-first fragment, or a
  chain longer than the limit, is not matched.
"""

from __future__ import annotations

from pyvswitch.packet.frame import ETH_P_8021AD, ETH_P_8021Q, ETH_P_IPV4, ETH_P_IPV6, Buffer

IPPROTO_ICMP = 1
IPPROTO_UDP = 17
IPPROTO_ICMPV6 = 58

DHCPV4_SERVER_PORT = 67
DHCPV6_SERVER_PORT = 547  # servers and relay agents send from 547 (RFC 8415 §7.2)

ICMPV4_REDIRECT = 5
ICMPV4_ROUTER_ADVERTISEMENT = 9
ICMPV6_ROUTER_ADVERTISEMENT = 134
ICMPV6_REDIRECT = 137

MAX_TAGS = 2
MAX_IPV6_EXT_HEADERS = 8
_IPV6_EXT_HEADERS = frozenset({0, 43, 60})  # hop-by-hop, routing, destination options: (len + 1) * 8 bytes
_IPV6_FRAGMENT = 44
_IPV6_AH = 51  # (len + 2) * 4 bytes


def l3_start(data: Buffer) -> tuple[int, int]:
    """(EtherType, offset of the L3 header) after any 802.1Q/802.1ad tags; EtherType -1 if truncated."""
    n = len(data)
    off = 12
    for _ in range(MAX_TAGS + 1):
        if n < off + 2:
            return -1, off
        etype = (data[off] << 8) | data[off + 1]
        if etype != ETH_P_8021Q and etype != ETH_P_8021AD:
            return etype, off + 2
        off += 4
    return -1, off


def ip_header(data: Buffer) -> tuple[int, int] | None:
    """(IP version 4 or 6, offset of the IP header) when ``data`` holds a whole, well-formed IPv4 or IPv6
    header (after any 802.1Q/802.1ad tags); else None."""
    n = len(data)
    if n < 14:
        return None
    etype = (data[12] << 8) | data[13]
    off = 14
    if etype in (ETH_P_8021Q, ETH_P_8021AD):  # untagged frames, the switch's own case, take no call
        etype, off = l3_start(data)
    if etype == ETH_P_IPV4:
        if n < off + 20:
            return None
        b0 = data[off]
        ihl = (b0 & 0x0F) * 4
        if b0 >> 4 != 4 or ihl < 20 or n < off + ihl:
            return None
        return 4, off
    if etype == ETH_P_IPV6:
        if n < off + 40 or data[off] >> 4 != 6:
            return None
        return 6, off
    return None


def l4_header(data: Buffer) -> tuple[int, int, int] | None:
    """(IP version 4 or 6, upper-layer protocol, offset of its header) or None.

    None for frames that are not IP, whose IP header is truncated or malformed, or that are non-first
    fragments. The offset may equal ``len(data)``: callers check the bytes they read.
    """
    ip = ip_header(data)
    if ip is None:
        return None
    version, off = ip
    n = len(data)
    if version == 4:
        if (data[off + 6] & 0x1F) or data[off + 7]:  # fragment offset != 0: no L4 header here
            return None
        return 4, data[off + 9], off + (data[off] & 0x0F) * 4
    nh = data[off + 6]
    p = off + 40
    for _ in range(MAX_IPV6_EXT_HEADERS + 1):  # the headers, then the upper layer
        if nh in _IPV6_EXT_HEADERS:
            if n < p + 8:
                return None
            nh, p = data[p], p + (data[p + 1] + 1) * 8
        elif nh == _IPV6_FRAGMENT:
            if n < p + 8 or ((data[p + 2] << 8) | data[p + 3]) & 0xFFF8:
                return None
            nh, p = data[p], p + 8
        elif nh == _IPV6_AH:
            if n < p + 8:
                return None
            nh, p = data[p], p + (data[p + 1] + 2) * 4
        else:
            return 6, nh, p
    return None


def is_dhcp_server_message(data: Buffer) -> bool:
    """A DHCP server message: UDP from port 67 over IPv4, or from port 547 (DHCPv6) over IPv6.

    Matching the source port, not the BOOTP op code, also stops a relay agent (it sends from the server
    port too); a VM that relays DHCP needs the guard off, as in Hyper-V.
    """
    l4 = l4_header(data)
    if l4 is None:
        return False
    version, proto, p = l4
    if proto != IPPROTO_UDP or len(data) < p + 2:
        return False
    sport = (data[p] << 8) | data[p + 1]
    return sport == (DHCPV4_SERVER_PORT if version == 4 else DHCPV6_SERVER_PORT)


def is_router_message(data: Buffer) -> bool:
    """ICMPv4 redirect (5) or router advertisement (9); ICMPv6 router advertisement (134) or redirect (137)."""
    l4 = l4_header(data)
    if l4 is None:
        return False
    version, proto, p = l4
    if len(data) < p + 1:
        return False
    if version == 4:
        return proto == IPPROTO_ICMP and data[p] in (ICMPV4_REDIRECT, ICMPV4_ROUTER_ADVERTISEMENT)
    return proto == IPPROTO_ICMPV6 and data[p] in (ICMPV6_ROUTER_ADVERTISEMENT, ICMPV6_REDIRECT)
