"""Restoring a state partition from its compacted changelog (read_committed, to its end)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition

from sentinel.errors import SentinelKafkaError


def read_changelog(conf: dict[str, Any], topic: str, partition: int, timeout_s: float,
                   progress: Callable[[int, int], None] = lambda done, total: None,
                   ) -> dict[bytes, bytes | None]:
    """The latest value per key of ``topic``/``partition``; ``progress(done, total)`` is called
    as records are read. Only committed records are read, so an aborted checkpoint's state
    never comes back."""
    consumer = Consumer({**conf, "group.id": f"sentinel-restore-{uuid.uuid4().hex[:8]}",
                         "enable.auto.commit": False, "enable.partition.eof": True,
                         "isolation.level": "read_committed", "auto.offset.reset": "earliest",
                         "fetch.wait.max.ms": 10})  # the end is met at once, not after 0.5 s
    latest: dict[bytes, bytes | None] = {}
    try:
        low, high = consumer.get_watermark_offsets(TopicPartition(topic, partition),
                                                   timeout=10.0)
        total = max(0, high - low)
        progress(0, total)
        if total == 0:
            return latest
        consumer.assign([TopicPartition(topic, partition, low)])
        deadline = time.monotonic() + timeout_s
        done = 0
        while True:
            if time.monotonic() > deadline:
                raise SentinelKafkaError(f"restoring {topic}[{partition}] took over {timeout_s}s "
                                         f"({done} of {total} records)", topic=topic)
            for msg in consumer.consume(10_000, 0.5):
                err = msg.error()
                if err is not None:
                    if err.code() == KafkaError._PARTITION_EOF:
                        progress(total, total)
                        return latest
                    raise SentinelKafkaError(f"restoring {topic}[{partition}]: {err.str()}",
                                             topic=topic)
                key = msg.key()
                if key is not None:
                    latest[key] = msg.value()
                done += 1
            progress(min(done, total), total)
    except KafkaException as exc:
        raise SentinelKafkaError(f"restoring {topic}[{partition}] failed: {exc}",
                                 topic=topic) from exc
    finally:
        consumer.close()
