"""The port to the label store's database: one interface, a SQLite and a PostgreSQL adapter.

The stores (:mod:`lifecycle.labelstore`, :mod:`lifecycle.state_store`, :mod:`lifecycle.leadership`)
write their SQL once, with ``?`` for parameters. What differs between the two databases is
here and in the adapters only:

- placeholders: ``?`` in the stores' SQL, ``%s`` for psycopg (the PostgreSQL adapter
  translates; the stores' SQL has no ``?`` or ``%`` of its own);
- column types, through the fields of :meth:`Database.sql` in DDL: ``{serial}`` (an
  autoincrement key), ``{real}``, ``{blob}``, ``{time}`` (ISO text, compared byte by byte),
  ``{rowid}`` and ``{rowid_column}`` (the insertion order of a table keyed otherwise);
- upserts: :meth:`Database.upsert` and :meth:`Database.insert_new`;
- the write lock: ``transaction(exclusive=True)`` is ``BEGIN IMMEDIATE`` on SQLite, and
  ``BEGIN`` + ``SELECT ... FOR UPDATE`` of a lock row on PostgreSQL;
- the clock: :attr:`Database.now`, the database's time in epoch seconds as an SQL expression
  (a lease compared on the database's clock is immune to skew between hosts);
- errors: a driver's error leaves as :class:`~sentinel.errors.StoreUnavailableError` (cannot
  reach or use the database) or :class:`~sentinel.errors.StoreDataError` (a row refused), with
  the location redacted.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, ClassVar

from sentinel.errors import StoreError
from sentinel.infra.database.location import StoreLocation
from sentinel.redact import MASK, redact_text

logger = logging.getLogger(__name__)
Params = Sequence[Any]


@dataclass(frozen=True)
class Result:
    """The rows of a query and their column names."""

    columns: tuple[str, ...]
    rows: list[tuple[Any, ...]]

    def first(self) -> tuple[Any, ...] | None:
        return self.rows[0] if self.rows else None

    def scalar(self) -> Any:
        """The first column of the first row (``None`` without rows)."""
        return self.rows[0][0] if self.rows else None


def marks(columns: Sequence[str]) -> str:
    """One ``?`` per column, for a ``VALUES`` list."""
    return ", ".join("?" for _ in columns)


class Database(ABC):
    """One connection to the store's database, in autocommit outside :meth:`transaction`.
    Safe to share between threads (a lease's heartbeat) when calls do not interleave inside a
    transaction; the stores serialise their own use."""

    backend: ClassVar[str]
    types: ClassVar[Mapping[str, str]]  # the DDL fields of :meth:`sql`
    now: ClassVar[str]  # the database's clock, epoch seconds, as an SQL expression

    def __init__(self, location: StoreLocation) -> None:
        self.location = location
        self._depth = 0

    # -- what an adapter provides -----------------------------------------------------------

    @abstractmethod
    def _query(self, sql: str, params: Params) -> Result: ...

    @abstractmethod
    def _execute(self, sql: str, params: Params) -> int:
        """Run one statement; the rows changed."""

    @abstractmethod
    def _execute_many(self, sql: str, rows: list[Params]) -> int:
        """Run one DML statement once per row; the rows changed."""

    @abstractmethod
    def _begin(self, exclusive: bool) -> None: ...

    @abstractmethod
    def _end(self, commit: bool) -> None: ...

    @abstractmethod
    def _translate(self, exc: Exception) -> StoreError | None:
        """The store error for a driver's error, or None for one that is not the driver's."""

    @abstractmethod
    def columns(self, table: str) -> set[str]:
        """The column names of ``table`` (empty when it does not exist)."""

    @abstractmethod
    def upsert(self, table: str, columns: Sequence[str], key: str,
               values: str | None = None) -> str:
        """``INSERT`` of ``columns`` that replaces the row with the same ``key``; ``values``
        is the ``VALUES`` list (default one ``?`` per column)."""

    @abstractmethod
    def insert_new(self, table: str, columns: Sequence[str], key: str) -> str:
        """``INSERT`` of ``columns`` that leaves an existing row with the same ``key``."""

    @abstractmethod
    def close(self) -> None: ...

    # -- the interface ----------------------------------------------------------------------

    def sql(self, template: str) -> str:
        """``template`` with this database's DDL fields and ``{now}`` filled in (see the
        module)."""
        return template.format_map({**self.types, "now": self.now})

    def query(self, sql: str, params: Params = ()) -> Result:
        with self._errors():
            return self._query(sql, params)

    def execute(self, sql: str, params: Params = ()) -> int:
        """Run one statement (atomic on its own); the rows it changed."""
        with self._errors():
            return self._execute(sql, params)

    def execute_many(self, sql: str, rows: Iterable[Params]) -> int:
        """Run a DML statement for each row, all or none of them (inside the open transaction, or a
        transaction of their own); the rows changed."""
        batch = list(rows)
        if not batch:
            return 0
        with self.transaction(), self._errors():
            return self._execute_many(sql, batch)

    def create(self, ddl: str) -> None:
        """Run a schema script (``;``-separated, with the fields of :meth:`sql`)."""
        with self.transaction(exclusive=True):
            for statement in self.sql(ddl).split(";"):
                if statement.strip():
                    self.execute(statement)

    @property
    def in_transaction(self) -> bool:
        return self._depth > 0

    @contextmanager
    def transaction(self, exclusive: bool = False) -> Iterator[None]:
        """All writes inside commit together or not at all; nested calls join the outer one.
        ``exclusive`` takes the store's write lock at the start (one writer at a time)."""
        if self._depth:
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
            return
        with self._errors():
            self._begin(exclusive)
        self._depth = 1
        try:
            yield
            self._depth = 0
            with self._errors():
                self._end(commit=True)
        except BaseException:
            self._depth = 0
            self._end_quietly()  # also after a failed commit, which may leave it open
            raise

    def _end_quietly(self) -> None:
        """Roll back after an error; a second error (a connection gone) is only logged, so
        the first one is what the caller sees."""
        try:
            self._end(commit=False)
        except Exception as exc:
            logger.warning("label store %s: rollback failed: %s", self.location,
                           redact_text(str(exc)))

    @contextmanager
    def _errors(self) -> Iterator[None]:
        try:
            yield
        except StoreError:
            raise
        except Exception as exc:
            error = self._translate(exc)
            if error is None:
                raise
            raise error from exc

    def _describe(self, exc: Exception) -> str:
        """A driver's message on one line, without credentials."""
        text = " ".join(line.strip() for line in str(exc).splitlines() if line.strip())
        for secret in sorted(self.location.secrets(), key=len, reverse=True):
            text = text.replace(secret, MASK)
        return redact_text(text or type(exc).__name__)

    def __enter__(self) -> Database:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
