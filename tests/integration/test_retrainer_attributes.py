"""The closed loop carries attributes through (issue 17): a champion that reads attributes, a
stream whose events carry them, a drift alert -> the retrainer's candidate reads the same
attributes and was trained on their values; ``sentinel replay`` scores with them. Real broker,
real MLflow SQLite registry, the retrainer's own Kafka loop."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd
import pytest

from features.attributes import encode_frame
from features.offline import compute_features
from features.spec import FeatureConfig
from lifecycle.pipeline import TrainingConfig, run_training, train_and_register
from lifecycle.registry import CANDIDATE, CHAMPION, ModelRegistry
from lifecycle.replay import replay
from lifecycle.retrainer_kafka import run
from schemas.events import DriftAlert
from sentinel.infra.kafka_io import EventProducer
from sentinel.settings import DriftSettings
from training.learners import BoosterParams
from training.model_metrics import average_precision
from training.producer import produce_history
from training.simulation import SimulationConfig, simulate
from training.simulation.attributes import add_attributes

pytestmark = pytest.mark.integration
NUMERIC = ("new_device", "country_mismatch", "device_score")
CATEGORICAL = ("channel", "merchant_category")


def test_retrain_keeps_the_champions_attributes_and_trains_on_their_values(
        settings_factory: Any) -> None:
    settings = settings_factory(drift=DriftSettings(retrain_min_labels=100, retrainer_port=0,
                                                    promotion_interval_s=3600))
    world = add_attributes(simulate(SimulationConfig(
        n_customers=400, n_terminals=800, n_days=60, seed=3, label_delay_days=7)), seed=3)
    world = world.sort_values("event_time", kind="stable").reset_index(drop=True)
    # and a device score only trees can read (frauds far out on either side): without it the
    # logistic baseline is as good as the booster here and the retrain's gate a coin toss
    rng = np.random.default_rng(3)
    fraud = world["is_fraud"].to_numpy().astype(bool)
    score = rng.normal(size=len(world))
    score[fraud] = rng.choice([-1.0, 1.0], fraud.sum()) * (2.0 + rng.random(fraud.sum()))
    world["device_score"] = score
    # the champion: the first 30 days, with the simulator's attributes (a small booster: the
    # retrain on the newest days must beat it on its own test window to be registered)
    early = world[world["event_time"] < world["event_time"].min() + pd.Timedelta(days=30)]
    registry = ModelRegistry(settings)
    first = run_training(settings, early, source="champion", promote=True, config=TrainingConfig(
        numeric=NUMERIC, categorical=CATEGORICAL,
        booster=BoosterParams(num_trees=20, num_leaves=7, min_child_samples=20)))
    assert first.promoted, first.gate_reasons
    champion = registry.load(registry.resolve(CHAMPION))
    assert champion.attributes.columns == (
        "attr.num.new_device", "attr.num.country_mismatch", "attr.num.device_score",
        "attr.cat.channel", "attr.cat.merchant_category")

    t = settings.topics
    with EventProducer(settings.librdkafka()) as producer:
        produce_history(producer, world, t.name("transactions"), t.name("labels"),
                        attributes=(*NUMERIC, *CATEGORICAL))
        producer.send(t.name("drift_alerts"), "score", DriftAlert(
            alert_id="a1", detector="adwin", signal="score", statistic=5.0,
            reference={"mean": 0.05, "n": 1000.0}, current={"mean": 0.1, "n": 500.0,
                                                           "blocks": 24 * 20.0},
            event_time=world["event_time"].max().to_pydatetime(),
            detected_at=datetime.now(UTC), events_seen=10_000))

    # the retrainer's own loop; it stops once the retrain has run (the bound is a safety net)
    trained: list[pd.DataFrame] = []
    stop = threading.Event()

    def train(*args: Any, **kwargs: Any) -> Any:
        trained.append(args[1])
        try:
            return train_and_register(*args, **kwargs)
        finally:
            stop.set()

    retrainer = run(settings, max_seconds=600, serve_metrics=False, stop=stop, train=train)
    assert dict(retrainer.retrains).get("registered") == 1, dict(retrainer.retrains)

    # 1. the candidate reads the champion's attributes, numeric and categorical
    ref = registry.resolve(CANDIDATE)
    assert ref is not None
    candidate = registry.load(ref)
    spec = candidate.attributes
    assert [(a.name, a.kind) for a in spec.attributes] == [
        (a.name, a.kind) for a in champion.attributes.attributes]
    assert candidate.feature_names[-5:] == champion.feature_names[-5:] == spec.columns
    # its categories were learnt from the values the stream carried (none without them)
    assert set(spec.attributes[3].categories) == {"pos", "ecom", "atm", "moto"}
    assert len(spec.attributes[4].categories) == 7

    # 2. the frame it trained on held each transaction's attribute values, as produced
    frame = trained[0]
    expected = world.set_index("transaction_id").loc[frame["transaction_id"]]
    for name in NUMERIC:
        assert frame[name].tolist() == expected[name].astype(float).tolist()
    for name in CATEGORICAL:
        assert frame[name].tolist() == expected[name].tolist()
    # ... and the booster uses them (all-missing columns get no split, so no gain)
    gain = dict(zip(candidate.feature_names,
                    candidate.booster.feature_importance("gain"), strict=True))
    assert all(gain[c] > 0 for c in spec.columns), {c: gain[c] for c in spec.columns}

    # 3. sentinel replay reads the attributes from the topic and scores with them: the AP
    # equals the candidate's on the same events encoded offline, not the one without them
    report = replay(settings, ref.version, None, None)
    _, labels = retrainer.store.training_frame()
    features = compute_features(world.drop(columns=["is_fraud", "label_time"]), labels,
                                FeatureConfig.from_settings(settings.features))
    computed = features[list(candidate.feature_names[:-5])].to_numpy(np.float64)
    labelled = world["transaction_id"].isin(labels["transaction_id"]).to_numpy()
    y = world["is_fraud"].to_numpy()[labelled]

    def ap(attributes: np.ndarray) -> float:
        return average_precision(y, candidate.score(np.hstack([computed, attributes]))[labelled])

    assert report.transactions == len(world) and report.labelled == int(labelled.sum())
    assert report.average_precision == pytest.approx(ap(encode_frame(spec, world)), abs=1e-12)
    assert report.average_precision != pytest.approx(ap(np.full((len(world), 5), np.nan)),
                                                     abs=1e-3)
