"""The scorer: every released transaction ends in a verdict or a dead letter, never nowhere;
the candidate never changes a verdict."""

from __future__ import annotations

import json
from typing import Any

import lightgbm as lgb
import numpy as np
import pytest

from features import FEATURE_NAMES
from schemas import DeadLetter, Transaction, decode
from sentinel.settings import ScoringSettings
from stream_app.handoff import Handoff
from stream_app.metrics import WorkerMetrics
from stream_app.scorer import Scorer
from stream_app.serving import ServingModels, Slot
from stream_app.topology import Topics
from training.model import FraudModel, Thresholds

TOPICS = Topics("tx", "labels", "v", "s", "dlq", "drift", "events", "cards", "terms",
                "lbl", "cc", "tc", 3, 3, 3)


class _Out:
    sequence = 0

    def __init__(self) -> None:
        self.sent: list[tuple[str, Any, bytes]] = []

    def produce(self, topic: str, key: Any, value: bytes, partition: int | None = None) -> None:
        self.sent.append((topic, key, value))

    def done(self, topic: str, partition: int, next_offset: int) -> None:
        pass

    def on(self, topic: str) -> list[bytes]:
        return [v for t, _, v in self.sent if t == topic]


class _Registry:
    def resolve(self, alias: str) -> None:
        return None

    def load(self, ref: Any) -> None:
        return None


def _model() -> FraudModel:
    rng = np.random.default_rng(3)
    X = rng.random((1000, len(FEATURE_NAMES)))
    y = (X[:, 0] > 0.7).astype(int)
    booster = lgb.train({"objective": "binary", "num_leaves": 7, "verbose": -1, "seed": 3,
                         "num_threads": 1}, lgb.Dataset(X, y), num_boost_round=10)
    return FraudModel("lightgbm", FEATURE_NAMES, Thresholds(review=0.3, decline=0.6), booster)


class _FailsOnLargeAmounts:
    """A champion that raises on any batch holding a row with amount > 0.9 (a poison row)."""

    def __init__(self, model: FraudModel) -> None:
        self.inner = model
        self.feature_names = model.feature_names

    def score(self, X: np.ndarray) -> np.ndarray:
        if (X[:, 0] > 0.9).any():
            raise ValueError("cannot score this row")
        return self.inner.score(X)

    def decide(self, scores: np.ndarray) -> np.ndarray:
        return self.inner.decide(scores)

    def reasons(self, X: np.ndarray, k: int) -> list[list[str]]:
        return self.inner.reasons(X, k)


class _Wider(_FailsOnLargeAmounts):
    """A champion that needs a feature the worker does not compute."""

    def __init__(self, model: FraudModel) -> None:
        super().__init__(model)
        self.feature_names = (*model.feature_names, "not_computed")


def _records(n: int) -> list[Handoff]:
    return [Handoff(f"tx{i}", "c", "t", 1.0, "2018-04-01T00:00:00+00:00", 0, 0, [])
            for i in range(n)]


def _scorer(candidate: Slot | None = None, **scoring: Any) -> tuple[Scorer, _Out]:
    out = _Out()
    models = ServingModels(_Registry())
    models.candidate = candidate
    scorer = Scorer(TOPICS, out, models, WorkerMetrics(), tuple(FEATURE_NAMES),
                    ScoringSettings(**scoring))
    return scorer, out


def test_verdicts_equal_the_model_and_carry_the_features_when_asked() -> None:
    model = _model()
    scorer, out = _scorer(verdict_features=True)
    X = np.random.default_rng(1).random((300, len(FEATURE_NAMES)))
    scorer.score(_records(300), X, Slot("m", "1", model))
    verdicts = [json.loads(v) for v in out.on("v")]
    assert [v["transaction_id"] for v in verdicts] == [f"tx{i}" for i in range(300)]
    np.testing.assert_allclose([v["score"] for v in verdicts], model.score(X), rtol=0, atol=0)
    np.testing.assert_array_equal([v["features"] for v in verdicts], X)
    flagged = [v for v in verdicts if v["decision"] != "approve"]
    assert flagged and all(v["reason_codes"] for v in flagged)


def test_a_failing_batch_is_isolated_rows_dead_lettered_the_rest_scored() -> None:
    scorer, out = _scorer()
    X = np.random.default_rng(2).random((50, len(FEATURE_NAMES))) * 0.5
    X[[7, 31], 0] = 0.95  # two poison rows
    scorer.score(_records(50), X, Slot("m", "1", _FailsOnLargeAmounts(_model())))
    scored = {json.loads(v)["transaction_id"] for v in out.on("v")}
    letters = [decode(DeadLetter, v) for v in out.on("dlq")]
    assert scored == {f"tx{i}" for i in range(50)} - {"tx7", "tx31"}
    assert [d.reason for d in letters] == ["scoring_error", "scoring_error"]
    originals = [decode(Transaction, __import__("base64").b64decode(d.original_base64))
                 for d in letters]
    assert [t.transaction_id for t in originals] == ["tx7", "tx31"]
    assert "cannot score this row" in (letters[0].detail or "")


def test_a_champion_needing_an_unknown_feature_loses_nothing() -> None:
    model = _Wider(_model())
    scorer, out = _scorer()
    scorer.score(_records(5), np.zeros((5, len(FEATURE_NAMES))), Slot("m", "9", model))
    assert out.on("v") == []
    assert len(out.on("dlq")) == 5  # every one dead-lettered with its reason


def test_a_failing_candidate_never_changes_a_verdict() -> None:
    model = _model()
    X = np.random.default_rng(4).random((40, len(FEATURE_NAMES)))
    X[3, 0] = 0.99
    alone, out_alone = _scorer()
    alone.score(_records(40), X, Slot("m", "1", model))
    shadowed, out_shadow = _scorer(Slot("m", "2", _FailsOnLargeAmounts(model)))
    shadowed.score(_records(40), X, Slot("m", "1", model))
    strip = [{k: v for k, v in json.loads(x).items() if k not in ("scored_at", "latency_ms")}
             for x in out_alone.on("v")]
    assert strip == [{k: v for k, v in json.loads(x).items()
                      if k not in ("scored_at", "latency_ms")} for x in out_shadow.on("v")]
    assert out_shadow.on("s") == []
    assert 'sentinel_candidate_failures_total{kind="error"} 40.0' in (
        shadowed.metrics.render().decode())


def test_serving_models_refuse_a_model_the_worker_cannot_feed() -> None:
    model = _Wider(_model())

    class Registry:
        def resolve(self, alias: str) -> Any:
            return type("Ref", (), {"name": "m", "version": "5"})() if alias == "champion" \
                else None

        def load(self, ref: Any) -> _Wider:
            return model

    refused: list[tuple[str, str]] = []
    from stream_app.scoring import columns

    models = ServingModels(Registry(), check=lambda m: columns(tuple(m.feature_names),
                                                                tuple(FEATURE_NAMES)),
                           on_refused=lambda role, reason: refused.append((role, reason)))
    assert models.refresh() is False
    assert models.champion is None and refused == [("champion", "KeyError")]
    models.refresh()
    assert refused == [("champion", "KeyError")]  # refused once, not reloaded every poll


@pytest.mark.parametrize("n", [1, 1200])
def test_scores_of_any_batch_size(n: int) -> None:
    model = _model()
    scorer, out = _scorer()
    X = np.random.default_rng(n).random((n, len(FEATURE_NAMES)))
    scorer.score(_records(n), X, Slot("m", "1", model))
    assert len(out.on("v")) == n
