"""The root of Sentinel's exceptions and the errors of the CLI and local infrastructure.

Each package has its own ``errors.py`` with subclasses of :class:`SentinelError`. Third-party
errors are translated at the boundary (``raise SentinelKafkaError(...) from exc``), and the CLI
prints ``str(error)`` as one line.
"""

from __future__ import annotations


class SentinelError(Exception):
    """Root of every error Sentinel raises on purpose. Its message says what to do."""


class ConfigurationError(SentinelError):
    """A setting or a command-line argument is invalid."""


class SentinelKafkaError(SentinelError):
    """Talking to Kafka failed."""

    def __init__(self, message: str, *, topic: str | None = None) -> None:
        super().__init__(message if topic is None else f"{message} (topic={topic})")
        self.topic = topic


class KafkaRejectedError(SentinelKafkaError):
    """The cluster refused the client's credentials or certificates: retrying will not help."""


class BrokerError(SentinelError):
    """The embedded broker could not be fetched, started, reached or stopped."""


class PortInUseError(BrokerError):
    """Another process holds the port the embedded broker wants."""

    def __init__(self, host: str, port: int) -> None:
        super().__init__(
            f"port {host}:{port} is already in use by another process; stop it, or set "
            "SENTINEL_BROKER__PORT to a free port, or SENTINEL_KAFKA__BOOTSTRAP_SERVERS to use "
            "that cluster"
        )
        self.host, self.port = host, port


class StoreError(SentinelError):
    """The label store's database (SQLite or PostgreSQL) failed; the message names it by its
    redacted location."""


class StoreUnavailableError(StoreError):
    """The database cannot be reached or opened (refused, timed out, bad credentials, no such
    database, disk full): retry later or fix ``SENTINEL_LABEL_STORE__URI``."""


class StoreDataError(StoreError):
    """The database refused a row (a value it cannot hold, a broken constraint): that input is
    bad, the store is fine."""
