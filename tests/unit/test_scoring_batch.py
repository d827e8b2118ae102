"""Stage 2's champion scoring: large batches are scored in a thread, small ones inline; both
give the same verdicts."""

from __future__ import annotations

import asyncio
import json
from types import SimpleNamespace
from typing import Any

import lightgbm as lgb
import numpy as np
import pytest

from features import FEATURE_NAMES, CardState, TerminalState
from sentinel.settings import Settings
from stream_app import pipeline
from stream_app.handoff import Handoff
from stream_app.metrics import WorkerMetrics
from stream_app.models import Slot
from stream_app.pipeline import Scorer, StateCache, Topics
from training.model import FraudModel, Thresholds


class _Sink:
    def __init__(self) -> None:
        self.sent: list[tuple[str, Any, bytes]] = []

    def send(self, topic: str, key: Any, value: bytes, partition: int | None = None) -> None:
        self.sent.append((topic, key, value))

    async def ready(self) -> None:
        return None

    def poll(self) -> None:
        return None


def _model() -> FraudModel:
    rng = np.random.default_rng(3)
    X = rng.random((1000, len(FEATURE_NAMES)))
    y = (X[:, 0] > 0.7).astype(int)
    booster = lgb.train({"objective": "binary", "num_leaves": 7, "verbose": -1, "seed": 3,
                         "num_threads": 1}, lgb.Dataset(X, y), num_boost_round=10)
    return FraudModel("lightgbm", FEATURE_NAMES, Thresholds(review=0.3, decline=0.6), booster)


def _scorer(model: FraudModel) -> tuple[Scorer, _Sink]:
    sink = _Sink()
    models = SimpleNamespace(champion=Slot("m", "1", model), candidate=None)
    store: dict[str, Any] = {}
    cache = StateCache(store, CardState.from_dict, CardState, lambda p, k, v: None)
    terminals = StateCache(store, TerminalState.from_dict, TerminalState, lambda p, k, v: None)
    scorer = Scorer(Settings(), Topics("tx", "labels", "handoff", "v", "s", "dlq", "drift", 3),
                    sink, models, WorkerMetrics(), cache, terminals)  # type: ignore[arg-type]
    return scorer, sink


@pytest.mark.parametrize("rows", [pipeline.OFFLOAD_MIN_ROWS - 1, pipeline.OFFLOAD_MIN_ROWS + 50])
def test_batch_scores_equal_the_model_on_either_side_of_the_offload_size(rows: int) -> None:
    model = _model()
    scorer, sink = _scorer(model)
    X = np.random.default_rng(rows).random((rows, len(FEATURE_NAMES)))
    pending = [Handoff(f"tx{i}", "c", "t", 1.0, "2018-04-01T00:00:00+00:00", 0, 0, [])
               for i in range(rows)]
    asyncio.run(scorer._score(pending, X, []))
    verdicts = [json.loads(v) for topic, _, v in sink.sent if topic == "v"]
    assert [v["transaction_id"] for v in verdicts] == [h.transaction_id for h in pending]
    np.testing.assert_allclose([v["score"] for v in verdicts], model.score(X), rtol=0, atol=0)
    flagged = [v for v in verdicts if v["decision"] != "approve"]
    assert flagged and all(v["reason_codes"] for v in flagged)
