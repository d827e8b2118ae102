"""The worker's loop on confluent-kafka: poll a batch, process it per stage, checkpoint when due.

One consumer (group ``app_id``, range assignment so that the co-partitioned inputs of a stage
land on the same worker, ``read_committed``) and one producer (transactional under
``exactly_once``) per process. The loop, as quix-streams' ``Application.run``::

    consume -> restore newly assigned state -> card stage -> terminal stage (release, score)
            -> checkpoint when due

Only :class:`~stream_app.checkpoint.Checkpoint` commits. On an aborted checkpoint the engine
rewinds: it drops its state and held messages, seeks to the committed offsets and restores the
state from the changelogs. Any other failure leaves :meth:`Engine.run` with an exception, and
the process exits non-zero so a supervisor restarts it.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import numpy as np
from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    IsolationLevel,
    KafkaError,
    Message,
    Producer,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient, OffsetSpec

from features import CardState, FeatureConfig, TerminalState
from features.reports import lookback_us
from sentinel.errors import SentinelKafkaError
from sentinel.settings import Settings
from stream_app.alignment import encode_marker
from stream_app.card_stage import CardStage
from stream_app.checkpoint import Checkpoint, CheckpointAborted, interval_for
from stream_app.dead_letter import dead_letter
from stream_app.metrics import WorkerMetrics
from stream_app.restore import read_changelog
from stream_app.scorer import Scorer
from stream_app.serving import ServingModels
from stream_app.store import StateStore
from stream_app.terminal_stage import Held, TerminalStage
from stream_app.topology import Topics
from stream_app.watchdog import Watchdog

logger = logging.getLogger(__name__)

MARKER_KEY = b"frontier"
IDLE_MARKER_S = 0.2  # an idle owner of label partitions still tells the frontier it is caught up
RESTORE_TIMEOUT_S = 600.0


class Engine:
    """Runs both stages of one worker process over its assigned partitions."""

    def __init__(self, settings: Settings, topics: Topics, models: ServingModels,
                 metrics: WorkerMetrics, drift: Any = None) -> None:
        w, s = settings.worker, settings.scoring
        self.settings, self.topics, self.models, self.metrics = settings, topics, models, metrics
        self.exactly_once = w.processing_guarantee == "exactly_once"
        self._conf = settings.librdkafka()
        self.consumer = Consumer({
            **self._conf, "group.id": w.app_id, "partition.assignment.strategy": "range",
            "enable.auto.commit": False, "auto.offset.reset": "earliest",
            "isolation.level": "read_committed", "session.timeout.ms": w.session_timeout_ms,
            "heartbeat.interval.ms": min(1000, w.session_timeout_ms // 3),
            "fetch.wait.max.ms": 10, "topic.metadata.refresh.interval.ms": 5000,
            "max.poll.interval.ms": 300_000})
        producer_conf = {**self._conf, "enable.idempotence": True, "linger.ms": 1,
                         "compression.type": "lz4", "batch.num.messages": 10_000,
                         "queue.buffering.max.messages": 1_000_000}
        if self.exactly_once:
            producer_conf.update({"transactional.id": f"{w.app_id}-{self.instance_id}",
                                  "transaction.timeout.ms": w.transaction_timeout_ms})
        self._producer_conf = producer_conf
        self.producer = Producer(producer_conf)
        self.admin = AdminClient(self._conf)
        self.watchdog = Watchdog(w.hang_timeout_s)
        self.checkpoint = Checkpoint(self.producer, self.consumer, self.exactly_once,
                                     self._before_commit, self.watchdog.beat)
        config = FeatureConfig.from_settings(settings.features)
        self.cards: StateStore[CardState] = StateStore(
            "cards", topics.cards_changelog, CardState.from_dict, CardState)
        self.terminals: StateStore[TerminalState] = StateStore(
            "terminals", topics.terminals_changelog, TerminalState.from_dict, TerminalState)
        remember = not self.exactly_once
        self.card_stage = CardStage(topics, self.cards, self.checkpoint, metrics, config,
                                    s.max_event_time_skew_s, s.dead_letter_max_bytes, remember,
                                    local=self._local_card_partition,
                                    lookback_us=lookback_us(settings.reports.lookback_days))
        self.terminal_stage = TerminalStage(topics, self.terminals, self.checkpoint, metrics,
                                            config, self.card_stage, w.alignment_grace_ms)
        self.scorer = Scorer(topics, self.checkpoint, models, metrics, config.names, s, drift)
        self.assigned: set[tuple[str, int]] = set()
        self.to_restore: set[tuple[str, int]] = set()
        self.paused: set[int] = set()
        self.joined = False
        self.running = True
        self.last_progress = time.monotonic()
        self.last_marker = 0.0
        self.lagging = False
        self.start_positions: dict[tuple[str, int], int] = {}

    @property
    def instance_id(self) -> str:
        w = self.settings.worker
        if w.instance_id:
            return w.instance_id
        import socket

        return f"{socket.gethostname()}-{w.web_port}"

    # -- state of the engine, for /ready and /health --------------------------------------------
    @property
    def ready(self) -> bool:
        """Joined the group and every assigned partition's state restored."""
        return self.joined and not self.to_restore

    def stalled(self) -> bool:
        """Lag (or held work) but no progress for ``stall_timeout_s``."""
        pending = self.lagging or self.terminal_stage.held_count() > 0
        return pending and time.monotonic() - self.last_progress > (
            self.settings.worker.stall_timeout_s)

    def stop(self) -> None:
        self.running = False

    def _local_card_partition(self, partition: int) -> bool:
        return (partition in self.cards.partitions
                and ("cards", partition) not in self.to_restore)

    # -- the loop --------------------------------------------------------------------------------
    def run(self) -> None:
        s, t = self.settings, self.topics
        self.consumer.subscribe([*t.card_inputs, *t.terminal_inputs], on_assign=self._on_assign,
                                on_revoke=self._on_revoke, on_lost=self._on_lost)
        w = s.worker
        self.watchdog.start()
        try:
            while self.running:
                self.watchdog.beat("consume")
                msgs = self.consumer.consume(s.scoring.batch_size, s.scoring.batch_window_s)
                self._restore()
                try:
                    if msgs:
                        self._process(msgs)
                    self._release()
                    marker_due = self._marker_due()
                    interval = interval_for(len(msgs), s.scoring.batch_size,
                                            w.checkpoint_interval_s,
                                            w.checkpoint_interval_behind_s)
                    if marker_due or self.checkpoint.due(interval):
                        self._commit(force=marker_due)
                except CheckpointAborted as exc:
                    self._rewind(exc)
            self._commit()
        finally:
            self.watchdog.beat("close")  # a close stuck on a gone broker still ends the process
            self.scorer.close()
            self.consumer.close()
            self.producer.flush(10)
            self.watchdog.stop()

    def _process(self, msgs: list[Message]) -> None:
        t, card, terminal = self.topics, self.card_stage, self.terminal_stage
        read_ms = int(time.time() * 1000)
        for msg in msgs:
            err = msg.error()
            if err is not None:
                if err.fatal():
                    raise SentinelKafkaError(f"consumer failed: {err.str()}")
                if err.code() != KafkaError._PARTITION_EOF:
                    logger.warning("consume error=%s", err.str())
                continue
            topic = msg.topic()
            if topic == t.transactions:
                card.transaction(msg, read_ms)
            elif topic == t.cards:
                card.rekeyed(msg)
            elif topic == t.labels:
                card.label(msg)
            elif topic == t.terminals:
                terminal.handoff(msg)
            elif topic == t.labels_internal:
                terminal.label(msg)
        card.flush_handoffs()
        self.last_progress = time.monotonic()

    def _release(self) -> None:
        """Score every held message the label frontier has passed (or hold / dead-letter
        them when no champion is loaded)."""
        champion = self.models.champion
        stage = self.terminal_stage
        if champion is None and self.settings.scoring.no_champion_policy == "hold":
            self._count_held()
            self._pause_full()
            return
        released = list(stage.releasable())
        if not released:
            self._pause_full()
            return
        size = self.settings.scoring.batch_size
        records, rows = [], []
        safe = stage.safe_times(released)
        for held in released:
            if held.raw is not None:  # an undecodable hand-off kept in offset order
                self._reject_raw(held)
                continue
            records.extend(held.records)
            rows.extend(stage.features(held, safe[held.partition]))
        if champion is None:
            self.scorer.reject_unscored(records, "no_champion",
                                        RuntimeError("no @champion model is loaded"))
        else:
            X = np.asarray(rows, dtype=np.float64)
            for i in range(0, len(records), size):
                self.scorer.score(records[i:i + size], X[i:i + size], champion)
        for held in released:
            stage.finish(held)
        self.last_progress = time.monotonic()
        self._pause_full()

    def _count_held(self) -> None:
        for queue in self.terminal_stage.held.values():
            for held in queue:
                if not held.counted:
                    held.counted = True
                    self.metrics.transactions.labels(outcome="held").inc(len(held.records))

    def _pause_full(self) -> None:
        """Pause a hand-off partition whose held queue is full; resume it once drained."""
        limit = self.settings.worker.max_held_messages
        for partition, queue in self.terminal_stage.held.items():
            tp = [TopicPartition(self.topics.terminals, partition)]
            if len(queue) >= limit and partition not in self.paused:
                self.consumer.pause(tp)
                self.paused.add(partition)
            elif len(queue) < limit // 2 and partition in self.paused:
                self.consumer.resume(tp)
                self.paused.discard(partition)
        self.metrics.held_messages.set(self.terminal_stage.held_count())

    def _reject_raw(self, held: Held) -> None:
        self.checkpoint.produce(self.topics.dead_letters, None, dead_letter(
            held.raw, None, "internal_undecodable", ValueError("undecodable hand-off"),
            self.topics.terminals, held.partition, held.offset,
            self.settings.scoring.dead_letter_max_bytes))

    # -- checkpoints -----------------------------------------------------------------------------
    def _marker_due(self) -> bool:
        """An idle owner of external partitions still tells the frontier it is caught up."""
        t = self.topics
        owns = any(topic in (t.labels, t.transactions) for topic, _ in self.assigned)
        return owns and time.monotonic() - self.last_marker >= IDLE_MARKER_S

    def _commit(self, force: bool = False) -> None:
        started = time.perf_counter()
        try:
            self.checkpoint.commit(force)
        except CheckpointAborted as exc:
            self._rewind(exc)
            return
        self.metrics.checkpoints.labels(outcome="committed").inc()
        self.metrics.checkpoint_seconds.observe(time.perf_counter() - started)
        self._observe_lag()

    def _before_commit(self) -> None:
        """Inside the checkpoint, before the offsets: changelogs, then frontier markers."""
        prune = None if self.exactly_once else self.checkpoint.sequence
        produce = self.checkpoint.produce
        self.cards.flush(produce, prune)
        self.terminals.flush(produce, prune)
        t = self.topics
        owned = [tp for tp in self.assigned if tp[0] in (t.labels, t.transactions)]
        if owned:
            caught_up = self._caught_up(owned)
            reported, read = self.card_stage.reported, self.card_stage.read_event
            transactions = {p: (read.get(p, -1), caught_up.get((t.transactions, p)))
                            for topic, p in owned if topic == t.transactions}
            labels = {q: (reported.get(q, -1), caught_up.get((t.labels, q)))
                      for topic, q in owned if topic == t.labels}
            stage = self.card_stage
            via = {c: dict(m) for c, m in stage.via.items() if (t.cards, c) in self.assigned}
            via_labels = {c: dict(m) for c, m in stage.via_labels.items()
                          if (t.cards, c) in self.assigned}
            marker = encode_marker(labels, transactions, via, via_labels)
            for p in range(t.terminal_partitions):  # after this checkpoint's labels, hand-offs
                produce(t.labels_internal, MARKER_KEY, marker, p)
                produce(t.terminals, MARKER_KEY, marker, p)
            # after this checkpoint's re-keyed transactions and reports, for relaying
            relay = encode_marker(labels, transactions)
            for c in range(t.card_partitions):
                produce(t.cards, MARKER_KEY, relay, c)
            self.last_marker = time.monotonic()

    def _caught_up(self, owned: list[tuple[str, int]]) -> dict[tuple[str, int], int]:
        """For each owned external partition read to its end: the wall time (ms) just before
        its end was looked up, fresh from the broker."""
        tps = [TopicPartition(topic, p) for topic, p in owned]
        positions = {(tp.topic, tp.partition): tp.offset for tp in self.consumer.position(tps)}
        candidates = []
        for tp in tps:
            position = positions.get((tp.topic, tp.partition), -1)
            _, high = self.consumer.get_watermark_offsets(tp, cached=True) or (0, 0)
            if position < 0 or position >= high:
                candidates.append(tp)
        if not candidates:
            return {}
        looked = int(time.time() * 1000)
        out = {}
        try:
            futures = self.admin.list_offsets(
                {tp: OffsetSpec.latest() for tp in candidates},  # type: ignore[no-untyped-call]
                isolation_level=IsolationLevel.READ_COMMITTED, request_timeout=5)
            for tp, future in futures.items():
                end = future.result(timeout=10).offset
                position = positions.get((tp.topic, tp.partition), -1)
                if position < 0:  # nothing consumed since assignment: where the group stands
                    position = self._start_position(tp)
                if position >= end:
                    out[(tp.topic, tp.partition)] = looked
        except Exception as exc:  # a broker restart, a leader change: no news this time
            logger.warning("end-of-partition look failed, frontier unchanged error=%s", exc)
            # a fresh client: librdkafka's admin retries ListOffsets with the leader epoch it
            # cached before a broker restart, and fails FENCED_LEADER_EPOCH for ever after
            self.admin = AdminClient(self._conf)
            return {}
        return out

    def _start_position(self, tp: TopicPartition) -> int:
        """Where consumption of a partition starts (its committed offset, else its beginning),
        looked up once per assignment: an idle partition would cost a round trip per
        checkpoint otherwise."""
        key = (tp.topic, tp.partition)
        start = self.start_positions.get(key)
        if start is None:
            committed = self.consumer.committed([tp], timeout=5)[0].offset
            if committed < 0:
                committed, _ = self.consumer.get_watermark_offsets(tp, timeout=5)
            start = self.start_positions[key] = int(committed)
        return start

    def _observe_lag(self) -> None:
        lagging = False
        tps = [TopicPartition(t, p) for t, p in self.assigned]
        for tp in self.consumer.position(tps) if tps else []:
            try:
                _, high = self.consumer.get_watermark_offsets(tp, cached=True)
            except Exception:  # noqa: S112 - no fetch yet for this partition
                continue
            lag = max(0, high - tp.offset) if tp.offset >= 0 else 0
            self.metrics.consumer_lag.labels(topic=tp.topic, partition=str(tp.partition)).set(
                lag)
            lagging |= lag > 1  # a trailing transaction marker counts one
        self.lagging = lagging

    def _rewind(self, exc: Exception) -> None:
        """After an aborted checkpoint: back to the last committed offsets and state."""
        logger.warning("checkpoint aborted, rewinding to the committed offsets error=%s", exc)
        self.metrics.checkpoints.labels(outcome="aborted").inc()
        self.checkpoint.abort()
        if self.exactly_once:
            self._renew_producer()
        self.card_stage.reported.clear()
        self.card_stage.read_event.clear()
        self.card_stage.via.clear()
        self.card_stage.via_labels.clear()
        self.start_positions.clear()
        for topic, partition in list(self.assigned):
            self._drop(topic, partition)
            self._track(topic, partition)
        tps = [TopicPartition(t, p) for t, p in self.assigned]
        if tps:
            for tp in self.consumer.committed(tps, timeout=30):
                offset = tp.offset if tp.offset >= 0 else OFFSET_BEGINNING
                self.consumer.seek(TopicPartition(tp.topic, tp.partition, offset))

    def _renew_producer(self) -> None:
        old, self.producer = self.producer, Producer(self._producer_conf)
        old.purge()
        self.checkpoint.renew(self.producer)

    # -- rebalances ------------------------------------------------------------------------------
    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self.start_positions.clear()
        for tp in partitions:
            self.assigned.add((tp.topic, tp.partition))
            self._track(tp.topic, tp.partition)
        self.joined = True
        logger.info("assigned %s", sorted((tp.topic, tp.partition) for tp in partitions))

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        try:
            self.checkpoint.commit()
        except CheckpointAborted as exc:
            logger.warning("checkpoint at revocation aborted error=%s", exc)
        self._forget(partitions)

    def _on_lost(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        logger.warning("partitions lost (session timed out): aborting the checkpoint")
        self.checkpoint.abort()
        self._forget(partitions)

    def _forget(self, partitions: list[TopicPartition]) -> None:
        gone = {(tp.topic, tp.partition) for tp in partitions}
        for topic, partition in gone:
            self._drop(topic, partition)
            self.assigned.discard((topic, partition))
            if topic == self.topics.labels:
                self.card_stage.reported.pop(partition, None)
            if topic == self.topics.transactions:
                self.card_stage.read_event.pop(partition, None)
            if topic == self.topics.cards:
                self.card_stage.via.pop(partition, None)
                self.card_stage.via_labels.pop(partition, None)
            if topic == self.topics.terminals:
                self.paused.discard(partition)
        self.checkpoint.forget(gone)

    def _track(self, topic: str, partition: int) -> None:
        if topic == self.topics.transactions:
            self.to_restore.add(("cards", partition))
        elif topic == self.topics.terminals:
            self.to_restore.add(("terminals", partition))
            self.terminal_stage.assign(partition)

    def _drop(self, topic: str, partition: int) -> None:
        if topic == self.topics.transactions:
            self.cards.revoke(partition)
            self.to_restore.discard(("cards", partition))
        elif topic == self.topics.terminals:
            self.terminals.revoke(partition)
            self.terminal_stage.revoke(partition)
            self.to_restore.discard(("terminals", partition))

    def _restore(self) -> None:
        """Restore every newly assigned state partition from its changelog, before any of
        its records is processed."""
        while self.to_restore:
            name, partition = min(self.to_restore)
            store: StateStore[Any] = self.cards if name == "cards" else self.terminals
            started = time.monotonic()
            gauge = self.metrics.restore_progress.labels(store=name, partition=str(partition))

            def progress(done: int, total: int, gauge: Any = gauge) -> None:
                gauge.set(1.0 if total == 0 else done / total)
                self.watchdog.beat("restore")

            restored = read_changelog(self._conf, store.changelog, partition,
                                      RESTORE_TIMEOUT_S, progress)
            store.assign(partition, restored)
            self.to_restore.discard((name, partition))
            self.metrics.restored_records.labels(store=name).inc(len(restored))
            logger.info("restored store=%s partition=%d keys=%d seconds=%.2f", name, partition,
                        len(restored), time.monotonic() - started)
