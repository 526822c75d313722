"""The dependency rule of docs/architecture.md §1: imports only go down the layers."""

from __future__ import annotations

import ast
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
    "lab": {"config.schema", "packet", "testing.netns", "testing.ovs"},
    "daemon": {"config", "switch", "observe", "datapath", "lab", "packet", "ext"},
    "cli": {"config.schema", "lab", "packet"},
    "testing": {"*"},
}
LEAVES = {"errors", "clock", "__init__"}


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("pyvswitch"):
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("pyvswitch"))
    return found


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
