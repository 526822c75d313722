"""How a request is refused before anything is committed: the errors the candidate builders raise.

Every refusal names the request field it is about, so that the API can answer ``{"errors": [{"field", "message"}]}``
(``daemon/api``): NotFound (404) and Conflict (409) carry the field; ``build`` turns pydantic's errors on a
request-made object into a ConfigError (400) with the paths of the request.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from pyvswitch.config.validate import problems_from_validation_error
from pyvswitch.errors import ConfigError, ConflictError, NotFoundError

M = TypeVar("M", bound=BaseModel)


class NotFound(NotFoundError):
    """A named object does not exist; ``field`` names the request field that named it."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


class Conflict(ConflictError):
    """The request conflicts with existing state; ``field`` names the request field concerned."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def build(model: type[M], data: Mapping[str, Any], prefix: str = "") -> M:
    """Validate ``data`` as ``model``; a failure is a ConfigError with paths under ``prefix``."""
    try:
        return model.model_validate(dict(data))
    except ValidationError as exc:
        raise ConfigError(problems_from_validation_error(exc, prefix)) from exc
