"""Streams a transaction history to Kafka in event-time order, with labels after their delay.

Transactions go to the transactions topic keyed by card; each label goes to the labels topic
keyed by terminal when the event-time clock of the stream passes its ``label_time`` (like a
chargeback arriving later). ``rate`` paces transactions per second of wall-clock time.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pandas as pd

from schemas import LabelFeedback, Transaction, encode
from sentinel.infra.kafka_io import EventProducer
from training.stream_order import label_frame, stream_order

logger = logging.getLogger(__name__)


@dataclass
class ProduceStats:
    transactions: int = 0
    labels: int = 0
    seconds: float = 0.0

    @property
    def rate(self) -> float:
        return self.transactions / self.seconds if self.seconds else 0.0


def transaction_event(row: Any, attributes: tuple[tuple[str, int], ...] = ()) -> Transaction:
    """A Transaction from a simulator row (an ``itertuples`` named tuple); ``attributes``
    are (name, position in the row) of the columns sent in ``Transaction.attributes``."""
    return Transaction(
        transaction_id=str(row.transaction_id), card_id=str(row.card_id),
        terminal_id=str(row.terminal_id), amount=float(row.amount),
        event_time=row.event_time.to_pydatetime(),
        attributes={name: _plain(row[i]) for name, i in attributes} if attributes else None,
    )


def _plain(value: Any) -> Any:
    """A cell as JSON's value: numpy scalars as Python ones, NaN/NA/None as null."""
    if value is None or value is pd.NA or (isinstance(value, float) and value != value):
        return None
    if hasattr(value, "item"):
        value = value.item()
        return None if isinstance(value, float) and value != value else value
    return value


def label_event(row: Any) -> LabelFeedback:
    """A LabelFeedback from a :func:`training.stream_order.label_frame` row; ``source`` is
    the row's ``label_source`` (``chargeback``/``report``) when given, else ``simulator``."""
    return LabelFeedback(
        transaction_id=str(row.transaction_id), card_id=str(row.card_id),
        terminal_id=str(row.terminal_id), is_fraud=bool(row.is_fraud),
        transaction_time=row.transaction_time.to_pydatetime(),
        reported_at=row.label_time.to_pydatetime(),
        source=getattr(row, "label_source", "simulator"),
    )


def produce_history(
    producer: EventProducer,
    frame: pd.DataFrame,
    transactions_topic: str,
    labels_topic: str,
    *,
    rate: float | None = None,
    count: int | None = None,
    with_labels: bool = True,
    attributes: tuple[str, ...] = (),
    on_progress: Callable[[ProduceStats], None] | None = None,
) -> ProduceStats:
    """Send ``frame`` (simulator columns, plus the ``attributes`` columns as each event's
    attributes) to Kafka; stop after ``count`` transactions."""
    positions = tuple((name, list(frame.columns).index(name)) for name in attributes)
    stats = ProduceStats()
    limit = len(frame) if count is None else min(count, len(frame))
    frame = frame.iloc[:limit]  # labels only for transactions that are sent
    items = (
        stream_order(frame, label_frame(frame))
        if with_labels and {"is_fraud", "label_time"} <= set(frame.columns)
        else (("transaction", row) for row in frame.itertuples(index=False))
    )
    started = time.monotonic()
    for kind, row in items:
        if kind == "label":
            label = label_event(row)
            producer.send(labels_topic, label.terminal_id, encode(label))
            stats.labels += 1
            continue
        tx = transaction_event(row, positions)
        producer.send(transactions_topic, tx.card_id, encode(tx))
        stats.transactions += 1
        if rate and stats.transactions % 20 == 0:
            ahead = stats.transactions / rate - (time.monotonic() - started)
            if ahead > 0:
                time.sleep(ahead)
        if on_progress and stats.transactions % 10_000 == 0:
            stats.seconds = time.monotonic() - started
            on_progress(stats)
        if stats.transactions == limit:
            break  # labels not yet due at the last transaction's time stay unsent
    producer.flush()
    stats.seconds = time.monotonic() - started
    return stats
