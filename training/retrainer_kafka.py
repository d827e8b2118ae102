"""The retrainer process: Kafka in and out around :class:`~training.retrainer.Retrainer`.

Consumes transactions, labels, verdicts and shadow results into the label store and drift
alerts into the retrainer; watches the champion's errors on arriving labels
(:mod:`training.label_drift`) and publishes those alerts to the drift-alerts topic, which it
consumes like the worker's; publishes ModelEvents; sends undecodable messages to the
dead-letter topic (original bytes, reason, source offset; counted as ``bad_input``); serves
Prometheus metrics
(``sentinel_retrains_total{outcome}``, ``sentinel_promotions_total{action}``).
"""

from __future__ import annotations

import base64
import logging
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

from prometheus_client import start_http_server
from prometheus_client.core import REGISTRY, CounterMetricFamily
from prometheus_client.registry import Collector

from schemas import decode
from schemas.errors import SchemaValidationError
from schemas.events import (
    DeadLetter,
    DriftAlert,
    LabelFeedback,
    ModelEvent,
    ShadowResult,
    Transaction,
    Verdict,
)
from sentinel.infra.kafka_io import EventConsumer, EventProducer
from sentinel.settings import Settings
from training.label_drift import LabelDriftWatch
from training.labelstore import LabelStore
from training.retrainer import Retrainer

logger = logging.getLogger(__name__)
POLL_MAX = 5000  # messages per poll; a smaller poll means the consumer has caught up
ALERT_MAX_WAIT_S = 120.0  # act on an alert after this long even if the data never catches up


class _Metrics(Collector):
    def __init__(self, retrainer: Retrainer) -> None:
        self.retrainer = retrainer

    def collect(self) -> Iterator[CounterMetricFamily]:
        retrains = CounterMetricFamily("sentinel_retrains", "Retrain decisions and outcomes",
                                       labels=["outcome"])
        for outcome, n in sorted(self.retrainer.retrains.items()):
            retrains.add_metric([outcome], n)
        promos = CounterMetricFamily("sentinel_promotions", "Promotion decisions",
                                     labels=["action"])
        for action, n in sorted(self.retrainer.promotions.items()):
            promos.add_metric([action], n)
        yield retrains
        yield promos


def build(settings: Settings) -> tuple[Retrainer, EventProducer]:
    """The retrainer wired to a producer for ModelEvents and the local MLflow registry."""
    from training.registry import ModelRegistry

    producer = EventProducer(settings.librdkafka())
    topic = settings.topics.name("model_events")

    def publish(event: ModelEvent) -> None:
        producer.send(topic, event.model_name, event)
        producer.flush()

    store = LabelStore(settings.data_dir / "retrainer" / "labelstore.sqlite")
    return Retrainer(settings, store, ModelRegistry(settings), publish), producer


def dead_letter(msg: Any, exc: Exception) -> DeadLetter:
    """The DeadLetter event for a consumed message that could not be decoded."""
    key = msg.key()
    return DeadLetter(
        original_base64=base64.b64encode(msg.value() or b"").decode("ascii"),
        original_key_base64=base64.b64encode(key).decode("ascii") if key else None,
        reason=str(exc)[:2000], error_type=type(exc).__name__, source_topic=msg.topic(),
        source_partition=msg.partition(), source_offset=msg.offset(), at=datetime.now(UTC))


def run(settings: Settings, *, max_seconds: float | None = None, serve_metrics: bool = True,
        stop: threading.Event | None = None, group_id: str = "sentinel-retrainer") -> Retrainer:
    """Consume until interrupted, ``max_seconds`` or ``stop`` is set; returns the retrainer
    (tests and the demo read its counters). ``group_id`` lets a demo run beside another."""
    retrainer, producer = build(settings)
    if serve_metrics and settings.drift.retrainer_port:
        REGISTRY.register(_Metrics(retrainer))
        start_http_server(settings.drift.retrainer_port)
    t = settings.topics
    kinds: dict[str, type[Any]] = {
        t.name("transactions"): Transaction, t.name("labels"): LabelFeedback,
        t.name("verdicts"): Verdict, t.name("shadow"): ShadowResult,
        t.name("drift_alerts"): DriftAlert,
    }
    store = retrainer.store
    watch = LabelDriftWatch(settings, store) if settings.drift.enabled else None
    adders: dict[type[Any], Callable[[list[Any]], int]] = {
        Transaction: store.add_transactions, LabelFeedback: store.add_labels,
        Verdict: store.add_verdicts, ShadowResult: store.add_shadow}
    started = last_tick = time.monotonic()
    alerts: list[DriftAlert] = []
    alerts_since = 0.0
    newest: datetime | None = None  # the newest transaction's event time: the loop's clock
    with EventConsumer(settings.librdkafka(), group_id, list(kinds)) as consumer:
        while ((max_seconds is None or time.monotonic() - started < max_seconds)
               and not (stop is not None and stop.is_set())):
            batch: dict[type[Any], list[Any]] = {k: [] for k in kinds.values()}
            msgs = consumer.poll(POLL_MAX, 0.5)
            for msg in msgs:
                kind = kinds[str(msg.topic())]
                try:
                    batch[kind].append(decode(kind, msg.value() or b""))
                except SchemaValidationError as exc:
                    retrainer.retrains["bad_input"] += 1
                    logger.warning("dead-lettered message topic=%s partition=%s offset=%s "
                                   "error=%s", msg.topic(), msg.partition(), msg.offset(), exc)
                    producer.send(t.name("dead_letters"), msg.key(), dead_letter(msg, exc))
            for kind, add in adders.items():
                if batch[kind]:
                    add(batch[kind])
            if batch[Transaction]:
                latest = max(x.event_time for x in batch[Transaction])
                newest = latest if newest is None else max(newest, latest)
            if watch is not None and batch[LabelFeedback]:
                for alert in watch.observe(batch[LabelFeedback]):
                    logger.warning("label drift alert detector=%s signal=%s model_version=%s",
                                   alert.detector, alert.signal, alert.model_version)
                    producer.send(t.name("drift_alerts"), alert.signal, alert)
                producer.flush()
            # Decide only once caught up (a poll that did not fill up): an alert read while the
            # data topics still lag would retrain on whatever had arrived by then.
            if batch[DriftAlert] and not alerts:
                alerts_since = time.monotonic()
            alerts += batch[DriftAlert]
            if len(msgs) < POLL_MAX or time.monotonic() - alerts_since > ALERT_MAX_WAIT_S:
                for alert in alerts:
                    retrainer.on_alert(alert)
                alerts.clear()
                retrainer.retry_pending()
            if time.monotonic() - last_tick >= settings.drift.promotion_interval_s:
                last_tick = time.monotonic()
                retrainer.tick(newest or datetime.now(UTC))  # event time, as the alerts
    producer.flush()
    return retrainer
