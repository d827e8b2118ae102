"""The retrainer process: Kafka in and out around :class:`~lifecycle.retrainer.Retrainer`.

Consumes transactions, labels and fraud reports (both on the labels topic), verdicts and
shadow results into the label store and drift alerts into the retrainer; watches the
champion's errors on arriving labels (a report's: those it gives the payments stored when it
is read)
(:mod:`lifecycle.label_drift`) and publishes those alerts to the drift-alerts topic, which it
consumes like the worker's; publishes ModelEvents; serves ``/metrics`` and ``/ready``
(:mod:`lifecycle.retrainer_http`).

At least once: offsets are committed by hand, after a batch's rows are in the store, its
alerts are queued in the lifecycle tables and its dead letters are delivered; a redelivered
alert id is ignored. Bad input on any topic (undecodable, or refused by the store or the
retrainer) goes to the dead-letter topic with its reason and source offset, counted as
``bad_input``; the loop goes on. One retrainer per lease acts (:mod:`lifecycle.leadership`);
another stands by without consuming and takes over when the lease runs out.
"""

from __future__ import annotations

import base64
import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from functools import partial
from typing import Any

from lifecycle.label_drift import LabelDriftWatch
from lifecycle.labelstore import LabelStore
from lifecycle.leadership import Lease
from lifecycle.retrainer import Retrainer, StepHook, Train, alert_onset
from schemas import decode, decode_label
from schemas.events import (
    DeadLetter,
    DriftAlert,
    FraudReport,
    LabelFeedback,
    ModelEvent,
    ShadowResult,
    Transaction,
    Verdict,
)
from sentinel.errors import SentinelError, StoreDataError
from sentinel.infra.kafka_io import EventConsumer, EventProducer
from sentinel.settings import Settings

logger = logging.getLogger(__name__)
POLL_MAX = 5000  # messages per poll; a smaller poll means the consumer has caught up
ALERT_MAX_WAIT_S = 120.0  # act on an alert after this long even if the data never catches up
# what a row the store refuses raises (an out-of-range time, a value the database cannot
# hold); a store that cannot be reached raises StoreUnavailableError, which stops the process
# before the batch's offsets are committed (its supervisor restarts it; nothing is lost)
STORE_ERRORS = (ValueError, OverflowError, TypeError, StoreDataError)


def build(settings: Settings, on_step: StepHook | None = None, train: Train | None = None
          ) -> tuple[Retrainer, EventProducer]:
    """The retrainer wired to a producer for ModelEvents and the local MLflow registry."""
    from lifecycle.registry import ModelRegistry

    # first: a bad store fails at once
    store = LabelStore(settings.label_store_location, settings.reports.lookback_days,
                       settings.reports.presume_genuine_hours)
    logger.info("label store at %s", store.location)
    producer = EventProducer(settings.librdkafka())
    topic = settings.topics.name("model_events")

    def publish(event: ModelEvent) -> None:
        producer.send(topic, event.model_name, event)
        producer.flush()

    return Retrainer(settings, store, ModelRegistry(settings), publish, train=train,
                     on_step=on_step), producer


def dead_letter(msg: Any, exc: Exception) -> DeadLetter:
    """The DeadLetter event for a consumed message that could not be processed."""
    key = msg.key()
    return DeadLetter(
        original_base64=base64.b64encode(msg.value() or b"").decode("ascii"),
        original_key_base64=base64.b64encode(key).decode("ascii") if key else None,
        reason=str(exc)[:2000], error_type=type(exc).__name__, source_topic=msg.topic(),
        source_partition=msg.partition(), source_offset=msg.offset(), at=datetime.now(UTC))


def run(settings: Settings, *, max_seconds: float | None = None, serve_metrics: bool = True,
        stop: threading.Event | None = None, group_id: str = "sentinel-retrainer",
        on_step: StepHook | None = None, train: Train | None = None) -> Retrainer:
    """Stand by for the lease, then consume until interrupted, ``max_seconds`` or ``stop``;
    returns the retrainer (tests and the demo read its counters). ``group_id`` names the
    consumer group and the lease, so a demo can run beside another retrainer; ``on_step`` and
    ``train`` are the crash tests' hooks (:class:`~lifecycle.retrainer.Retrainer`)."""
    from lifecycle.retrainer_http import RetrainerMetrics, serve, status_of

    retrainer, producer = build(settings, on_step, train)
    lease = Lease(retrainer.store.location, group_id, settings.drift.leader_lease_s)
    retrainer.is_leader = lease.held
    server = None
    if serve_metrics and settings.drift.retrainer_port:
        server = serve(settings.drift.retrainer_port, RetrainerMetrics(retrainer, lease.held),
                       lambda: status_of(retrainer, lease.held))
    started = time.monotonic()

    def done() -> bool:
        return ((max_seconds is not None and time.monotonic() - started >= max_seconds)
                or (stop is not None and stop.is_set()))

    standing_by = False
    try:
        while not done():
            if not lease.acquire():
                if not standing_by:
                    logger.info("retrainer %s stands by: lease %s held by %s", lease.holder,
                                group_id, lease.holder_of())
                standing_by = True
                time.sleep(min(lease.ttl_s / 3, 1.0))
                continue
            standing_by = False
            logger.info("retrainer %s leads (lease %s, term %d)", lease.holder, group_id,
                        lease.term)
            lease.keep()
            retrainer.start()
            TermLoop(settings, retrainer, producer).consume(group_id, lease.held, done)
            if not done():
                logger.warning("retrainer %s lost the lease: standing by", lease.holder)
    finally:
        lease.close()
        producer.flush()
        if server is not None:
            server.shutdown()
    return retrainer


class TermLoop:
    """One leadership term's consumer loop: :meth:`consume` polls until the term ends,
    :meth:`store` takes one batch of messages into the label store (the label-drift watch
    and the dead-letter topic included)."""

    def __init__(self, settings: Settings, retrainer: Retrainer, producer: EventProducer
                 ) -> None:
        self.settings, self.retrainer, self.producer = settings, retrainer, producer
        t = settings.topics
        self.decoders: dict[str, Callable[[bytes], Any]] = {
            t.name("transactions"): partial(decode, Transaction), t.name("labels"): decode_label,
            t.name("verdicts"): partial(decode, Verdict),
            t.name("shadow"): partial(decode, ShadowResult),
            t.name("drift_alerts"): partial(decode, DriftAlert),
        }
        store = retrainer.store
        self.adders: dict[type[Any], Callable[[list[Any]], int]] = {
            Transaction: store.add_transactions, LabelFeedback: store.add_labels,
            FraudReport: store.add_reports, Verdict: store.add_verdicts,
            ShadowResult: store.add_shadow, DriftAlert: self._queue_alerts}
        self.watch = LabelDriftWatch(settings, store) if settings.drift.enabled else None
        self.newest: datetime | None = None  # the newest transaction's event time: the clock

    def consume(self, group_id: str, leading: Callable[[], bool], done: Callable[[], bool]
                ) -> None:
        retrainer, interval = self.retrainer, self.settings.drift.promotion_interval_s
        last_tick = time.monotonic()
        alerts_since = 0.0
        with EventConsumer(self.settings.librdkafka(), group_id, list(self.decoders),
                           **{"enable.auto.commit": False}) as consumer:
            while not done() and leading():
                msgs = consumer.poll(POLL_MAX, 0.5)
                queued_before = bool(retrainer.state.queued_alerts())
                self.store(msgs)
                if msgs:
                    self.producer.flush()  # dead letters and label alerts delivered, then:
                    self._commit(consumer)
                queued = retrainer.state.queued_alerts()
                if queued and not queued_before:
                    alerts_since = time.monotonic()
                # Decide only once caught up (a poll that did not fill up): an alert read while
                # the data topics still lag would retrain on whatever had arrived by then.
                if len(msgs) < POLL_MAX or time.monotonic() - alerts_since > ALERT_MAX_WAIT_S:
                    for alert in queued:
                        self._judge(alert)
                    retrainer.retry_pending()
                retrainer.run_jobs()
                if time.monotonic() - last_tick >= interval:
                    last_tick = time.monotonic()
                    retrainer.tick(self.newest or datetime.now(UTC))  # event time, as alerts

    def store(self, msgs: list[Any]) -> None:
        """Decode and store a batch; what fails is dead-lettered, one message at a time."""
        batch: dict[type[Any], list[tuple[Any, Any]]] = {k: [] for k in self.adders}
        for msg in msgs:
            try:
                event = self.decoders[str(msg.topic())](msg.value() or b"")
                if isinstance(event, DriftAlert):
                    alert_onset(event, self.settings.drift.block_seconds)
            except (SentinelError, *STORE_ERRORS) as exc:
                self._dead_letter(msg, exc)
                continue
            batch[type(event)].append((msg, event))
        stored: dict[type[Any], list[Any]] = {}
        for kind, add in self.adders.items():
            pairs = batch[kind]
            if not pairs:
                continue
            stored[kind] = [event for _, event in pairs]
            try:
                add(stored[kind])
            except STORE_ERRORS:  # find the culprits: one by one (rows are idempotent)
                stored[kind] = []
                for msg, event in pairs:
                    try:
                        add([event])
                    except STORE_ERRORS as exc:
                        self._dead_letter(msg, exc)
                    else:
                        stored[kind].append(event)
        if stored.get(Transaction):
            latest = max(x.event_time for x in stored[Transaction])
            self.newest = latest if self.newest is None else max(self.newest, latest)
        labels, reports = stored.get(LabelFeedback, []), stored.get(FraudReport, [])
        if self.watch is not None and (labels or reports):
            self._watch_labels(labels + self.retrainer.store.resolve(reports))

    def _queue_alerts(self, alerts: list[DriftAlert]) -> int:
        new = self.retrainer.state.enqueue_alerts(alerts)
        if new < len(alerts):
            self.retrainer.retrains["skipped_redelivered"] += len(alerts) - new
            logger.info("%d drift alert(s) seen before: ignored", len(alerts) - new)
        return new

    def _watch_labels(self, labels: list[LabelFeedback]) -> None:
        assert self.watch is not None  # noqa: S101 - checked by the caller
        topic = self.settings.topics.name("drift_alerts")
        for alert in self.watch.observe(labels):
            logger.warning("label drift alert detector=%s signal=%s model_version=%s",
                           alert.detector, alert.signal, alert.model_version)
            self.producer.send(topic, alert.signal, alert)

    def _judge(self, alert: DriftAlert) -> None:
        try:
            self.retrainer.on_alert(alert)
        except (ValueError, OverflowError, TypeError) as exc:  # checked on arrival: a bug
            self.retrainer.retrains["bad_input"] += 1
            logger.error("drift alert alert_id=%s could not be judged: %s", alert.alert_id, exc)
            with self.retrainer.state.transaction():
                self.retrainer.state.mark_alert(alert, f"error: {exc}"[:500], status="failed")

    def _dead_letter(self, msg: Any, exc: Exception) -> None:
        self.retrainer.retrains["bad_input"] += 1
        logger.warning("dead-lettered message topic=%s partition=%s offset=%s error=%s",
                       msg.topic(), msg.partition(), msg.offset(), exc)
        self.producer.send(self.settings.topics.name("dead_letters"), msg.key(),
                           dead_letter(msg, exc))

    @staticmethod
    def _commit(consumer: EventConsumer) -> None:
        try:
            consumer.commit()
        except Exception as exc:  # a rebalance: the next commit covers these offsets
            logger.warning("offset commit failed (messages may be redelivered): %s", exc)
