"""One active retrainer: a lease row in the label store's database.

The retrainer that holds the lease consumes and acts; another one started with the same
settings (same store, same lease name) stands by and polls the row. The holder renews the
lease from a heartbeat thread every third of its length; when it dies, the lease runs out and
a standby takes it over within ``ttl_s`` plus one poll (at most 1 s). A holder that failed
to renew (its process stalled past the lease) sees :meth:`Lease.held` turn false and stops
acting before the next registry change.

Taking or renewing the lease is one conditional upsert (``INSERT ... ON CONFLICT DO UPDATE
... WHERE`` the row is ours or has run out, ``RETURNING`` the term): atomic on SQLite and on
PostgreSQL, so two retrainers never both get it. Expiry is compared on the database's clock,
so retrainers on hosts whose clocks disagree share a PostgreSQL lease safely; a holder counts
its own deadline on its monotonic clock from before it asked, so it stops believing it leads
before the database lets anyone else in.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from pathlib import Path

from sentinel.errors import StoreError
from sentinel.infra.database import StoreLocation, as_location, open_database

logger = logging.getLogger(__name__)

_SCHEMA = ("CREATE TABLE IF NOT EXISTS lifecycle_lease (name TEXT PRIMARY KEY, holder TEXT, "
           "expires {real}, term INTEGER)")
# take the lease if it is free, run out or ours; the term counts changes of holder
_CLAIM = """INSERT INTO lifecycle_lease (name, holder, expires, term) VALUES (?, ?, {now} + ?, 1)
ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires = excluded.expires,
  term = lifecycle_lease.term
         + CASE WHEN lifecycle_lease.holder = excluded.holder THEN 0 ELSE 1 END
WHERE lifecycle_lease.holder = excluded.holder OR lifecycle_lease.expires <= {now}
RETURNING term"""
_HOLDER = "SELECT holder FROM lifecycle_lease WHERE name = ? AND expires > {now}"


class Lease:
    """The lease ``name`` in the store at ``location`` (the label store's database), for
    ``ttl_s`` seconds at a time."""

    def __init__(self, location: StoreLocation | Path | str, name: str, ttl_s: float,
                 holder: str | None = None) -> None:
        self.name, self.ttl_s = name, ttl_s
        self.holder = holder or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self._db = open_database(as_location(location), timeout_s=10.0)
        self._db.create(_SCHEMA)
        self._claim, self._holder = self._db.sql(_CLAIM), self._db.sql(_HOLDER)
        self._lock = threading.Lock()
        self._deadline = 0.0  # time.monotonic() until which this holder may act
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.term = 0

    def acquire(self) -> bool:
        """Take or renew the lease if it is free, expired or ours; whether we hold it."""
        with self._lock:
            asked = time.monotonic()
            try:
                term = self._db.query(self._claim, (self.name, self.holder, self.ttl_s)
                                      ).scalar()
            except StoreError as exc:  # busy, locked or unreachable: not renewed this time
                logger.warning("lease %s not renewed: %s", self.name, exc)
                return self.held()
            if term is None:  # another holder's, and not run out
                self._deadline = 0.0
                return False
            self._deadline, self.term = asked + self.ttl_s, int(term)
            return True

    def held(self) -> bool:
        return time.monotonic() < self._deadline

    def holder_of(self) -> str | None:
        """Who holds the lease now (``None`` when free or expired)."""
        with self._lock:
            holder = self._db.query(self._holder, (self.name,)).scalar()
        return str(holder) if holder is not None else None

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
            self._deadline = 0.0
            try:
                self._db.execute("UPDATE lifecycle_lease SET expires = 0 WHERE name = ? "
                                 "AND holder = ?", (self.name, self.holder))  # the term stays
            except StoreError as exc:  # it runs out by itself
                logger.warning("lease %s not released: %s", self.name, exc)

    def close(self) -> None:
        self.release()
        self._db.close()
