"""Errors raised when an event does not match its contract."""

from __future__ import annotations

from sentinel.errors import SentinelError


class SchemaValidationError(SentinelError):
    """Invalid event; ``problems`` lists (field, reason) pairs, the message names them."""

    def __init__(self, event_type: str, problems: list[tuple[str, str]]) -> None:
        self.event_type = event_type
        self.problems = problems
        detail = "; ".join(f"{field}: {reason}" for field, reason in problems)
        super().__init__(f"invalid {event_type}: {detail}")

    @property
    def fields(self) -> list[str]:
        return [field for field, _ in self.problems]
