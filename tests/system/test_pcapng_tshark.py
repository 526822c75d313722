"""tshark reads what the pcapng writer writes: interfaces, VLAN tags, comments, nanosecond times, truncation, rings."""

from __future__ import annotations

import functools
import re
import shutil
import struct
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from pyvswitch import __version__
from pyvswitch.observe.pcapng import PcapngWriter
from pyvswitch.packet.frame import ETH_P_ARP, ETH_P_IPV4
from pyvswitch.testing.frames import BCAST, eth

pytestmark = [
    pytest.mark.system,
    pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark is not installed"),
]

# tshark warns on stderr when run as root (as system tests are); anything else there is a complaint about the file.
ROOT_WARNING = re.compile(r'^Running as user "root" and group "root"\. This could be dangerous\.$')

VM1 = "02:00:00:00:01:01"
VM2 = "02:00:00:00:01:02"
T0 = 1_700_000_000_123_456_789  # ns; the last digits only survive if nanoseconds do


def epoch(ns: int) -> str:
    return f"{ns // 1_000_000_000}.{ns % 1_000_000_000:09d}"


def checksum(data: bytes) -> int:
    total: int = sum(struct.unpack(f">{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def udp4(src_ip: str, dst_ip: str, sport: int, dport: int, payload: bytes) -> bytes:
    """An IPv4/UDP packet with a correct header checksum (UDP checksum 0: none, legal on IPv4)."""
    src, dst = (bytes(int(x) for x in ip.split(".")) for ip in (src_ip, dst_ip))
    udp = struct.pack(">HHHH", sport, dport, 8 + len(payload), 0) + payload
    hdr = struct.pack(">BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 1, 0, 64, 17, 0, src, dst)
    return hdr[:10] + struct.pack(">H", checksum(hdr)) + hdr[12:] + udp


def arp_request(sender_mac: str, sender_ip: str, target_ip: str) -> bytes:
    ip = [bytes(int(x) for x in a.split(".")) for a in (sender_ip, target_ip)]
    mac = bytes.fromhex(sender_mac.replace(":", ""))
    return struct.pack(">HHBBH6s4s6s4s", 1, ETH_P_IPV4, 6, 4, 1, mac, ip[0], bytes(6), ip[1])


@functools.cache
def tshark_fields() -> frozenset[str]:
    out = subprocess.run(["tshark", "-G", "fields"], capture_output=True, text=True, check=True).stdout
    return frozenset(line.split("\t")[2] for line in out.splitlines() if line[:2] in ("F\t", "P\t"))


def comment_field() -> str:
    """``frame.comment`` since Wireshark 3.6 (and in 4.x), ``pkt_comment`` before."""
    return "frame.comment" if "frame.comment" in tshark_fields() else "pkt_comment"


def tshark(path: Path, *args: str) -> list[list[str]]:
    """Rows of ``tshark -r path -T fields`` with ``args``; fails on a non-zero exit or any complaint on stderr."""
    res = subprocess.run(["tshark", "-r", str(path), *args], capture_output=True, text=True, timeout=60)
    complaints = [line for line in res.stderr.splitlines() if line.strip() and not ROOT_WARNING.match(line)]
    assert res.returncode == 0, f"tshark -> {res.returncode}: {res.stderr}"
    assert not complaints, f"tshark complained about {path}: {complaints}"
    return [line.split("\t") for line in res.stdout.splitlines()]


@dataclass
class Row:
    interface: str
    description: str
    vlan_id: str
    vlan_pcp: str
    comment: str
    time: str
    cap_len: int
    length: int
    direction: str
    protocols: str
    malformed: str


FIELDS = [
    "frame.interface_name",
    "frame.interface_description",
    "vlan.id",
    "vlan.priority",
    "COMMENT",
    "frame.time_epoch",
    "frame.cap_len",
    "frame.len",
    "frame.packet_flags_direction",
    "frame.protocols",
    "_ws.malformed",
]


def read_rows(path: Path) -> list[Row]:
    fields = [comment_field() if f == "COMMENT" else f for f in FIELDS]
    missing = set(fields) - tshark_fields()
    assert not missing, f"this tshark lacks fields {missing}"
    args = ["-T", "fields", "-E", "occurrence=f"]
    for f in fields:
        args += ["-e", f]
    rows = []
    for r in tshark(path, *args):
        r += [""] * (len(fields) - len(r))
        iface, desc, vid, pcp, comment, time, cap_len, length, direction, protocols, malformed = r
        rows.append(
            Row(
                iface,
                desc,
                vid,
                pcp,
                comment,
                time,
                int(cap_len),
                int(length),
                direction,
                protocols,
                malformed,
            )
        )
    return rows


def test_tshark_reads_interfaces_vlans_comments_and_times(tmp_path: Path) -> None:
    path = tmp_path / "trace.pcapng"
    udp = udp4("10.0.0.1", "10.0.0.2", 40000, 4789, b"hello" * 60)  # 300 bytes of payload: cut by snaplen 128
    arp = arp_request(VM1, "10.0.0.1", "10.0.0.2")
    frames = [
        # (interface, frame, comment, direction, tci)
        (
            "vm1",
            eth(VM2, VM1, udp4("10.0.0.1", "10.0.0.2", 1, 2, b"x"), vlan=10, pcp=3),
            "tagged inline",
            "in",
            -1,
        ),
        ("vm1", eth(BCAST, VM1, arp, ETH_P_ARP), "ingress vm1: arp flood vlan 0", "in", -1),
        ("uplink", eth(VM2, VM1, udp), "egress uplink: cut to 128 bytes", "out", -1),
        ("uplink", eth(VM2, VM1, udp4("10.0.0.1", "10.0.0.2", 1, 2, b"y")), None, None, (3 << 13) | 10),
    ]
    with PcapngWriter(path, snaplen=128) as w:
        ids = {
            "vm1": w.add_interface("vm1", "VM port vm1", snaplen=0),
            "uplink": w.add_interface("uplink", "uplink to eth0"),
        }
        for i, (iface, data, comment, direction, tci) in enumerate(frames):
            w.write(ids[iface], data, T0 + i, comment=comment, direction=direction, tci=tci)  # type: ignore[arg-type]
        assert w.records_written == 4

    rows = read_rows(path)
    assert [r.interface for r in rows] == ["vm1", "vm1", "uplink", "uplink"]
    assert [r.description for r in rows] == ["VM port vm1", "VM port vm1", "uplink to eth0", "uplink to eth0"]
    assert [(r.vlan_id, r.vlan_pcp) for r in rows] == [("10", "3"), ("", ""), ("", ""), ("10", "3")]
    assert [r.comment for r in rows] == ["tagged inline", "ingress vm1: arp flood vlan 0", frames[2][2], ""]
    assert [r.time for r in rows] == [epoch(T0 + i) for i in range(4)]
    assert [r.direction for r in rows] == ["0x00000001", "0x00000001", "0x00000002", ""]
    assert [r.malformed for r in rows] == ["", "", "", ""]
    assert rows[0].protocols.startswith("eth:ethertype:vlan:ethertype:ip:udp")
    assert rows[1].protocols == "eth:ethertype:arp"
    assert rows[2].protocols.startswith("eth:ethertype:ip:udp")
    assert rows[3].protocols.startswith("eth:ethertype:vlan:ethertype:ip:udp")
    assert [(r.cap_len, r.length) for r in rows] == [(60, 60), (60, 60), (128, 14 + 20 + 8 + 300), (64, 64)]


def test_tshark_reads_every_file_of_a_ring(tmp_path: Path) -> None:
    base = tmp_path / "ring.pcapng"
    with PcapngWriter(base, snaplen=128, max_bytes=2000, ring_files=3) as w:
        a = w.add_interface("vm1")
        b = w.add_interface("vm2")
        for i in range(60):
            data = eth(VM2, VM1, udp4("10.0.0.1", "10.0.0.2", 1000 + i, 53, bytes(40 + i)), vlan=10 + i % 2)
            assert w.write(a if i % 2 == 0 else b, data, T0 + i * 1000, comment=f"packet {i}")
        files = w.files
    assert [f.name for f in files] == sorted(f.name for f in tmp_path.iterdir())
    sequence = [int(re.fullmatch(r"ring_(\d{5})\.pcapng", f.name).group(1)) for f in files]  # type: ignore[union-attr]
    assert len(sequence) == 3 and sequence[0] > 1, "the ring should have turned and deleted its oldest files"
    assert sequence == list(range(sequence[0], sequence[0] + 3))
    numbers: list[int] = []
    for f in files:
        assert f.stat().st_size <= 2000
        rows = read_rows(f)
        assert rows, f"{f} holds no packets"
        for r in rows:
            i = int(r.comment.removeprefix("packet "))
            numbers.append(i)
            assert r.interface == ("vm1" if i % 2 == 0 else "vm2")
            assert r.vlan_id == str(10 + i % 2)
            assert r.time == epoch(T0 + i * 1000)
            wire = 18 + 20 + 8 + 40 + i
            assert (r.cap_len, r.length) == (min(wire, 128), wire)
    assert numbers == list(range(numbers[0], 60))  # the newest packets, in order, none missing


def test_capinfos_shows_the_section_header(tmp_path: Path) -> None:
    if shutil.which("capinfos") is None:
        pytest.skip("capinfos is not installed")
    path = tmp_path / "a.pcapng"
    with PcapngWriter(path) as w:
        w.write(w.add_interface("vm1"), eth(VM2, VM1), T0)
    res = subprocess.run(["capinfos", str(path)], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    assert f"Capture application: pyvswitch {__version__}" in res.stdout
    assert "Capture oper-sys:    Linux" in res.stdout
    assert "nanoseconds (9)" in res.stdout
