"""The worker's output port: a confluent-kafka producer whose deliveries a batch awaits.

A batch's source offsets are acknowledged only after :meth:`Sink.drain` returns, so every
verdict of an acknowledged transaction is on the broker (at-least-once).
"""

from __future__ import annotations

import asyncio
import logging
import zlib
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Message, Producer

from sentinel.errors import SentinelKafkaError

logger = logging.getLogger(__name__)


def partition_for(key: bytes, partitions: int) -> int:
    """librdkafka's default partitioner (``consistent_random``: CRC32 of the key)."""
    return zlib.crc32(key) % partitions


class Sink:
    """Produce raw bytes; failures are collected and raised by :meth:`drain`."""

    def __init__(self, conf: dict[str, Any]) -> None:
        # Delivery reports only for failures: a Python callback per delivered message cost
        # more than the produce call itself; drain() waits on the outstanding count instead.
        defaults = {"linger.ms": 2, "batch.num.messages": 10_000, "enable.idempotence": True,
                    "compression.type": "lz4", "queue.buffering.max.messages": 1_000_000,
                    "delivery.report.only.error": True}
        self._producer = Producer({**defaults, **conf, "on_delivery": self._on_delivery})
        self._failures: list[str] = []

    def send(self, topic: str, key: bytes | str | None, value: bytes,
             partition: int | None = None) -> None:
        produce = self._producer.produce
        while True:
            try:
                if partition is None:
                    produce(topic, value, key)
                else:
                    produce(topic, value, key, partition)
                return
            except BufferError:
                self._producer.poll(0.01)
            except KafkaException as exc:
                raise SentinelKafkaError(f"produce failed: {exc}", topic=topic) from exc

    async def drain(self, timeout_s: float = 60.0) -> None:
        """Wait (without blocking the loop) until everything sent so far is delivered."""
        producer = self._producer
        producer.poll(0)
        waited = 0.0
        while len(producer) > 0:
            await asyncio.sleep(0.001)
            waited += 0.001
            producer.poll(0)
            if waited > timeout_s:
                raise SentinelKafkaError(f"{len(producer)} messages undelivered after {timeout_s}s")
        if self._failures:
            failures, self._failures = self._failures, []
            raise SentinelKafkaError(f"{len(failures)} deliveries failed, first: {failures[0]}")

    def _on_delivery(self, err: KafkaError | None, msg: Message) -> None:
        if err is not None:
            self._failures.append(f"{msg.topic()}: {err.str()}")

    def close(self, timeout_s: float = 5.0) -> None:
        """Deliver what is queued (bounded: shutdown must not hang on a dead broker)."""
        left = self._producer.flush(timeout_s)
        if left:
            logger.warning("closing sink with %d undelivered messages (at-least-once: the "
                           "uncommitted inputs are consumed again)", left)
