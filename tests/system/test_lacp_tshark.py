"""tshark decodes our LACPDUs and Marker PDUs without malformed-packet warnings (issue 4 acceptance)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from pyvswitch.observe.pcapng import PcapngWriter
from pyvswitch.switch.lacp import (
    ACTIVITY,
    AGGREGATION,
    TIMEOUT,
    Lacpdu,
    MarkerPdu,
    PortInfo,
    encode_lacpdu,
    encode_marker,
)

pytestmark = [pytest.mark.system, pytest.mark.skipif(shutil.which("tshark") is None, reason="no tshark")]


def test_tshark_reads_our_pdus(tmp_path: Path) -> None:
    path = tmp_path / "lacp.pcapng"
    actor = PortInfo(32768, 0x020000000001, 17, 255, 1, ACTIVITY | TIMEOUT | AGGREGATION)
    with PcapngWriter(str(path)) as w:
        i = w.add_interface("team0/eth1")
        w.write(i, encode_lacpdu(Lacpdu(0x020000000001, actor, PortInfo())), 1_000_000_000)
        w.write(i, encode_marker(MarkerPdu(0x020000000001, False, 1, 0x020000000001, 42)), 2_000_000_000)
    res = subprocess.run(
        ["tshark", "-r", str(path), "-T", "fields", "-e", "slow.subtype", "-e", "lacp.actor.key",
         "-e", "lacp.actor.port", "-e", "_ws.malformed", "-e", "_ws.expert.message"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    rows = [ln.split("\t") for ln in res.stdout.splitlines()]
    assert rows[0][:3] == ["0x01", "17", "1"] and rows[1][0] == "0x02"  # LACP, then Marker
    assert "alformed" not in res.stdout and "alformed" not in res.stderr
