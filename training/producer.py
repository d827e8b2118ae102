"""Streams a transaction history to Kafka in event-time order, with labels after their delay.

Transactions go to the transactions topic keyed by card; each label goes to the labels topic
keyed by terminal when the event-time clock of the stream passes its ``label_time`` (like a
chargeback arriving later). ``rate`` paces transactions per second of wall-clock time.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from schemas import LabelFeedback, Transaction, encode
from sentinel.infra.kafka_io import EventProducer

logger = logging.getLogger(__name__)


@dataclass
class ProduceStats:
    transactions: int = 0
    labels: int = 0
    seconds: float = 0.0

    @property
    def rate(self) -> float:
        return self.transactions / self.seconds if self.seconds else 0.0


def merged_order(frame: pd.DataFrame, with_labels: bool) -> Iterator[tuple[bool, int]]:
    """(is_label, row) in event-time order; at equal times a label comes before a transaction."""
    tx_times = frame["event_time"].to_numpy(dtype="datetime64[us]").astype(np.int64)
    rows = np.arange(len(frame))
    if not with_labels or "label_time" not in frame:
        for row in rows:
            yield False, int(row)
        return
    label_times = frame["label_time"].to_numpy(dtype="datetime64[us]").astype(np.int64)
    times = np.concatenate([tx_times, label_times])
    kinds = np.concatenate([np.ones(len(frame), np.int8), np.zeros(len(frame), np.int8)])
    order = np.lexsort((kinds, times))  # by time, then labels (0) before transactions (1)
    for idx in order:
        yield bool(idx >= len(frame)), int(idx % len(frame))


def transaction_event(row: Mapping[str, Any]) -> Transaction:
    return Transaction(
        transaction_id=str(row["transaction_id"]), card_id=str(row["card_id"]),
        terminal_id=str(row["terminal_id"]), amount=float(row["amount"]),
        event_time=row["event_time"].to_pydatetime(),
    )


def label_event(row: Mapping[str, Any]) -> LabelFeedback:
    return LabelFeedback(
        transaction_id=str(row["transaction_id"]), card_id=str(row["card_id"]),
        terminal_id=str(row["terminal_id"]), is_fraud=bool(row["is_fraud"]),
        transaction_time=row["event_time"].to_pydatetime(),
        reported_at=row["label_time"].to_pydatetime(), source="simulator",
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
    on_progress: Callable[[ProduceStats], None] | None = None,
) -> ProduceStats:
    """Send ``frame`` (simulator columns) to Kafka; stop after ``count`` transactions."""
    stats = ProduceStats()
    limit = len(frame) if count is None else min(count, len(frame))
    started = time.monotonic()
    records = frame.to_dict("records")
    for is_label, row in merged_order(frame, with_labels and "is_fraud" in frame):
        data = records[row]
        if is_label:
            if row >= limit:
                continue  # the label of a transaction that was never sent
            label = label_event(data)
            producer.send(labels_topic, label.terminal_id, encode(label))
            stats.labels += 1
            continue
        if stats.transactions >= limit:
            break
        tx = transaction_event(data)
        producer.send(transactions_topic, tx.card_id, encode(tx))
        stats.transactions += 1
        if rate and stats.transactions % 20 == 0:
            ahead = stats.transactions / rate - (time.monotonic() - started)
            if ahead > 0:
                time.sleep(ahead)
        if on_progress and stats.transactions % 10_000 == 0:
            stats.seconds = time.monotonic() - started
            on_progress(stats)
    producer.flush()
    stats.seconds = time.monotonic() - started
    return stats
