"""Finding installed extensions: the entry-point group ``pyvswitch.extensions`` (ours and third parties').

Discovery happens once per process and when asked (``refresh``); a broken entry point (import error, wrong
type, incompatible API major version) is reported with its reason and skipped, so one bad package cannot keep
the daemon from starting.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from importlib.metadata import entry_points

from pyvswitch.ext.api import API_VERSION, ENTRY_POINT_GROUP, Extension, ExtensionKind

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Installed:
    """An extension class found installed, or the reason it could not be used."""

    name: str
    cls: type[Extension] | None
    source: str  # "module:attr" of the entry point
    distribution: str
    problem: str | None = None

    @property
    def kind(self) -> ExtensionKind | None:
        return self.cls.kind if self.cls is not None else None

    def describe(self) -> dict[str, object]:
        c = self.cls
        return {
            "name": self.name,
            "kind": None if c is None else c.kind.value,
            "api_version": None if c is None else c.api_version,
            "description": "" if c is None else c.description,
            "on_error": None if c is None else c.on_error.value,
            "enabled_by_default": False if c is None else c.enabled_by_default,
            "source": self.source,
            "distribution": self.distribution,
            "problem": self.problem,
        }


def check_class(name: str, obj: object) -> str | None:
    """Why ``obj`` cannot be an extension named ``name``, or None."""
    if not isinstance(obj, type) or not issubclass(obj, Extension):
        return "not a subclass of pyvswitch.ext.api.Extension"
    kind = getattr(obj, "kind", None)
    if not isinstance(kind, ExtensionKind):
        return "has no kind (derive from CaptureExtension, FilterExtension or ForwardingExtension)"
    if obj.name and obj.name != name:
        return f"class says its name is {obj.name!r}, entry point says {name!r}"
    major = str(obj.api_version).split(".")[0]
    if major != API_VERSION.split(".")[0]:
        return f"written for extension API {obj.api_version}, this is {API_VERSION}"
    return None


def discover() -> dict[str, Installed]:
    """Every extension registered in the entry-point group, by name (first registration of a name wins)."""
    found: dict[str, Installed] = {}
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        dist = ep.dist.name if ep.dist is not None else "?"
        if ep.name in found:
            log.warning(
                "extension %r registered twice (%s); keeping %s", ep.name, dist, found[ep.name].distribution
            )
            continue
        try:
            obj = ep.load()
        except Exception as exc:  # a third party's import error must not stop the daemon
            found[ep.name] = Installed(ep.name, None, ep.value, dist, f"cannot load: {exc!r}")
            log.warning("extension %r: cannot load %s: %r", ep.name, ep.value, exc)
            continue
        problem = check_class(ep.name, obj)
        if problem is not None:
            log.warning("extension %r (%s): %s", ep.name, ep.value, problem)
            found[ep.name] = Installed(ep.name, None, ep.value, dist, problem)
            continue
        assert isinstance(obj, type) and issubclass(obj, Extension)
        found[ep.name] = Installed(ep.name, obj, ep.value, dist)
    return found


class Registry:
    """The installed extensions of this process; tests give classes directly instead of entry points."""

    def __init__(self, installed: dict[str, Installed] | None = None) -> None:
        self._installed = installed if installed is not None else discover()

    @classmethod
    def of(cls, *classes: type[Extension]) -> Registry:
        return cls(
            {c.name: Installed(c.name, c, f"{c.__module__}:{c.__qualname__}", "test") for c in classes}
        )

    def refresh(self) -> None:
        self._installed = discover()

    def get(self, name: str) -> Installed | None:
        return self._installed.get(name)

    def usable(self) -> list[Installed]:
        """Installed extensions that loaded, in a stable order (by name)."""
        return [i for _, i in sorted(self._installed.items()) if i.cls is not None]

    def all(self) -> list[Installed]:
        return [i for _, i in sorted(self._installed.items())]
