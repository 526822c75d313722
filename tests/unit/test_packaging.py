"""Packaging facts a wheel carries (issue 15 item 4): the LICENSE file is the license pyproject names, and the
package is marked typed (PEP 561) so extension authors type-check against it."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_license_file_is_the_license_pyproject_names() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["license"] == "Apache-2.0" and project["license-files"] == ["LICENSE"]
    head = (ROOT / "LICENSE").read_text().split()[:4]
    assert head == ["Apache", "License", "Version", "2.0,"], head


def test_package_is_marked_typed_and_ships_the_marker() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "py.typed" in pyproject["tool"]["setuptools"]["package-data"]["pyvswitch"]
    assert (ROOT / "src" / "pyvswitch" / "py.typed").is_file()


def test_the_core_cli_runs_without_rich() -> None:
    """rich is the lab's (pyproject extra ``lab``): the CLI, the cmdlets and the daemon's modules load without it,
    and the demo says how to get it."""
    import subprocess
    import sys

    code = (
        "import sys; sys.modules['rich'] = None\n"
        "import pyvswitch.cli.main, pyvswitch.daemon.main, pyvswitch.cli.cmdlets\n"
        "from pyvswitch.cli.main import main\n"
        "sys.exit(main(['demo']))\n"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert res.returncode == 1 and "pip install 'pyvswitch[lab]'" in res.stderr, res.stderr
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert not any(d.startswith("rich") for d in project["dependencies"])
    assert project["optional-dependencies"]["lab"] == ["rich>=13"]


def test_the_man_pages_are_what_the_cli_says_now(tmp_path: Path) -> None:
    """make man regenerates them; a command or option added without regenerating fails here."""
    import contextlib
    import io

    from pyvswitch.cli.main import main as cli_main
    from pyvswitch.cli.manpage import main as make_man

    # The CLI having run in this process first (click caches each command's help option) changes nothing.
    with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):
        cli_main(["port", "--help"])
    make_man([str(tmp_path)])
    for page in ("pyvswitch.1", "pyvswitchd.8"):
        shipped = ROOT / "src" / "pyvswitch" / "data" / "man" / page
        assert shipped.read_text() == (tmp_path / page).read_text(), f"{page} is out of date: run make man"
    text = (tmp_path / "pyvswitch.1").read_text()
    assert ".SS pyvswitch vnet route-add" in text and ".SS New-NetVirtualizationCustomerRoute" in text
    assert "--metrics-listen" in (tmp_path / "pyvswitchd.8").read_text()
