"""Finding installed extensions: the entry-point group ``pyvswitch.extensions`` (ours and third parties').

Discovery happens once per process and when asked (``refresh``); a broken entry point (import error, wrong
type, incompatible API major version) is reported with its reason and skipped, so one bad package cannot keep
the daemon from starting.

Names (issue 11): a package must not be able to replace what ships with pyvswitch, whatever order the entry
points come in. Built-ins are the entry points our own distribution registers for a module under
``pyvswitch.builtin``; their names, and every name starting ``pyvswitch-`` (kept for future built-ins), are
reserved: a third party registering one is refused and logged. Third-party entry points are then taken in a fixed
order (distribution, name, target), so when two of them claim one name the same one is kept on every host and
start, and the other is refused and logged. Refusals are kept on the entry that holds the name (``refused``) so
``extension list`` and the REST API show them. ``enabled_by_default`` is honoured for built-ins only: a third-party
extension stays disabled until the operator enables it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, replace
from importlib.metadata import EntryPoint, entry_points

from pyvswitch.ext.api import API_VERSION, ENTRY_POINT_GROUP, Extension, ExtensionKind

log = logging.getLogger(__name__)

BUILTIN_DISTRIBUTION = "pyvswitch"
# Where built-in extension classes live (builtin/); spelled in parts so that it is not read as an import.
BUILTIN_PACKAGE = ".".join(("pyvswitch", "builtin"))
RESERVED_PREFIX = "pyvswitch-"


@dataclass(frozen=True, slots=True)
class Installed:
    """An extension class found installed, or the reason it could not be used."""

    name: str
    cls: type[Extension] | None
    source: str  # "module:attr" of the entry point
    distribution: str
    problem: str | None = None
    #: Shipped with pyvswitch (only built-ins may be enabled by default; their names are reserved).
    builtin: bool = False
    #: Other registrations of this name that were refused, each with where it came from and why.
    refused: tuple[str, ...] = ()

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
            "builtin": self.builtin,
            "refused": list(self.refused),
        }

    @property
    def on_by_default(self) -> bool:
        """Whether a switch that does not mention this extension runs it: built-ins that ask to, nothing else."""
        return self.builtin and self.cls is not None and self.cls.enabled_by_default


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


def is_builtin(ep: EntryPoint) -> bool:
    """An entry point of our own distribution that names a class in ``pyvswitch.builtin``."""
    dist = ep.dist.name if ep.dist is not None else ""
    return dist == BUILTIN_DISTRIBUTION and (
        ep.module == BUILTIN_PACKAGE or ep.module.startswith(BUILTIN_PACKAGE + ".")
    )


def _load(ep: EntryPoint, dist: str, builtin: bool) -> Installed:
    try:
        obj = ep.load()
    except Exception as exc:  # a third party's import error must not stop the daemon
        log.warning("extension %r: cannot load %s: %r", ep.name, ep.value, exc)
        return Installed(ep.name, None, ep.value, dist, f"cannot load: {exc!r}", builtin)
    problem = check_class(ep.name, obj)
    if problem is not None:
        log.warning("extension %r (%s): %s", ep.name, ep.value, problem)
        return Installed(ep.name, None, ep.value, dist, problem, builtin)
    assert isinstance(obj, type) and issubclass(obj, Extension)
    return Installed(ep.name, obj, ep.value, dist, None, builtin)


def discover(eps: Iterable[EntryPoint] | None = None) -> dict[str, Installed]:
    """Every extension registered in the entry-point group (or ``eps``), by name: built-ins first and always,
    then third parties in a fixed order; reserved and duplicate names are refused (see the module doc)."""
    listed = list(entry_points(group=ENTRY_POINT_GROUP) if eps is None else eps)
    builtins = [ep for ep in listed if is_builtin(ep)]
    others = sorted(
        (ep for ep in listed if not is_builtin(ep)),
        key=lambda ep: (ep.dist.name if ep.dist is not None else "", ep.name, ep.value),
    )
    found: dict[str, Installed] = {}
    for ep in builtins:
        if ep.name not in found:  # our own metadata twice (an editable and a regular install): same class
            found[ep.name] = _load(ep, BUILTIN_DISTRIBUTION, builtin=True)
    for ep in others:
        dist = ep.dist.name if ep.dist is not None else "?"
        held = found.get(ep.name)
        if held is not None and held.builtin:
            why = f"name {ep.name!r} is reserved for the built-in extension"
        elif ep.name.startswith(RESERVED_PREFIX):
            why = f"names starting {RESERVED_PREFIX!r} are reserved for built-in extensions"
        elif held is not None:
            why = f"name {ep.name!r} is already registered by {held.distribution} ({held.source})"
        else:
            # Loaded only once the name is known to be free: a refused package's module is never imported.
            found[ep.name] = _load(ep, dist, builtin=False)
            continue
        log.warning("extension %r from %s (%s) refused: %s", ep.name, dist, ep.value, why)
        entry = f"{dist} ({ep.value}): {why}"
        if held is not None:
            found[ep.name] = replace(held, refused=(*held.refused, entry))
        else:
            found[ep.name] = Installed(ep.name, None, ep.value, dist, f"refused: {why}")
    return found


class Registry:
    """The installed extensions of this process; tests give classes directly instead of entry points."""

    def __init__(self, installed: dict[str, Installed] | None = None) -> None:
        self._installed = installed if installed is not None else discover()

    @classmethod
    def of(cls, *classes: type[Extension], builtin: bool = True) -> Registry:
        """A registry of ``classes`` given in code: trusted as built-ins unless ``builtin=False``."""
        return cls(
            {
                c.name: Installed(c.name, c, f"{c.__module__}:{c.__qualname__}", "test", builtin=builtin)
                for c in classes
            }
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
