"""Fraud reports reach retraining, on the real broker: reports (complete, by id, by a card's
range, and a poison one) on the labels topic before any payment they name, then the payments
and the chargebacks, then a drift alert; the frame the retrainer hands to training has
exactly the labels offline resolution (``features.reports.resolve_reports``) and the
chargebacks give, with the same features, and the poison report is dead-lettered."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from functools import partial
from types import SimpleNamespace
from typing import Any

import pandas as pd
import pytest

from features import FeatureConfig, compute_features
from features.offline import merge_labels
from features.reports import report_frame, resolve_reports
from lifecycle.labelstore import LabelStore
from lifecycle.retrainer_kafka import run
from schemas import decode
from schemas.events import DeadLetter, DriftAlert, FraudReport, LabelFeedback, Transaction
from sentinel.infra.kafka_io import EventProducer, read_all
from sentinel.settings import DriftSettings, Settings
from training.simulation import SimulationConfig, simulate
from training.simulation.arrival import REPORTS
from training.simulation.reports import fraud_reports
from training.stream_order import label_frame

pytestmark = pytest.mark.integration
COLUMNS = ["transaction_id", "is_fraud", "label_time", "label_source"]
POISON = (b'{"report_id": "poison", "card_id": "c", "start": "2018-04-09T00:00:00Z", '
          b'"end": "2018-04-02T00:00:00Z", "reported_at": "2018-04-10T00:00:00Z"}')


def _world() -> tuple[pd.DataFrame, pd.DataFrame, list[FraudReport]]:
    """A month of payments; reported frauds as range and by-id reports (the simulator's),
    25 more as complete reports; the other labels as they arrive (``label_source``)."""
    frame = simulate(SimulationConfig(n_customers=150, n_terminals=300, n_days=30, seed=7,
                                      arrival=REPORTS))
    kept, reports = fraud_reports(frame, label_frame(frame), seed=3)
    complete = kept[kept["is_fraud"] & (kept["label_source"] == "report")].sample(
        n=25, random_state=1)
    events = [FraudReport(report_id=r.report_id, card_id=r.card_id,
                          reported_at=r.reported_at.to_pydatetime(),
                          **({"transaction_id": r.transaction_id} if isinstance(
                              r.transaction_id, str) else
                             {"start": r.start.to_pydatetime(), "end": r.end.to_pydatetime()}))
              for r in reports.itertuples(index=False)]
    events += [FraudReport(report_id=f"full-{r.transaction_id}", card_id=r.card_id,
                           transaction_id=r.transaction_id, terminal_id=r.terminal_id,
                           transaction_time=r.transaction_time.to_pydatetime(),
                           reported_at=r.label_time.to_pydatetime())
               for r in complete.itertuples(index=False)]
    return frame, kept.drop(index=complete.index), events


def _offline(frame: pd.DataFrame, chargebacks: pd.DataFrame, reports: list[FraudReport]
             ) -> pd.DataFrame:
    """Every label offline: the chargebacks and what the reports resolve to."""
    resolved, _ = resolve_reports(frame, report_frame(reports), 120)
    return pd.concat([chargebacks[COLUMNS], resolved[COLUMNS]], ignore_index=True)


def _by_id(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.sort_values("transaction_id").reset_index(drop=True)


class _Driver:
    """Feeds the topics in steps, each once the retrainer has stored the previous one (read
    from the label store), and stops the retrainer once it has trained."""

    def __init__(self, settings: Settings, steps: list[tuple[Any, Any]]) -> None:
        self.settings, self.steps = settings, steps
        self.stop, self.trained = threading.Event(), threading.Event()
        self.seen: list[tuple[pd.DataFrame, pd.DataFrame]] = []
        self.error: BaseException | None = None

    def train(self, settings: Settings, frame: pd.DataFrame, labels: pd.DataFrame,
              **_: Any) -> SimpleNamespace:
        """The retrainer's train contract: keep what it would train on, register nothing."""
        self.seen.append((frame.copy(), labels.copy()))
        self.stop.set()
        return SimpleNamespace(status="rejected", model=None)

    def feed(self) -> None:
        store = LabelStore(self.settings.label_store_location)  # what the retrainer fills
        try:
            with EventProducer(self.settings.librdkafka()) as producer:
                for send, stored in self.steps:
                    send(producer)
                    producer.flush()
                    self._wait(partial(stored, store))
        except BaseException as exc:  # seen by the test, which then fails
            self.error = exc
            self.stop.set()
        finally:
            store.close()

    def _wait(self, stored: Any) -> None:
        deadline = datetime.now(UTC) + timedelta(seconds=120)
        while not self.stop.is_set() and not stored():
            if datetime.now(UTC) > deadline:
                raise TimeoutError("the retrainer did not store a step within 120 s")
            self.stop.wait(0.25)


def test_the_retrainer_trains_on_report_labels_exactly_as_offline(settings_factory) -> None:
    settings: Settings = settings_factory(drift=DriftSettings(
        retrain_min_labels=0, promotion_backfill=False, retrainer_port=0,
        promotion_interval_s=3600, retrain_label_window_days=365))
    t = settings.topics
    frame, chargebacks, reports = _world()
    assert {r.report_id.split("-")[0] for r in reports} == {"range", "id", "full"}
    last = frame["event_time"].max().to_pydatetime()

    def send_reports(producer: EventProducer) -> None:
        for report in reports:
            producer.send(t.name("labels"), report.card_id, report)
        producer.send(t.name("labels"), b"c", POISON)

    def send_history(producer: EventProducer) -> None:
        for x in frame.itertuples(index=False):
            producer.send(t.name("transactions"), x.card_id, Transaction(
                transaction_id=x.transaction_id, card_id=x.card_id, terminal_id=x.terminal_id,
                amount=x.amount, event_time=x.event_time.to_pydatetime()))
        for x in chargebacks.itertuples(index=False):
            producer.send(t.name("labels"), x.terminal_id, LabelFeedback(
                transaction_id=x.transaction_id, card_id=x.card_id, terminal_id=x.terminal_id,
                is_fraud=bool(x.is_fraud), transaction_time=x.transaction_time.to_pydatetime(),
                reported_at=x.label_time.to_pydatetime(), source=x.label_source))

    def send_alert(producer: EventProducer) -> None:
        producer.send(t.name("drift_alerts"), "score", DriftAlert(
            alert_id="a1", detector="adwin", signal="score", statistic=5.0,
            current={"blocks": 24.0}, event_time=last, detected_at=datetime.now(UTC),
            events_seen=10_000))

    driver = _Driver(settings, [
        (send_reports, lambda s: s.count("reports") == len(reports)),
        (send_history, lambda s: (s.count("transactions"), s.count("labels"))
         == (len(frame), len(chargebacks))),
        (send_alert, lambda s: False)])  # until the retrainer trains (the driver stops it)
    feeder = threading.Thread(target=driver.feed, daemon=True)
    feeder.start()
    retrainer = run(settings, max_seconds=300, serve_metrics=False, stop=driver.stop,
                    train=driver.train)
    feeder.join(30)
    assert driver.error is None, driver.error
    [(tx, labels)] = driver.seen

    # exactly the labels offline gives: one per payment, each report's from its reported_at
    every = _offline(frame, chargebacks, reports)
    expected = merge_labels(frame, every)
    assert labels["transaction_id"].is_unique and len(tx) == len(frame)
    pd.testing.assert_frame_equal(_by_id(labels[COLUMNS]), _by_id(expected[COLUMNS]),
                                  check_dtype=False)
    from_reports = labels[labels["label_source"] == "report"]
    assert from_reports["is_fraud"].eq(1).all() and len(from_reports) > len(reports)
    pd.testing.assert_frame_equal(_by_id(tx), _by_id(frame[list(tx.columns)]), check_dtype=False)
    config = FeatureConfig(label_delay_days=0)  # the same features as every offline label
    pd.testing.assert_frame_equal(compute_features(tx, labels, config),
                                  compute_features(tx, every, config))
    assert retrainer.retrains["rejected"] == 1

    # the poison report went to the dead-letter topic with its reason; nothing else did
    dead = [decode(DeadLetter, m.value()) for m in read_all(
        settings.librdkafka(), t.name("dead_letters"), 1, timeout_s=30)]
    assert [(d.source_topic, d.error_type) for d in dead] == [
        (t.name("labels"), "SchemaValidationError")]
    assert "start < end" in dead[0].reason and retrainer.retrains["bad_input"] == 1


def test_replay_reads_the_labels_fraud_reports_resolve_into(settings_factory) -> None:
    """A backtest (``sentinel replay``) reads the labels topic as the retrainer does: its fraud
    reports resolve into labels, merged with the chargebacks by the features' rules; the
    poison report is skipped."""
    from lifecycle.replay import read_stretch

    settings: Settings = settings_factory()
    t = settings.topics
    frame, chargebacks, reports = _world()
    with EventProducer(settings.librdkafka()) as producer:
        for report in reports[: len(reports) // 2]:  # reports before the payments they name
            producer.send(t.name("labels"), report.card_id, report)
        for x in frame.itertuples(index=False):
            producer.send(t.name("transactions"), x.card_id, Transaction(
                transaction_id=x.transaction_id, card_id=x.card_id, terminal_id=x.terminal_id,
                amount=x.amount, event_time=x.event_time.to_pydatetime()))
        for x in chargebacks.itertuples(index=False):
            producer.send(t.name("labels"), x.terminal_id, LabelFeedback(
                transaction_id=x.transaction_id, card_id=x.card_id, terminal_id=x.terminal_id,
                is_fraud=bool(x.is_fraud), transaction_time=x.transaction_time.to_pydatetime(),
                reported_at=x.label_time.to_pydatetime(), source=x.label_source))
        producer.send(t.name("labels"), b"c", POISON)
        for report in reports[len(reports) // 2:]:
            producer.send(t.name("labels"), report.card_id, report)
    tx, labels = read_stretch(settings)
    assert len(tx) == len(frame)
    expected = _by_id(merge_labels(frame, _offline(frame, chargebacks, reports)))
    got = _by_id(labels)
    columns = ["transaction_id", "is_fraud", "label_time"]
    assert (expected["label_source"] == "report").sum() > 25  # reports label payments
    pd.testing.assert_frame_equal(
        got[columns].astype({"is_fraud": bool}),
        expected[columns].astype({"is_fraud": bool,
                                  "label_time": got["label_time"].dtype}))
