"""Host QoS policy classification (New-NetQosPolicy, hyperv-networking.md §5.4): templates, conditions, precedence,
the flow cache, and a property test against a naive reference that reads the rules straight off the frame."""

from __future__ import annotations

import ipaddress
import struct
from collections.abc import Sequence
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from pyvswitch.config.schema import IpProtocolMatch, QosPolicyConfig, QosTemplate
from pyvswitch.packet.frame import ETH_P_ARP, ETH_P_IPV4, ETH_P_IPV6
from pyvswitch.switch.qos_policy import ETH_P_FCOE, PolicyClassifier
from pyvswitch.testing.frames import eth, icmp, ipv4, ipv6, udp

HOST = "02:00:00:00:00:01"
PEER = "02:00:00:00:00:02"
TCP, UDP, ICMP, ICMPV6, SCTP = 6, 17, 1, 58, 132
EPHEMERAL = 50000


def tcp(sport: int, dport: int, payload: bytes = b"") -> bytes:
    return struct.pack(">HHIIBBHHH", sport, dport, 1, 0, 5 << 4, 0x18, 65535, 0, 0) + payload


def l4(proto: int, sport: int, dport: int) -> bytes:
    if proto == TCP:
        return tcp(sport, dport)
    if proto == UDP:
        return udp(sport, dport)
    if proto == SCTP:
        return struct.pack(">HHII", sport, dport, 0, 0)
    return icmp(8)


def f4(
    proto: int,
    sport: int = EPHEMERAL,
    dport: int = 80,
    src: str = "10.0.0.1",
    dst: str = "10.0.0.2",
    **kw: Any,
) -> bytes:
    return eth(PEER, HOST, ipv4(src, dst, proto, l4(proto, sport, dport), **kw))


def f6(
    proto: int, sport: int = EPHEMERAL, dport: int = 80, src: str = "fd00::1", dst: str = "fd00::2"
) -> bytes:
    return eth(PEER, HOST, ipv6(src, dst, proto, l4(proto, sport, dport)), ethertype=ETH_P_IPV6)


def pol(name: str = "p", **kw: Any) -> QosPolicyConfig:
    kw.setdefault("dscp", 10)
    return QosPolicyConfig(name=name, **kw)


def winner(policies: Sequence[QosPolicyConfig], frame: bytes | bytearray | memoryview) -> str | None:
    got = PolicyClassifier(policies).match(frame)
    return None if got is None else got.name


# -- templates ------------------------------------------------------------------------------------------------

TEMPLATES = [
    (QosTemplate.SMB, {TCP}, 445),
    (QosTemplate.ISCSI, {TCP}, 3260),
    (QosTemplate.NFS, {TCP, UDP}, 2049),
    (QosTemplate.LIVE_MIGRATION, {TCP}, 6600),
    (QosTemplate.CLUSTER, {TCP, UDP}, 3343),
]


@pytest.mark.parametrize(("template", "protos", "port"), TEMPLATES)
def test_port_templates_match_server_port_in_either_direction(
    template: QosTemplate, protos: set[int], port: int
) -> None:
    c = PolicyClassifier([pol(template.value, template=template)])
    for proto in (TCP, UDP):
        expected = template.value if proto in protos else None
        for frame in (
            f4(proto, EPHEMERAL, port),
            f4(proto, port, EPHEMERAL),
            f6(proto, EPHEMERAL, port),
            f6(proto, port, EPHEMERAL),
        ):
            got = c.match(frame)
            assert (got.name if got else None) == expected, (proto, frame.hex())
    for frame in (
        f4(TCP, EPHEMERAL, port + 1),
        f4(UDP, port - 1, 80),
        f4(ICMP),
        f6(ICMPV6),
        f4(SCTP, EPHEMERAL, port),
    ):
        assert c.match(frame) is None
    assert c.match(eth(PEER, HOST, bytes(46), ethertype=ETH_P_ARP)) is None


def test_fcoe_template_matches_the_ethertype_only() -> None:
    c = PolicyClassifier([pol("fcoe", template=QosTemplate.FCOE)])
    assert winner(c.policies, eth(PEER, HOST, bytes(46), ethertype=ETH_P_FCOE)) == "fcoe"
    assert c.match(eth(PEER, HOST, bytes(46), ethertype=ETH_P_FCOE)) is not None
    assert c.match(eth(PEER, HOST, bytes(46), ethertype=0x8914)) is None  # FIP is not FCoE data
    assert c.match(f4(TCP)) is None


def test_default_takes_what_nothing_else_matches_whatever_its_precedence() -> None:
    policies = [
        pol("default", template=QosTemplate.DEFAULT, precedence=255),
        pol("smb", template=QosTemplate.SMB, precedence=0),
    ]
    assert winner(policies, f4(TCP, EPHEMERAL, 445)) == "smb"
    assert winner(policies, f4(TCP, EPHEMERAL, 80)) == "default"
    assert winner(policies, eth(PEER, HOST, bytes(46), ethertype=ETH_P_ARP)) == "default"
    assert winner(policies, b"") == "default"
    assert winner([pol("d", template=QosTemplate.DEFAULT)], f6(UDP)) == "d"


def test_several_defaults_precedence_then_first() -> None:
    d1 = pol("d1", template=QosTemplate.DEFAULT, precedence=10)
    d2 = pol("d2", template=QosTemplate.DEFAULT, precedence=20)
    d3 = pol("d3", template=QosTemplate.DEFAULT, precedence=20)
    assert winner([d1, d2, d3], f4(TCP)) == "d2"
    assert winner([d1, d3, d2], f4(TCP)) == "d3"


def test_no_policies_match_nothing() -> None:
    assert winner([], f4(TCP, EPHEMERAL, 445)) is None


# -- conditions -----------------------------------------------------------------------------------------------


def test_prefixes_match_by_version_and_bits() -> None:
    src = [pol("src", ip_src_prefix="10.1.0.0/16")]
    assert winner(src, f4(UDP, src="10.1.200.3")) == "src"
    assert winner(src, f4(UDP, src="10.2.0.1")) is None
    assert winner(src, f4(UDP, src="10.0.0.1", dst="10.1.0.1")) is None  # source only
    assert winner(src, f6(UDP)) is None  # an IPv4 prefix never matches IPv6
    assert winner(src, f4(ICMP, src="10.1.0.9")) == "src"  # prefix-only with Both: any IP protocol
    dst6 = [pol("dst6", ip_dst_prefix="fd00:0:0:1::/64")]
    assert winner(dst6, f6(ICMPV6, dst="fd00:0:0:1::99")) == "dst6"
    assert winner(dst6, f6(ICMPV6, dst="fd00:0:0:2::99")) is None
    assert winner(dst6, f4(UDP)) is None
    host = [pol("host", ip_dst_prefix="10.0.0.2/32")]
    assert winner(host, f4(TCP, dst="10.0.0.2")) == "host"
    assert winner(host, f4(TCP, dst="10.0.0.3")) is None
    everything = [pol("all", ip_src_prefix="0.0.0.0/0")]
    assert winner(everything, f4(ICMP)) == "all"
    assert winner(everything, f6(ICMPV6)) is None
    assert winner(everything, eth(PEER, HOST, bytes(46), ethertype=ETH_P_ARP)) is None


def test_single_ports_and_either_port() -> None:
    sp = [pol("sp", ip_src_port=5000)]
    dp = [pol("dp", ip_dst_port=5000)]
    either = [pol("either", ip_port=5000)]
    to, from_ = f4(TCP, EPHEMERAL, 5000), f4(UDP, 5000, EPHEMERAL)
    assert (winner(sp, to), winner(sp, from_)) == (None, "sp")
    assert (winner(dp, to), winner(dp, from_)) == ("dp", None)
    assert (winner(either, to), winner(either, from_)) == ("either", "either")
    assert winner(either, f6(UDP, 5000, 1)) == "either"
    for p in (sp, dp, either):
        assert winner(p, f4(SCTP, 5000, 5000)) is None  # ports are TCP and UDP ports
        assert winner(p, f4(ICMP)) is None


def test_port_ranges_are_inclusive() -> None:
    d = [pol("d", ip_dst_port_start=1000, ip_dst_port_end=2000)]
    s = [pol("s", ip_src_port_start=1000, ip_src_port_end=1000)]
    for port, inside in ((999, False), (1000, True), (1500, True), (2000, True), (2001, False)):
        assert (winner(d, f4(TCP, EPHEMERAL, port)) == "d") is inside
        assert winner(d, f4(TCP, port, EPHEMERAL)) is None
    assert winner(s, f4(UDP, 1000, 1)) == "s"
    assert winner(s, f4(UDP, 1001, 1)) is None


def test_ip_protocol() -> None:
    t = [pol("t", ip_protocol=IpProtocolMatch.TCP)]
    u = [pol("u", ip_protocol=IpProtocolMatch.UDP, ip_port=53)]
    b = [pol("b", ip_protocol=IpProtocolMatch.BOTH, ip_port=53)]
    assert (winner(t, f4(TCP)), winner(t, f4(UDP)), winner(t, f6(TCP)), winner(t, f4(ICMP))) == (
        "t",
        None,
        "t",
        None,
    )
    assert (winner(u, f4(UDP, EPHEMERAL, 53)), winner(u, f4(TCP, EPHEMERAL, 53))) == ("u", None)
    assert (winner(b, f4(UDP, EPHEMERAL, 53)), winner(b, f4(TCP, 53, EPHEMERAL))) == ("b", "b")
    assert winner(b, f4(SCTP, 53, 53)) is None
    tcp_prefix = [pol("tp", ip_protocol=IpProtocolMatch.TCP, ip_dst_prefix="10.0.0.0/8")]
    assert winner(tcp_prefix, f4(TCP)) == "tp"
    assert winner(tcp_prefix, f4(UDP)) is None


def test_conditions_combine_with_and() -> None:
    p = [
        pol(
            "all",
            ip_protocol=IpProtocolMatch.TCP,
            ip_src_prefix="10.0.0.0/24",
            ip_dst_prefix="10.0.1.0/24",
            ip_src_port_start=40000,
            ip_src_port_end=60000,
            ip_dst_port=443,
        )
    ]
    good = {"proto": TCP, "sport": 50000, "dport": 443, "src": "10.0.0.5", "dst": "10.0.1.5"}
    assert winner(p, f4(**good)) == "all"  # type: ignore[arg-type]
    for field, bad in (
        ("proto", UDP),
        ("sport", 1000),
        ("dport", 444),
        ("src", "10.0.9.5"),
        ("dst", "10.0.0.5"),
    ):
        assert winner(p, f4(**{**good, field: bad})) is None, field  # type: ignore[arg-type]


# -- precedence -----------------------------------------------------------------------------------------------


def test_highest_precedence_wins_whatever_the_order() -> None:
    a = pol("a", template=QosTemplate.SMB, precedence=100)
    b = pol("b", ip_dst_prefix="10.0.0.0/8", precedence=200)
    frame = f4(TCP, EPHEMERAL, 445)
    assert winner([a, b], frame) == "b"
    assert winner([b, a], frame) == "b"


def test_equal_precedence_more_conditions_win() -> None:
    one = pol("one", ip_dst_port=445)
    two = pol("two", ip_dst_port=445, ip_protocol=IpProtocolMatch.TCP)
    smb = pol("smb", template=QosTemplate.SMB)  # counts 2: TCP and port
    nfs = pol("nfs", template=QosTemplate.NFS)  # counts 1
    assert winner([one, two], f4(TCP, EPHEMERAL, 445)) == "two"
    assert winner([smb, one], f4(TCP, EPHEMERAL, 445)) == "smb"
    assert winner([smb, two], f4(TCP, EPHEMERAL, 445)) == "smb"  # tie: first defined
    assert winner([two, smb], f4(TCP, EPHEMERAL, 445)) == "two"
    nfs_plus = pol("nfs+", ip_port=2049, ip_dst_prefix="10.0.0.0/8")
    assert winner([nfs, nfs_plus], f4(UDP, EPHEMERAL, 2049)) == "nfs+"


def test_equal_precedence_and_conditions_longer_prefix_wins_then_first() -> None:
    short = pol("short", ip_dst_prefix="10.0.0.0/8")
    long_ = pol("long", ip_dst_prefix="10.0.0.0/24")
    same = pol("same", ip_dst_prefix="10.0.0.0/24")
    assert winner([short, long_], f4(UDP)) == "long"
    assert winner([long_, same], f4(UDP)) == "long"
    assert winner([same, long_], f4(UDP)) == "same"


# -- frames that are odd --------------------------------------------------------------------------------------


def test_non_first_fragment_matches_only_prefix_policies() -> None:
    policies = [pol("port", ip_port=445, precedence=200), pol("prefix", ip_dst_prefix="10.0.0.0/8")]
    frag = eth(PEER, HOST, ipv4("10.0.0.1", "10.0.0.2", TCP, bytes(40), frag_offset=1480))
    assert winner(policies, frag) == "prefix"
    assert winner([pol("t", ip_protocol=IpProtocolMatch.TCP)], frag) is None


def test_ipv4_options_and_ipv6_extension_headers() -> None:
    smb = [pol("smb", template=QosTemplate.SMB)]
    assert (
        winner(smb, eth(PEER, HOST, ipv4("10.0.0.1", "10.0.0.2", TCP, tcp(1, 445), options=bytes(8))))
        == "smb"
    )
    hop_by_hop = struct.pack(">BB6x", TCP, 0)
    assert (
        winner(
            smb,
            eth(PEER, HOST, ipv6("fd00::1", "fd00::2", 0, hop_by_hop + tcp(1, 445)), ethertype=ETH_P_IPV6),
        )
        == "smb"
    )


def test_inline_tag_is_skipped() -> None:
    frame = eth(PEER, HOST, ipv4("10.0.0.1", "10.0.0.2", TCP, tcp(1, 445)), vlan=10)
    assert winner([pol("smb", template=QosTemplate.SMB)], frame) == "smb"


@pytest.mark.parametrize("cut", [0, 5, 13, 14, 20, 33, 34, 35, 37])
def test_truncated_frames_never_raise(cut: int) -> None:
    policies = [
        pol("smb", template=QosTemplate.SMB),
        pol("pfx", ip_src_prefix="10.0.0.0/8"),
        pol("d", template=QosTemplate.DEFAULT),
    ]
    frame = f4(TCP, 1, 445)[:cut]
    got = winner(policies, frame)
    assert got in ("smb", "pfx", "d")
    if cut < 14 + 20:
        assert got == "d"
    if cut < 14 + 20 + 4:
        assert got != "smb"


def test_buffer_types() -> None:
    smb = [pol("smb", template=QosTemplate.SMB)]
    frame = f4(TCP, 445, 1)
    assert winner(smb, bytearray(frame)) == winner(smb, memoryview(frame)) == "smb"
    ring = bytearray(b"\xee" * 10 + frame)
    assert winner(smb, memoryview(ring)[10:]) == "smb"


# -- the cache ------------------------------------------------------------------------------------------------


def test_cache_is_bounded_and_results_stay_right() -> None:
    c = PolicyClassifier(
        [pol("smb", template=QosTemplate.SMB), pol("pfx", ip_src_prefix="10.0.0.0/24")], cache_size=4
    )
    for i in range(50):
        for _ in range(2):
            got = c.match(f4(TCP, EPHEMERAL + i, 445 if i % 3 == 0 else 80, src=f"10.0.{i % 2}.1"))
            expected = "smb" if i % 3 == 0 else ("pfx" if i % 2 == 0 else None)
            assert (got.name if got else None) == expected
        assert c.cache_len <= 4
    c.clear_cache()
    assert c.cache_len == 0
    with pytest.raises(ValueError):
        PolicyClassifier([], cache_size=0)


def test_key_leaves_out_what_no_policy_tests() -> None:
    c = PolicyClassifier([pol("smb", template=QosTemplate.SMB)])
    for i in range(100):
        c.match(f4(TCP, EPHEMERAL, 445, src=f"10.0.0.{i}"))
    assert c.cache_len == 1  # no prefix: the addresses are not in the key
    p = PolicyClassifier([pol("pfx", ip_src_prefix="10.0.0.0/24")])
    for i in range(100):
        p.match(f4(TCP, i, 445))
    assert p.cache_len == 1  # no ports or protocol: not parsed


# -- property test against a naive reference -------------------------------------------------------------------


def ref_parse(frame: bytes) -> dict[str, Any]:
    """Straight off the bytes, untagged frames only (what the property test generates)."""
    etype = struct.unpack_from(">H", frame, 12)[0]
    out: dict[str, Any] = {"etype": etype, "ip": None, "proto": None, "sport": None, "dport": None}
    if etype == ETH_P_IPV4:
        ihl = (frame[14] & 0xF) * 4
        out["ip"] = (ipaddress.ip_address(frame[26:30]), ipaddress.ip_address(frame[30:34]))
        frag = struct.unpack_from(">H", frame, 20)[0] & 0x1FFF
        if frag == 0:
            out["proto"] = frame[23]
            l4_off = 14 + ihl
    elif etype == ETH_P_IPV6:
        out["ip"] = (ipaddress.ip_address(frame[22:38]), ipaddress.ip_address(frame[38:54]))
        out["proto"] = frame[20]
        l4_off = 54
    if out["proto"] in (TCP, UDP):
        out["sport"], out["dport"] = struct.unpack_from(">HH", frame, l4_off)
    return out


REF_TEMPLATES = {
    "SMB": ({TCP}, 445),
    "iSCSI": ({TCP}, 3260),
    "NFS": ({TCP, UDP}, 2049),
    "LiveMigration": ({TCP}, 6600),
    "Cluster": ({TCP, UDP}, 3343),
}


def ref_matches(p: QosPolicyConfig, f: dict[str, Any]) -> bool:
    if p.template is not None:
        t = p.template.value
        if t == "Default":
            return True
        if t == "FCOE":
            return bool(f["etype"] == 0x8906)
        protos, port = REF_TEMPLATES[t]
        return f["proto"] in protos and port in (f["sport"], f["dport"])
    if f["ip"] is None:
        return False
    checks = []
    ports = [
        ("src", p.ip_src_port, p.ip_src_port),
        ("dst", p.ip_dst_port, p.ip_dst_port),
        ("any", p.ip_port, p.ip_port),
        ("src", p.ip_src_port_start, p.ip_src_port_end),
        ("dst", p.ip_dst_port_start, p.ip_dst_port_end),
    ]
    has_ports = any(lo is not None for _, lo, _ in ports)
    if p.ip_protocol.value == "TCP":
        checks.append(f["proto"] == TCP)
    elif p.ip_protocol.value == "UDP":
        checks.append(f["proto"] == UDP)
    elif has_ports:
        checks.append(f["proto"] in (TCP, UDP))
    for prefix, addr in ((p.ip_src_prefix, f["ip"][0]), (p.ip_dst_prefix, f["ip"][1])):
        if prefix is not None:
            net = ipaddress.ip_network(prefix)
            checks.append(addr.version == net.version and addr in net)
    for which, lo, hi in ports:
        if lo is None:
            continue
        assert hi is not None
        values = {"src": [f["sport"]], "dst": [f["dport"]], "any": [f["sport"], f["dport"]]}[which]
        checks.append(any(v is not None and lo <= v <= hi for v in values))
    return all(checks)


def ref_specificity(p: QosPolicyConfig) -> tuple[int, int]:
    if p.template is not None:
        t = p.template.value
        return ({"SMB": 2, "iSCSI": 2, "LiveMigration": 2}.get(t, 1), 0)
    n = sum(
        x is not None for x in (p.ip_src_prefix, p.ip_dst_prefix, p.ip_src_port, p.ip_dst_port, p.ip_port)
    )
    n += (p.ip_src_port_start is not None) + (p.ip_dst_port_start is not None)
    n += p.ip_protocol.value != "Both"
    bits = sum(ipaddress.ip_network(x).prefixlen for x in (p.ip_src_prefix, p.ip_dst_prefix) if x is not None)
    return n, bits


def ref_winner(policies: Sequence[QosPolicyConfig], frame: bytes) -> str | None:
    f = ref_parse(frame)
    specific = [
        (i, p) for i, p in enumerate(policies) if p.template is not QosTemplate.DEFAULT and ref_matches(p, f)
    ]
    if specific:
        best = max(specific, key=lambda ip: (ip[1].precedence, *ref_specificity(ip[1]), -ip[0]))
        return best[1].name
    defaults = [(i, p) for i, p in enumerate(policies) if p.template is QosTemplate.DEFAULT]
    if defaults:
        return max(defaults, key=lambda ip: (ip[1].precedence, -ip[0]))[1].name
    return None


PORTS = st.sampled_from([445, 2049, 3260, 3343, 6600, 80, 1000, 1001, 5000, 65535, 0])
V4 = st.sampled_from(["10.0.0.1", "10.0.1.7", "10.1.0.1", "192.168.1.1"])
V6 = st.sampled_from(["fd00::1", "fd00:1::7", "fe80::1", "2001:db8::1"])
PREFIXES = st.sampled_from(
    [
        "10.0.0.0/8",
        "10.0.0.0/16",
        "10.0.0.0/24",
        "10.0.1.7/32",
        "0.0.0.0/0",
        "fd00::/8",
        "fd00:1::/32",
        "::/0",
    ]
)


@st.composite
def policies(draw: st.DrawFn, index: int) -> QosPolicyConfig | None:
    kw: dict[str, Any] = {"precedence": draw(st.sampled_from([0, 127, 127, 200])), "dscp": 1}
    if draw(st.booleans()):
        kw["template"] = draw(st.sampled_from(list(QosTemplate)))
    else:
        kw["ip_protocol"] = draw(st.sampled_from(list(IpProtocolMatch)))
        for f in ("ip_src_prefix", "ip_dst_prefix"):
            if draw(st.integers(0, 3)) == 0:
                kw[f] = draw(PREFIXES)
        for f in ("ip_src_port", "ip_dst_port", "ip_port"):
            if draw(st.integers(0, 3)) == 0:
                kw[f] = draw(PORTS)
        for a, b in (("ip_src_port_start", "ip_src_port_end"), ("ip_dst_port_start", "ip_dst_port_end")):
            if draw(st.integers(0, 4)) == 0:
                lo, hi = sorted((draw(PORTS), draw(PORTS)))
                kw[a], kw[b] = lo, hi
    try:
        return QosPolicyConfig(name=f"p{index}", **kw)
    except ValidationError:
        return None


@st.composite
def frames(draw: st.DrawFn) -> bytes:
    kind = draw(st.sampled_from(["v4", "v4", "v6", "v6", "frag", "arp", "fcoe"]))
    if kind == "arp":
        return eth(PEER, HOST, bytes(46), ethertype=ETH_P_ARP)
    if kind == "fcoe":
        return eth(PEER, HOST, bytes(46), ethertype=ETH_P_FCOE)
    proto = draw(st.sampled_from([TCP, UDP, TCP, UDP, SCTP, ICMP]))
    sport, dport = draw(PORTS), draw(PORTS)
    if kind == "v6":
        return f6(ICMPV6 if proto == ICMP else proto, sport, dport, src=draw(V6), dst=draw(V6))
    if kind == "frag":
        return eth(PEER, HOST, ipv4(draw(V4), draw(V4), proto, bytes(24), frag_offset=8))
    return f4(proto, sport, dport, src=draw(V4), dst=draw(V4), options=draw(st.sampled_from([b"", bytes(4)])))


@settings(max_examples=400, deadline=None)
@given(data=st.data(), n=st.integers(0, 6), frame_list=st.lists(frames(), min_size=1, max_size=8))
def test_matches_naive_reference(data: st.DataObject, n: int, frame_list: list[bytes]) -> None:
    drawn = [data.draw(policies(i)) for i in range(n)]
    policy_list = [p for p in drawn if p is not None]
    c = PolicyClassifier(policy_list, cache_size=3)
    for _ in range(2):  # the second pass is answered from the cache, where the cache kept it
        for frame in frame_list:
            got = c.match(frame)
            assert (got.name if got else None) == ref_winner(policy_list, frame), frame.hex()


def test_bad_ipv4_header_length_is_not_ip() -> None:
    policies = [pol("pfx", ip_src_prefix="0.0.0.0/0"), pol("d", template=QosTemplate.DEFAULT)]
    frame = bytearray(f4(TCP, 1, 445))
    frame[14] = 0x44  # IHL 4
    assert winner(policies, frame) == "d"
    assert winner(policies, f4(TCP, 1, 445)) == "pfx"
