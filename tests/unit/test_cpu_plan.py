"""pyvswitchd --forwarding-cpu: which core forwards and where guests' receive processing goes."""

from __future__ import annotations

import pytest

from pyvswitch.daemon.main import StartupError, cpu_plan
from pyvswitch.datapath.rps import cpu_mask


def test_auto_takes_the_last_cpu_and_leaves_the_rest_to_guests() -> None:
    assert cpu_plan("auto", {0, 1, 2, 3}) == (3, frozenset({0, 1, 2}))


def test_auto_on_one_cpu_pins_nothing() -> None:
    assert cpu_plan("auto", {5}) == (None, frozenset())


def test_none_and_explicit() -> None:
    assert cpu_plan("none", {0, 1}) == (None, frozenset())
    assert cpu_plan("0", {0, 1}) == (0, frozenset({1}))


@pytest.mark.parametrize(
    ("choice", "message"), [("7", "CPU 7 is not one"), ("fast", "expected a CPU number")]
)
def test_bad_choice_names_the_option(choice: str, message: str) -> None:
    with pytest.raises(StartupError, match=f"--forwarding-cpu: {message}"):
        cpu_plan(choice, {0, 1})


def test_cpu_mask_is_sysfs_hex() -> None:
    assert cpu_mask({0}) == "1" and cpu_mask({0, 1, 4}) == "13"
