"""The dependency rule of docs/architecture.md §1: imports only go down the layers."""

from __future__ import annotations

import ast
import re
from pathlib import Path

PKG = Path(__file__).resolve().parents[2] / "src" / "pyvswitch"

# Layer -> the pyvswitch layers it may import (besides itself and the leaf modules errors/clock).
# config.schema is a leaf of plain value objects that the switch compiles; the rest of config (store,
# validation) belongs to the management plane.
ALLOWED: dict[str, set[str]] = {
    "packet": set(),
    "pipeline": {"packet"},
    "datapath": {"packet"},
    "observe": {"pipeline", "packet"},
    "ext": {"pipeline", "packet", "observe"},
    "builtin": {"ext", "packet"},
    "switch": {"ext", "pipeline", "datapath", "packet", "config.schema", "observe"},
    "config": {"packet"},
    "lab": {"config.schema", "packet", "testing.netns", "testing.ovs", "datapath.rps"},
    "daemon": {"config", "switch", "observe", "datapath", "packet", "ext"},  # never the lab (issue 16)
    "cli": {"config.schema", "lab", "packet"},
    "testing": {"*"},
}
LEAVES = {"errors", "clock", "__init__"}
DYNAMIC = re.compile(r"pyvswitch(\.[a-z_][a-z0-9_]*)+")


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("pyvswitch"):
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("pyvswitch"))
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and names_a_module(node.value):
            # A module named in a string (importlib.import_module, __import__, entry points): a dynamic import
            # is still a dependency, and one the static rule would miss.
            found.add(node.value)
    return found


def names_a_module(text: str) -> bool:
    """Whether ``text`` is the dotted name of one of our modules (not, say, the entry-point group's name)."""
    if not DYNAMIC.fullmatch(text):
        return False
    rel = PKG.joinpath(*text.split(".")[1:])
    return rel.is_dir() or rel.with_suffix(".py").is_file()


def allowed(layer: str, target: str) -> bool:
    parts = target.split(".")[1:]
    if not parts or parts[0] in LEAVES or parts[0] == layer:
        return True
    rules = ALLOWED[layer]
    return "*" in rules or parts[0] in rules or ".".join(parts[:2]) in rules


def test_imports_only_go_down() -> None:
    problems = []
    for path in PKG.rglob("*.py"):
        rel = path.relative_to(PKG).parts
        if len(rel) == 1:
            continue  # top-level leaves
        layer = rel[0]
        assert layer in ALLOWED, f"new layer {layer!r}: add it to ALLOWED and docs/architecture.md"
        for target in imported_modules(path):
            if not allowed(layer, target):
                problems.append(f"{'/'.join(rel)} imports {target}")
    assert not problems, "layer rule broken:\n" + "\n".join(problems)


def test_the_daemon_imports_no_lab_module() -> None:
    """pyvswitchd runs on hosts without the lab: provisioning is the daemon's own (daemon/provision.py), and a lab
    host name is resolved by the CLI, which sends the destination's socket (daemon/migration.py)."""
    found = {
        f"{path.name}: {target}"
        for path in (PKG / "daemon").rglob("*.py")
        for target in imported_modules(path)
        if target.startswith("pyvswitch.lab")
    }
    assert not found
