"""The base of every configuration model."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Model(BaseModel):
    """Strict about unknown fields (a typo is an error naming the field) and immutable (a configuration is a value:
    the service builds a new candidate, never edits the running one)."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_enum_values=False)
