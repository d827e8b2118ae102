"""A model that reads transaction attributes, served by the worker process on the real broker:
its verdicts equal the offline scores of the same rows (attributes encoded by the pandas form
of the feature spec), a missing attribute is counted, a wrong type is a dead letter naming the
field, and a model needing an attribute kind the worker cannot encode is refused."""

from __future__ import annotations

import signal
import uuid
from pathlib import Path

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest

from features import FEATURE_NAMES
from features.attributes import Attribute, AttributeSpec, encode_frame
from lifecycle.registry import ModelRegistry
from schemas import DeadLetter, Transaction, Verdict
from sentinel.infra.worker_process import free_port
from sentinel.settings import ScoringSettings
from tests.e2e.worker_support import (
    http,
    produce,
    start_worker,
    stop_worker,
    transactions,
    wait_ready,
    worker_env,
)
from tests.plugin import TopicCollector
from training.model import FraudModel, Thresholds

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

SPEC = AttributeSpec((Attribute("risk", "num"), Attribute("new_device", "num"),
                      Attribute("channel", "cat", ("pos", "ecom"))))


def attribute_model(feature_names: tuple[str, ...] = (*FEATURE_NAMES, *SPEC.columns),
                    spec: AttributeSpec = SPEC) -> FraudModel:
    rng = np.random.default_rng(4)
    n, k = 3000, len(feature_names)
    X = rng.random((n, k))
    X[:, -3] = rng.normal(size=n)  # risk
    X[:, -2] = rng.random(n) < 0.2  # new_device
    X[:, -1] = rng.integers(0, 3, n)  # channel code (2 = other)
    X[rng.random((n, k)) < 0.05] = np.nan
    y = ((np.nan_to_num(X[:, -3]) > 1.0) | (X[:, -2] == 1) & (rng.random(n) < 0.5)).astype(int)
    booster = lgb.train({"objective": "binary", "num_leaves": 7, "verbose": -1, "seed": 4,
                         "num_threads": 1}, lgb.Dataset(X, y), num_boost_round=20)
    return FraudModel("lightgbm", feature_names, Thresholds(0.3, 0.6), booster,
                      attributes=spec)


def with_attributes(txs: list[Transaction]) -> list[Transaction]:
    rng = np.random.default_rng(5)
    out = []
    for i, tx in enumerate(txs):
        attrs: dict[str, object] = {"risk": float(np.round(rng.normal(), 3)),
                                    "new_device": bool(rng.random() < 0.2)}
        if i % 7 == 0:
            del attrs["risk"]  # missing: NaN, counted
        if i % 11 == 0:
            attrs["new_device"] = None
        channel = ["pos", "ecom", "atm", None][i % 4]  # atm: unseen at training, "other"
        out.append(tx.model_copy(update={"attributes": attrs, "channel": channel}))
    return out


def test_attribute_model_scores_the_stream_like_offline(settings_factory, tmp_path: Path,
                                                        ) -> None:
    settings = settings_factory(scoring=ScoringSettings(verdict_features=True))
    registry = ModelRegistry(settings)
    model = attribute_model()
    for m in (model, attribute_model((*FEATURE_NAMES, "attr.embedding.device"),
                                     AttributeSpec())):
        registry.register(registry.log_run(m, params={}, metrics={}, tags={}), reason="test")
    name = settings.mlflow.model_name
    registry.client.set_registered_model_alias(name, "champion", "1")
    registry.client.set_registered_model_alias(name, "candidate", "2")
    port = free_port()
    proc = start_worker(worker_env(settings, port, f"w-{uuid.uuid4().hex[:8]}"),
                        tmp_path / "worker.log")
    verdicts = TopicCollector(settings, "verdicts", Verdict, proc)
    dead = TopicCollector(settings, "dead_letters", DeadLetter, proc)
    try:
        wait_ready(port, proc)
        txs = with_attributes(transactions(600, seed=9))
        bad = txs[100].model_copy(update={"transaction_id": "bad-type",
                                          "attributes": {"risk": "high"}})
        produce(settings, [*txs, bad])
        seen = verdicts.until(lambda v: {t.transaction_id for t in txs}
                              <= {x.transaction_id for x in v})
        dlq = dead.until(lambda d: len(d) >= 1)
        assert [d.reason for d in dlq] == ["attribute_type"]
        assert "attributes.risk" in (dlq[0].detail or "")

        by_id = {v.transaction_id: v for v in seen}
        assert "bad-type" not in by_id
        frame = pd.DataFrame([{**(t.attributes or {}), "channel": t.channel} for t in txs])
        A = encode_frame(SPEC, frame)  # the offline (pandas) form
        rows = np.asarray([by_id[t.transaction_id].features for t in txs], dtype=np.float64)
        offline = model.score(np.hstack([rows, A]))
        online = np.asarray([by_id[t.transaction_id].score for t in txs])
        assert np.array_equal(online, offline)
        assert len(set(np.round(online, 6))) > 10  # the attributes move the scores

        status, metrics = http(port, "/metrics")
        assert status == 200
        assert f'sentinel_attribute_missing_total{{attribute="risk"}} {600 // 7 + 1}.0' in metrics
        assert 'sentinel_dead_letters_total{reason="attribute_type"} 1.0' in metrics
        assert 'sentinel_models_refused_total{reason="KeyError",role="candidate"} 1.0' in metrics
        status, body = http(port, "/predict", {"id": "c1", "amount": 10.0,
                                               "attributes": {"risk": 3.0}, "channel": "ecom"})
        assert status == 200 and body["model_version"] == "1"
    finally:
        stop_worker(proc, signal.SIGKILL)
        verdicts.close()
        dead.close()
