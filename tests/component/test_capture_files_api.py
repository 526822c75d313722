"""Issue 11 (security): capture files through the REST API and the NetEvent cmdlets. The overwrite guard
checks every name a capture would write, symlinks are refused, files are 0600, a capture without a size has
Windows' 250 MB cap, and a NetEvent session's file is at exactly the -LocalFilePath given."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from pyvswitch.testing.pcapng import read_pcapng
from tests.component.test_capture_api import BCAST, A, EngineDaemon, ping_like
from tests.component.test_capture_api import d as engine_daemon
from tests.component.test_cli import Cli

NE = "/v1/netevent/sessions"


@pytest.fixture
def d(tmp_path: Path) -> Iterator[EngineDaemon]:
    yield from engine_daemon.__wrapped__(tmp_path)  # type: ignore[attr-defined]


def test_ring_guard_checks_every_ring_file_name(d: EngineDaemon, tmp_path: Path) -> None:
    """issue 11: the overwrite guard checked only the base name; a ring capture overwrote x_00001.pcapng."""
    existing = tmp_path / "x_00001.pcapng"
    existing.write_text("an earlier, precious capture")
    body = {"path": str(tmp_path / "x.pcapng"), "max_bytes": 1 << 20, "ring_files": 3}
    errors = d.errors("POST", "/v1/captures", 400, json=body)
    assert errors[0][0] == "path" and str(existing) in errors[0][1]
    assert existing.read_text() == "an earlier, precious capture"
    assert d.ok("GET", "/v1/captures") == []


def test_symlink_at_the_path_is_refused(d: EngineDaemon, tmp_path: Path) -> None:
    """issue 11: symlinks were followed: an empty file behind a link was written through it."""
    target = tmp_path / "empty-target"
    target.touch()
    link = tmp_path / "c.pcapng"
    link.symlink_to(target)
    assert d.errors("POST", "/v1/captures", 400, json={"path": str(link)})[0][0] == "path"
    assert target.stat().st_size == 0 and link.is_symlink()


def test_an_earlier_capture_is_not_overwritten_either(d: EngineDaemon, tmp_path: Path) -> None:
    path = tmp_path / "c.pcapng"
    d.ok("POST", "/v1/captures", 201, json={"path": str(path)})
    d.ok("DELETE", "/v1/captures/1")
    before = path.read_bytes()
    assert d.errors("POST", "/v1/captures", 400, json={"path": str(path)})[0][0] == "path"
    assert path.read_bytes() == before


def test_default_size_cap_mode_0600_and_no_cap_on_request(d: EngineDaemon, tmp_path: Path) -> None:
    """issue 11: files were 0644 and captures had no size cap by default (now Windows' 250 MB)."""
    s = d.ok("POST", "/v1/captures", 201, json={"path": str(tmp_path / "c.pcapng")})
    assert s["max_bytes"] == 250 * 1024 * 1024
    assert (tmp_path / "c.pcapng").stat().st_mode & 0o777 == 0o600
    s = d.ok("POST", "/v1/captures", 201, json={"path": str(tmp_path / "u.pcapng"), "max_bytes": 0})
    assert s["max_bytes"] is None  # an explicit 0: no cap
    assert d.errors("POST", "/v1/captures", 400, json={"path": str(tmp_path / "r"), "ring_files": 2})[0][
        0
    ] == ("ring_files")


def test_netevent_file_is_at_exactly_the_local_file_path(d: EngineDaemon, tmp_path: Path) -> None:
    """issue 11: a one-file capture was written to NAME_00001.pcapng instead of -LocalFilePath, while
    Get-NetEventSession showed the given path."""
    path = tmp_path / "trace1.pcapng"
    d.ok("POST", NE, 201, json={"name": "t1", "path": str(path)})
    d.ok("POST", f"{NE}/t1/provider", 201, json={"capture_type": "Switch"})
    d.ok("POST", f"{NE}/t1/start")
    d.send("a-eth0", ping_like(BCAST, A))
    stopped = d.ok("POST", f"{NE}/t1/stop")
    assert stopped["path"] == str(path) and stopped["capture"]["files"] == [str(path)]
    assert read_pcapng(path).records  # the broadcast, in on a-eth0 and out on b-eth0
    assert sorted(tmp_path.glob("trace1*")) == [path]
    assert path.stat().st_mode & 0o777 == 0o600


def test_netevent_restart_replaces_its_own_file_only(d: EngineDaemon, tmp_path: Path) -> None:
    path = tmp_path / "trace1.pcapng"
    d.ok("POST", NE, 201, json={"name": "t1", "path": str(path)})
    d.ok("POST", f"{NE}/t1/provider", 201, json={"capture_type": "Switch"})
    d.ok("POST", f"{NE}/t1/start")
    d.ok("POST", f"{NE}/t1/stop")
    d.ok("POST", f"{NE}/t1/start")  # Start-NetEventSession again: its own earlier file is replaced
    d.ok("POST", f"{NE}/t1/stop")
    path.unlink()
    path.write_text("someone else's")
    assert d.errors("POST", f"{NE}/t1/start", 400)[0][0] == "path"
    assert path.read_text() == "someone else's"


def test_get_neteventsession_shows_the_files(
    d: EngineDaemon, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """issue 11: Get-NetEventSession must show where the file really is."""
    cli = Cli(d, capsys)  # type: ignore[arg-type]
    path = tmp_path / "t.pcapng"
    cli.ok("New-NetEventSession", "-Name", "t", "-LocalFilePath", str(path))
    cli.ok("Add-NetEventPacketCaptureProvider", "-SessionName", "t", "-CaptureType", "Switch")
    cli.ok("Start-NetEventSession", "-Name", "t")
    out = cli.ok("--json", "Get-NetEventSession", "-Name", "t").json()
    session = out[0] if isinstance(out, list) else out
    assert session["LocalFilePath"] == str(path) and session["Files"] == [str(path)]
    cli.ok("Stop-NetEventSession", "-Name", "t")
