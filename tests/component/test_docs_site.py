"""`make docs` for real: mkdocs builds the site with --strict (warnings are errors) into a temporary directory,
offline, with the generated references and the extension guide's code included from the sample package."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("mkdocs") is None or importlib.util.find_spec("material") is None,
    reason="mkdocs and mkdocs-material are not installed (the 'docs' extra: pip install -e '.[docs]')",
)


def test_mkdocs_build_strict_succeeds_without_warnings(tmp_path: Path) -> None:
    site = tmp_path / "site"
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    res = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
        cwd=ROOT,  # the snippets' base path is the repository
        capture_output=True,
        text=True,
        timeout=240,
        env=env,
    )
    output = res.stdout + res.stderr
    assert res.returncode == 0, output
    assert not [ln for ln in output.splitlines() if "WARNING" in ln], output
    for page in ("index.html", "reference/cmdlets.html", "reference/rest.html", "extensions.html",
                 "troubleshooting.html", "architecture.html", "contracts.html", "guide/cli.html"):  # fmt: skip
        assert (site / page).is_file(), page
    cmdlets = (site / "reference" / "cmdlets.html").read_text()
    assert "New-VMSwitch" in cmdlets and "Get-NetVirtualizationProviderAddress" in cmdlets
    assert "/v1/switches" in (site / "reference" / "rest.html").read_text()
    # The guide shows the sample package's own code (pymdownx.snippets), not a copy.
    guide = (site / "extensions.html").read_text()
    assert "class" in guide and "FlowCounter" in guide and "SampleCounter" in guide
    # Offline: no web fonts and no script or stylesheet from elsewhere.
    index = (site / "index.html").read_text()
    assert "fonts.googleapis" not in index and 'src="http' not in index
    assert not [
        ln for ln in index.splitlines() if "<link" in ln and 'href="http' in ln and "stylesheet" in ln
    ]
    # The build wrote nothing into the repository's docs/ (the references are generated in memory).
    assert not (ROOT / "docs" / "reference").exists()
