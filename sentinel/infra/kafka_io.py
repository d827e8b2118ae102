"""Producing and consuming events with confluent-kafka: the Kafka adapter for everything but
the worker's engine (``stream_app``). Errors are translated to :class:`SentinelKafkaError` here."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Iterator
from typing import Any, Protocol

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition

from sentinel.errors import SentinelKafkaError

logger = logging.getLogger(__name__)


class JsonEvent(Protocol):
    """What the producer needs of an event (``schemas.Event`` is one): its JSON."""

    def model_dump_json(self) -> str: ...


class EventProducer:
    """Sends events as JSON, keyed; delivery failures are collected and raised on flush."""

    def __init__(self, conf: dict[str, Any], **extra: Any) -> None:
        defaults = {"linger.ms": 5, "batch.num.messages": 10_000, "enable.idempotence": True,
                    "compression.type": "lz4", "queue.buffering.max.messages": 500_000}
        self._producer = Producer({**defaults, **conf, **extra})
        self._failures: list[str] = []
        self.delivered = 0

    def send(self, topic: str, key: str | bytes | None, event: JsonEvent | bytes) -> None:
        value = event if isinstance(event, bytes) else event.model_dump_json().encode()
        while True:
            try:
                self._producer.produce(topic, value=value, key=key, on_delivery=self._on_delivery)
                break
            except BufferError:  # local queue full: serve callbacks and retry
                self._producer.poll(0.05)
            except KafkaException as exc:
                raise SentinelKafkaError(f"produce failed: {exc}", topic=topic) from exc
        self._producer.poll(0)

    def flush(self, timeout_s: float = 30.0) -> None:
        remaining = self._producer.flush(timeout_s)
        if remaining:
            raise SentinelKafkaError(f"{remaining} messages not delivered within {timeout_s}s")
        if self._failures:
            failures, self._failures = self._failures, []
            raise SentinelKafkaError(f"{len(failures)} deliveries failed, first: {failures[0]}")

    def _on_delivery(self, err: KafkaError | None, msg: Message) -> None:
        if err is not None:
            self._failures.append(f"{msg.topic()}: {err.str()}")
        else:
            self.delivered += 1

    def __enter__(self) -> EventProducer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.flush()


class EventConsumer:
    """A consumer-group member yielding raw messages in batches (decoding is the caller's)."""

    def __init__(self, conf: dict[str, Any], group_id: str, topics: list[str],
                 from_beginning: bool = True, **extra: Any) -> None:
        defaults = {
            "group.id": group_id,
            "auto.offset.reset": "earliest" if from_beginning else "latest",
            "enable.auto.commit": True,
            "session.timeout.ms": 10_000,
            "topic.metadata.refresh.interval.ms": 2_000,
        }
        self._consumer = Consumer({**defaults, **conf, **extra})
        self._consumer.subscribe(topics)

    def batches(self, max_messages: int = 1000, timeout_s: float = 0.5) -> Iterator[list[Message]]:
        """Yield lists of messages forever (empty lists on idle); errors become exceptions."""
        while True:
            yield self.poll(max_messages, timeout_s)

    def poll(self, max_messages: int = 1000, timeout_s: float = 0.5) -> list[Message]:
        try:
            msgs = self._consumer.consume(max_messages, timeout_s)
        except KafkaException as exc:
            raise SentinelKafkaError(f"consume failed: {exc}") from exc
        good = []
        for msg in msgs:
            err = msg.error()
            if err is None:
                good.append(msg)
            elif err.code() != KafkaError._PARTITION_EOF:
                raise SentinelKafkaError(f"consume failed: {err.str()}", topic=msg.topic())
        return good

    def commit(self) -> None:
        self._consumer.commit(asynchronous=False)

    def close(self) -> None:
        self._consumer.close()

    def __enter__(self) -> EventConsumer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def read_all(conf: dict[str, Any], topic: str, expected: int, timeout_s: float = 60.0,
             group_id: str | None = None) -> list[Message]:
    """Read ``topic`` from the beginning until ``expected`` messages or the timeout."""
    group = group_id or f"sentinel-reader-{uuid.uuid4().hex[:8]}"
    out: list[Message] = []
    deadline = time.monotonic() + timeout_s
    with EventConsumer(conf, group, [topic], **{"enable.auto.commit": False}) as consumer:
        while len(out) < expected and time.monotonic() < deadline:
            out.extend(consumer.poll(5000, 0.5))
    return out


def read_range(conf: dict[str, Any], topic: str, partition: int, start: int, end: int,
               timeout_s: float = 15.0) -> list[Message]:
    """The records of ``topic``/``partition`` with offsets in ``[start, end)`` (fewer when the
    range holds transaction markers or was deleted by retention). No group, no commits."""

    extra = {"group.id": f"sentinel-range-{uuid.uuid4().hex[:8]}", "enable.auto.commit": False,
             "enable.partition.eof": True, "auto.offset.reset": "earliest"}
    consumer = Consumer({**conf, **extra})
    out: list[Message] = []
    deadline = time.monotonic() + timeout_s
    try:
        consumer.assign([TopicPartition(topic, partition, start)])
        while time.monotonic() < deadline:
            msg = consumer.poll(0.2)
            if msg is None:
                continue
            err = msg.error()
            if err is not None:
                if err.code() == KafkaError._PARTITION_EOF:
                    break
                raise SentinelKafkaError(f"reading {topic}[{partition}] failed: {err.str()}")
            if (msg.offset() or 0) >= end:
                break
            out.append(msg)
        else:
            raise SentinelKafkaError(
                f"reading {topic}[{partition}] offsets {start}..{end} timed out after "
                f"{timeout_s}s", topic=topic)
    finally:
        consumer.close()
    return out


def read_changelog(conf: dict[str, Any], topic: str, partition: int,
                   timeout_s: float = 120.0) -> dict[bytes, bytes | None]:
    """The latest value per key of a (compacted) topic partition, read to its current end
    (``None`` for a key whose latest record is a tombstone)."""
    probe = Consumer({**conf, "group.id": f"sentinel-range-{uuid.uuid4().hex[:8]}"})
    try:
        low, high = probe.get_watermark_offsets(TopicPartition(topic, partition), timeout=10.0)
    finally:
        probe.close()
    latest: dict[bytes, bytes | None] = {}
    if high > low:
        for msg in read_range(conf, topic, partition, low, high, timeout_s):
            key = msg.key()
            if key is not None:
                latest[key] = msg.value()
    return latest
