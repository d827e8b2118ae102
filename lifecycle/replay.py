"""Backtest: re-run a stretch of the transactions topic through a registered model version.

Features come from the same offline code the pipeline trains with
(:func:`features.offline.compute_features`) over the replayed stretch, labels from the labels
topic; the report is AP and recall at the model's own alert rate on that stretch.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd

from features.attributes import attributes_of, training_columns
from features.offline import compute_features, merge_labels
from features.reports import report_frame, resolve_reports
from features.spec import FeatureConfig
from lifecycle.promotion import recall_at_rate
from schemas import SchemaValidationError, decode, decode_label
from schemas.events import FraudReport, LabelFeedback, Transaction
from sentinel.errors import ConfigurationError
from sentinel.infra.kafka_io import EventConsumer
from sentinel.settings import Settings
from training.model import FraudModel
from training.model_metrics import average_precision

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ReplayReport:
    version: str
    transactions: int
    labelled: int
    frauds: int
    alert_rate: float
    average_precision: float
    recall_at_alert_rate: float


def evaluate(model: FraudModel, version: str, tx: pd.DataFrame, labels: pd.DataFrame,
             since: datetime | None, until: datetime | None,
             config: FeatureConfig | None = None) -> ReplayReport:
    """Pure core: features over the stretch, scores, metrics on the labelled rows.

    The model's attributes come from each event's ``attributes`` column (what
    :func:`features.attributes.attributes_of` read), through its feature spec; an event with
    an attribute of the wrong type is not scored, as the worker dead-letters it (its card and
    terminal history still count it, as in the worker)."""
    tx = tx.sort_values("event_time", kind="stable").reset_index(drop=True)
    feats = compute_features(tx.drop(columns=["attributes"], errors="ignore"), labels, config)
    events = tx["attributes"].tolist() if "attributes" in tx else [None] * len(tx)
    attributes, window = training_columns(model.attributes, events)
    if not window.all():
        logger.warning("replay leaves out %d events with attributes of the wrong type (the "
                       "worker dead-letters them)", int((~window).sum()))
    scores = model.score(model.inputs(feats, attributes))
    if since is not None:
        window &= (tx["event_time"] >= pd.Timestamp(since)).to_numpy()
    if until is not None:
        window &= (tx["event_time"] < pd.Timestamp(until)).to_numpy()
    flagged = model.decide(scores) != "approve"
    rate = float(flagged[window].mean()) if window.any() else 0.0
    y_map = dict(zip(labels["transaction_id"], labels["is_fraud"], strict=True))
    ids = tx["transaction_id"].to_numpy()
    has = window & np.array([i in y_map for i in ids])
    y = np.array([int(y_map[i]) for i in ids[has]])
    s = scores[has]
    ap = average_precision(y, s) if 0 < y.sum() < len(y) else 0.0
    return ReplayReport(version, int(window.sum()), int(has.sum()), int(y.sum()), rate, ap,
                        recall_at_rate(y, s, rate or 1.0 / max(1, len(y))))


def read_stretch(settings: Settings, idle_s: float = 3.0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """All transactions and their labels on the topics (a private group, from the beginning):
    one label per transaction, the labels topic's and those its fraud reports resolve into
    (:func:`features.reports.resolve_reports` with ``reports.lookback_days``), merged by the
    features' rules (:func:`features.offline.merge_labels`).

    A malformed event is skipped, as the worker dead-letters it: it is counted and logged,
    so a backtest of a real topic does not stop at its first bad message."""
    t = settings.topics
    tx_topic = t.name("transactions")
    rows: dict[type, list[Any]] = {Transaction: [], LabelFeedback: [], FraudReport: []}
    group = f"sentinel-replay-{uuid.uuid4().hex[:8]}"
    skipped = 0
    with EventConsumer(settings.librdkafka(), group, [tx_topic, t.name("labels")],
                       **{"enable.auto.commit": False}) as consumer:
        idle = 0.0
        while idle < idle_s:
            msgs = consumer.poll(5000, 0.5)
            idle = idle + 0.5 if not msgs else 0.0
            for m in msgs:
                try:
                    event = (decode(Transaction, m.value()) if m.topic() == tx_topic
                             else decode_label(m.value()))
                    rows[type(event)].append(event)
                except SchemaValidationError as exc:
                    skipped += 1
                    logger.warning("replay skips a malformed event topic=%s partition=%s "
                                   "offset=%s error=%s", m.topic(), m.partition(), m.offset(),
                                   exc)
    if skipped:
        logger.warning("replay skipped %d malformed events (the worker dead-letters them)",
                       skipped)
    tx = pd.DataFrame([{"transaction_id": x.transaction_id, "card_id": x.card_id,
                        "terminal_id": x.terminal_id, "amount": x.amount,
                        "event_time": x.event_time, "attributes": attributes_of(x)}
                       for x in rows[Transaction]])
    columns = ["transaction_id", "is_fraud", "label_time"]
    labels = pd.DataFrame([{"transaction_id": x.transaction_id, "is_fraud": int(x.is_fraud),
                            "label_time": x.reported_at} for x in rows[LabelFeedback]],
                          columns=columns)
    if tx.empty:
        raise ConfigurationError(f"no transactions on {tx_topic}")
    tx["event_time"] = pd.to_datetime(tx["event_time"], utc=True)
    labels["label_time"] = pd.to_datetime(labels["label_time"], utc=True)
    if rows[FraudReport]:
        reported, _ = resolve_reports(tx, report_frame(rows[FraudReport]),
                                      settings.reports.lookback_days)
        reported = reported.assign(is_fraud=1)[columns]
        labels = pd.concat([x for x in (labels, reported) if len(x)], ignore_index=True)
    return tx, merge_labels(tx, labels)


def replay(settings: Settings, version: str | None, since: datetime | None,
           until: datetime | None) -> ReplayReport:
    """Resolve the version (number or alias, default @champion), read, evaluate."""
    from lifecycle.registry import ModelRef, ModelRegistry

    registry = ModelRegistry(settings)
    if version is None or not version.isdigit():
        ref = registry.resolve(version or "champion")
        if ref is None:
            raise ConfigurationError(f"no @{version or 'champion'} version to replay")
    else:
        ref = ModelRef(registry.name, version, None, "")
    model = registry.load(ref)
    tx, labels = read_stretch(settings)
    # the feature windows need history before ``since``: read it all, evaluate the stretch
    if until is not None:
        tx = tx[tx["event_time"] < pd.Timestamp(until)]
    return evaluate(model, ref.version, tx, labels, since, until,
                    FeatureConfig.from_settings(settings.features))
