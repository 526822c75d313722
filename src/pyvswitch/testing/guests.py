"""A stand-in for a QEMU guest process (guest/qemu.py's Guest) for unit and component tests: alive until
stopped, and ``run`` answers every command with exit status 3 and the command echoed (so a test can tell the
answer came from here)."""

from __future__ import annotations

from pyvswitch.guest.agent import ExecResult
from pyvswitch.guest.qemu import Guest


class FakeGuest(Guest):
    stopped = False

    def alive(self) -> bool:
        return not self.stopped

    def stop(self, timeout_s: float = 5.0) -> None:
        self.stopped = True

    def run(self, argv: list[str] | str, timeout_s: float = 30.0) -> ExecResult:
        return ExecResult(3, f"ran {argv}\n", "")
