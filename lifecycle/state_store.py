"""The retrainer's durable lifecycle state, in the label store's database (SQLite or
PostgreSQL, :mod:`sentinel.infra.database`).

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
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from schemas import decode, encode
from schemas.events import DriftAlert, ModelEvent
from sentinel.infra.database import StoreLocation, as_location, open_database

# {serial}: an autoincrement key; {rowid}/{rowid_column}: the order alerts were queued in
_SCHEMA = """
CREATE TABLE IF NOT EXISTS lifecycle_state (key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE IF NOT EXISTS lifecycle_alerts (alert_id TEXT PRIMARY KEY, payload {blob},
  status TEXT, decision TEXT, at TEXT{rowid_column});
CREATE TABLE IF NOT EXISTS lifecycle_jobs (seq {serial},
  job_id TEXT UNIQUE, kind TEXT, payload TEXT, status TEXT, created TEXT, updated TEXT);
CREATE TABLE IF NOT EXISTS lifecycle_outbox (seq {serial},
  key TEXT UNIQUE, event {blob}, sent INTEGER DEFAULT 0);
CREATE TABLE IF NOT EXISTS lifecycle_decisions (seq {serial},
  at TEXT, kind TEXT, subject TEXT, detail TEXT);
"""
_ALERTS = ("alert_id", "payload", "status", "decision", "at")
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
    """The lifecycle tables in the store at ``location`` (the label store's database); one
    connection, autocommit outside :meth:`transaction`."""

    def __init__(self, location: StoreLocation | Path | str) -> None:
        self.location = as_location(location)
        self._db = open_database(self.location, timeout_s=30.0)
        self._db.create(_SCHEMA)
        self._save_state = self._db.upsert("lifecycle_state", ("key", "value"), "key")
        self._queue_alert = self._db.insert_new("lifecycle_alerts", _ALERTS, "alert_id")
        self._mark_alert = self._db.upsert("lifecycle_alerts", _ALERTS, "alert_id")
        self._add_event = self._db.insert_new("lifecycle_outbox", ("key", "event"), "key")

    def close(self) -> None:
        self._db.close()

    @property
    def in_transaction(self) -> bool:
        return self._db.in_transaction

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """All writes inside commit together or not at all (nested calls join the outer);
        one writer at a time (the store's write lock)."""
        with self._db.transaction(exclusive=True):
            yield

    # -- state ------------------------------------------------------------------------------

    def load_state(self) -> dict[str, Any]:
        value = self._db.query("SELECT value FROM lifecycle_state WHERE key = 'retrainer'"
                               ).scalar()
        return dict(json.loads(value)) if value is not None else {}

    def save_state(self, state: dict[str, Any]) -> None:
        self._db.execute(self._save_state, ("retrainer", json.dumps(state)))

    # -- alerts -----------------------------------------------------------------------------

    def enqueue_alerts(self, alerts: list[DriftAlert]) -> int:
        """Queue alerts not seen before; returns how many were new (the rest are redelivered)."""
        with self.transaction():
            return self._db.execute_many(self._queue_alert, [
                (a.alert_id, encode(a), "queued", None, _now()) for a in alerts])

    def queued_alerts(self) -> list[DriftAlert]:
        rows = self._db.query(self._db.sql(
            "SELECT payload FROM lifecycle_alerts WHERE status = 'queued' ORDER BY {rowid}")).rows
        return [decode(DriftAlert, bytes(r[0])) for r in rows]

    def alert_done(self, alert_id: str) -> bool:
        status = self._db.query("SELECT status FROM lifecycle_alerts WHERE alert_id = ?",
                                (alert_id,)).scalar()
        return status is not None and status != "queued"

    def mark_alert(self, alert: DriftAlert, decision: str, status: str = "done") -> None:
        self._db.execute(self._mark_alert,
                         (alert.alert_id, encode(alert), status, decision, _now()))

    # -- jobs -------------------------------------------------------------------------------

    def add_job(self, kind: str, payload: dict[str, Any]) -> Job:
        job = Job(uuid.uuid4().hex, kind, payload)
        self._db.execute("INSERT INTO lifecycle_jobs (job_id, kind, payload, status, created, "
                         "updated) VALUES (?, ?, ?, ?, ?, ?)",
                         (job.job_id, kind, json.dumps(payload), OPEN, _now(), _now()))
        return job

    def open_jobs(self) -> list[Job]:
        rows = self._db.query("SELECT job_id, kind, payload FROM lifecycle_jobs "
                              "WHERE status = ? ORDER BY seq", (OPEN,)).rows
        return [Job(r[0], r[1], json.loads(r[2])) for r in rows]

    def finish_job(self, job: Job, status: str) -> None:
        self._db.execute("UPDATE lifecycle_jobs SET status = ?, updated = ? WHERE job_id = ?",
                         (status, _now(), job.job_id))

    def jobs(self) -> list[tuple[str, str, str]]:
        """(kind, status, payload JSON) of every job, oldest first."""
        return [(r[0], r[1], r[2]) for r in self._db.query(
            "SELECT kind, status, payload FROM lifecycle_jobs ORDER BY seq").rows]

    # -- the event outbox -------------------------------------------------------------------

    def add_event(self, event: ModelEvent) -> ModelEvent:
        """Store an event to publish (once per :func:`event_key`); its id is derived from
        the key, so a consumer that sees it twice can tell."""
        key = event_key(event)
        event = event.model_copy(update={
            "event_id": uuid.uuid5(uuid.NAMESPACE_URL, f"{event.model_name}/{key}").hex})
        self._db.execute(self._add_event, (key, encode(event)))
        return event

    def has_event(self, event: ModelEvent) -> bool:
        return self._db.query("SELECT 1 FROM lifecycle_outbox WHERE key = ?",
                              (event_key(event),)).first() is not None

    def unsent_events(self) -> list[tuple[int, ModelEvent]]:
        rows = self._db.query("SELECT seq, event FROM lifecycle_outbox WHERE sent = 0 "
                              "ORDER BY seq").rows
        return [(int(r[0]), decode(ModelEvent, bytes(r[1]))) for r in rows]

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
        return [(r[0], r[1], r[2]) for r in self._db.query(sql + " ORDER BY seq", args).rows]
