"""The configuration keeps its objects in lists keyed by name (switches, VMs, ports, teams, QoS policies); these
are what every resource does with such a list: find an object, add one, replace one.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from typing import Protocol, TypeVar

from pyvswitch.config.schema import HostConfig
from pyvswitch.daemon.service.commit import Change
from pyvswitch.daemon.service.errors import Conflict, NotFound


class Named(Protocol):
    @property
    def name(self) -> str: ...


N = TypeVar("N", bound=Named)


def find(items: Sequence[N], name: str, what: str, field: str = "name") -> N:
    """The item called ``name``, or NotFound ("no switch 'x'; did you mean 'ext'?") naming the request's
    ``field``."""
    for item in items:
        if item.name == name:
            return item
    close = difflib.get_close_matches(name, [i.name for i in items], n=3, cutoff=0.6)
    hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
    raise NotFound(field, f"no {what} {name!r}{hint}")


def appended(cfg: HostConfig, collection: str, item: Named, what: str) -> Change:
    """``cfg`` with ``item`` added to ``collection``, or Conflict if one of its name exists."""
    items = getattr(cfg, collection)
    if any(i.name == item.name for i in items):
        raise Conflict("name", f"{what} {item.name!r} already exists")
    return Change(
        cfg.model_copy(update={collection: [*items, item]}),
        f"add {what} {item.name}",
        focus=(collection, item.name),
    )


def replaced(
    cfg: HostConfig, collection: str, new: Named, summary: str, fields: Mapping[str, str] | None = None
) -> Change:
    """``cfg`` with the item of ``new``'s name in ``collection`` replaced by ``new``; problems with it name the
    request's fields."""
    items = [new if i.name == new.name else i for i in getattr(cfg, collection)]
    return Change(
        cfg.model_copy(update={collection: items}), summary, focus=(collection, new.name), fields=fields
    )
