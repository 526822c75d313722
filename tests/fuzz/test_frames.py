"""A whole switch fed fuzzed frames (issue 11, item 6): see tests/fuzz/frames.py. Frames that once broke something
are kept below as regression tests, each failing on the code before its fix."""

from __future__ import annotations

from pyvswitch.packet.frame import UNTAGGED
from pyvswitch.packet.vnet import VIRTIO_NET_HDR_F_NEEDS_CSUM, VIRTIO_NET_HDR_GSO_TCPV4, VNET_HDR
from pyvswitch.testing.frames import eth, ipv4
from tests.fuzz import budget
from tests.fuzz.frames import T, harness, internal_errors, run, tcp


def test_fuzzed_frames_never_raise_and_the_switch_keeps_forwarding() -> None:
    """issue 11: random, truncated and mutated frames on every port, random vnet headers on the TAP port."""
    seed = budget.seed()
    res = run(budget.FRAMES, seed=seed, deadline_s=budget.FRAMES_DEADLINE_S)
    budget.report(
        "frames",
        {
            "seed": seed,
            "frames": res.frames,
            "seconds": round(res.seconds, 1),
            "crashes": len(res.crashes),
            "internal_errors": res.internal_errors,
            "loop_errors": res.loop_errors,
            "extension_errors": res.extension_errors,
            "forwarded_after": res.forwarded_after,
        },
    )
    assert res.frames >= min(budget.FRAMES, 20_000), f"only {res.frames} frames in the time allowed"
    assert res.crashes == [], f"seed {seed}: frames that raised (port, tci, vnet, frame): {res.crashes[:5]}"
    assert (res.internal_errors, res.loop_errors, res.extension_errors) == (0, 0, 0)
    assert res.forwarded_after


# ---------------------------------------------------------------- regressions (issue 11)


def vnet(flags: int, gso: int, hdr_len: int, gso_size: int, csum_start: int, csum_offset: int) -> bytes:
    return VNET_HDR.pack(flags, gso, hdr_len, gso_size, csum_start, csum_offset)


def tagged_tcp(size: int = 0) -> bytes:
    """TAP -> uplink: VLAN 10 (the TAP and the uplink are trunks), a destination nobody has, so the uplink only."""
    return eth("02:00:00:00:00:99", T, ipv4("10.0.0.9", "10.0.0.2", 6, tcp(1, 2, 0x10, bytes(size))), vlan=10)


def send_batch(port: str, items: list[tuple[bytes, bytes | None]], tci: int = UNTAGGED) -> object:
    """One batch from ``port``; ``tci``: a tag delivered out of band (as AF_PACKET does), for every frame."""
    h = harness()
    dev = h.port_device(port)
    for frame, hdr in items:
        dev.inject(frame, tci=tci, vnet=hdr)
    while h.engine.run_once():
        pass
    return h


def test_an_inline_tag_with_csum_start_below_4_drops_that_frame_only() -> None:
    """issue 11: shift_vnet raised struct.error (csum_start 2 - 4 < 0) and the TAP's whole batch was dropped as
    internal-error; now that frame is dropped as vnet-offset-in-tag and the rest is forwarded."""
    good = tagged_tcp()
    bad = tagged_tcp()
    h = send_batch(
        "tap", [(good, bytes(10)), (bad, vnet(VIRTIO_NET_HDR_F_NEEDS_CSUM, 0, 0, 0, 2, 16)), (good, None)]
    )
    assert internal_errors(h) == 0  # type: ignore[arg-type]
    assert h.drops("s").get("vnet-offset-in-tag") == 1  # type: ignore[attr-defined]
    assert len(h.take("up")) == 2  # type: ignore[attr-defined]


def test_an_inline_tag_with_gso_hdr_len_below_4_drops_that_frame_only() -> None:
    """issue 11: the same with a GSO header length of 3."""
    good = tagged_tcp()
    bad_hdr = vnet(VIRTIO_NET_HDR_F_NEEDS_CSUM, VIRTIO_NET_HDR_GSO_TCPV4, 3, 1448, 34, 16)
    h = send_batch("tap", [(good, None), (tagged_tcp(3000), bad_hdr), (good, None)])
    assert internal_errors(h) == 0  # type: ignore[arg-type]
    assert h.drops("s").get("vnet-offset-in-tag") == 1  # type: ignore[attr-defined]
    assert len(h.take("up")) == 2  # type: ignore[attr-defined]


def test_offsets_that_an_egress_tag_would_push_past_16_bits_are_refused_at_ingress() -> None:
    """issue 11: a GSO super-frame whose csum_start (or hdr_len) is within 4 of 65535 passed ingress, then the
    uplink's tag made out_vnet raise struct.error inside send: the batch was lost as internal-error."""
    # Tagged out of band: no inline tag is taken off first (that would move the offsets 4 bytes down).
    big = eth("02:00:00:00:00:99", T, bytes(70_000), ethertype=0x88B5)
    small = eth("02:00:00:00:00:99", T, bytes(100), ethertype=0x88B5)
    for hdr in (
        vnet(VIRTIO_NET_HDR_F_NEEDS_CSUM, VIRTIO_NET_HDR_GSO_TCPV4, 54, 1448, 0xFFFE, 0),
        vnet(VIRTIO_NET_HDR_F_NEEDS_CSUM, VIRTIO_NET_HDR_GSO_TCPV4, 0xFFFE, 1448, 34, 16),
    ):
        h = send_batch("tap", [(big, hdr), (small, None)], tci=10)
        assert internal_errors(h) == 0  # type: ignore[arg-type]
        assert len(h.take("up")) == 1  # type: ignore[attr-defined]
        assert h.drops("s").get("vnet-csum-out-of-frame", 0) + h.drops("s").get("vnet-bad-gso", 0) == 1  # type: ignore[attr-defined]


# Found by the fuzzer: ICMP in IPv4, 38 and 39 bytes long (no padding: a TAP guest or a VM's raw socket may send
# one): the flow cache's key read the ICMP identifier at bytes 38-39 and raised IndexError.
ICMP_38 = "02000000000b02000000000a08004500001c000100004001aed6c00002090a00000108000000"
ICMP_39 = ICMP_38 + "00"


def test_a_short_icmp_frame_takes_the_chain_instead_of_raising() -> None:
    """issue 11 (fuzz): the flow cache's ICMP key on a 38/39-byte frame."""
    for hexframe in (ICMP_38, ICMP_39):
        h = harness()
        for port in ("b", "up", "pv"):
            frame = bytes.fromhex(hexframe)
            if port != "b":
                frame = bytes.fromhex("02000000000a") + frame[6:]  # towards a
            h.send(port, frame)
        assert internal_errors(h) == 0 and h.engine.loop_errors == 0
