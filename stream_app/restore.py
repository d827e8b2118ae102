"""Restoring a state partition from its compacted changelog (read_committed, to its end)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any

from confluent_kafka import Consumer, IsolationLevel, KafkaError, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient, OffsetSpec

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
                         "fetch.wait.max.ms": 10})
    admin = AdminClient(conf)  # fresh: no leader epoch cached from before a broker restart
    latest: dict[bytes, bytes | None] = {}
    tp = TopicPartition(topic, partition)
    try:
        low, high = consumer.get_watermark_offsets(tp, timeout=10.0)
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
            msgs = consumer.consume(10_000, 0.05)
            for msg in msgs:
                err = msg.error()
                if err is not None:
                    if err.code() == KafkaError._PARTITION_EOF:
                        continue
                    raise SentinelKafkaError(f"restoring {topic}[{partition}]: {err.str()}",
                                             topic=topic)
                key = msg.key()
                if key is not None:
                    latest[key] = msg.value()
                done += 1
            progress(min(done, total), total)
            if _at_end(consumer, admin, tp):
                progress(total, total)
                return latest
    except KafkaException as exc:
        raise SentinelKafkaError(f"restoring {topic}[{partition}] failed: {exc}",
                                 topic=topic) from exc
    finally:
        consumer.close()


def _at_end(consumer: Consumer, admin: AdminClient, tp: TopicPartition) -> bool:
    """Read to the partition's high watermark, not only to its last stable offset (where a
    read_committed consumer's end-of-partition is): the previous owner's last checkpoint may
    be committed with its markers not yet written (they follow the commit), and its state must
    not be left out. Every transaction on a changelog ends (committed, aborted, or timed out)
    once its writer has lost the partition, so the high watermark is reached."""
    position = consumer.position([tp])[0].offset
    if position < 0:
        return False
    future = admin.list_offsets({tp: OffsetSpec.latest()},  # type: ignore[no-untyped-call]
                                request_timeout=10,
                                isolation_level=IsolationLevel.READ_UNCOMMITTED)[tp]
    return bool(position >= future.result(timeout=15).offset)
