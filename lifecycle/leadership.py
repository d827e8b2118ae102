"""One active retrainer: a lease row in the label store's database.

The retrainer that holds the lease consumes and acts; another one started with the same
settings (same store, same lease name) stands by and polls the row. The holder renews the
lease from a heartbeat thread every third of its length; when it dies, the lease runs out and
a standby takes it over within ``ttl_s`` plus one poll (at most 1 s). A holder that failed
to renew (its process stalled past the lease) sees :meth:`Lease.held` turn false and stops
acting before the next registry change.
"""

from __future__ import annotations

import logging
import os
import socket
import sqlite3
import threading
import time
import uuid
from pathlib import Path

logger = logging.getLogger(__name__)

_SCHEMA = ("CREATE TABLE IF NOT EXISTS lifecycle_lease (name TEXT PRIMARY KEY, holder TEXT, "
           "expires REAL, term INTEGER)")


class Lease:
    """The lease ``name`` in the SQLite file at ``path``, for ``ttl_s`` seconds at a time."""

    def __init__(self, path: Path, name: str, ttl_s: float, holder: str | None = None) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.name, self.ttl_s = name, ttl_s
        self.holder = holder or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self._db = sqlite3.connect(path, timeout=10, isolation_level=None,
                                   check_same_thread=False)
        self._db.execute(_SCHEMA)
        self._lock = threading.Lock()
        self._expires = 0.0  # wall time until which this holder may act
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.term = 0

    def acquire(self) -> bool:
        """Take or renew the lease if it is free, expired or ours; whether we hold it."""
        with self._lock:
            now = time.time()
            try:
                self._db.execute("BEGIN IMMEDIATE")
                row = self._db.execute("SELECT holder, expires, term FROM lifecycle_lease "
                                       "WHERE name = ?", (self.name,)).fetchone()
                if row is not None and row[0] != self.holder and row[1] > now:
                    self._db.execute("COMMIT")
                    self._expires = 0.0
                    return False
                term = (row[2] if row else 0) + (0 if row and row[0] == self.holder else 1)
                self._db.execute("INSERT OR REPLACE INTO lifecycle_lease VALUES (?, ?, ?, ?)",
                                 (self.name, self.holder, now + self.ttl_s, term))
                self._db.execute("COMMIT")
            except sqlite3.Error as exc:  # busy or locked: not renewed this time
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                logger.warning("lease %s not renewed: %s", self.name, exc)
                return self.held()
            self._expires, self.term = now + self.ttl_s, term
            return True

    def held(self) -> bool:
        return time.time() < self._expires

    def holder_of(self) -> str | None:
        """Who holds the lease now (``None`` when free or expired)."""
        with self._lock:
            row = self._db.execute("SELECT holder, expires FROM lifecycle_lease WHERE name = ?",
                                   (self.name,)).fetchone()
        return row[0] if row and row[1] > time.time() else None

    def keep(self) -> None:
        """Renew from a heartbeat thread until :meth:`release`."""
        if self._thread is not None and self._thread.is_alive():
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._beat, name=f"lease-{self.name}",
                                        daemon=True)
        self._thread.start()

    def _beat(self) -> None:
        while not self._stop.wait(self.ttl_s / 3):
            if not self.acquire():
                logger.warning("lease %s lost to another retrainer", self.name)
                return

    def release(self) -> None:
        """Stop renewing and free the lease if we hold it (a standby takes over at once; the
        term, counted up at each change of holder, is kept)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(self.ttl_s)
        with self._lock:
            self._db.execute("UPDATE lifecycle_lease SET expires = 0 WHERE name = ? "
                             "AND holder = ?", (self.name, self.holder))  # the term stays
            self._expires = 0.0

    def close(self) -> None:
        self.release()
        self._db.close()
