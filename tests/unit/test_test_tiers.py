"""The serial tier's lists in tests/conftest.py name tests that exist: a renamed module or test would otherwise
leave its measuring test running beside others (or a state test running alone) without anyone noticing. The
longest-first list names concurrent modules that exist (a renamed one would silently go back to the queue's end)."""

from __future__ import annotations

import ast
from pathlib import Path

from tests.conftest import CONCURRENT_IN_SERIAL_MODULES, LONGEST_FIRST, SERIAL_MODULES

TESTS = Path(__file__).resolve().parents[1]


def test_every_serial_module_exists() -> None:
    present = {p.name for p in TESTS.rglob("test_*.py")}
    assert SERIAL_MODULES - present == set()


def test_every_concurrent_exception_names_a_test_of_a_serial_system_module() -> None:
    for entry in CONCURRENT_IN_SERIAL_MODULES:
        module, name = entry.split("::")
        assert module in SERIAL_MODULES, entry
        tree = ast.parse((TESTS / "system" / module).read_text())
        functions = {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}
        assert name in functions, entry


def test_the_longest_first_modules_exist_once_and_are_not_serial() -> None:
    root = TESTS.parent
    assert [m for m in LONGEST_FIRST if not (root / m).is_file()] == []
    assert len(set(LONGEST_FIRST)) == len(LONGEST_FIRST)
    # A serial module's tests run alone, in the second tier: its place in the first tier's queue means nothing
    # unless some of its tests are exceptions that run concurrently.
    concurrent_modules = {e.split("::")[0] for e in CONCURRENT_IN_SERIAL_MODULES}
    for m in LONGEST_FIRST:
        name = Path(m).name
        assert name not in SERIAL_MODULES or name in concurrent_modules or "system" not in m, m
