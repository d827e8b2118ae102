"""The checkpoint: the one place that commits (quix-streams' ``checkpointing/``).

Between two checkpoints the worker produces outputs (verdicts, shadow results, dead letters,
hand-offs, re-keyed inputs, frontier markers) and records the next offset of every input it
has finished. :meth:`Checkpoint.commit` then, in this order: writes the changelogs of the state
changed since the last checkpoint, sends the input offsets with the consumer's group metadata,
and commits. Under ``exactly_once`` all of it is one Kafka transaction, so a crash leaves either
everything or nothing, and a zombie whose group generation is stale is fenced by the broker
(KIP-447). Under ``at_least_once`` outputs are flushed first and offsets committed after.

A failure that Kafka marks abortable aborts the transaction and raises
:class:`CheckpointAborted`; the engine then rewinds to the last committed offsets and restores
its state. Any other Kafka failure is fatal for the process.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition

from sentinel.errors import SentinelKafkaError

logger = logging.getLogger(__name__)

TIMEOUT_S = 30.0
ABORT_ATTEMPTS = 10


def interval_for(polled: int, batch_size: int, caught_up_s: float, behind_s: float) -> float:
    """How long a checkpoint may stay open: ``caught_up_s``, or ``behind_s`` (never less) after
    a poll that returned a full batch, i.e. while a backlog waits. Each commit costs broker round
    trips; a backlog's verdicts wait for the backlog anyway.

    >>> interval_for(1000, 1000, 0.05, 0.25), interval_for(999, 1000, 0.05, 0.25)
    (0.25, 0.05)
    >>> interval_for(1000, 1000, 0.05, 0.01)  # behind never commits more often
    0.05
    """
    return max(caught_up_s, behind_s) if polled >= batch_size else caught_up_s


class CheckpointAborted(SentinelKafkaError):
    """The checkpoint's transaction was aborted: rewind to the committed offsets."""


class Checkpoint:
    """Owns the producer's transaction and the offsets to commit with it."""

    def __init__(self, producer: Producer, consumer: Consumer, exactly_once: bool,
                 before_commit: Callable[[], None],
                 beat: Callable[[str], None] = lambda phase: None) -> None:
        self._producer = producer
        self._beat = beat  # the watchdog's: before each call that may block
        self._consumer = consumer
        self.exactly_once = exactly_once
        self._before_commit = before_commit
        self._open = False
        self._offsets: dict[tuple[str, int], int] = {}
        self._failures: list[str] = []
        self.produced = 0
        self.started = time.monotonic()
        self.sequence = 0
        if exactly_once:
            self._call(producer.init_transactions, TIMEOUT_S)

    def renew(self, producer: Producer) -> None:
        """Carry on with a fresh producer (same transactional id: its init fences the old one).
        After an abort, a producer whose cached coordinators predate a broker restart can
        block in its next transaction (librdkafka issues 5456, 5511)."""
        self._producer = producer
        self._open = False
        if self.exactly_once:
            self._call(producer.init_transactions, TIMEOUT_S)

    # -- between checkpoints -----------------------------------------------------------------
    def produce(self, topic: str, key: bytes | str | None, value: bytes,
                partition: int | None = None) -> None:
        """Produce inside the current checkpoint (its transaction begins on the first one)."""
        if self.exactly_once and not self._open:
            self._call(self._producer.begin_transaction)
            self._open = True
        kwargs: dict[str, Any] = {"on_delivery": self._on_delivery}
        if partition is not None:
            kwargs["partition"] = partition
        while True:
            try:
                self._producer.produce(topic, value, key, **kwargs)
                break
            except BufferError:  # the local queue is full: let librdkafka send
                self._producer.poll(0.05)
            except KafkaException as exc:
                self._fail(exc)
        self.produced += 1

    def done(self, topic: str, partition: int, next_offset: int) -> None:
        """An input is finished up to ``next_offset`` (exclusive)."""
        self._offsets[(topic, partition)] = next_offset

    def forget(self, partitions: set[tuple[str, int]]) -> None:
        """Revoked partitions: their pending offsets are no longer ours to commit."""
        for tp in partitions:
            self._offsets.pop(tp, None)

    @property
    def pending(self) -> bool:
        return bool(self._offsets) or self._open or self.produced > 0

    def due(self, interval_s: float) -> bool:
        return self.pending and time.monotonic() - self.started >= interval_s

    # -- the commit --------------------------------------------------------------------------
    def commit(self, force: bool = False) -> None:
        """Changelogs, offsets, commit: all or nothing under exactly_once. ``force`` commits
        even with nothing pending (``before_commit`` may have something to say)."""
        if not self.pending and not force:
            self.started = time.monotonic()
            return
        self._before_commit()  # changelogs and frontier markers, inside the transaction
        offsets = [TopicPartition(t, p, o) for (t, p), o in self._offsets.items()]
        if self.exactly_once:
            if not self._open:
                self._call(self._producer.begin_transaction)
                self._open = True
            if offsets:
                self._call(self._producer.send_offsets_to_transaction, offsets,
                           self._consumer.consumer_group_metadata(), TIMEOUT_S)
            self._call(self._producer.commit_transaction, TIMEOUT_S)
            self._open = False
        else:
            self._flush()
            if offsets:
                try:
                    self._consumer.commit(offsets=offsets, asynchronous=False)
                except KafkaException as exc:
                    raise CheckpointAborted(f"offset commit failed: {exc}") from exc
        self._reset()

    def abort(self) -> None:
        """Drop the checkpoint: abort its transaction (outputs are never seen by read_committed
        consumers) and forget its offsets."""
        if self.exactly_once and self._open:
            for attempt in range(ABORT_ATTEMPTS):  # a broker restart times out the first tries
                self._beat("abort_transaction")
                try:
                    self._producer.abort_transaction(TIMEOUT_S)
                    break
                except KafkaException as exc:
                    err = _error(exc)
                    if err is None or not err.retriable() or attempt == ABORT_ATTEMPTS - 1:
                        raise SentinelKafkaError(
                            f"aborting the transaction failed: {exc}") from exc
                    logger.warning("abort retried attempt=%d error=%s", attempt + 1, err.str())
                    time.sleep(1.0)
            self._open = False
        self._reset()

    def _reset(self) -> None:
        self._offsets.clear()
        self._failures.clear()
        self.produced = 0
        self.sequence += 1
        self.started = time.monotonic()

    def _flush(self) -> None:
        remaining = self._producer.flush(TIMEOUT_S)
        if remaining or self._failures:
            first = self._failures[0] if self._failures else f"{remaining} undelivered"
            raise CheckpointAborted(f"outputs not delivered: {first}")

    def _on_delivery(self, err: KafkaError | None, msg: Message) -> None:
        if err is not None:
            self._failures.append(f"{msg.topic()}: {err.str()}")

    def _call(self, fn: Callable[..., Any], *args: Any) -> Any:
        for attempt in range(3):
            self._beat(getattr(fn, "__name__", "transaction"))
            try:
                return fn(*args)
            except KafkaException as exc:
                err = _error(exc)
                if err is not None and err.retriable() and not err.txn_requires_abort() \
                        and attempt < 2:
                    time.sleep(0.2 * (attempt + 1))
                    continue
                self._fail(exc)
        return None  # pragma: no cover - the loop returns or raises

    def _fail(self, exc: KafkaException) -> None:
        err = _error(exc)
        if err is not None and (err.txn_requires_abort() or err.retriable()):
            logger.warning("checkpoint aborted error=%s", err.str())
            self.abort()
            raise CheckpointAborted(f"transaction aborted: {err.str()}") from exc
        raise SentinelKafkaError(f"Kafka transaction failed: {exc}") from exc


def _error(exc: KafkaException) -> KafkaError | None:
    return exc.args[0] if exc.args and isinstance(exc.args[0], KafkaError) else None
