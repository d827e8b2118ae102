"""Pure parts of the streaming worker: replay memory, partitioner, /predict parsing, metrics."""

from __future__ import annotations

import zlib

import numpy as np
import pytest

from features import CardState, FeatureConfig, TransactionRecord, card_stage
from stream_app.errors import PredictInputError
from stream_app.metrics import WorkerMetrics
from stream_app.predict import parse
from stream_app.scoring import columns, feature_hash
from stream_app.sink import partition_for
from stream_app.state import KeyedState


def test_replayed_transaction_gets_same_features_and_state_is_not_updated_twice() -> None:
    config = FeatureConfig()
    entry = KeyedState(CardState())
    rec = TransactionRecord("t1", "c1", "m1", 10.0, 1_700_000_000_000_000)
    first = entry.features("t1", lambda s: card_stage(s, rec, config))
    restored = KeyedState.from_dict(entry.to_dict(), CardState.from_dict)
    again = restored.features("t1", lambda s: card_stage(s, rec, config))
    assert again == first and len(restored.state) == 1


def test_partition_matches_librdkafka_consistent_partitioner() -> None:
    assert partition_for(b"m42", 6) == zlib.crc32(b"m42") % 6


def test_predict_body_defaults_and_field_errors() -> None:
    tx = parse({"id": 1, "amount": 150000.0})
    assert tx.card_id == "1" and tx.terminal_id == "predict"
    with pytest.raises(PredictInputError) as err:
        parse({"amount": -1, "bogus": 2})
    assert {f for f, _ in err.value.problems} == {"id", "bogus"}


def test_columns_and_hash() -> None:
    assert columns(("b", "a"), ("a", "b", "c")).tolist() == [1, 0]
    with pytest.raises(KeyError):
        columns(("z",), ("a",))
    row = np.arange(3, dtype=np.float64)
    assert feature_hash(row) == feature_hash(row.copy()) != feature_hash(row + 1)


def test_metric_names_are_the_contract() -> None:
    m = WorkerMetrics(fraud_window=4)
    m.observe_decisions([True, False, False, False, True])
    text = m.render().decode()
    for name in ("sentinel_transactions_total", "sentinel_candidate_failures_total",
                 "sentinel_shadow_results_total", "sentinel_fraud_rate 0.25"):
        assert name in text
