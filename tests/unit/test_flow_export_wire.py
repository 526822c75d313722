"""The exporters' wire pieces: collector addresses, IPFIX flow keys and record sizes, sFlow output encodings."""

from __future__ import annotations

import pytest
from scapy.layers.inet import ICMP, IP, TCP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import ARP, Dot1Q, Ether
from scapy.packet import Raw

from pyvswitch.builtin.collectors import parse_collector
from pyvswitch.builtin.sflow import SflowSettings
from pyvswitch.packet import ipfix, sflow


def test_collectors_are_addresses_with_optional_ports() -> None:
    assert parse_collector("10.0.0.9", 6343) == ("10.0.0.9", 6343)
    assert parse_collector("10.0.0.9:9999", 6343) == ("10.0.0.9", 9999)
    assert parse_collector("[2001:db8::9]:4739", 6343) == ("2001:db8::9", 4739)
    assert parse_collector("2001:db8::9", 6343) == ("2001:db8::9", 6343)
    for bad in ("collector.example", "10.0.0.9:0", "10.0.0.9:x", "[2001:db8::9"):
        with pytest.raises(ValueError):
            parse_collector(bad, 6343)
    assert SflowSettings.model_validate({"collectors": "10.0.0.9,10.0.0.10:7000"}).targets() == [
        ("10.0.0.9", 6343),
        ("10.0.0.10", 7000),
    ]


def test_flow_keys_of_tcp_tagged_icmp_ipv6_and_arp() -> None:
    tcp = bytes(
        Ether()
        / Dot1Q(vlan=7)
        / IP(src="1.1.1.1", dst="2.2.2.2", tos=0x20)
        / TCP(sport=1, dport=2, flags="SA")
    )
    parsed = ipfix.flow_key(tcp, 1, 2, 0)
    assert parsed is not None
    key, flags, l2 = parsed
    assert (key.vlan, key.protocol, key.tos, key.src_port, key.dst_port, flags, l2) == (
        7,
        6,
        0x20,
        1,
        2,
        0x12,
        18,
    )
    assert key.template == ipfix.TEMPLATE_V4 and key.src_ip == bytes([1, 1, 1, 1])
    icmp = ipfix.flow_key(bytes(Ether() / IP() / ICMP(type=8, code=0)), 1, 2, 0)
    assert icmp is not None and icmp[0].dst_port == 8 * 256
    v6 = ipfix.flow_key(
        bytes(Ether() / IPv6(src="2001:db8::1", dst="2001:db8::2") / TCP(sport=5, dport=6)), 1, 0, 3
    )
    assert (
        v6 is not None and v6[0].template == ipfix.TEMPLATE_V6 and (v6[0].src_port, v6[0].dst_port) == (5, 6)
    )
    arp = ipfix.flow_key(bytes(Ether() / ARP()), 1, 0, 0)
    assert (
        arp is not None
        and arp[0].template == ipfix.TEMPLATE_L2
        and arp[0].ethertype == 0x0806
        and arp[2] == 0
    )
    assert ipfix.flow_key(b"short", 1, 0, 0) is None
    # A fragment past the first has no ports to read.
    frag = ipfix.flow_key(bytes(Ether() / IP(frag=100, proto=6) / Raw(b"x" * 20)), 1, 0, 0)
    assert frag is not None and (frag[0].src_port, frag[0].dst_port) == (0, 0)


def test_ipfix_records_match_their_templates() -> None:
    for tid, fields in ipfix.FIELDS.items():
        assert ipfix.RECORD_SIZE[tid] == sum(length for _, length in fields)
    tcp = bytes(Ether() / IP(src="1.1.1.1", dst="2.2.2.2") / TCP())
    parsed = ipfix.flow_key(tcp, 1, 2, 0)
    assert parsed is not None
    record = ipfix.FlowRecord(parsed[0], 40, 1, 1000, 2000)
    msg = ipfix.message([record], sequence=7, export_s=3, domain=9)
    assert int.from_bytes(msg[0:2], "big") == 10 and int.from_bytes(msg[2:4], "big") == len(msg)
    assert len(msg) == ipfix.MESSAGE_HEADER + len(ipfix.TEMPLATES) + 4 + ipfix.RECORD_SIZE[ipfix.TEMPLATE_V4]


def test_sflow_output_ports_one_many_or_discarded() -> None:
    assert sflow.output_port([3]) == 3
    assert sflow.output_port([3, 4, 5]) == 0x80000003
    assert sflow.output_port([]) == 0x40000000 | 256
