"""Devices without a kernel: pcap replay/record, the memory device, open_device's errors."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from pyvswitch.datapath import open_device
from pyvswitch.datapath.memory import MemoryDevice
from pyvswitch.datapath.pcapfile import PcapDevice, PcapWriter, read_pcap
from pyvswitch.errors import DeviceError
from pyvswitch.packet.frame import UNTAGGED, Packet
from pyvswitch.packet.vnet import VIRTIO_NET_HDR_F_NEEDS_CSUM, VNET_HDR
from pyvswitch.testing.frames import eth, strip_tag

A, B = "02:00:00:00:00:0a", "02:00:00:00:00:0b"


def test_pcap_record_then_replay_round_trip(tmp_path: Path) -> None:
    out = tmp_path / "out.pcap"
    rec = PcapDevice("rec", record=str(out))
    f1, f2 = eth(B, A, b"one"), eth(B, A, b"two" * 100)
    rec.send([Packet(f1), Packet(f2)], [UNTAGGED, 10])
    rec.close()
    frames = [f for _, f in read_pcap(str(out))]
    assert frames[0] == f1
    assert strip_tag(frames[1]) == (10, f2)
    replay = PcapDevice("rep", replay=str(out))
    got = replay.recv(1) + replay.recv(10)
    assert [bytes(p.data) for p in got] == frames
    assert replay.recv(10) == [] and replay.counters.rx_frames == 2
    replay.close()


def test_pcap_reads_big_endian_and_nanosecond_files(tmp_path: Path) -> None:
    path = tmp_path / "be.pcap"
    frame = eth(B, A)
    path.write_bytes(
        struct.pack(">IHHiIII", 0xA1B23C4D, 2, 4, 0, 0, 65535, 1)
        + struct.pack(">IIII", 5, 500_000_000, len(frame), len(frame))
        + frame
    )
    assert list(read_pcap(str(path))) == [(5.5, frame)]


def test_pcap_rejects_pcapng_and_other_link_types(tmp_path: Path) -> None:
    ng = tmp_path / "x.pcapng"
    ng.write_bytes(b"\x0a\x0d\x0d\x0a" + bytes(40))
    with pytest.raises(DeviceError, match="not a pcap file"):
        list(read_pcap(str(ng)))
    raw = tmp_path / "raw.pcap"
    raw.write_bytes(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 101))
    with pytest.raises(DeviceError, match="link type 101"):
        list(read_pcap(str(raw)))


def test_pcap_writer_truncated_file_keeps_whole_records(tmp_path: Path) -> None:
    path = tmp_path / "cut.pcap"
    w = PcapWriter(str(path), clock=lambda: 1.25)
    w.write(eth(B, A, b"a"))
    w.write(eth(B, A, b"b"))
    w.close()
    data = path.read_bytes()
    path.write_bytes(data[:-5])
    assert [t for t, _ in read_pcap(str(path))] == [1.25]


def test_memory_device_inserts_tag_and_shifts_vnet() -> None:
    dev = MemoryDevice("m")
    hdr = VNET_HDR.pack(VIRTIO_NET_HDR_F_NEEDS_CSUM, 0, 0, 0, 34, 16)
    dev.send([Packet(eth(B, A, bytes(40)), vnet=hdr)], [20])
    assert strip_tag(dev.sent[0])[0] == 20
    vnet = dev.sent_vnet[0]
    assert vnet is not None and VNET_HDR.unpack(vnet)[4] == 38
    dev.inject(eth(B, A), tci=5)
    (pkt,) = dev.recv(10)
    assert pkt.tci == 5 and dev.recv(10) == []
    dev.close()
    assert dev.closed


@pytest.mark.parametrize(
    ("kind", "name", "message"),
    [
        ("nope", "eth9", "unknown device kind 'nope'"),
        ("pcap", "path.pcap", "use replay=PATH"),
        ("pcap", "replay=a,bogus=b", "use replay=PATH"),
    ],
)
def test_open_device_errors_name_what_is_wrong(kind: str, name: str, message: str) -> None:
    with pytest.raises(DeviceError, match=message):
        open_device(kind, name)
