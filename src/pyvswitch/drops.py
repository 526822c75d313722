"""Drop reasons: every place in the data path that drops a frame says why with a member of a ``DropReason``
enum (VPP's error counters), each with the sentence ``show drops`` prints beside it.

A leaf module (any layer may import it). ``DropReason`` members are strings, so counters keyed by them stay plain
``Counter[str]`` and JSON; ``descriptions()`` gathers every reason the process has defined, for the API.
"""

from __future__ import annotations

from enum import StrEnum


class DropReason(StrEnum):
    """Base of the per-element enums: ``NAME = "kebab-case-value", "what happened to the frame"``."""

    description: str

    def __new__(cls, value: str, description: str = "") -> DropReason:
        member = str.__new__(cls, value)
        member._value_ = value
        member.description = description
        return member


def descriptions() -> dict[str, str]:
    """Every drop reason defined by the modules loaded so far, with its description."""
    out: dict[str, str] = {}
    todo = list(DropReason.__subclasses__())
    while todo:
        cls = todo.pop()
        todo += cls.__subclasses__()
        out.update({m.value: m.description for m in cls})
    return out
