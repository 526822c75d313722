"""PcapngWriter.write_batch writes exactly what write() would, frame by frame, under every cap and ring setting."""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from pyvswitch.observe.pcapng import PcapngWriter
from pyvswitch.packet.frame import UNTAGGED

frames_st = st.lists(
    st.tuples(st.integers(0, 300), st.sampled_from([UNTAGGED, UNTAGGED, 10, 0x2FFF])), min_size=0, max_size=40
)


@settings(max_examples=150, deadline=None)
@given(
    frames=frames_st,
    snaplen=st.sampled_from([0, 8, 12, 14, 15, 16, 17, 64, 128]),
    cap=st.sampled_from([None, 700, 1500, 4000]),
    ring=st.sampled_from([0, 2, 3]),
    direction=st.sampled_from([None, "in", "out"]),
    chunk=st.integers(1, 17),
)
def test_batch_equals_one_by_one(
    frames: list[tuple[int, int]], snaplen: int, cap: int | None, ring: int, direction: str | None, chunk: int
) -> None:
    if ring and cap is None:
        ring = 0
    data = [bytes((i + j) % 256 for j in range(n)) for i, (n, _) in enumerate(frames)]
    tcis = [t for _, t in frames]
    with tempfile.TemporaryDirectory() as tmp:
        one = PcapngWriter(Path(tmp) / "one.pcapng", snaplen=snaplen, max_bytes=cap, ring_files=ring)
        many = PcapngWriter(Path(tmp) / "many.pcapng", snaplen=snaplen, max_bytes=cap, ring_files=ring)
        for w in (one, many):
            w.add_interface("sw/p", "eth0")
        ok_one = [
            one.write(0, f, 5_000_000_007, direction=direction, tci=t)
            for f, t in zip(data, tcis, strict=True)
        ]  # type: ignore[arg-type]
        written = 0
        for i in range(0, len(data), chunk):
            written += many.write_batch(
                0, data[i : i + chunk], 5_000_000_007, direction=direction, tcis=tcis[i : i + chunk]
            )  # type: ignore[arg-type]
        one.close()
        many.close()
        assert written == sum(ok_one) == many.records_written == one.records_written
        assert many.records_dropped == one.records_dropped
        assert [f.name.replace("many", "one") for f in many.files] == [f.name for f in one.files]
        for a, b in zip(one.files, many.files, strict=True):
            assert a.read_bytes() == b.read_bytes()
