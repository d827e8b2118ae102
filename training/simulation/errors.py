"""Errors of the transaction simulator."""

from __future__ import annotations

from sentinel.errors import SentinelError


class SimulationError(SentinelError):
    """The simulator was configured with values it cannot honour."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message if field is None else f"{message} (field={field})")
        self.field = field
