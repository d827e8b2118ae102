"""The retrainer on the real broker and a real MLflow SQLite registry."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime

import pytest

from lifecycle.labelstore import LabelStore
from lifecycle.registry import ModelRegistry
from lifecycle.retrainer import Retrainer
from lifecycle.retrainer_kafka import run
from schemas import decode
from schemas.events import DriftAlert, LabelFeedback, ModelEvent, Transaction
from sentinel.infra.kafka_io import EventProducer, read_all
from sentinel.settings import DriftSettings
from training.simulation import SimulationConfig, simulate

pytestmark = pytest.mark.integration


def _run_until(settings, stored: Callable[[LabelStore], bool]) -> Retrainer:
    """Run the retrainer until ``stored`` holds on its label store (read beside it), a batch
    at a time: a run stops after the batch it is in, its alerts delivered."""
    stop = threading.Event()

    def watch() -> None:
        store = LabelStore(settings.label_store_location)
        try:
            while not stop.wait(0.25):
                if stored(store):
                    stop.set()
        finally:
            store.close()

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        return run(settings, max_seconds=300, serve_metrics=False, stop=stop)
    finally:
        stop.set()
        watcher.join()


def test_alert_on_topic_gives_candidate_and_model_event(settings_factory) -> None:
    settings = settings_factory(drift=DriftSettings(retrain_min_labels=100, retrainer_port=0,
                                                    promotion_interval_s=3600))
    frame = simulate(SimulationConfig(n_customers=400, n_terminals=800, n_days=60, seed=3,
                                      label_delay_days=7))
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
        # the alert may be read before the data it is about: the retrainer must act on it
        # only once caught up (it once trained on what had arrived, and the gate rejected it)
        last = frame["event_time"].max().to_pydatetime()
        producer.send(t.name("drift_alerts"), "score", DriftAlert(
            alert_id="a1", detector="adwin", signal="score", statistic=5.0,
            reference={"mean": 0.05, "n": 1000.0}, current={"mean": 0.1, "n": 500.0,
                                                           "blocks": 24 * 20.0},
            event_time=last, detected_at=datetime.now(UTC), events_seen=10_000))
    retrainer = run(settings, max_seconds=90, serve_metrics=False)
    assert retrainer.store.count("transactions") == len(frame)
    outcomes = dict(retrainer.retrains)
    assert outcomes.get("registered") == 1, outcomes
    candidate = ModelRegistry(settings).resolve("candidate")
    assert candidate is not None
    events = [decode(ModelEvent, m.value())
              for m in read_all(settings.librdkafka(), t.name("model_events"), 1, timeout_s=30)]
    assert any(e.action == "registered" and e.version == candidate.version for e in events)


def test_label_path_alert_is_published_from_verdicts_joined_with_labels(settings_factory) -> None:
    """The champion's recall falls on arriving labels: the retrainer publishes a missed-fraud
    alert to the drift-alerts topic (and holds the retrain: too few labels since the shift)."""
    from tests.unit.test_label_drift import _world

    settings = settings_factory(drift=DriftSettings(grace_events=1000, retrain_min_labels=10**9,
                                                    retrainer_port=0, promotion_interval_s=3600))
    t = settings.topics
    verdicts, labels = _world(60_000, change_at=40_000)
    with EventProducer(settings.librdkafka()) as producer:
        for v in verdicts:
            producer.send(t.name("verdicts"), v.transaction_id, v)
    # verdicts first, as in life
    retrainer = _run_until(settings, lambda s: s.count("verdicts") >= len(verdicts))
    assert retrainer.store.count("verdicts") == len(verdicts)
    with EventProducer(settings.librdkafka()) as producer:
        for x in labels:
            producer.send(t.name("labels"), x.terminal_id, x)
    retrainer = _run_until(settings, lambda s: s.count("labels") >= len(labels))
    assert retrainer.store.count("labels") == len(labels)
    alerts = [decode(DriftAlert, m.value())
              for m in read_all(settings.librdkafka(), t.name("drift_alerts"), 1, timeout_s=20)]
    assert any(a.signal == "missed_fraud" and a.model_version == "7" for a in alerts), alerts
    assert retrainer.retrains.get("registered", 0) == 0
