"""Extension discovery through real entry points (issue 11, item 2): built-in names are reserved whatever order the
packages are found in, a name two packages claim goes to the same one every time, a constructor failure disables
that extension only, and ``enabled_by_default`` is a built-in's privilege.

Packages are fake distributions (a ``*.dist-info`` with ``entry_points.txt`` and a module) in a temporary
directory put on ``sys.path`` first or last: the order ``importlib.metadata`` finds distributions in follows it.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import pytest

from pyvswitch.ext.registry import Registry, discover
from pyvswitch.ext.stack import ExtensionStack, stack_order


def fake_dist(site: Path, dist: str, names: dict[str, bool]) -> str:
    """A distribution ``dist`` whose module registers one extension class per name (value: enabled_by_default);
    returns the module's name."""
    module = dist.replace("-", "_")
    pkg = site / module
    pkg.mkdir(parents=True)
    body = ["from pyvswitch.ext.api import FilterExtension"]
    lines = []
    for i, (name, on) in enumerate(names.items()):
        body.append(
            f"class Ext{i}(FilterExtension):\n    name = {name!r}\n"
            f"    enabled_by_default = {on!r}\n    description = {dist!r}\n"
        )
        lines.append(f"{name} = {module}:Ext{i}")
    (pkg / "__init__.py").write_text("\n".join(body))
    info = site / f"{module}-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[pyvswitch.extensions]\n" + "\n".join(lines) + "\n")
    return module


def on_path(monkeypatch: pytest.MonkeyPatch, site: Path, first: bool) -> None:
    path = [str(site), *sys.path] if first else [*sys.path, str(site)]
    monkeypatch.setattr(sys, "path", path)


@pytest.fixture(autouse=True)
def _forget_modules() -> object:
    before = set(sys.modules)
    yield None
    for name in set(sys.modules) - before:
        if name.startswith(("evil", "aaa", "zzz", "eager", "squatter")):
            del sys.modules[name]


@pytest.mark.parametrize("first", [True, False], ids=["package-first", "package-last"])
def test_a_package_cannot_shadow_the_builtin_firewall(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, first: bool
) -> None:
    """issue 11: an entry point named pyvswitch-firewall from another distribution is refused and logged, and is
    not even imported; the built-in keeps the name in either discovery order."""
    module = fake_dist(tmp_path / "site", "evil-fw", {"pyvswitch-firewall": True})
    on_path(monkeypatch, tmp_path / "site", first)
    with caplog.at_level(logging.WARNING, logger="pyvswitch.ext.registry"):
        found = discover()
    fw = found["pyvswitch-firewall"]
    assert fw.cls is not None and fw.cls.__module__ == "pyvswitch.builtin.firewall"
    assert fw.builtin and fw.distribution == "pyvswitch" and fw.problem is None
    assert len(fw.refused) == 1 and "evil-fw" in fw.refused[0] and "reserved" in fw.refused[0]
    assert module not in sys.modules
    assert any("evil-fw" in r.getMessage() and "refused" in r.getMessage() for r in caplog.records)
    assert fw.describe()["refused"] == list(fw.refused)


def test_names_starting_pyvswitch_are_reserved_for_builtins(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """issue 11: the prefix is kept for built-ins to come (the extended ACL, should it become its own extension)."""
    fake_dist(tmp_path / "site", "squatter", {"pyvswitch-extended-acl": False, "fine": False})
    on_path(monkeypatch, tmp_path / "site", True)
    found = discover()
    squat = found["pyvswitch-extended-acl"]
    assert squat.cls is None and squat.problem is not None and "reserved" in squat.problem
    assert found["fine"].cls is not None and not found["fine"].builtin
    assert "pyvswitch-extended-acl" not in {i.name for i in Registry(found).usable()}


@pytest.mark.parametrize("zzz_first", [True, False])
def test_a_duplicate_name_is_kept_from_one_package_whatever_the_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, zzz_first: bool
) -> None:
    """issue 11: two packages registering ``dup``: the same one (by distribution name) is kept on every host and
    start; the other is refused, logged and listed."""
    site_a, site_z = tmp_path / "a", tmp_path / "z"
    fake_dist(site_a, "aaa-ext", {"dup": False})
    fake_dist(site_z, "zzz-ext", {"dup": False})
    sites = [str(site_z), str(site_a)] if zzz_first else [str(site_a), str(site_z)]
    monkeypatch.setattr(sys, "path", [*sites, *sys.path])
    with caplog.at_level(logging.WARNING, logger="pyvswitch.ext.registry"):
        found = discover()
    dup = found["dup"]
    assert dup.distribution == "aaa-ext" and dup.cls is not None and dup.cls.description == "aaa-ext"
    assert len(dup.refused) == 1 and "zzz-ext" in dup.refused[0]
    assert any("zzz-ext" in r.getMessage() for r in caplog.records)


def test_enabled_by_default_is_honoured_for_builtins_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """issue 11: a package asking for enabled_by_default stays off until the operator enables it; the built-in
    firewall still starts enabled."""
    fake_dist(tmp_path / "site", "eager-ext", {"eager": True})
    on_path(monkeypatch, tmp_path / "site", True)
    reg = Registry()
    assert reg.get("eager") is not None and reg.get("eager").cls is not None  # type: ignore[union-attr]
    order = {name: on for name, _, on in stack_order(reg, [])}
    off = {
        "pyvswitch-sflow": False,
        "pyvswitch-ipfix": False,
        "eager": False,
    }  # the exporters wait for collectors
    assert order == {"pyvswitch-firewall": True, **off}

    class Enable:
        name, enabled = "eager", True

    assert {name: on for name, _, on in stack_order(reg, [Enable()])}["eager"] is True
    st = ExtensionStack.build("sw", reg, [], lambda: 0.0)
    assert {s.name: s.enabled for s in st.slots} == {"pyvswitch-firewall": True, **off}
