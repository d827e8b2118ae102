"""The worker's output port: a confluent-kafka producer, delivered before each offset commit.

A batch sends its outputs (verdicts, shadow results, hand-offs, changelog values) and returns
without waiting for their delivery: its source offsets are acknowledged then, but committed
only after :meth:`Sink.barrier` has seen everything sent so far on the broker (the worker runs
it at the start of every commit). So every output of a committed transaction is on the broker
(at-least-once), and no batch waits for a broker round trip, which made each stage a few
milliseconds slower per batch when every batch drained its own deliveries.
"""

from __future__ import annotations

import asyncio
import logging
import time
import zlib
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Message, Producer

from sentinel.errors import SentinelKafkaError

logger = logging.getLogger(__name__)


def partition_for(key: bytes, partitions: int) -> int:
    """librdkafka's default partitioner (``consistent_random``: CRC32 of the key)."""
    return zlib.crc32(key) % partitions


class Sink:
    """Produce raw bytes; failures are collected and raised by :meth:`barrier`."""

    def __init__(self, conf: dict[str, Any]) -> None:
        # Delivery reports only for failures: a Python callback per delivered message cost
        # more than the produce call itself; barrier() waits on the outstanding count instead.
        defaults = {"linger.ms": 2, "batch.num.messages": 10_000, "enable.idempotence": True,
                    "compression.type": "lz4", "queue.buffering.max.messages": 1_000_000,
                    "delivery.report.only.error": True}
        self._producer = Producer({**defaults, **conf, "on_delivery": self._on_delivery})
        self._failures: list[str] = []
        self._open = asyncio.Event()  # cleared while a barrier waits for the last deliveries
        self._open.set()

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

    def poll(self) -> None:
        """Serve delivery reports (failures are kept for the next barrier)."""
        self._producer.poll(0)

    async def ready(self) -> None:
        """Awaited before a batch: returns at once unless a barrier is draining."""
        if not self._open.is_set():
            await self._open.wait()

    async def barrier(self, optimistic_s: float = 0.02, timeout_s: float = 60.0) -> None:
        """Return once everything sent so far is delivered; raise if a delivery failed.

        librdkafka reports no per-message success here (see ``__init__``), only the count still
        outstanding, so "delivered so far" means that count at zero. Batches keep sending while
        the barrier first waits ``optimistic_s`` for that; under sustained load the count may
        never touch zero, so then new batches are held (:meth:`ready`) while it drains."""
        if not await self._delivered(optimistic_s):
            self._open.clear()
            try:
                await self.drain(timeout_s)
            finally:
                self._open.set()
        self._raise_failures()

    async def drain(self, timeout_s: float = 60.0) -> None:
        """Wait (without blocking the loop) until everything sent so far is delivered."""
        if not await self._delivered(timeout_s):
            raise SentinelKafkaError(f"{len(self._producer)} messages undelivered after "
                                     f"{timeout_s}s")
        self._raise_failures()

    def _raise_failures(self) -> None:
        if self._failures:
            failures, self._failures = self._failures, []
            raise SentinelKafkaError(f"{len(failures)} deliveries failed, first: {failures[0]}")

    async def _delivered(self, timeout_s: float) -> bool:
        producer = self._producer
        producer.poll(0)
        deadline = time.monotonic() + timeout_s  # a busy loop oversleeps: count real time
        while len(producer) > 0:
            if time.monotonic() >= deadline:
                return False
            await asyncio.sleep(0.001)
            producer.poll(0)
        return True

    def _on_delivery(self, err: KafkaError | None, msg: Message) -> None:
        if err is not None:
            self._failures.append(f"{msg.topic()}: {err.str()}")

    def close(self, timeout_s: float = 5.0) -> None:
        """Deliver what is queued (bounded: shutdown must not hang on a dead broker)."""
        left = self._producer.flush(timeout_s)
        if left:
            logger.warning("closing sink with %d undelivered messages (at-least-once: the "
                           "uncommitted inputs are consumed again)", left)
