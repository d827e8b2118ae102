"""The retrainer's memory: transactions, labels, verdicts and shadow results in the store's
database (SQLite by default, or PostgreSQL: :mod:`sentinel.infra.database`).

Filled from the topics by the retrainer's Kafka adapter; read back as pandas frames to build a
training set (transactions with the labels that have arrived) and to join scores with matured
labels for promotion and rollback. Idempotent by transaction id (a redelivered message
overwrites itself), so at-least-once consumption is safe.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from pathlib import Path

import pandas as pd

from schemas.events import LabelFeedback, ShadowResult, Transaction, Verdict
from sentinel.infra.database import StoreLocation, as_location, open_database
from sentinel.infra.database.base import Params, Result

_SCHEMA = """
CREATE TABLE IF NOT EXISTS transactions (transaction_id TEXT PRIMARY KEY, card_id TEXT,
  terminal_id TEXT, amount {real}, event_time {time});
CREATE TABLE IF NOT EXISTS labels (transaction_id TEXT PRIMARY KEY, is_fraud INTEGER,
  label_time {time});
CREATE TABLE IF NOT EXISTS verdicts (transaction_id TEXT PRIMARY KEY, model_version TEXT,
  score {real}, flagged INTEGER, event_time {time});
CREATE TABLE IF NOT EXISTS shadow (transaction_id TEXT PRIMARY KEY, champion_version TEXT,
  candidate_version TEXT, champion_score {real}, candidate_score {real},
  champion_flagged INTEGER, event_time {time}, source TEXT DEFAULT 'worker',
  candidate_flagged INTEGER);
CREATE INDEX IF NOT EXISTS tx_time ON transactions(event_time);
CREATE INDEX IF NOT EXISTS label_time ON labels(label_time);
"""

_TRANSACTIONS = ("transaction_id", "card_id", "terminal_id", "amount", "event_time")
_LABELS = ("transaction_id", "is_fraud", "label_time")
_VERDICTS = ("transaction_id", "model_version", "score", "flagged", "event_time")
_SHADOW_COLUMNS = ("transaction_id", "champion_version", "candidate_version", "champion_score",
                   "candidate_score", "champion_flagged", "event_time", "source",
                   "candidate_flagged")
_SHADOW = ", ".join(_SHADOW_COLUMNS)


def _iso(moment: datetime) -> str:
    """The stored form of a time; one pandas cannot hold (out of its nanosecond range, years
    1677-2262) raises ValueError here, on arrival, not later in a retrain."""
    return pd.Timestamp(moment).tz_convert("UTC").as_unit("ns").isoformat()


def _frame(result: Result) -> pd.DataFrame:
    """A query's rows as a frame (what ``pandas.read_sql_query`` builds)."""
    return pd.DataFrame.from_records(result.rows, columns=list(result.columns),
                                     coerce_float=True)


class LabelStore:
    """The store at ``location`` (a store location, a SQLite file, or a store URI); one
    writer (the retrainer that holds the lease). Each ``add_*`` batch commits as a whole."""

    def __init__(self, location: StoreLocation | Path | str) -> None:
        self.location = as_location(location)
        self._db = open_database(self.location, timeout_s=5.0)
        self._db.create(_SCHEMA)
        columns = self._db.columns("shadow")
        if "source" not in columns:  # a store written before shadow backfill existed
            self._db.execute("ALTER TABLE shadow ADD COLUMN source TEXT DEFAULT 'worker'")
        if "candidate_flagged" not in columns:  # ... and before it was kept
            self._db.execute("ALTER TABLE shadow ADD COLUMN candidate_flagged INTEGER")
        db = self._db
        self._upsert = {
            "transactions": db.upsert("transactions", _TRANSACTIONS, "transaction_id"),
            "labels": db.upsert("labels", _LABELS, "transaction_id"),
            "verdicts": db.upsert("verdicts", _VERDICTS, "transaction_id"),
            "shadow": db.upsert("shadow", _SHADOW_COLUMNS, "transaction_id",
                                values="?, ?, ?, ?, ?, ?, ?, 'worker', ?")}

    @property
    def path(self) -> Path:
        """The SQLite file (a SQLite store only)."""
        return self.location.path

    def close(self) -> None:
        self._db.close()

    def _add(self, table: str, rows: list[Params]) -> int:
        self._db.execute_many(self._upsert[table], rows)
        return len(rows)

    def add_transactions(self, items: Iterable[Transaction]) -> int:
        return self._add("transactions", [
            (t.transaction_id, t.card_id, t.terminal_id, t.amount, _iso(t.event_time))
            for t in items])

    def add_labels(self, items: Iterable[LabelFeedback]) -> int:
        return self._add("labels", [(x.transaction_id, int(x.is_fraud), _iso(x.reported_at))
                                    for x in items])

    def add_verdicts(self, items: Iterable[Verdict]) -> int:
        return self._add("verdicts", [
            (v.transaction_id, v.model_version, v.score, int(v.decision != "approve"),
             _iso(v.event_time)) for v in items])

    def add_shadow(self, items: Iterable[ShadowResult]) -> int:
        return self._add("shadow", [
            (s.transaction_id, s.champion_version, s.candidate_version, s.champion_score,
             s.candidate_score, int(s.champion_decision != "approve"), _iso(s.event_time),
             int(s.candidate_decision != "approve")) for s in items])

    def add_backfilled_shadow(self, ids: list[str], champion_version: str,
                              candidate_version: str, champion_scores: Iterable[float],
                              candidate_scores: Iterable[float],
                              champion_flagged: Iterable[bool],
                              candidate_flagged: Iterable[bool],
                              event_times: Iterable[datetime]) -> int:
        """Shadow results computed after the fact (:mod:`lifecycle.backfill`); a result the
        worker already sent for the same transaction and candidate is kept, one of an older
        candidate is replaced."""
        rows = [(i, champion_version, candidate_version, float(a), float(b), int(f), _iso(t),
                 int(c))
                for i, a, b, f, c, t in zip(ids, champion_scores, candidate_scores,
                                            champion_flagged, candidate_flagged, event_times,
                                            strict=True)]
        return self._db.execute_many(
            f"INSERT INTO shadow ({_SHADOW}) VALUES (?,?,?,?,?,?,?,'backfill',?) "  # noqa: S608
            "ON CONFLICT(transaction_id) "
            "DO UPDATE SET champion_version = excluded.champion_version, "
            "candidate_version = excluded.candidate_version, "
            "champion_score = excluded.champion_score, candidate_score = excluded.candidate_score, "
            "champion_flagged = excluded.champion_flagged, "
            "candidate_flagged = excluded.candidate_flagged, source = 'backfill' "
            "WHERE shadow.candidate_version != excluded.candidate_version", rows)

    def count(self, table: str) -> int:
        if table not in ("transactions", "labels", "verdicts", "shadow"):
            raise ValueError(table)
        return int(self._db.query(f"SELECT COUNT(*) FROM {table}").scalar())  # noqa: S608

    def newest_transaction_time(self) -> datetime | None:
        """The event time of the newest stored transaction."""
        newest = self._db.query("SELECT MAX(event_time) FROM transactions").scalar()
        return pd.Timestamp(newest).to_pydatetime() if newest else None

    def labels_since(self, moment: datetime) -> int:
        """Labels of transactions that happened at or after ``moment`` (the shift's onset)."""
        sql = ("SELECT COUNT(*) FROM labels l JOIN transactions t USING (transaction_id) "
               "WHERE t.event_time >= ?")
        return int(self._db.query(sql, (_iso(moment),)).scalar())

    def frauds_since(self, moment: datetime) -> int:
        """Fraud labels of transactions that happened at or after ``moment``."""
        sql = ("SELECT COUNT(*) FROM labels l JOIN transactions t USING (transaction_id) "
               "WHERE t.event_time >= ? AND l.is_fraud = 1")
        return int(self._db.query(sql, (_iso(moment),)).scalar())

    def training_frame(self, since: datetime | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
        """(transactions, labels that arrived) from ``since`` on, in the pipeline's columns."""
        where, args = ("WHERE event_time >= ?", (_iso(since),)) if since else ("", ())
        tx = _frame(self._db.query(
            f"SELECT * FROM transactions {where} ORDER BY event_time", args))  # noqa: S608
        labels = _frame(self._db.query("SELECT * FROM labels"))
        tx["event_time"] = pd.to_datetime(tx["event_time"], utc=True, format="ISO8601")
        labels["label_time"] = pd.to_datetime(labels["label_time"], utc=True, format="ISO8601")
        labels = labels[labels["transaction_id"].isin(tx["transaction_id"])]
        return tx, labels.reset_index(drop=True)

    def shadow_joined(self, candidate_version: str) -> pd.DataFrame:
        """Shadow results of a candidate joined with the labels that have matured."""
        sql = ("SELECT s.*, l.is_fraud, l.label_time FROM shadow s JOIN labels l "
               "USING (transaction_id) "
               "WHERE s.candidate_version = ?")
        return _frame(self._db.query(sql, (candidate_version,)))

    def verdicts_of(self, transaction_ids: list[str]) -> pd.DataFrame:
        """The stored verdicts (``transaction_id, model_version, score, flagged``) of these
        transactions; ids without a verdict are absent."""
        frames = []
        for i in range(0, len(transaction_ids), 500):  # SQLite's variable limit
            chunk = transaction_ids[i:i + 500]
            marks = ",".join("?" * len(chunk))  # placeholders only: the ids are parameters
            sql = ("SELECT transaction_id, model_version, score, flagged FROM verdicts "  # noqa: S608
                   f"WHERE transaction_id IN ({marks})")
            frames.append(_frame(self._db.query(sql, chunk)))
        columns = ["transaction_id", "model_version", "score", "flagged"]
        return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=columns)

    def verdicts_joined(self, model_version: str) -> pd.DataFrame:
        """A model's live verdicts joined with matured labels."""
        sql = ("SELECT v.*, l.is_fraud, l.label_time FROM verdicts v JOIN labels l "
               "USING (transaction_id) "
               "WHERE v.model_version = ?")
        return _frame(self._db.query(sql, (model_version,)))
