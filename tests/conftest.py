"""Shared fixtures. System tests need root and real namespaces; they skip clearly when not root."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from pyvswitch.testing.netns import NetnsPool, netns_pool


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if os.geteuid() != 0:
        skip = pytest.mark.skip(reason="system tests need root (CI runs as root)")
        for item in items:
            if "system" in item.keywords:
                item.add_marker(skip)


@pytest.fixture
def pool() -> Iterator[NetnsPool]:
    """Namespaces and veths that are removed after the test, pass or fail."""
    with netns_pool() as p:
        yield p
