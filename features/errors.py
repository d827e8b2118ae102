"""Errors of the feature definitions."""

from __future__ import annotations

from sentinel.errors import SentinelError


class FeatureError(SentinelError):
    """Features cannot be computed from this input; the message names the column or field."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message if field is None else f"{message} (field={field})")
        self.field = field
