"""The cluster scene's reading of a provider-network capture (lab/demo_cluster.py ``datagrams``), on real output of
``tcpdump -i any -nn -e -l udp port 4789`` in a cluster lab's pnet namespace (tcpdump 4.99): each datagram shows
twice there (``P`` on the sender's bridge port, ``Out`` on the receiver's), its inner frame on the next line."""

from __future__ import annotations

from pyvswitch.lab.demo_cluster import datagrams

CAPTURE = """\
07:21:59.179193 p-hostA P   ifindex 3 26:22:97:f5:82:8e ethertype IPv4 (0x0800), length 154: 10.91.0.1.4789 > 10.91.0.2.4789: VXLAN, flags [I] (0x08), vni 5001
02:15:5d:d2:73:00 > 02:15:5d:d2:74:00, ethertype IPv4 (0x0800), length 98: 10.50.0.1 > 10.50.0.2: ICMP echo request, id 12164, seq 1, length 64
07:21:59.179211 p-hostB Out ifindex 4 26:22:97:f5:82:8e ethertype IPv4 (0x0800), length 154: 10.91.0.1.4789 > 10.91.0.2.4789: VXLAN, flags [I] (0x08), vni 5001
02:15:5d:d2:73:00 > 02:15:5d:d2:74:00, ethertype IPv4 (0x0800), length 98: 10.50.0.1 > 10.50.0.2: ICMP echo request, id 12164, seq 1, length 64
07:21:59.179761 p-hostB P   ifindex 4 26:6c:61:ca:eb:2b ethertype IPv4 (0x0800), length 154: 10.91.0.2.4789 > 10.91.0.1.4789: VXLAN, flags [I] (0x08), vni 5001
02:15:5d:d2:74:00 > 02:15:5d:d2:73:00, ethertype IPv4 (0x0800), length 98: 10.50.0.2 > 10.50.0.1: ICMP echo reply, id 12164, seq 1, length 64
07:21:59.179770 p-hostA Out ifindex 3 26:6c:61:ca:eb:2b ethertype IPv4 (0x0800), length 154: 10.91.0.2.4789 > 10.91.0.1.4789: VXLAN, flags [I] (0x08), vni 5001
02:15:5d:d2:74:00 > 02:15:5d:d2:73:00, ethertype IPv4 (0x0800), length 98: 10.50.0.2 > 10.50.0.1: ICMP echo reply, id 12164, seq 1, length 64
"""


def test_each_datagram_counts_once_with_its_source_and_destination() -> None:
    assert datagrams(CAPTURE.splitlines()) == [
        (0.0, "10.91.0.1", "10.91.0.2"),
        (0.0, "10.91.0.2", "10.91.0.1"),
    ]


def test_a_stamped_capture_gives_each_datagram_its_time() -> None:
    lines = [f"{1000.5 + i:.6f} {ln}" for i, ln in enumerate(CAPTURE.splitlines())]
    assert datagrams(lines) == [(1002.5, "10.91.0.1", "10.91.0.2"), (1006.5, "10.91.0.2", "10.91.0.1")]


def test_a_kernel_vxlan_source_port_is_not_the_vxlan_port() -> None:
    """The kernel's vxlan driver sends from a hashed source port; only the destination port is 4789."""
    line = (
        "07:22:00.1 p-hostC Out ifindex 5 26:22:97:f5:82:8e ethertype IPv4 (0x0800), length 154: "
        "10.91.0.1.51234 > 10.91.0.3.4789: VXLAN, flags [I] (0x08), vni 6001"
    )
    assert datagrams([line]) == [(0.0, "10.91.0.1", "10.91.0.3")]
