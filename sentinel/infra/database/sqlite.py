"""The SQLite adapter of the store port: a file beside the retrainer, the default.

One writer at a time: an exclusive transaction is ``BEGIN IMMEDIATE``; the file is in WAL mode
so readers do not wait for it. Upserts are SQLite's ``INSERT OR REPLACE`` / ``OR IGNORE``.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Sequence

from sentinel.errors import StoreDataError, StoreError, StoreUnavailableError
from sentinel.infra.database.base import Database, Params, Result, marks
from sentinel.infra.database.location import StoreLocation

# errors about a row's values; any other one is about the file (locked, full, not a database)
_DATA_ERRORS = (sqlite3.IntegrityError, sqlite3.DataError, sqlite3.InterfaceError,
                sqlite3.ProgrammingError)


class SQLiteDatabase(Database):
    """The SQLite file at ``location.path`` (created with its directory); ``timeout_s`` is how
    long a statement waits for another connection's write lock."""

    backend = "sqlite"
    types = {"serial": "INTEGER PRIMARY KEY AUTOINCREMENT", "real": "REAL", "blob": "BLOB",
             "time": "TEXT", "rowid": "rowid", "rowid_column": ""}
    now = "((julianday('now') - 2440587.5) * 86400.0)"

    def __init__(self, location: StoreLocation, timeout_s: float = 30.0) -> None:
        super().__init__(location)
        path = location.path
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreUnavailableError(
                f"cannot create the label store's directory {path.parent}: {exc}") from exc
        with self._errors():
            self._db = sqlite3.connect(path, timeout=timeout_s, isolation_level=None,
                                       check_same_thread=False)
            self._use_wal(timeout_s)

    def _use_wal(self, timeout_s: float) -> None:
        """Switch a new store to WAL (it stays so). The switch needs the file to itself and
        SQLite answers "database is locked" at once, without its busy timeout, while another
        connection opens the same new file: retried until ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                if str(self._db.execute("PRAGMA journal_mode").fetchone()[0]).lower() != "wal":
                    self._db.execute("PRAGMA journal_mode=WAL")
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(0.02)

    def _query(self, sql: str, params: Params) -> Result:
        cursor = self._db.execute(sql, params)
        columns = tuple(d[0] for d in cursor.description or ())
        return Result(columns, cursor.fetchall())

    def _execute(self, sql: str, params: Params) -> int:
        return self._db.execute(sql, params).rowcount

    def _execute_many(self, sql: str, rows: list[Params]) -> int:
        return self._db.executemany(sql, rows).rowcount

    def _begin(self, exclusive: bool) -> None:
        self._db.execute("BEGIN IMMEDIATE" if exclusive else "BEGIN")

    def _end(self, commit: bool) -> None:
        if commit:
            self._db.execute("COMMIT")
        elif self._db.in_transaction:
            self._db.execute("ROLLBACK")

    def _translate(self, exc: Exception) -> StoreError | None:
        if isinstance(exc, _DATA_ERRORS):
            return StoreDataError(f"label store {self.location} refused a row: "
                                  f"{self._describe(exc)}")
        if isinstance(exc, sqlite3.Error):
            return StoreUnavailableError(f"label store {self.location} cannot be used: "
                                         f"{self._describe(exc)}")
        return None

    def columns(self, table: str) -> set[str]:
        return {row[1] for row in self.query(f"PRAGMA table_info({table})").rows}

    def upsert(self, table: str, columns: Sequence[str], key: str,
               values: str | None = None) -> str:
        return (f"INSERT OR REPLACE INTO {table} ({', '.join(columns)}) "  # noqa: S608
                f"VALUES ({values or marks(columns)})")

    def insert_new(self, table: str, columns: Sequence[str], key: str) -> str:
        return (f"INSERT OR IGNORE INTO {table} ({', '.join(columns)}) "  # noqa: S608
                f"VALUES ({marks(columns)})")

    def close(self) -> None:
        self._db.close()

