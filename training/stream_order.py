"""One event-time-ordered stream of transactions and their label arrivals.

The producer and the feature parity test replay history through the same order: items sorted
by time (a transaction at its ``event_time``, a label at its ``label_time``); at equal times
labels come first (a label known at ``t`` is applied before the transaction at ``t``), then
input order. Transactions are stable-sorted by event time, so ties keep the frame's order.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Literal

import numpy as np
import pandas as pd

from features.clock import series_to_micros
from features.record import LabelRecord, TransactionRecord

Kind = Literal["transaction", "label"]
LABEL_COLUMNS = (
    "transaction_id",
    "card_id",
    "terminal_id",
    "is_fraud",
    "transaction_time",
    "label_time",
)


def label_frame(transactions: pd.DataFrame, *, frauds_only: bool = False) -> pd.DataFrame:
    """The label arrivals implied by a simulated frame: one per transaction (or per fraud),
    with the simulator's ``label_source`` when the frame has it."""
    frame = transactions[list(transactions.columns.intersection([*LABEL_COLUMNS, "label_source"]))
                         ].copy()
    frame["transaction_time"] = transactions["event_time"]
    frame["is_fraud"] = transactions["is_fraud"].astype(bool)
    extra = ["label_source"] if "label_source" in transactions else []
    frame = frame[[*LABEL_COLUMNS, *extra]]
    return frame[frame["is_fraud"]] if frauds_only else frame


def merged_order(transactions: pd.DataFrame, labels: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """(is_label, row position) of every item, in stream order."""
    t_tx = series_to_micros(transactions["event_time"])
    t_lb = series_to_micros(labels["label_time"])
    times = np.concatenate([t_tx, t_lb])
    is_label = np.concatenate([np.zeros(len(t_tx), bool), np.ones(len(t_lb), bool)])
    position = np.concatenate([np.arange(len(t_tx)), np.arange(len(t_lb))])
    order = np.lexsort((position, ~is_label, times))
    return is_label[order], position[order]


def stream_order(
    transactions: pd.DataFrame, labels: pd.DataFrame | None = None
) -> Iterator[tuple[Kind, Any]]:
    """Yield ("transaction", row) and ("label", row) in stream order.

    Rows are the frames' ``itertuples(index=False)`` named tuples. ``labels`` defaults to
    :func:`label_frame` of the transactions (every transaction labelled).
    """
    labels = label_frame(transactions) if labels is None else labels
    is_label, position = merged_order(transactions, labels)
    tx_rows = list(transactions.itertuples(index=False))
    label_rows = list(labels.itertuples(index=False))
    for label, i in zip(is_label.tolist(), position.tolist(), strict=True):
        if label:
            yield "label", label_rows[i]
        else:
            yield "transaction", tx_rows[i]


def feature_events(
    transactions: pd.DataFrame, labels: pd.DataFrame | None = None
) -> Iterator[TransactionRecord | LabelRecord]:
    """The same stream as :func:`stream_order`, as the online feature form's records."""
    labels = label_frame(transactions) if labels is None else labels
    is_label, position = merged_order(transactions, labels)
    tx = list(
        zip(
            transactions["transaction_id"].tolist(),
            transactions["card_id"].tolist(),
            transactions["terminal_id"].tolist(),
            transactions["amount"].astype(float).tolist(),
            series_to_micros(transactions["event_time"]).tolist(),
            strict=True,
        )
    )
    lb = list(
        zip(
            labels["transaction_id"].tolist(),
            labels["card_id"].tolist(),
            labels["terminal_id"].tolist(),
            labels["is_fraud"].astype(bool).tolist(),
            series_to_micros(labels["transaction_time"]).tolist(),
            series_to_micros(labels["label_time"]).tolist(),
            strict=True,
        )
    )
    for label, i in zip(is_label.tolist(), position.tolist(), strict=True):
        yield LabelRecord(*lb[i]) if label else TransactionRecord(*tx[i])
