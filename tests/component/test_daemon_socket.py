"""Issue 11 (security): ``pyvswitchd --socket PATH`` removes a stale socket, never anything else."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from pyvswitch.daemon.main import StartupError, _bind_socket

ENV = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}


def test_socket_path_that_is_a_regular_file_is_refused_not_removed(tmp_path: Path) -> None:
    """issue 11: `pyvswitchd --socket` pointed at a regular file deleted it ("removing stale socket")."""
    path = tmp_path / "notes.txt"
    path.write_text("keep me")
    argv = [
        sys.executable, "-c", "from pyvswitch.daemon.main import main; raise SystemExit(main())",
        "--socket", str(path), "--state-dir", str(tmp_path / "state"), "--forwarding-cpu", "none",
    ]  # fmt: skip
    res = subprocess.run(argv, capture_output=True, text=True, timeout=60, env=ENV)
    assert res.returncode == 1, res.stderr
    errors = [line for line in res.stderr.splitlines() if " ERROR " in line]
    assert len(errors) == 1 and str(path) in errors[0] and "not a socket" in errors[0], res.stderr
    assert path.read_text() == "keep me"


@pytest.mark.parametrize("kind", ["directory", "symlink", "dangling-symlink", "symlink-to-socket"])
def test_nothing_but_a_socket_is_removed(tmp_path: Path, kind: str) -> None:
    """issue 11: a directory or a symlink (even to a stale socket) is not the daemon's to remove."""
    path = tmp_path / "pyvswitchd.sock"
    target = tmp_path / "target"
    if kind == "directory":
        path.mkdir()
    elif kind == "symlink":
        target.write_text("keep me")
        path.symlink_to(target)
    elif kind == "dangling-symlink":
        path.symlink_to(tmp_path / "nowhere")
    else:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.bind(str(target))
        s.close()
        path.symlink_to(target)
    with pytest.raises(StartupError, match="not a socket"):
        _bind_socket(path)
    assert os.path.lexists(path)
    if kind == "symlink":
        assert target.read_text() == "keep me"


def test_stale_socket_is_still_removed(tmp_path: Path) -> None:
    """A socket nobody listens on (a killed daemon's) is stale: removed, and the daemon binds its own."""
    path = tmp_path / "stale.sock"
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(str(path))
    s.close()
    sock = _bind_socket(path)
    try:
        assert path.is_socket() and (path.stat().st_mode & 0o777) == 0o600
    finally:
        sock.close()
