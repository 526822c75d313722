"""The one exception hierarchy: raised only at configuration, device-open and API boundaries."""

from __future__ import annotations


class PyvswitchError(Exception):
    """Base of every error pyvswitch raises on purpose."""


class ConfigError(PyvswitchError):
    """Invalid configuration. Carries every problem found, each with the path of the field it concerns."""

    def __init__(self, problems: list[tuple[str, str]]) -> None:
        self.problems = problems
        super().__init__("; ".join(f"{path}: {msg}" for path, msg in problems))


class DeviceError(PyvswitchError):
    """An OS device (interface, ring, TAP) could not be opened or used.

    ``interface`` (the OS interface) and ``port`` (the switch port) say what it is about, so that the daemon can
    name the field of the request and leave just that port out at start-up, without reading the message."""

    def __init__(self, message: str, *, interface: str | None = None, port: str | None = None) -> None:
        super().__init__(message)
        self.interface = interface
        self.port = port


class NotFoundError(PyvswitchError):
    """A named object (switch, port, VM) does not exist."""


class ConflictError(PyvswitchError):
    """The request conflicts with existing state (duplicate name, port in use)."""
