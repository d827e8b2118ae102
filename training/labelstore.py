"""The retrainer's memory: transactions, labels, verdicts and shadow results in SQLite.

Filled from the topics by the retrainer's Kafka adapter; read back as pandas frames to build a
training set (transactions with the labels that have arrived, and the attributes a model's
feature spec reads: each transaction's ``attributes``, ``merchant_category`` and ``channel`` are
kept as JSON) and to join scores with matured labels for promotion and rollback. Idempotent
by transaction id (a redelivered message overwrites itself), so at-least-once consumption is
safe.
"""

from __future__ import annotations

import json
import logging
import sqlite3
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path

import pandas as pd

from features.attributes import AttributeSpec, attributes_of, training_columns
from schemas.events import LabelFeedback, ShadowResult, Transaction, Verdict
from training.errors import TrainingError

logger = logging.getLogger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS transactions (transaction_id TEXT PRIMARY KEY, card_id TEXT,
  terminal_id TEXT, amount REAL, event_time TEXT, attributes TEXT);
CREATE TABLE IF NOT EXISTS labels (transaction_id TEXT PRIMARY KEY, is_fraud INTEGER,
  label_time TEXT);
CREATE TABLE IF NOT EXISTS verdicts (transaction_id TEXT PRIMARY KEY, model_version TEXT,
  score REAL, flagged INTEGER, event_time TEXT);
CREATE TABLE IF NOT EXISTS shadow (transaction_id TEXT PRIMARY KEY, champion_version TEXT,
  candidate_version TEXT, champion_score REAL, candidate_score REAL, champion_flagged INTEGER,
  event_time TEXT, source TEXT DEFAULT 'worker', candidate_flagged INTEGER);
CREATE INDEX IF NOT EXISTS tx_time ON transactions(event_time);
CREATE INDEX IF NOT EXISTS label_time ON labels(label_time);
"""


_TRANSACTION = "transaction_id, card_id, terminal_id, amount, event_time"
_SHADOW = ("transaction_id, champion_version, candidate_version, champion_score, "
           "candidate_score, champion_flagged, event_time, source, candidate_flagged")


def _iso(moment: datetime) -> str:
    """The stored form of a time; one pandas cannot hold (out of its nanosecond range, years
    1677-2262) raises ValueError here, on arrival, not later in a retrain."""
    return pd.Timestamp(moment).tz_convert("UTC").as_unit("ns").isoformat()


class LabelStore:
    """SQLite at ``path``; one writer (the retrainer process)."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._db = sqlite3.connect(path)
        self._db.executescript(_SCHEMA)
        columns = {row[1] for row in self._db.execute("PRAGMA table_info(shadow)")}
        if "source" not in columns:  # a store written before shadow backfill existed
            self._db.execute("ALTER TABLE shadow ADD COLUMN source TEXT DEFAULT 'worker'")
        if "candidate_flagged" not in columns:  # ... and before it was kept
            self._db.execute("ALTER TABLE shadow ADD COLUMN candidate_flagged INTEGER")
        columns = {row[1] for row in self._db.execute("PRAGMA table_info(transactions)")}
        if "attributes" not in columns:  # a store written before attributes were kept
            self._db.execute("ALTER TABLE transactions ADD COLUMN attributes TEXT")

    def close(self) -> None:
        self._db.close()

    def add_transactions(self, items: Iterable[Transaction]) -> int:
        rows = [(t.transaction_id, t.card_id, t.terminal_id, t.amount, _iso(t.event_time),
                 _json(attributes_of(t))) for t in items]
        sql = f"INSERT OR REPLACE INTO transactions ({_TRANSACTION}, attributes) VALUES "  # noqa: S608
        self._db.executemany(sql + "(?,?,?,?,?,?)", rows)
        self._db.commit()
        return len(rows)

    def add_labels(self, items: Iterable[LabelFeedback]) -> int:
        rows = [(x.transaction_id, int(x.is_fraud), _iso(x.reported_at)) for x in items]
        self._db.executemany("INSERT OR REPLACE INTO labels VALUES (?,?,?)", rows)
        self._db.commit()
        return len(rows)

    def add_verdicts(self, items: Iterable[Verdict]) -> int:
        rows = [(v.transaction_id, v.model_version, v.score, int(v.decision != "approve"),
                 _iso(v.event_time)) for v in items]
        self._db.executemany("INSERT OR REPLACE INTO verdicts VALUES (?,?,?,?,?)", rows)
        self._db.commit()
        return len(rows)

    def add_shadow(self, items: Iterable[ShadowResult]) -> int:
        rows = [(s.transaction_id, s.champion_version, s.candidate_version, s.champion_score,
                 s.candidate_score, int(s.champion_decision != "approve"), _iso(s.event_time),
                 int(s.candidate_decision != "approve")) for s in items]
        self._db.executemany(f"INSERT OR REPLACE INTO shadow ({_SHADOW}) "  # noqa: S608
                             "VALUES (?,?,?,?,?,?,?,'worker',?)", rows)
        self._db.commit()
        return len(rows)

    def add_backfilled_shadow(self, ids: list[str], champion_version: str,
                              candidate_version: str, champion_scores: Iterable[float],
                              candidate_scores: Iterable[float],
                              champion_flagged: Iterable[bool],
                              candidate_flagged: Iterable[bool],
                              event_times: Iterable[datetime]) -> int:
        """Shadow results computed after the fact (:mod:`training.backfill`); a result the
        worker already sent for the same transaction and candidate is kept, one of an older
        candidate is replaced."""
        rows = [(i, champion_version, candidate_version, float(a), float(b), int(f), _iso(t),
                 int(c))
                for i, a, b, f, c, t in zip(ids, champion_scores, candidate_scores,
                                            champion_flagged, candidate_flagged, event_times,
                                            strict=True)]
        before = self._db.total_changes
        self._db.executemany(
            f"INSERT INTO shadow ({_SHADOW}) VALUES (?,?,?,?,?,?,?,'backfill',?) "  # noqa: S608
            "ON CONFLICT(transaction_id) "
            "DO UPDATE SET champion_version = excluded.champion_version, "
            "candidate_version = excluded.candidate_version, "
            "champion_score = excluded.champion_score, candidate_score = excluded.candidate_score, "
            "champion_flagged = excluded.champion_flagged, "
            "candidate_flagged = excluded.candidate_flagged, source = 'backfill' "
            "WHERE shadow.candidate_version != excluded.candidate_version", rows)
        self._db.commit()
        return self._db.total_changes - before

    def count(self, table: str) -> int:
        if table not in ("transactions", "labels", "verdicts", "shadow"):
            raise ValueError(table)
        return int(self._db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])  # noqa: S608

    def newest_transaction_time(self) -> datetime | None:
        """The event time of the newest stored transaction."""
        row = self._db.execute("SELECT MAX(event_time) FROM transactions").fetchone()
        return pd.Timestamp(row[0]).to_pydatetime() if row and row[0] else None

    def labels_since(self, moment: datetime) -> int:
        """Labels of transactions that happened at or after ``moment`` (the shift's onset)."""
        sql = ("SELECT COUNT(*) FROM labels l JOIN transactions t USING (transaction_id) "
               "WHERE t.event_time >= ?")
        return int(self._db.execute(sql, (_iso(moment),)).fetchone()[0])

    def frauds_since(self, moment: datetime) -> int:
        """Fraud labels of transactions that happened at or after ``moment``."""
        sql = ("SELECT COUNT(*) FROM labels l JOIN transactions t USING (transaction_id) "
               "WHERE t.event_time >= ? AND l.is_fraud = 1")
        return int(self._db.execute(sql, (_iso(moment),)).fetchone()[0])

    def training_frame(self, since: datetime | None = None, spec: AttributeSpec | None = None,
                       ) -> tuple[pd.DataFrame, pd.DataFrame]:
        """(transactions, labels that arrived) from ``since`` on, in the pipeline's columns;
        with a feature ``spec``, its attributes as columns named after them, as in a training
        file (:func:`features.attributes.training_columns`: a value of the wrong type, which
        the worker dead-letters, is a missing value here, and is counted in the log)."""
        where, args = ("WHERE event_time >= ?", (_iso(since),)) if since else ("", ())
        select = f"{_TRANSACTION}, attributes" if spec else _TRANSACTION
        tx = pd.read_sql_query(f"SELECT {select} FROM transactions {where} "  # noqa: S608
                               "ORDER BY event_time", self._db, params=args)
        if spec:
            tx = _with_attributes(tx, spec)
        labels = pd.read_sql_query("SELECT * FROM labels", self._db)
        tx["event_time"] = pd.to_datetime(tx["event_time"], utc=True, format="ISO8601")
        labels["label_time"] = pd.to_datetime(labels["label_time"], utc=True, format="ISO8601")
        labels = labels[labels["transaction_id"].isin(tx["transaction_id"])]
        return tx, labels.reset_index(drop=True)

    def shadow_joined(self, candidate_version: str) -> pd.DataFrame:
        """Shadow results of a candidate joined with the labels that have matured."""
        sql = ("SELECT s.*, l.is_fraud, l.label_time FROM shadow s JOIN labels l "
               "USING (transaction_id) "
               "WHERE s.candidate_version = ?")
        return pd.read_sql_query(sql, self._db, params=(candidate_version,))

    def verdicts_of(self, transaction_ids: list[str]) -> pd.DataFrame:
        """The stored verdicts (``transaction_id, model_version, score, flagged``) of these
        transactions; ids without a verdict are absent."""
        frames = []
        for i in range(0, len(transaction_ids), 500):  # SQLite's variable limit
            chunk = transaction_ids[i:i + 500]
            marks = ",".join("?" * len(chunk))  # placeholders only: the ids are parameters
            sql = ("SELECT transaction_id, model_version, score, flagged FROM verdicts "  # noqa: S608
                   f"WHERE transaction_id IN ({marks})")
            frames.append(pd.read_sql_query(sql, self._db, params=chunk))
        columns = ["transaction_id", "model_version", "score", "flagged"]
        return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=columns)

    def verdicts_joined(self, model_version: str) -> pd.DataFrame:
        """A model's live verdicts joined with matured labels."""
        sql = ("SELECT v.*, l.is_fraud, l.label_time FROM verdicts v JOIN labels l "
               "USING (transaction_id) "
               "WHERE v.model_version = ?")
        return pd.read_sql_query(sql, self._db, params=(model_version,))


def _json(attributes: dict[str, object] | None) -> str | None:
    return json.dumps(attributes, separators=(",", ":")) if attributes is not None else None


def _with_attributes(tx: pd.DataFrame, spec: AttributeSpec) -> pd.DataFrame:
    """``tx`` with the stored ``attributes`` JSON replaced by the spec's columns."""
    clash = sorted({a.name for a in spec.attributes} & {*tx.columns, "is_fraud", "label_time"})
    if clash:
        raise TrainingError(f"attributes {clash} have the names of transaction columns: "
                            "a retrain cannot tell them apart")
    events = [json.loads(text) if text else None for text in tx["attributes"].tolist()]
    columns, ok = training_columns(spec, events)
    if not ok.all():
        logger.warning("%d stored transactions have attributes of the wrong type (the worker "
                       "dead-letters them): read as missing values", int((~ok).sum()))
    return pd.concat([tx.drop(columns=["attributes"]), columns.set_index(tx.index)], axis=1)
