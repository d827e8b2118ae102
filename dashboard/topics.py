"""Reads of Sentinel's topics for the dashboard: the newest model events and drift alerts,
and the transactions and verdicts of a time window (the live side of the drift charts).

:func:`read_topic` and :func:`read_window` are the Kafka adapter (confluent-kafka, assigned
partitions, no consumer group offsets committed: the dashboard never moves anyone's position).
:func:`decode_all` is pure.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Iterable
from typing import Any, TypeVar

from dashboard.errors import SourceUnavailable
from schemas import Event, SchemaValidationError, decode

logger = logging.getLogger(__name__)

E = TypeVar("E", bound=Event)


def _consumer(conf: dict[str, Any], timeout_s: float) -> Any:
    from confluent_kafka import Consumer

    return Consumer({**conf, "group.id": f"sentinel-dashboard-{uuid.uuid4().hex[:8]}",
                     "enable.auto.commit": False, "socket.timeout.ms": int(timeout_s * 1000),
                     "session.timeout.ms": 6000, "log_level": 3})


def read_topic(conf: dict[str, Any], topic: str, count: int, *, from_end: bool,
               timeout_s: float = 5.0) -> list[bytes]:
    """Up to ``count`` message values per partition, the oldest (``from_end=False``) or the
    newest (``from_end=True``) still retained."""
    from confluent_kafka import KafkaException, TopicPartition

    consumer = _consumer(conf, timeout_s)
    try:
        meta = consumer.list_topics(topic, timeout=timeout_s)
        if meta.topics[topic].error is not None:
            raise SourceUnavailable(f"Kafka topic {topic}", str(meta.topics[topic].error))
        assignment: list[TopicPartition] = []
        ends: dict[int, int] = {}
        for partition in meta.topics[topic].partitions:
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, partition),
                                                       timeout=timeout_s)
            start = max(low, high - count) if from_end else low
            stop = high if from_end else min(high, low + count)
            if stop > start:
                assignment.append(TopicPartition(topic, partition, start))
                ends[partition] = stop
        return _consume(consumer, assignment, ends, timeout_s)
    except KafkaException as exc:
        raise SourceUnavailable(f"Kafka at {conf.get('bootstrap.servers')}", str(exc)) from exc
    finally:
        consumer.close()


def read_window(conf: dict[str, Any], topic: str, since_ms: int, count: int, *,
                timeout_s: float = 5.0) -> list[bytes]:
    """The values of messages with a Kafka timestamp at or after ``since_ms`` (the live
    window), at most the newest ``count`` in all (split evenly between the partitions)."""
    from confluent_kafka import KafkaException, TopicPartition

    consumer = _consumer(conf, timeout_s)
    try:
        meta = consumer.list_topics(topic, timeout=timeout_s)
        if meta.topics[topic].error is not None:
            raise SourceUnavailable(f"Kafka topic {topic}", str(meta.topics[topic].error))
        partitions = sorted(meta.topics[topic].partitions)
        per_partition = max(1, count // max(1, len(partitions)))
        found = consumer.offsets_for_times(
            [TopicPartition(topic, p, since_ms) for p in partitions], timeout=timeout_s)
        assignment: list[TopicPartition] = []
        ends: dict[int, int] = {}
        for tp in found:
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, tp.partition),
                                                       timeout=timeout_s)
            first = high if tp.offset < 0 else tp.offset  # -1: nothing that recent
            start = max(first, low, high - per_partition)
            if high > start:
                assignment.append(TopicPartition(topic, tp.partition, start))
                ends[tp.partition] = high
        return _consume(consumer, assignment, ends, timeout_s)
    except KafkaException as exc:
        raise SourceUnavailable(f"Kafka at {conf.get('bootstrap.servers')}", str(exc)) from exc
    finally:
        consumer.close()


def _consume(consumer: Any, assignment: list[Any], ends: dict[int, int],
             timeout_s: float) -> list[bytes]:
    if not assignment:
        return []
    consumer.assign(assignment)
    values: list[bytes] = []
    remaining = dict(ends)
    deadline = time.monotonic() + timeout_s
    while remaining and time.monotonic() < deadline:
        for msg in consumer.consume(500, timeout=0.5):
            if msg.error() is not None:
                continue
            partition, offset = msg.partition(), msg.offset()
            if partition in remaining and offset < remaining[partition]:
                values.append(msg.value())
            if partition in remaining and offset >= remaining[partition] - 1:
                del remaining[partition]
    return values


def decode_all(event_type: type[E], values: Iterable[bytes]) -> tuple[list[E], int]:
    """The values that decode as ``event_type``, and how many did not."""
    events: list[E] = []
    bad = 0
    for value in values:
        try:
            events.append(decode(event_type, value))
        except SchemaValidationError:
            bad += 1
    return events, bad
