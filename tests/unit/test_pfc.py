"""802.1Qbb PFC and 802.3x PAUSE MAC Control frames: exact bytes, round trips, malformed frames, pause times."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pyvswitch.packet.pfc import (
    ETH_P_MAC_CONTROL,
    PFC_DST,
    MacControlError,
    PauseFrame,
    PfcFrame,
    decode_mac_control,
    encode_pause,
    encode_pfc,
    quanta_to_seconds,
)
from pyvswitch.testing.frames import eth, ipv4, udp

SRC = 0x02_00_00_00_01_01


def test_constants() -> None:
    assert ETH_P_MAC_CONTROL == 0x8808
    assert PFC_DST.to_bytes(6, "big") == bytes.fromhex("0180c2000001")


def test_encode_pfc_exact_bytes() -> None:
    frame = encode_pfc(SRC, {3: 0xFFFF, 5: 0x1234})
    assert len(frame) == 60
    expected = (
        bytes.fromhex("0180c2000001")
        + bytes.fromhex("020000000101")
        + bytes.fromhex("8808")
        + bytes.fromhex("0101")  # opcode
        + bytes.fromhex("0028")  # reserved octet, e[7..0] = bits 3 and 5
        + struct.pack(">8H", 0, 0, 0, 0xFFFF, 0, 0x1234, 0, 0)
    )
    assert frame == expected + bytes(60 - len(expected))


def test_encode_pfc_zero_quanta_sets_the_bit() -> None:
    """A zero time with the bit set is the 'resume' for that priority: the bit must still be sent."""
    frame = encode_pfc(SRC, {3: 0})
    assert frame[16:18] == b"\x00\x08"
    assert decode_mac_control(frame) == PfcFrame(SRC, {3: 0})


def test_encode_pfc_empty_is_a_legal_noop() -> None:
    frame = encode_pfc(SRC, {})
    assert frame[16:18] == b"\x00\x00"
    got = decode_mac_control(frame)
    assert isinstance(got, PfcFrame) and got.priorities == frozenset() and got.class_enable_vector == 0


@pytest.mark.parametrize(
    ("src", "quanta"),
    [(-1, {0: 1}), (1 << 48, {0: 1}), (SRC, {8: 1}), (SRC, {-1: 1}), (SRC, {0: 0x10000}), (SRC, {0: -1})],
)
def test_encode_pfc_rejects_bad_values(src: int, quanta: dict[int, int]) -> None:
    with pytest.raises(ValueError):
        encode_pfc(src, quanta)


def test_encode_pause_exact_bytes() -> None:
    frame = encode_pause(SRC, 0x00FF)
    assert len(frame) == 60
    assert frame[:20] == bytes.fromhex("0180c20000010200000001018808000100ff") + bytes(2)
    assert decode_mac_control(frame) == PauseFrame(SRC, 0xFF)
    with pytest.raises(ValueError):
        encode_pause(SRC, 0x10000)
    with pytest.raises(ValueError):
        encode_pause(1 << 48, 1)


@given(
    src=st.integers(0, (1 << 48) - 1),
    quanta=st.dictionaries(st.integers(0, 7), st.integers(0, 0xFFFF)),
)
def test_pfc_round_trip(src: int, quanta: dict[int, int]) -> None:
    frame = encode_pfc(src, quanta)
    assert len(frame) == 60
    got = decode_mac_control(frame)
    assert got == PfcFrame(src, quanta)
    assert isinstance(got, PfcFrame)
    assert got.priorities == frozenset(quanta)
    assert got.class_enable_vector == sum(1 << p for p in quanta)
    # also through a memoryview and a bytearray (receive rings)
    assert decode_mac_control(memoryview(frame)) == got
    assert decode_mac_control(bytearray(frame)) == got


def test_decode_ignores_reserved_octet_and_times_of_disabled_priorities() -> None:
    frame = bytearray(encode_pfc(SRC, {2: 7}))
    frame[16] = 0xFF  # reserved octet: ignored on receipt
    struct.pack_into(">H", frame, 18 + 2 * 6, 999)  # time[6] with e[6] clear: ignored
    assert decode_mac_control(frame) == PfcFrame(SRC, {2: 7})


def test_decode_unpadded_frames() -> None:
    assert decode_mac_control(encode_pfc(SRC, {1: 5})[:34]) == PfcFrame(SRC, {1: 5})
    assert decode_mac_control(encode_pause(SRC, 9)[:18]) == PauseFrame(SRC, 9)


def test_pause_to_a_unicast_destination_is_accepted() -> None:
    frame = bytes.fromhex("020000000202") + encode_pause(SRC, 3)[6:]
    assert decode_mac_control(frame) == PauseFrame(SRC, 3)


@pytest.mark.parametrize(
    "frame",
    [
        eth(0x02_00_00_00_00_02, SRC, ipv4("10.0.0.1", "10.0.0.2", 17, udp(1, 2))),
        eth(0x02_00_00_00_00_02, SRC, b"", ethertype=0x8809),  # slow protocols (LACP) is not MAC Control
        eth(PFC_DST, SRC, bytes(46), ethertype=0x8100),  # a tagged frame is not (MAC Control is never tagged)
        bytes(13),
        b"",
    ],
)
def test_not_mac_control(frame: bytes) -> None:
    assert decode_mac_control(frame) is None


@pytest.mark.parametrize(
    "frame",
    [
        encode_pfc(SRC, {0: 1})[:14],  # no opcode
        encode_pfc(SRC, {0: 1})[:15],
        encode_pfc(SRC, {0: 1})[:33],  # PFC cut inside time[7]
        encode_pfc(SRC, {0: 1})[:18],
        encode_pause(SRC, 1)[:17],  # PAUSE cut inside pause_time
        encode_pause(SRC, 1)[:14] + b"\x00\x02" + bytes(44),  # EPON GATE: discarded, not ours
        encode_pause(SRC, 1)[:14] + b"\x01\x02" + bytes(44),
    ],
)
def test_malformed_mac_control_raises(frame: bytes) -> None:
    with pytest.raises(MacControlError) as exc:
        decode_mac_control(frame)
    assert isinstance(exc.value, ValueError)


def test_quanta_to_seconds() -> None:
    assert quanta_to_seconds(0, 10**9) == 0.0
    assert quanta_to_seconds(1, 10**9) == pytest.approx(512e-9)
    assert quanta_to_seconds(0xFFFF, 10**10) == pytest.approx(0xFFFF * 512 / 1e10)  # ~3.36 ms
    assert quanta_to_seconds(0xFFFF, 10**8) == pytest.approx(0.33553920)
    # unbounded link (link_speed 0): timed as 10 Gbit/s
    assert quanta_to_seconds(1000, 0) == quanta_to_seconds(1000, 10**10)
    assert quanta_to_seconds(1000, -1) == quanta_to_seconds(1000, 10**10)
    with pytest.raises(ValueError):
        quanta_to_seconds(-1, 10**9)


def test_frames_are_immutable_values() -> None:
    a, b = PauseFrame(SRC, 1), PauseFrame(SRC, 1)
    assert a == b and hash(a) == hash(b)
    assert hash(PfcFrame(SRC, {1: 2})) == hash(PfcFrame(SRC, {1: 2}))
