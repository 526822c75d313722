"""The README's "Using it" block is examples/using-it.sh, and it works (issue 15 item 1).

The script runs end to end in a sandbox (``pyvswitch.lab.sandbox``: its own PID, mount and network namespaces,
NICs eth1..eth8 whose far ends are Open vSwitch ports in a LAN namespace, with a host that answers on the
untagged LAN and on VLAN 10 and LACP bonds for the two teams). ``set -e`` makes every line a check: each ping
must be answered (one must not be), the team must aggregate, the what-if must deliver, the VF must carry. When
the sandbox ends, its PID namespace takes every process the script started, and with them its namespaces and
interfaces: nothing outlives the test, even on a failure or a timeout.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from pyvswitch.daemon.ownership import owner_id
from pyvswitch.testing import ovs as ovs_peer

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "examples" / "using-it.sh"
README = ROOT / "README.md"


def script_lines() -> list[str]:
    """The script's commands: every line after ``set -euo pipefail``."""
    lines = SCRIPT.read_text().splitlines()
    return [ln for ln in lines[lines.index("set -euo pipefail") + 1 :] if ln.strip()]


def readme_block() -> list[str]:
    """The console block under ``## Using it``, without its ``# `` prompts."""
    text = README.read_text()
    section = text[text.index("\n## Using it\n") :]
    m = re.search(r"```console\n(.*?)```", section, re.DOTALL)
    assert m is not None, "no console block under ## Using it"
    lines = m[1].splitlines()
    assert all(ln.startswith("# ") for ln in lines), "each line of the block starts with the '# ' prompt"
    return [ln[2:] for ln in lines]


def test_the_readme_shows_exactly_the_script() -> None:
    assert readme_block() == script_lines()


@pytest.mark.system
@pytest.mark.skipif(not ovs_peer.available(), reason="Open vSwitch is not installed (the LAN's switch)")
def test_the_readme_script_runs_end_to_end(tmp_path: Path) -> None:
    res = subprocess.run(
        [sys.executable, "-m", "pyvswitch.lab.sandbox", "--workdir", str(tmp_path), "--timeout", "600",
         str(SCRIPT)],
        capture_output=True,
        text=True,
        timeout=660,
    )  # fmt: skip
    out = res.stdout + res.stderr
    assert res.returncode == 0, f"examples/using-it.sh -> {res.returncode}\n{out[-6000:]}"
    # Nothing of the sandbox's daemon stays on the host: its QEMU guest's RAM file and run directory included.
    owner = owner_id(tmp_path / "state")
    assert not [f for f in os.listdir("/dev/shm") if owner in f]
    assert not Path("/run/pyvswitch-guests", owner).exists()
    # A few things the script's lines printed, beyond their exit status:
    assert "status: current collecting-distributing" in out  # team t1 aggregated with the LAN's LACP bond
    assert "= delivered to web03-eth0" in out  # the what-if
    assert "VF 0 (policies bypassed)" in out  # db03 on its VF
    assert out.count(" 0% packet loss") >= 10
