"""The dashboard's errors: a source it cannot read, shown on the page as one line."""

from __future__ import annotations

from sentinel.errors import SentinelError


class SourceUnavailable(SentinelError):
    """A data source of the dashboard (Prometheus, Kafka, the registry) cannot be read."""

    def __init__(self, source: str, detail: str) -> None:
        super().__init__(f"{source} unavailable: {detail}")
        self.source = source
