"""The retrainer's durable lifecycle state, in the label store's SQLite database.

What must survive a restart lives here, each change in one transaction: the guardrails and
follow-ups (``lifecycle_state``), the drift alerts read (``lifecycle_alerts``: an alert is
queued before its offset is committed, and a redelivered id is ignored), the open jobs
(``lifecycle_jobs``: a retrain, promotion or rollback is recorded before it touches the
registry and closed when done, so a crash leaves an open job to complete), the ModelEvent
outbox (``lifecycle_outbox``: an event is stored before it is sent and keyed by what it
says, so a retry publishes it once) and the decision history (``lifecycle_decisions``).
"""

from __future__ import annotations

import json
import sqlite3
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from schemas import decode, encode
from schemas.events import DriftAlert, ModelEvent

_SCHEMA = """
CREATE TABLE IF NOT EXISTS lifecycle_state (key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE IF NOT EXISTS lifecycle_alerts (alert_id TEXT PRIMARY KEY, payload BLOB,
  status TEXT, decision TEXT, at TEXT);
CREATE TABLE IF NOT EXISTS lifecycle_jobs (seq INTEGER PRIMARY KEY AUTOINCREMENT,
  job_id TEXT UNIQUE, kind TEXT, payload TEXT, status TEXT, created TEXT, updated TEXT);
CREATE TABLE IF NOT EXISTS lifecycle_outbox (seq INTEGER PRIMARY KEY AUTOINCREMENT,
  key TEXT UNIQUE, event BLOB, sent INTEGER DEFAULT 0);
CREATE TABLE IF NOT EXISTS lifecycle_decisions (seq INTEGER PRIMARY KEY AUTOINCREMENT,
  at TEXT, kind TEXT, subject TEXT, detail TEXT);
"""
OPEN = "open"


@dataclass(frozen=True)
class Job:
    """A registry change recorded before it is made: ``kind`` retrain, promote or rollback."""

    job_id: str
    kind: str
    payload: dict[str, Any]


def event_key(event: ModelEvent) -> str:
    """What an event says, as the outbox's key: the same change is published once."""
    if event.action == "rejected":
        return f"rejected:{event.reason}:{event.evidence.get('run_id', event.event_id)}"
    return f"{event.action}:{event.alias}:{event.version}:{event.previous_version}"


def _now() -> str:
    return datetime.now(UTC).isoformat()


class LifecycleStore:
    """The lifecycle tables at ``path`` (the label store's file); one connection, autocommit
    outside :meth:`transaction`."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._db = sqlite3.connect(path, timeout=30, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.executescript(_SCHEMA)
        self._depth = 0

    def close(self) -> None:
        self._db.close()

    @property
    def in_transaction(self) -> bool:
        return self._depth > 0

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """All writes inside commit together or not at all (nested calls join the outer)."""
        if self._depth:
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
            return
        self._db.execute("BEGIN IMMEDIATE")
        self._depth = 1
        try:
            yield
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        else:
            self._db.execute("COMMIT")
        finally:
            self._depth = 0

    # -- state ------------------------------------------------------------------------------

    def load_state(self) -> dict[str, Any]:
        row = self._db.execute("SELECT value FROM lifecycle_state WHERE key = 'retrainer'"
                               ).fetchone()
        return dict(json.loads(row[0])) if row else {}

    def save_state(self, state: dict[str, Any]) -> None:
        self._db.execute("INSERT OR REPLACE INTO lifecycle_state VALUES ('retrainer', ?)",
                         (json.dumps(state),))

    # -- alerts -----------------------------------------------------------------------------

    def enqueue_alerts(self, alerts: list[DriftAlert]) -> int:
        """Queue alerts not seen before; returns how many were new (the rest are redelivered)."""
        before = self._db.total_changes
        with self.transaction():
            self._db.executemany(
                "INSERT OR IGNORE INTO lifecycle_alerts VALUES (?, ?, 'queued', NULL, ?)",
                [(a.alert_id, encode(a), _now()) for a in alerts])
        return self._db.total_changes - before

    def queued_alerts(self) -> list[DriftAlert]:
        rows = self._db.execute("SELECT payload FROM lifecycle_alerts WHERE status = 'queued' "
                                "ORDER BY rowid").fetchall()
        return [decode(DriftAlert, bytes(r[0])) for r in rows]

    def alert_done(self, alert_id: str) -> bool:
        row = self._db.execute("SELECT status FROM lifecycle_alerts WHERE alert_id = ?",
                               (alert_id,)).fetchone()
        return row is not None and row[0] != "queued"

    def mark_alert(self, alert: DriftAlert, decision: str, status: str = "done") -> None:
        self._db.execute("INSERT OR REPLACE INTO lifecycle_alerts VALUES (?, ?, ?, ?, ?)",
                         (alert.alert_id, encode(alert), status, decision, _now()))

    # -- jobs -------------------------------------------------------------------------------

    def add_job(self, kind: str, payload: dict[str, Any]) -> Job:
        job = Job(uuid.uuid4().hex, kind, payload)
        self._db.execute("INSERT INTO lifecycle_jobs (job_id, kind, payload, status, created, "
                         "updated) VALUES (?, ?, ?, ?, ?, ?)",
                         (job.job_id, kind, json.dumps(payload), OPEN, _now(), _now()))
        return job

    def open_jobs(self) -> list[Job]:
        rows = self._db.execute("SELECT job_id, kind, payload FROM lifecycle_jobs "
                                "WHERE status = ? ORDER BY seq", (OPEN,)).fetchall()
        return [Job(r[0], r[1], json.loads(r[2])) for r in rows]

    def finish_job(self, job: Job, status: str) -> None:
        self._db.execute("UPDATE lifecycle_jobs SET status = ?, updated = ? WHERE job_id = ?",
                         (status, _now(), job.job_id))

    def jobs(self) -> list[tuple[str, str, str]]:
        """(kind, status, payload JSON) of every job, oldest first."""
        return [(r[0], r[1], r[2]) for r in self._db.execute(
            "SELECT kind, status, payload FROM lifecycle_jobs ORDER BY seq")]

    # -- the event outbox -------------------------------------------------------------------

    def add_event(self, event: ModelEvent) -> ModelEvent:
        """Store an event to publish (once per :func:`event_key`); its id is derived from
        the key, so a consumer that sees it twice can tell."""
        key = event_key(event)
        event = event.model_copy(update={
            "event_id": uuid.uuid5(uuid.NAMESPACE_URL, f"{event.model_name}/{key}").hex})
        self._db.execute("INSERT OR IGNORE INTO lifecycle_outbox (key, event) VALUES (?, ?)",
                         (key, encode(event)))
        return event

    def has_event(self, event: ModelEvent) -> bool:
        return self._db.execute("SELECT 1 FROM lifecycle_outbox WHERE key = ?",
                                (event_key(event),)).fetchone() is not None

    def unsent_events(self) -> list[tuple[int, ModelEvent]]:
        rows = self._db.execute("SELECT seq, event FROM lifecycle_outbox WHERE sent = 0 "
                                "ORDER BY seq").fetchall()
        return [(r[0], decode(ModelEvent, bytes(r[1]))) for r in rows]

    def mark_sent(self, seq: int) -> None:
        self._db.execute("UPDATE lifecycle_outbox SET sent = 1 WHERE seq = ?", (seq,))

    # -- decision history -------------------------------------------------------------------

    def record(self, kind: str, subject: str, detail: dict[str, Any] | str) -> None:
        """Append a decision (an alert judged, a retrain's outcome, a promotion check, a
        repair made on start) to the history."""
        text = detail if isinstance(detail, str) else json.dumps(detail, default=str)
        self._db.execute("INSERT INTO lifecycle_decisions (at, kind, subject, detail) "
                         "VALUES (?, ?, ?, ?)", (_now(), kind, subject, text))

    def decisions(self, kind: str | None = None) -> list[tuple[str, str, str]]:
        """(kind, subject, detail) of the recorded decisions, oldest first."""
        sql = "SELECT kind, subject, detail FROM lifecycle_decisions"
        args: tuple[str, ...] = ()
        if kind is not None:
            sql, args = sql + " WHERE kind = ?", (kind,)
        return [(r[0], r[1], r[2]) for r in self._db.execute(sql + " ORDER BY seq", args)]
