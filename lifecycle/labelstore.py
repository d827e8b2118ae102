"""The retrainer's memory: transactions, labels, fraud reports, verdicts and shadow results in
the store's database (SQLite by default, or PostgreSQL: :mod:`sentinel.infra.database`).

Filled from the topics by the retrainer's Kafka adapter; read back as pandas frames to build a
training set (transactions with the labels that have arrived, and the attributes a model's
feature spec reads: each transaction's ``attributes``, ``merchant_category`` and ``channel`` are
kept as JSON) and to join scores with matured labels for promotion and rollback. Idempotent by
transaction id and report id (a redelivered message overwrites itself), so at-least-once
consumption is safe.

Labels follow the features' rules (:func:`features.offline.merge_labels`): a payment is a
fraud from its earliest fraud label and a genuine label never takes a fraud back, whatever
the order they arrive in. Fraud reports (``FraudReport``: complete, by transaction id, or a
card's ``[start, end)``) are stored as they are and resolved into fraud labels
(``source`` = ``report``, known at ``reported_at``) whenever labels are read, by
:func:`features.reports.resolve_reports` over the stored payments with the
``reports.lookback_days`` bound, the one definition the worker and training use. So the
order of arrival does not matter: a report read before the payments it names labels them
once they are stored, and a by-id report whose payment never comes labels nothing (nothing
is dead-lettered for it here; the worker dead-letters it ``report_unresolved``).

With ``presume_genuine_hours`` (``reports.presume_genuine_hours``) > 0, every read for training
and evidence stops at the label horizon, that many hours before the newest stored payment: a
payment up to it without a label is read as genuine (``label_source`` ``presumed``, known at
its event time plus those hours), and no payment after it has a label yet. Features are not
changed by it (they read fraud labels only, :func:`features.offline.compute_features`).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from typing import cast

import pandas as pd

from features.attributes import AttributeSpec, attributes_of, training_columns
from features.offline import merge_labels
from features.reports import (
    LABEL_COLUMNS,
    LOOKBACK_DAYS,
    REPORT_COLUMNS,
    report_frame,
    resolve_reports,
)
from schemas.events import FraudReport, LabelFeedback, ShadowResult, Transaction, Verdict
from sentinel.infra.database import StoreLocation, as_location, open_database
from sentinel.infra.database.base import Params, Result
from training.errors import TrainingError

logger = logging.getLogger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS transactions (transaction_id TEXT PRIMARY KEY, card_id TEXT,
  terminal_id TEXT, amount {real}, event_time {time}, attributes TEXT);
CREATE TABLE IF NOT EXISTS labels (transaction_id TEXT PRIMARY KEY, is_fraud INTEGER,
  label_time {time}, source TEXT);
CREATE TABLE IF NOT EXISTS reports (report_id TEXT PRIMARY KEY, card_id TEXT,
  reported_at {time}, transaction_id TEXT, terminal_id TEXT, transaction_time {time},
  range_start {time}, range_end {time});
CREATE TABLE IF NOT EXISTS verdicts (transaction_id TEXT PRIMARY KEY, model_version TEXT,
  score {real}, flagged INTEGER, event_time {time});
CREATE TABLE IF NOT EXISTS shadow (transaction_id TEXT PRIMARY KEY, champion_version TEXT,
  candidate_version TEXT, champion_score {real}, candidate_score {real},
  champion_flagged INTEGER, event_time {time}, source TEXT DEFAULT 'worker',
  candidate_flagged INTEGER);
CREATE INDEX IF NOT EXISTS tx_time ON transactions(event_time);
CREATE INDEX IF NOT EXISTS label_time ON labels(label_time);
CREATE INDEX IF NOT EXISTS tx_card ON transactions(card_id);
CREATE INDEX IF NOT EXISTS report_time ON reports(reported_at);
"""

_TRANSACTIONS = ("transaction_id", "card_id", "terminal_id", "amount", "event_time",
                 "attributes")
_TRANSACTION = ", ".join(_TRANSACTIONS[:-1])  # a transaction's columns but its attributes
_REPORTS = ("report_id", "card_id", "reported_at", "transaction_id", "terminal_id",
            "transaction_time", "range_start", "range_end")
# a label replaces the stored one only when it wins by the features' rules: a fraud over a
# genuine label, the earlier of two of a kind (times compare as stored, byte by byte)
_ADD_LABEL = (
    "INSERT INTO labels (transaction_id, is_fraud, label_time, source) VALUES (?, ?, ?, ?) "
    "ON CONFLICT(transaction_id) DO UPDATE SET is_fraud = excluded.is_fraud, "
    "label_time = excluded.label_time, source = excluded.source "
    "WHERE excluded.is_fraud > labels.is_fraud OR (excluded.is_fraud = labels.is_fraud "
    "AND excluded.label_time < labels.label_time)")
_PAYMENTS = "SELECT transaction_id, card_id, terminal_id, event_time FROM transactions"
_FRAME_LABELS = ("transaction_id", "is_fraud", "label_time", "label_source")
_NO_HORIZON = "9999"  # after every stored time (times compare as stored, byte by byte)
_CHUNK = 500  # ids per IN list (SQLite's variable limit)
_VERDICTS = ("transaction_id", "model_version", "score", "flagged", "event_time")
_SHADOW_COLUMNS = ("transaction_id", "champion_version", "candidate_version", "champion_score",
                   "candidate_score", "champion_flagged", "event_time", "source",
                   "candidate_flagged")
_SHADOW = ", ".join(_SHADOW_COLUMNS)


def _iso(moment: datetime) -> str:
    """The stored form of a time; one pandas cannot hold (out of its nanosecond range, years
    1677-2262) raises ValueError here, on arrival, not later in a retrain."""
    return cast(str, pd.Timestamp(moment).tz_convert("UTC").as_unit("ns").isoformat())


def _iso_or_none(moment: datetime | None) -> str | None:
    return None if moment is None else _iso(moment)


def _times(frame: pd.DataFrame, *columns: str) -> pd.DataFrame:
    for column in columns:
        frame[column] = pd.to_datetime(frame[column], utc=True, format="ISO8601")
    return frame


def _frame(result: Result) -> pd.DataFrame:
    """A query's rows as a frame (what ``pandas.read_sql_query`` builds)."""
    return pd.DataFrame.from_records(result.rows, columns=list(result.columns),
                                     coerce_float=True)


class LabelStore:
    """The store at ``location`` (a store location, a SQLite file, or a store URI); one
    writer (the retrainer that holds the lease). Each ``add_*`` batch commits as a whole."""

    def __init__(self, location: StoreLocation | Path | str,
                 report_lookback_days: float = LOOKBACK_DAYS,
                 presume_genuine_hours: float = 0.0) -> None:
        self.location = as_location(location)
        self.report_lookback_days = report_lookback_days  # reports.lookback_days
        self.presume_genuine_hours = presume_genuine_hours  # reports.presume_genuine_hours
        self._db = open_database(self.location, timeout_s=5.0)
        self._db.create(_SCHEMA)
        if "source" not in self._db.columns("labels"):  # a store written before reports
            self._db.execute("ALTER TABLE labels ADD COLUMN source TEXT")
        columns = self._db.columns("shadow")
        if "source" not in columns:  # a store written before shadow backfill existed
            self._db.execute("ALTER TABLE shadow ADD COLUMN source TEXT DEFAULT 'worker'")
        if "candidate_flagged" not in columns:  # ... and before it was kept
            self._db.execute("ALTER TABLE shadow ADD COLUMN candidate_flagged INTEGER")
        if "attributes" not in self._db.columns("transactions"):  # ... before attributes were
            self._db.execute("ALTER TABLE transactions ADD COLUMN attributes TEXT")
        db = self._db
        self._upsert = {
            "transactions": db.upsert("transactions", _TRANSACTIONS, "transaction_id"),
            "labels": _ADD_LABEL,
            "reports": db.upsert("reports", _REPORTS, "report_id"),
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
            (t.transaction_id, t.card_id, t.terminal_id, t.amount, _iso(t.event_time),
             _json(attributes_of(t))) for t in items])

    def add_labels(self, items: Iterable[LabelFeedback]) -> int:
        """Labels known at their ``reported_at``; one kept per payment (see the module)."""
        return self._add("labels", [(x.transaction_id, int(x.is_fraud), _iso(x.reported_at),
                                     x.source) for x in items])

    def add_reports(self, items: Iterable[FraudReport]) -> int:
        """Fraud reports, resolved into labels whenever labels are read (see the module)."""
        return self._add("reports", [
            (r.report_id, r.card_id, _iso(r.reported_at), r.transaction_id, r.terminal_id,
             _iso_or_none(r.transaction_time), _iso_or_none(r.start), _iso_or_none(r.end))
            for r in items])

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
        if table not in ("transactions", "labels", "reports", "verdicts", "shadow"):
            raise ValueError(table)
        return int(self._db.query(f"SELECT COUNT(*) FROM {table}").scalar())  # noqa: S608

    def newest_transaction_time(self) -> datetime | None:
        """The event time of the newest stored transaction."""
        newest = self._db.query("SELECT MAX(event_time) FROM transactions").scalar()
        return pd.Timestamp(newest).to_pydatetime() if newest else None

    def horizon(self) -> pd.Timestamp | None:
        """The label horizon: ``presume_genuine_hours`` before the newest stored payment
        (None when the presumption is off or nothing is stored; see the module)."""
        newest = self.newest_transaction_time()
        if self.presume_genuine_hours <= 0 or newest is None:
            return None
        return pd.Timestamp(newest) - pd.Timedelta(hours=self.presume_genuine_hours)

    def labels_since(self, moment: datetime) -> int:
        """Labelled transactions that happened at or after ``moment`` (the shift's onset),
        those labelled by a report included; up to the horizon, every one of them."""
        horizon = self.horizon()
        if horizon is not None:
            sql = "SELECT COUNT(*) FROM transactions WHERE event_time >= ? AND event_time <= ?"
            return int(self._db.query(sql, (_iso(moment), _iso(horizon))).scalar())
        sql = ("SELECT COUNT(*) FROM labels l JOIN transactions t USING (transaction_id) "
               "WHERE t.event_time >= ?")
        stored = int(self._db.query(sql, (_iso(moment),)).scalar())
        reported = set(self.report_labels(moment)["transaction_id"])
        return stored + len(reported - set(self._labels_of(reported)["transaction_id"]))

    def frauds_since(self, moment: datetime) -> int:
        """Transactions that happened at or after ``moment`` (up to the horizon) with a fraud
        label (a report's included)."""
        horizon = self.horizon()
        upto = _iso(horizon) if horizon is not None else _NO_HORIZON
        sql = ("SELECT COUNT(*) FROM labels l JOIN transactions t USING (transaction_id) "
               "WHERE t.event_time >= ? AND t.event_time <= ? AND l.is_fraud = 1")
        stored = int(self._db.query(sql, (_iso(moment), upto)).scalar())
        reports = self.report_labels(moment)
        if horizon is not None:
            reports = reports[reports["transaction_time"] <= horizon]
        reported = set(reports["transaction_id"])
        known = self._labels_of(reported)
        return stored + len(reported - set(known.loc[known["is_fraud"] == 1, "transaction_id"]))

    def training_frame(self, since: datetime | None = None, spec: AttributeSpec | None = None,
                       ) -> tuple[pd.DataFrame, pd.DataFrame]:
        """(transactions, their labels that arrived) from ``since`` on, in the pipeline's
        columns: one label per transaction (``transaction_id, is_fraud, label_time,
        label_source``), the stored ones and the reports' merged (see the module). With a
        feature ``spec``, the transactions carry its attributes as columns named after them,
        as in a training file (:func:`features.attributes.training_columns`: a value of the
        wrong type, which the worker dead-letters, is a missing value here, and is logged)."""
        where, args = ("WHERE event_time >= ?", (_iso(since),)) if since else ("", ())
        select = f"{_TRANSACTION}, attributes" if spec else _TRANSACTION
        tx = _times(_frame(self._db.query(
            f"SELECT {select} FROM transactions {where} ORDER BY event_time",  # noqa: S608
            args)), "event_time")
        if spec:
            tx = _with_attributes(tx, spec)
        where = "WHERE t.event_time >= ?" if since else ""
        stored = _frame(self._db.query(
            "SELECT l.transaction_id, l.is_fraud, l.label_time, l.source AS label_source "  # noqa: S608
            f"FROM labels l JOIN transactions t USING (transaction_id) {where}", args))
        # every payment a report made after ``since`` can name is in ``tx``
        merged = self._merged(tx, stored, self._resolved(tx, self.reports_frame(since)))
        return tx, self._matured(tx, merged)

    def shadow_joined(self, candidate_version: str) -> pd.DataFrame:
        """Shadow results of a candidate joined with the labels that have matured."""
        sql = ("SELECT s.*, l.is_fraud, l.label_time, l.source AS label_source FROM shadow s "
               "LEFT JOIN labels l USING (transaction_id) WHERE s.candidate_version = ?")
        return self._labelled(_frame(self._db.query(sql, (candidate_version,))))

    def verdicts_joined(self, model_version: str) -> pd.DataFrame:
        """A model's live verdicts joined with matured labels."""
        sql = ("SELECT v.*, l.is_fraud, l.label_time, l.source AS label_source FROM verdicts v "
               "LEFT JOIN labels l USING (transaction_id) WHERE v.model_version = ?")
        return self._labelled(_frame(self._db.query(sql, (model_version,))))

    def verdicts_of(self, transaction_ids: list[str]) -> pd.DataFrame:
        """The stored verdicts (``transaction_id, model_version, score, flagged``) of these
        transactions; ids without a verdict are absent."""
        return self._rows_of("SELECT transaction_id, model_version, score, flagged FROM verdicts",
                             "transaction_id", transaction_ids)

    # -- fraud reports ----------------------------------------------------------------------

    def reports_frame(self, since: datetime | None = None) -> pd.DataFrame:
        """The stored reports made after ``since``, in the columns
        :func:`features.reports.resolve_reports` reads."""
        where, args = ("WHERE reported_at > ?", (_iso(since),)) if since else ("", ())
        frame = _frame(self._db.query(
            f"SELECT {', '.join(_REPORTS)} FROM reports {where}", args))  # noqa: S608
        frame = frame.rename(columns={"range_start": "start", "range_end": "end"})
        return _times(frame[list(REPORT_COLUMNS)].copy(), "reported_at", "transaction_time",
                      "start", "end")

    def report_labels(self, since: datetime | None = None) -> pd.DataFrame:
        """The fraud labels (:data:`features.reports.LABEL_COLUMNS`) the stored reports give
        the stored payments that happened at or after ``since``: those of the reported cards
        and transaction ids only are read."""
        where, args = ("WHERE reported_at > ?", [_iso(since)]) if since else ("", [])
        sql = (f"{_PAYMENTS} WHERE (card_id IN (SELECT card_id FROM reports {where}) "  # noqa: S608
               f"OR transaction_id IN (SELECT transaction_id FROM reports {where}))")
        if since is not None:
            sql, args = sql + " AND event_time >= ?", args * 3
        tx = _times(_frame(self._db.query(sql, args)), "event_time")
        return self._resolved(tx, self.reports_frame(since))

    def resolve(self, reports: list[FraudReport]) -> list[LabelFeedback]:
        """The labels ``reports`` give the payments stored now, as ``LabelFeedback`` (the
        label-drift watch's view of a batch of reports as it arrives)."""
        if not reports:
            return []
        cards = {r.card_id for r in reports}
        ids = {r.transaction_id for r in reports if r.transaction_id is not None}
        tx = pd.concat([self._rows_of(_PAYMENTS, "card_id", cards),
                        self._rows_of(_PAYMENTS, "transaction_id", ids)], ignore_index=True)
        labels = self._resolved(_times(tx.drop_duplicates("transaction_id"), "event_time"),
                                report_frame(reports))
        return [LabelFeedback(transaction_id=x.transaction_id, card_id=x.card_id,
                              terminal_id=x.terminal_id, is_fraud=True,
                              transaction_time=x.transaction_time, reported_at=x.label_time,
                              source="report") for x in labels.itertuples(index=False)]

    # -- labels: stored and reported, merged ------------------------------------------------

    def _resolved(self, tx: pd.DataFrame, reports: pd.DataFrame) -> pd.DataFrame:
        """The labels ``reports`` give the payments of ``tx`` (complete reports of payments
        that are not stored are left out, as a chargeback of one would be)."""
        if reports.empty or tx.empty:
            return pd.DataFrame(columns=list(LABEL_COLUMNS))
        labels, _ = resolve_reports(tx, reports, self.report_lookback_days)
        return labels[labels["transaction_id"].isin(tx["transaction_id"])].reset_index(drop=True)

    @staticmethod
    def _merged(tx: pd.DataFrame, stored: pd.DataFrame, reported: pd.DataFrame
                ) -> pd.DataFrame:
        """One label per transaction of ``tx`` (columns ``_FRAME_LABELS``) from the
        ``stored`` ones and the ``reported`` ones, by the features' rules."""
        parts = [stored[list(_FRAME_LABELS)], reported[list(_FRAME_LABELS)]]
        both = pd.concat([p for p in parts if len(p)] or [stored[list(_FRAME_LABELS)]],
                         ignore_index=True)
        both = both[both["transaction_id"].isin(tx["transaction_id"])]
        merged = merge_labels(tx, _times(both.copy(), "label_time"))
        merged["is_fraud"] = merged["is_fraud"].astype(bool).astype("int64")
        merged["label_time"] = merged["label_time"].astype("datetime64[ns, UTC]")
        return merged.reset_index(drop=True)

    def _labelled(self, rows: pd.DataFrame) -> pd.DataFrame:
        """Rows of a ``LEFT JOIN labels`` (``transaction_id``, ``event_time``, ..., the stored
        label's ``is_fraud, label_time, label_source``) with their one label, the reports'
        included; rows without a label are left out."""
        if rows.empty:
            return rows
        tx = _times(rows[["transaction_id", "event_time"]].copy(), "event_time")
        since = pd.Timestamp(tx["event_time"].min()).to_pydatetime()
        stored = rows.loc[rows["is_fraud"].notna(), list(_FRAME_LABELS)]
        merged = self._matured(tx, self._merged(tx, stored, self.report_labels(since)))
        return rows.drop(columns=list(_FRAME_LABELS[1:])).merge(merged, on="transaction_id")

    def _matured(self, tx: pd.DataFrame, labels: pd.DataFrame) -> pd.DataFrame:
        """``labels`` (columns ``_FRAME_LABELS``, one per payment of ``tx``) as of the label
        horizon: those of payments up to it, each such payment without one read as genuine;
        unchanged when the presumption is off (see the module)."""
        horizon = self.horizon()
        if horizon is None:
            return labels
        old = tx.loc[tx["event_time"] <= horizon, ["transaction_id", "event_time"]]
        kept = labels[labels["transaction_id"].isin(old["transaction_id"])]
        missing = old[~old["transaction_id"].isin(kept["transaction_id"])]
        presumed = pd.DataFrame({
            "transaction_id": missing["transaction_id"].to_numpy(), "is_fraud": 0,
            "label_time": (missing["event_time"]
                           + pd.Timedelta(hours=self.presume_genuine_hours)).to_numpy(),
            "label_source": "presumed"}, columns=list(_FRAME_LABELS))
        presumed["label_time"] = pd.to_datetime(presumed["label_time"], utc=True)
        both = pd.concat([x for x in (kept, presumed) if len(x)] or [kept], ignore_index=True)
        both["is_fraud"] = both["is_fraud"].astype("int64")
        both["label_time"] = both["label_time"].astype("datetime64[ns, UTC]")
        return both.sort_values(["label_time", "transaction_id"], kind="stable",
                                ignore_index=True)

    def _labels_of(self, transaction_ids: set[str]) -> pd.DataFrame:
        """The stored labels (``transaction_id, is_fraud``) of these transactions."""
        return self._rows_of("SELECT transaction_id, is_fraud FROM labels", "transaction_id",
                             transaction_ids)

    def _rows_of(self, select: str, column: str, values: Iterable[str]) -> pd.DataFrame:
        """``select`` (the columns it names) of the rows whose ``column`` is one of
        ``values``, a chunk of them per query (SQLite's variable limit)."""
        wanted = sorted(set(values))
        frames = []
        for i in range(0, len(wanted), _CHUNK):
            chunk = wanted[i:i + _CHUNK]
            marks = ",".join("?" * len(chunk))  # placeholders only: the values are parameters
            frames.append(_frame(self._db.query(f"{select} WHERE {column} IN ({marks})",
                                                chunk)))
        if frames:
            return pd.concat(frames, ignore_index=True)
        names = select.removeprefix("SELECT ").split(" FROM ")[0].split(", ")
        return pd.DataFrame(columns=names)


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
