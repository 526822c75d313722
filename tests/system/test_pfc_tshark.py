"""tshark decodes the PFC and PAUSE frames encode_pfc/encode_pause build: opcode, class-enable vector, quanta.

Wireshark names 802.1Qbb PFC "Class Based Flow Control [CBFC] Pause" (opcode 0x0101) and flags a non-zero reserved
octet of the vector or a wrong destination as expert info, which this test also refuses.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from pyvswitch.observe.pcapng import PcapngWriter
from pyvswitch.packet.pfc import PauseFrame, PfcFrame, decode_mac_control, encode_pause, encode_pfc

pytestmark = [
    pytest.mark.system,
    pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark is not installed"),
]

# tshark warns on stderr when run as root (as system tests are); anything else there is a complaint about the file.
ROOT_WARNING = re.compile(r'^Running as user "root" and group "root"\. This could be dangerous\.$')
SRC = 0x02_00_00_00_05_01
T0 = 1_700_000_000_000_000_000

# (what tshark must show for the frame, the frame)
PFC_CASES: list[tuple[dict[int, int], bytes]] = [
    ({3: 0xFFFF}, encode_pfc(SRC, {3: 0xFFFF})),  # the lossless class (priority 3, SMB Direct) paused
    ({3: 0x1000, 5: 0x00FF}, encode_pfc(SRC, {3: 0x1000, 5: 0x00FF})),
    ({3: 0}, encode_pfc(SRC, {3: 0})),  # resume priority 3
    ({p: 7 * p for p in range(8)}, encode_pfc(SRC, {p: 7 * p for p in range(8)})),
]
PAUSE_QUANTA = 0x0200


def run_tshark(path: Path, *args: str) -> str:
    res = subprocess.run(["tshark", "-r", str(path), *args], capture_output=True, text=True, timeout=60)
    complaints = [line for line in res.stderr.splitlines() if line.strip() and not ROOT_WARNING.match(line)]
    assert res.returncode == 0, f"tshark -> {res.returncode}: {res.stderr}"
    assert not complaints, f"tshark complained about {path}: {complaints}"
    return res.stdout


def split_frames(verbose: str) -> list[str]:
    """The ``-V`` text of each frame."""
    parts = re.split(r"^Frame \d+: ", verbose, flags=re.M)
    return parts[1:]


def mac_control(text: str) -> str:
    """The MAC Control part of one frame's ``-V`` text."""
    assert "\nMAC Control\n" in text, text
    return text.split("\nMAC Control\n", 1)[1]


@pytest.fixture
def capture(tmp_path: Path) -> Path:
    path = tmp_path / "pfc.pcapng"
    with PcapngWriter(path) as w:
        iface = w.add_interface("uplink", "PFC from the switch")
        for i, (_, frame) in enumerate(PFC_CASES):
            assert w.write(iface, frame, T0 + i)
        assert w.write(iface, encode_pause(SRC, PAUSE_QUANTA), T0 + len(PFC_CASES))
    return path


def test_tshark_decodes_pfc_and_pause_verbose(capture: Path) -> None:
    frames = split_frames(run_tshark(capture, "-V"))
    assert len(frames) == len(PFC_CASES) + 1
    for text in frames:
        assert "Malformed" not in text and "Expert Info" not in text, text
        assert "Type: MAC Control (0x8808)" in text
        assert (
            "Dst: MAC-specific-ctrl-proto-01 (01:80:c2:00:00:01)" in text or "Dst: 01:80:c2:00:00:01" in text
        )
        assert "60 bytes on wire" in text
    for (quanta, _), text in zip(PFC_CASES, frames[:-1], strict=True):
        mc = mac_control(text)
        assert re.search(r"^\s+Opcode: Class Based Flow Control \[CBFC\] Pause \(0x0101\)$", mc, re.M), mc
        vector = sum(1 << p for p in quanta)
        m = re.search(r"^\s+CBFC Class Enable Vector: (0x[0-9a-f]{4})", mc, re.M)
        assert m and int(m.group(1), 16) == vector, mc
        for p in range(8):
            assert re.search(rf"^\s+[.01 ]+ = C{p}: {p in quanta}$", mc, re.M), (p, mc)
        times = mc.split("CBFC Class Pause Times", 1)[1]
        shown = dict(re.findall(r"^\s+C(\d): (\d+)$", times, re.M))
        assert {int(k): int(v) for k, v in shown.items()} == {p: quanta.get(p, 0) for p in range(8)}, times
    pause = mac_control(frames[-1])
    assert re.search(r"^\s+Opcode: Pause \(0x0001\)$", pause, re.M), pause
    assert re.search(rf"^\s+pause_time: {PAUSE_QUANTA}$", pause, re.M), pause


def test_tshark_fields_agree_with_our_decoder(capture: Path) -> None:
    fields = [
        "frame.protocols",
        "eth.dst",
        "macc.opcode",
        "macc.cbfc.enbv",
        "macc.pause_time",
        "_ws.malformed",
    ]
    fields += [f"macc.cbfc.pause_time.c{p}" for p in range(8)]
    args = ["-T", "fields", "-E", "occurrence=f"]
    for f in fields:
        args += ["-e", f]
    rows = [line.split("\t") for line in run_tshark(capture, *args).splitlines()]
    assert len(rows) == len(PFC_CASES) + 1
    frames = [frame for _, frame in PFC_CASES] + [encode_pause(SRC, PAUSE_QUANTA)]
    for row, frame in zip(rows, frames, strict=True):
        row += [""] * (len(fields) - len(row))
        protocols, dst, opcode, enbv, pause_time, malformed, *times = row
        assert protocols == "eth:ethertype:macc"
        assert dst == "01:80:c2:00:00:01"
        assert malformed == ""
        ours = decode_mac_control(frame)
        if isinstance(ours, PfcFrame):
            assert int(opcode, 0) == 0x0101
            assert int(enbv, 0) == ours.class_enable_vector
            assert [int(t) for t in times] == [ours.quanta.get(p, 0) for p in range(8)]
        else:
            assert isinstance(ours, PauseFrame)
            assert int(opcode, 0) == 0x0001
            assert int(pause_time) == ours.quanta == PAUSE_QUANTA
