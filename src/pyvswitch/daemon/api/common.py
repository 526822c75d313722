"""What the API's routers share: the strict request base and how a PATCH body says what it changes."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from pydantic import BaseModel, ConfigDict

from pyvswitch.errors import ConfigError


class Request_(BaseModel):
    """A request body: unknown fields are refused (a typo must not be silently ignored)."""

    model_config = ConfigDict(extra="forbid")


def patch_changes(body: BaseModel, not_null: Iterable[str] | None = None) -> dict[str, Any]:
    """The fields a PATCH body sets. null means "unset" only for optional settings: the fields in
    ``not_null`` (every field, when None) refuse it, each error naming its field."""
    changes = body.model_dump(exclude_unset=True)
    keys = changes.keys() if not_null is None else [k for k in not_null if k in changes]
    nulls = [(k, "may not be null") for k in keys if changes[k] is None]
    if nulls:
        raise ConfigError(nulls)
    return changes
