"""A wheel of this tree installed into a fresh venv (issue 15 item 4): it carries the package, py.typed, the
LICENSE and the man pages (installed under share/man), and its console scripts run from that venv."""

from __future__ import annotations

import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_a_wheel_installs_into_a_fresh_venv_and_its_scripts_run(tmp_path: Path) -> None:
    dist = tmp_path / "dist"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
                    str(dist), str(ROOT)], check=True, capture_output=True, timeout=300)  # fmt: skip
    [wheel] = list(dist.glob("pyvswitch-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    assert "pyvswitch/py.typed" in names and any(n.endswith("licenses/LICENSE") for n in names)
    assert any(n.endswith(".data/data/share/man/man1/pyvswitch.1") for n in names), names[-10:]
    assert any(n.endswith(".data/data/share/man/man8/pyvswitchd.8") for n in names)
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    py = venv / "bin" / "python"
    subprocess.run([str(py), "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(wheel)], check=True,
                   capture_output=True, timeout=300)  # fmt: skip
    assert (venv / "share" / "man" / "man1" / "pyvswitch.1").is_file()
    # Its dependencies from this interpreter's site-packages (no network here), pyvswitch itself from the wheel.
    env = {"PYTHONPATH": sysconfig.get_paths()["purelib"], "PATH": "/usr/bin:/bin"}
    where = subprocess.run([str(py), "-c", "import pyvswitch; print(pyvswitch.__file__)"], env=env,
                           capture_output=True, text=True, check=True).stdout  # fmt: skip
    assert where.startswith(str(venv)), where
    for script, expect in (("pyvswitch", "pyvswitch, version"), ("pyvswitchd", "pyvswitchd ")):
        res = subprocess.run(
            [str(venv / "bin" / script), "--version"], env=env, capture_output=True, text=True
        )
        assert res.returncode == 0 and res.stdout.startswith(expect), res.stdout + res.stderr
