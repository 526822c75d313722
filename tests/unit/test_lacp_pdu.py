"""LACPDU and Marker PDU codec (IEEE 802.1AX; TM-03): round trips, malformed input, the marker responder."""

from __future__ import annotations

import pytest

from pyvswitch.switch.lacp import (
    ACTIVITY,
    AGGREGATION,
    FRAME_LEN,
    TIMEOUT,
    Lacpdu,
    MarkerPdu,
    PduError,
    PortInfo,
    decode,
    encode_lacpdu,
    encode_marker,
    marker_response,
)

ACTOR = PortInfo(32768, 0x020000000001, 17, 255, 1, ACTIVITY | TIMEOUT | AGGREGATION)
PARTNER = PortInfo(65535, 0x020000000099, 5, 128, 7, 0x3D)


def test_lacpdu_round_trip_and_layout() -> None:
    frame = encode_lacpdu(Lacpdu(0x020000000001, ACTOR, PARTNER, 5))
    assert len(frame) == FRAME_LEN == 124
    assert frame[:6] == bytes.fromhex("0180c2000002") and frame[12:16] == bytes.fromhex("88090101")
    assert frame[16:18] == b"\x01\x14" and frame[36:38] == b"\x02\x14" and frame[56:58] == b"\x03\x10"
    assert decode(frame) == Lacpdu(0x020000000001, ACTOR, PARTNER, 5)
    assert ACTOR.flags() == "activity,timeout,aggregation"


def test_marker_responder_echoes_the_request() -> None:
    req = MarkerPdu(0x0200000000AA, False, 3, 0x0200000000AA, 0xDEADBEEF)
    got = decode(encode_marker(req))
    assert got == req
    resp = marker_response(got, 0x020000000001)
    assert decode(encode_marker(resp)) == MarkerPdu(0x020000000001, True, 3, 0x0200000000AA, 0xDEADBEEF)
    with pytest.raises(PduError):
        marker_response(resp, 1)


@pytest.mark.parametrize(
    ("mutate", "reason"),
    [
        (lambda f: f[:100], "too short"),
        (lambda f: f[:12] + b"\x08\x00" + f[14:], "EtherType"),
        (lambda f: f[:14] + b"\x09" + f[15:], "subtype 9"),
        (lambda f: f[:16] + b"\x05" + f[17:], "offset 16"),
        (lambda f: f[:57] + b"\x13" + f[58:], "collector TLV"),
        (lambda f: f[:72] + b"\x01" + f[73:], "terminator"),
    ],
)
def test_malformed_pdus_are_rejected_with_a_reason(mutate: object, reason: str) -> None:
    frame = encode_lacpdu(Lacpdu(1, ACTOR, PARTNER))
    with pytest.raises(PduError, match=reason):
        decode(mutate(frame))  # type: ignore[operator]
