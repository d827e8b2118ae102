"""The producer's event-time merge of transactions and label arrivals."""

from __future__ import annotations

import pandas as pd

from training.producer import merged_order


def frame() -> pd.DataFrame:
    times = pd.to_datetime(["2018-04-01 00:00", "2018-04-01 01:00", "2018-04-01 02:00"], utc=True)
    return pd.DataFrame({
        "transaction_id": ["a", "b", "c"],
        "event_time": times,
        # a's label arrives exactly when c happens; b's label after everything.
        "label_time": pd.to_datetime(["2018-04-01 02:00", "2018-04-01 05:00",
                                      "2018-04-01 03:00"], utc=True),
        "is_fraud": [1, 0, 0],
    })


def test_labels_interleave_by_time_and_precede_transactions_at_ties() -> None:
    assert list(merged_order(frame(), with_labels=True)) == [
        (False, 0), (False, 1), (True, 0), (False, 2), (True, 2), (True, 1),
    ]


def test_without_labels_only_transactions_in_order() -> None:
    assert list(merged_order(frame(), with_labels=False)) == [(False, 0), (False, 1), (False, 2)]
