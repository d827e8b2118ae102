"""Closed-loop parts on real adapters: the MLflow registry driven by Retrainer.tick, the
retrainer's dead-letter path on the real broker, and the label store's idempotency."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from lifecycle.labelstore import LabelStore
from lifecycle.registry import CANDIDATE, CHAMPION, ModelRegistry
from lifecycle.retrainer import Retrainer
from lifecycle.retrainer_kafka import run
from schemas import decode
from schemas.events import DeadLetter, LabelFeedback, ModelEvent, ShadowResult, Transaction, Verdict
from sentinel.infra.kafka_io import EventProducer, read_all
from sentinel.settings import DriftSettings, MlflowSettings, Settings
from training.learners import BoosterParams, fit_booster
from training.model import FraudModel, Thresholds

pytestmark = pytest.mark.integration
T0 = datetime(2024, 3, 1, tzinfo=UTC)
FEATURES = ("amount", "velocity")


def _model(seed: int) -> FraudModel:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(300, 2))
    y = (X[:, 0] + rng.normal(scale=0.5, size=300) > 1.0).astype(int)
    model = fit_booster(X, y, FEATURES, BoosterParams(num_trees=3, num_leaves=4,
                                                      min_child_samples=5, seed=seed))
    return model.with_thresholds(Thresholds(review=0.5, decline=0.8))


def _register(registry: ModelRegistry, seed: int) -> str:
    logged = registry.log_run(_model(seed), params={}, metrics={}, tags={})
    return registry.register(logged, reason=f"seed {seed}").version


def _labelled(store: LabelStore, n: int, seed: int, prefix: str) -> tuple[list[str], np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.random(n) < 0.05
    ids = [f"{prefix}-{i}" for i in range(n)]
    store.add_labels(LabelFeedback(transaction_id=i, card_id="c", terminal_id="t",
                                   is_fraud=bool(f), transaction_time=T0, reported_at=T0,
                                   source="simulator") for i, f in zip(ids, y, strict=True))
    return ids, y


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path / "data", mlflow=MlflowSettings(model_name="fraud-loop"),
                    drift=DriftSettings(promotion_min_labels=500, promotion_min_frauds=10,
                                        promotion_min_live=0, rollback_min_labels=500,
                                        promote_first_candidate=True))


def test_tick_promotes_a_better_candidate_then_rolls_back_a_regression(
        settings: Settings, tmp_path: Path) -> None:
    events: list[ModelEvent] = []
    registry = ModelRegistry(settings)
    store = LabelStore(tmp_path / "store.sqlite")
    retrainer = Retrainer(settings, store, registry, events.append, train=lambda *a, **k: None)
    first = _register(registry, 0)
    retrainer.tick(T0)  # no champion yet: the first candidate becomes champion
    assert registry.resolve(CHAMPION).version == first
    second = _register(registry, 1)
    rng = np.random.default_rng(7)
    ids, y = _labelled(store, 3000, 1, "shadow")
    champion_score = np.clip(0.3 * y + rng.normal(0.2, 0.15, len(y)), 0, 1)  # weak
    candidate_score = np.clip(0.7 * y + rng.normal(0.2, 0.1, len(y)), 0, 1)  # clearly better
    store.add_shadow(ShadowResult(
        transaction_id=i, card_id="c", champion_version=first, candidate_version=second,
        champion_score=float(a), candidate_score=float(b),
        champion_decision="review" if a >= 0.5 else "approve",
        candidate_decision="review" if b >= 0.5 else "approve",
        agree=bool((a >= 0.5) == (b >= 0.5)), event_time=T0)
        for i, a, b in zip(ids, champion_score, candidate_score, strict=True))
    # the old champion's live verdicts: good (rollback compares against them later)
    old_ids, old_y = _labelled(store, 1000, 2, "old")
    store.add_verdicts(_verdicts(old_ids, first, np.where(old_y, 0.9, 0.1)))

    retrainer.tick(T0 + timedelta(hours=1))
    champion = registry.resolve(CHAMPION)
    assert champion.version == second
    assert registry.resolve(CANDIDATE) is None
    promoted = [e for e in events if e.action == "promoted" and e.version == second]
    assert promoted and promoted[0].previous_version == first
    assert promoted[0].evidence["ap_candidate"] > promoted[0].evidence["ap_champion"]
    assert float(champion.tags["sentinel.promotion.gain_low"]) > 0
    assert champion.tags["sentinel.promotion.known_rule"] == "pass"
    assert retrainer.promotions["promoted"] == 2

    # the new champion regresses live: scores are noise, it flags half of the genuine
    # payments (a proved breach of the alert budget) -> rollback at the next tick
    new_ids, _ = _labelled(store, 1000, 3, "new")
    noise = np.random.default_rng(4).random(len(new_ids))
    store.add_verdicts(_verdicts(new_ids, second, noise))
    retrainer.tick(T0 + timedelta(hours=2))
    assert registry.resolve(CHAMPION).version == first
    rolled = [e for e in events if e.action == "rolled_back"]
    assert rolled and rolled[0].version == first and rolled[0].previous_version == second
    assert rolled[0].evidence["breach"] == "budget"
    assert rolled[0].evidence["genuine_flagged_low"] > settings.drift.alert_budget
    assert retrainer.promotions["rolled_back"] == 1
    store.close()


def _verdicts(ids: list[str], version: str, scores: np.ndarray) -> list[Verdict]:
    return [Verdict(transaction_id=i, card_id="c", model_name="fraud-loop",
                    model_version=version, score=float(s),
                    decision="review" if s >= 0.5 else "approve", feature_hash="h",
                    event_time=T0, scored_at=T0, latency_ms=1.0)
            for i, s in zip(ids, scores, strict=True)]


def test_label_store_is_idempotent(tmp_path: Path, store_uri: str | None) -> None:
    store = LabelStore(store_uri or tmp_path / "s.sqlite")
    tx = Transaction(transaction_id="x1", card_id="c", terminal_id="t", amount=5.0,
                     event_time=T0)
    label = LabelFeedback(transaction_id="x1", card_id="c", terminal_id="t", is_fraud=True,
                          transaction_time=T0, reported_at=T0 + timedelta(days=1),
                          source="simulator")
    for _ in range(3):  # at-least-once redelivery
        store.add_transactions([tx])
        store.add_labels([label])
    assert store.count("transactions") == 1 and store.count("labels") == 1
    assert store.labels_since(T0) == 1
    frame, labels = store.training_frame()
    assert list(frame["transaction_id"]) == ["x1"] and labels["is_fraud"].tolist() == [1]
    store.close()


def test_bad_messages_go_to_the_dead_letter_topic(settings_factory) -> None:
    settings = settings_factory(drift=DriftSettings(retrainer_port=0,
                                                    promotion_interval_s=3600))
    t = settings.topics
    good = Transaction(transaction_id="ok", card_id="c", terminal_id="t", amount=3.0,
                       event_time=T0)
    with EventProducer(settings.librdkafka()) as producer:
        producer.send(t.name("labels"), b"k1", b"{not json")
        producer.send(t.name("transactions"), "c", good)
    retrainer = run(settings, max_seconds=20, serve_metrics=False)
    assert retrainer.store.count("transactions") == 1
    assert retrainer.retrains["bad_input"] == 1
    msgs = read_all(settings.librdkafka(), t.name("dead_letters"), 1, timeout_s=30)
    dead = decode(DeadLetter, msgs[0].value())
    assert base64.b64decode(dead.original_base64) == b"{not json"
    assert base64.b64decode(dead.original_key_base64 or "") == b"k1"
    assert dead.source_topic == t.name("labels")
    assert dead.source_offset == 0 and dead.source_partition >= 0
    assert dead.error_type == "SchemaValidationError" and dead.reason


def test_replay_reports_ap_and_recall_for_a_registered_version(settings_factory) -> None:
    from features.offline import compute_features
    from features.spec import FEATURE_NAMES
    from lifecycle.replay import replay
    from training.simulation import SimulationConfig, simulate

    settings = settings_factory()
    frame = simulate(SimulationConfig(n_customers=300, n_terminals=600, n_days=40, seed=5))
    frame = frame.sort_values("event_time", kind="stable").reset_index(drop=True)
    names = tuple(FEATURE_NAMES)
    X = compute_features(frame)[list(names)].to_numpy(np.float64)
    model = fit_booster(X, frame["is_fraud"].to_numpy(), names,
                        BoosterParams(num_trees=20, num_leaves=8, min_child_samples=5, seed=0))
    registry = ModelRegistry(settings)
    logged = registry.log_run(model.with_thresholds(Thresholds(review=0.3, decline=0.8)),
                              params={}, metrics={}, tags={})
    version = registry.register(logged, reason="replay test").version
    t = settings.topics
    with EventProducer(settings.librdkafka()) as producer:
        for row in frame.itertuples(index=False):
            producer.send(t.name("transactions"), row.card_id, Transaction(
                transaction_id=row.transaction_id, card_id=row.card_id,
                terminal_id=row.terminal_id, amount=row.amount, event_time=row.event_time))
            producer.send(t.name("labels"), row.terminal_id, LabelFeedback(
                transaction_id=row.transaction_id, card_id=row.card_id,
                terminal_id=row.terminal_id, is_fraud=bool(row.is_fraud),
                transaction_time=row.event_time, reported_at=row.label_time,
                source="simulator"))
        producer.send(t.name("transactions"), b"x", b"{not json")  # a real topic's poison
        producer.send(t.name("labels"), b"x", b'{"transaction_id": 1}')
    since = frame["event_time"].min().normalize().to_pydatetime() + timedelta(days=30)
    report = replay(settings, version, since, None)
    in_window = int((frame["event_time"] >= since).sum())
    assert report.version == version
    assert report.transactions == in_window == report.labelled
    assert report.frauds == int(frame.loc[frame["event_time"] >= since, "is_fraud"].sum()) > 0
    assert report.average_precision > 5 * report.frauds / report.labelled  # beats chance
    assert 0 < report.alert_rate < 0.2 and 0 <= report.recall_at_alert_rate <= 1


def test_a_new_candidate_is_judged_first_on_the_payments_after_its_training_data(
        tmp_path: Path) -> None:
    """Retrain -> the payments after the candidate's newest label are backfilled as its shadow
    results -> once their labels mature, they are the promotion's evidence (counted)."""
    from types import SimpleNamespace

    import pandas as pd

    from features.offline import compute_features
    from features.spec import FeatureConfig
    from schemas.events import DriftAlert
    from sentinel.settings import FeatureSettings
    from tests.unit.test_backfill import _fill
    from training.simulation import SimulationConfig, simulate

    settings = Settings(data_dir=tmp_path / "data", mlflow=MlflowSettings(model_name="fill"),
                        features=FeatureSettings(label_delay_days=1),
                        drift=DriftSettings(retrain_min_labels=0, promotion_min_labels=300,
                                            promotion_min_frauds=3))
    world = simulate(SimulationConfig(n_customers=400, n_terminals=800, n_days=45, seed=12,
                                      label_delay_days=1))
    world = world.sort_values("event_time", kind="stable").reset_index(drop=True)
    now = world["event_time"].min().normalize() + pd.Timedelta(days=44)
    registry = ModelRegistry(settings)
    registry.promote(_register(registry, 0))  # v1: the champion the stored verdicts name
    store = LabelStore(tmp_path / "store.sqlite")
    _fill(store, world, now)  # champion verdicts are noise: any learnt model beats them
    config = FeatureConfig(label_delay_days=1)

    def train(settings: Settings, frame: pd.DataFrame, labels: pd.DataFrame, **_: object):
        data = frame.merge(labels, on="transaction_id")
        feats = compute_features(data.drop(columns=["is_fraud", "label_time"]), labels, config)
        names = tuple(c for c in feats.columns if c != "transaction_id")
        model = fit_booster(feats[list(names)].to_numpy(np.float64), data["is_fraud"].to_numpy(),
                            names, BoosterParams(num_trees=20, num_leaves=8, seed=1))
        model = model.with_thresholds(Thresholds(review=0.5, decline=0.9))
        ref = registry.register(registry.log_run(model, params={}, metrics={}, tags={}),
                                reason="test")
        return SimpleNamespace(status="registered", model=ref)

    retrainer = Retrainer(settings, store, registry, lambda e: None, train=train)
    retrainer.on_alert(DriftAlert(
        alert_id="a", detector="cusum", signal="card_testing_bursts", statistic=30.0,
        reference={}, current={"blocks": 48.0}, event_time=now.to_pydatetime(),
        detected_at=now.to_pydatetime(), events_seen=1))
    candidate = registry.resolve(CANDIDATE)
    assert candidate is not None and candidate.version == "2"
    unseen = world[(world["event_time"] > now - pd.Timedelta(days=1))
                   & (world["event_time"] <= now)]
    assert retrainer.backfilled == {"2": store.count("shadow")}
    assert 0.8 * len(unseen) <= store.count("shadow") <= len(unseen)
    # nothing has matured yet: wait; a day later every backfilled payment is labelled
    assert retrainer.check_promotion().action == "wait"
    later = world[(world["label_time"] > now) & (world["label_time"] <= now + pd.Timedelta(days=1))
                  & (world["event_time"] <= now)]
    store.add_labels(LabelFeedback(transaction_id=r.transaction_id, card_id=r.card_id,
                                   terminal_id=r.terminal_id, is_fraud=bool(r.is_fraud),
                                   transaction_time=r.event_time, reported_at=r.label_time,
                                   source="simulator") for r in later.itertuples(index=False))
    verdict = retrainer.check_promotion()
    assert verdict.evidence is not None, verdict.reason
    assert verdict.evidence.backfilled == verdict.evidence.n == store.count("shadow")
    assert verdict.evidence.frauds >= 3
    # backfill alone cannot promote: the worker's own shadow results are required
    assert verdict.action == "wait" and "live shadow results" in verdict.reason
    assert verdict.evidence.live == 0
    retrainer.settings = settings.model_copy(update={"drift": settings.drift.model_copy(
        update={"promotion_min_live": 0})})
    verdict = retrainer.check_promotion()
    assert verdict.action == "promote", verdict.reason
    assert registry.resolve(CHAMPION).version == "2"
    assert float(registry.resolve(CHAMPION).tags["sentinel.promotion.backfilled"]) \
        == verdict.evidence.backfilled
    store.close()
