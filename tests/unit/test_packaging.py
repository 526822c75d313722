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
