"""The serial tier's lists in tests/conftest.py name tests that exist: a renamed module or test would otherwise
leave its measuring test running beside others (or a state test running alone) without anyone noticing."""

from __future__ import annotations

import ast
from pathlib import Path

from tests.conftest import CONCURRENT_IN_SERIAL_MODULES, SERIAL_MODULES

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
