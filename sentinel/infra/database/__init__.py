"""The label store's database: a port (:class:`~sentinel.infra.database.base.Database`) and
its SQLite and PostgreSQL adapters, chosen by the store's URI
(:mod:`sentinel.infra.database.location`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sentinel.infra.database.location import StoreLocation, as_location, parse_store_uri

if TYPE_CHECKING:
    from sentinel.infra.database.base import Database

__all__ = ["StoreLocation", "as_location", "open_database", "parse_store_uri"]


def open_database(location: StoreLocation, timeout_s: float = 30.0) -> Database:
    """A connection to the store at ``location``; ``timeout_s`` bounds a wait for the write
    lock. Raises :class:`~sentinel.errors.StoreUnavailableError` (one line, no credentials)
    when it cannot be opened."""
    if location.backend == "postgresql":
        from sentinel.infra.database.postgres import PostgresDatabase  # psycopg at the edge

        return PostgresDatabase(location, timeout_s)
    from sentinel.infra.database.sqlite import SQLiteDatabase

    return SQLiteDatabase(location, timeout_s)
