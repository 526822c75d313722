"""The dependency rule of docs/architecture.md §1: imports only go down the layers, and within a layer they form
no cycle."""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

PKG = Path(__file__).resolve().parents[2] / "src" / "pyvswitch"

# Layer -> the pyvswitch layers it may import (besides itself and the leaf modules errors/clock).
# config.schema is a leaf of plain value objects that the switch compiles, and config.vocabulary its words without
# pydantic (for the CLI's start-up); the rest of config (store, validation) belongs to the management plane.
ALLOWED: dict[str, set[str]] = {
    "packet": set(),
    "pipeline": {"packet"},
    "datapath": {"packet"},
    "observe": {"pipeline", "packet"},
    "ext": {"pipeline", "packet", "observe"},
    "builtin": {"ext", "packet"},
    "switch": {"ext", "pipeline", "datapath", "packet", "config.schema", "config.vocabulary", "observe"},
    "config": {"packet"},
    "guest": set(),  # QEMU guests: image, process, agent; used by the daemon and the lab alike (issue 12)
    "cluster": {
        "packet",
        "config.schema",
        "config.vocabulary",
    },  # etcd client, host agent, lookup records (issue 13)
    "lab": {
        "config.schema",
        "config.vocabulary",
        "packet",
        "testing.netns",
        "testing.ovs",
        "datapath.rps",
        "guest",
        "cluster",
    },
    "daemon": {
        "config",
        "switch",
        "observe",
        "datapath",
        "packet",
        "ext",
        "guest",
        "cluster",
    },  # never the lab (issue 16)
    # config.diff: plain dicts, what `config diff` and -WhatIf print (no pydantic at CLI start-up)
    "cli": {"config.schema", "config.vocabulary", "config.diff", "lab", "packet"},
    "testing": {"*"},
}
LEAVES = {"errors", "clock", "drops", "__init__"}
DYNAMIC = re.compile(r"pyvswitch(\.[a-z_][a-z0-9_]*)+")


def imported_modules(path: Path) -> set[str]:
    """The modules of ours ``path`` imports anywhere: at the top, inside functions, under TYPE_CHECKING."""
    tree = ast.parse(path.read_text())
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("pyvswitch"):
            # ``from pyvswitch.cli import cmdlets`` imports the module cmdlets, not only the package: without
            # this the cycle test would not see such an import at all.
            found.update(
                f"{node.module}.{a.name}" if names_a_module(f"{node.module}.{a.name}") else node.module
                for a in node.names
            )
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


def module_name(path: Path) -> str:
    """``.../pyvswitch/cli/cmdlet/framework.py`` -> ``pyvswitch.cli.cmdlet.framework`` (a package: its name)."""
    parts = path.relative_to(PKG.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    """Module -> the modules of ours it imports (see imported_modules: imports inside functions count, so
    does a module named in a string). Importing ``a.b`` also runs the package ``a``; that is not an edge,
    or every package whose __init__ imports a submodule would be a cycle."""
    return {
        module_name(path): {t for t in imported_modules(path) if t != module_name(path)}
        for path in PKG.rglob("*.py")
    }


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan), each as one closed path
    through it and then every module in it, ``[a, b, ..., a, "(all of a, b, c)"]``, for the message."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in graph:
                continue  # not one of our modules (a package attribute read as a name)
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.add(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append([*closed_path(graph, component), f"(all of {', '.join(sorted(component))})"])

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def closed_path(graph: dict[str, set[str]], component: set[str]) -> list[str]:
    """A cycle through the first module of ``component`` that stays inside it (one exists: it is strongly
    connected)."""
    start = min(component)

    def walk(path: list[str]) -> Iterator[list[str]]:
        for w in sorted(graph[path[-1]] & component):
            if w == start:
                yield [*path, w]
            elif w not in path:
                yield from walk([*path, w])

    return next(walk([start]))


def test_no_import_cycles() -> None:
    """No module imports, directly or through others, a module that imports it: each layer is a stack of
    floors too. A cycle is how a module's private names leak (cli/cmdlets.py and its families, issue 16),
    and why an import had to hide inside a function; moving the shared name down a floor ends it."""
    found = cycles(import_graph())
    assert not found, "import cycles:\n" + "\n".join(
        f"{c[0].split('.')[1]}: " + " -> ".join(c[:-1]) + " " + c[-1] for c in sorted(found)
    )


def test_the_cmdlet_framework_imports_no_family() -> None:
    """cli/cmdlet/ is the cmdlet front end's bottom floor: families (cli.vmswitch, cli.lbfo, ...) import it,
    it imports only itself and the CLI's leaves (client, format, units), so any family can be imported alone."""
    leaves = {"pyvswitch.cli.client", "pyvswitch.cli.format", "pyvswitch.cli.units"}
    found = {
        f"{path.name}: {target}"
        for path in (PKG / "cli" / "cmdlet").rglob("*.py")
        for target in imported_modules(path)
        if target.startswith("pyvswitch.cli")
        and target.split(".")[:3] != ["pyvswitch", "cli", "cmdlet"]  # itself (cli.cmdlets is the registry)
        and target not in leaves
    }
    assert not found
