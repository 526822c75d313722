"""The cmdlet binder, whole cmdlet lines and the what-if grammar under hypothesis (issue 11, item 6): whatever is
typed, only the project's own errors come out (exit 1 or 2 for a line, DescriptionError for a description), never
a traceback."""

from __future__ import annotations

import contextlib
import io
import time
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from pyvswitch.cli.cmdlet.framework import Cmdlet, CmdletUsageError, bind
from pyvswitch.cli.main import main
from pyvswitch.cli.units import parse_bandwidth
from pyvswitch.cli.vlanspec import VlanSpecError, parse_vlan_spec
from pyvswitch.observe.describe import DescriptionError, build
from tests.component.test_cli import bridge
from tests.fuzz import api, budget
from tests.fuzz.grammar import cmdlet_line, whatif_description

FUZZ = settings(
    max_examples=budget.GRAMMAR_EXAMPLES,
    database=None,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
COUNTS: dict[str, int] = {}


@pytest.fixture(scope="module")
def daemon() -> Iterator[api.Daemon]:
    with api.daemon() as d:
        yield d


@FUZZ
@given(cmdlet_line())
def test_the_binder_raises_only_usage_errors(line: tuple[Cmdlet, list[str]]) -> None:
    """issue 11: any words after any cmdlet bind or raise CmdletUsageError (exit 2), nothing else."""
    cmd, words = line
    with contextlib.suppress(CmdletUsageError):
        bind(cmd, words)


def test_cmdlet_lines_against_a_daemon_exit_0_1_or_2(daemon: api.Daemon) -> None:
    """issue 11: whole lines through pyvswitch's main against the real service and API (in-process): an exit code
    of the contract, never an exception, and the daemon never answers 5xx (a 5xx would be exit 1 here, so the API
    is asked too)."""
    transport = bridge(daemon)  # type: ignore[arg-type]
    codes: dict[int, int] = {}
    start = time.monotonic()

    @settings(FUZZ, max_examples=budget.CMDLET_LINES)
    @given(cmdlet_line())
    def one(line: tuple[Cmdlet, list[str]]) -> None:
        cmd, words = line
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            rc = main([cmd.name, *words], transport=transport)
        codes[rc] = codes.get(rc, 0) + 1
        assert rc in (0, 1, 2), f"{cmd.name} {words!r} -> {rc}\n{err.getvalue()[-2000:]}"
        assert "internal error" not in err.getvalue(), f"{cmd.name} {words!r}: {err.getvalue()[-2000:]}"

    one()
    COUNTS["cmdlet_lines"] = sum(codes.values())
    budget.report(
        "cmdlets",
        {"lines": sum(codes.values()), "exit_codes": codes, "seconds": round(time.monotonic() - start, 1)},
    )


@FUZZ
@given(whatif_description(), st.sampled_from([None, "02:00:00:00:00:01", "02:15:5d:00:00:07"]))
def test_whatif_descriptions_build_or_raise_description_error(text: str, src: str | None) -> None:
    """issue 11: a description builds a frame that fits the wire (at most 65,535 bytes, a valid tag) or is refused
    with DescriptionError."""
    try:
        frame, tci = build(text, default_src=src)
    except DescriptionError:
        return
    assert 14 <= len(frame) <= 65_535 + 64
    assert tci == -1 or 0 <= tci <= 0xFFFF


@FUZZ
@given(st.one_of(st.text(max_size=40), st.from_regex(r"(?i)(untagged|access|trunk|isolated|community|promiscuous)(:[-0-9,=a-z ]{0,12}){0,3}", fullmatch=True)))  # fmt: skip
def test_vlan_specs_parse_or_raise_vlan_spec_error(text: str) -> None:
    with contextlib.suppress(VlanSpecError):
        parse_vlan_spec(text)


@FUZZ
@given(st.one_of(st.text(max_size=30), st.from_regex(r"[-+]?[0-9]{0,400}(\.[0-9]{0,30})?[kKmMgGtTbB]?", fullmatch=True)))  # fmt: skip
@example("9" * 400)  # float() gave inf and int(inf) raised OverflowError (issue 11, found by this fuzzer)
@example("9" * 400 + "T")
def test_bandwidths_parse_or_raise_value_error(text: str) -> None:
    """issue 11: -MaximumBandwidth and --max-bandwidth values."""
    with contextlib.suppress(ValueError):
        assert parse_bandwidth(text) >= 0
