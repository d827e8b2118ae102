"""Offsets are committed only after outputs are delivered: the sink's barrier and the hook
that runs it before each of Faust's commits."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from sentinel.errors import SentinelKafkaError
from stream_app import faust_commit
from stream_app.sink import Sink


def _unreachable_sink() -> Sink:
    # nothing listens on port 1: whatever is sent stays outstanding
    return Sink({"bootstrap.servers": "127.0.0.1:1", "message.timeout.ms": 60_000, "log_level": 0})


def test_barrier_returns_at_once_when_nothing_is_outstanding() -> None:
    sink = _unreachable_sink()
    asyncio.run(asyncio.wait_for(sink.barrier(), 1.0))


def test_barrier_holds_new_batches_while_it_drains_and_releases_them_when_it_fails() -> None:
    sink = _unreachable_sink()
    sink.send("t", b"k", b"v")
    events: list[str] = []

    async def batch() -> None:
        await asyncio.sleep(0.05)  # after the optimistic wait: the barrier is draining
        await sink.ready()
        events.append("batch")

    async def run() -> None:
        task = asyncio.create_task(batch())
        with pytest.raises(SentinelKafkaError, match="undelivered"):
            await sink.barrier(optimistic_s=0.01, timeout_s=0.2)
        events.append("barrier failed")
        await task

    asyncio.run(run())
    assert events == ["barrier failed", "batch"]  # held until the barrier ended, then released


def test_batches_are_not_held_outside_a_barrier() -> None:
    sink = _unreachable_sink()
    sink.send("t", b"k", b"v")  # outstanding, but no barrier runs
    asyncio.run(asyncio.wait_for(sink.ready(), 0.1))


class _Consumer:
    def __init__(self) -> None:
        self.log: list[str] = []
        self.crashed: BaseException | None = None

    async def _commit_tps(self, tps: Any, start_new_transaction: bool) -> bool:
        self.log.append(f"commit {sorted(tps)}")
        return True

    async def crash(self, exc: BaseException) -> None:
        self.crashed = exc


def test_each_commit_runs_the_barrier_first() -> None:
    consumer = _Consumer()

    async def barrier() -> None:
        consumer.log.append("barrier")

    faust_commit.install(consumer, barrier)
    faust_commit.install(consumer, barrier)  # a second rebalance: not wrapped twice
    assert asyncio.run(consumer._commit_tps({"a"}, start_new_transaction=True))
    assert consumer.log == ["barrier", "commit ['a']"]


def test_a_failed_delivery_crashes_the_consumer_and_commits_nothing() -> None:
    consumer = _Consumer()

    async def barrier() -> None:
        raise SentinelKafkaError("1 deliveries failed, first: v: timed out")

    faust_commit.install(consumer, barrier)
    assert not asyncio.run(consumer._commit_tps({"a"}, start_new_transaction=True))
    assert consumer.log == [] and isinstance(consumer.crashed, SentinelKafkaError)


def test_barrier_timeout_is_wall_time_even_on_a_busy_loop() -> None:
    import time

    sink = _unreachable_sink()
    sink.send("t", b"k", b"v")

    async def hog(stop: asyncio.Event) -> None:
        while not stop.is_set():
            time.sleep(0.01)  # a loop this busy makes each 1 ms sleep last about 10 ms
            await asyncio.sleep(0)

    async def run() -> float:
        stop = asyncio.Event()
        task = asyncio.create_task(hog(stop))
        started = time.monotonic()
        with pytest.raises(SentinelKafkaError, match="undelivered"):
            await sink.barrier(optimistic_s=0.01, timeout_s=0.2)
        stop.set()
        await task
        return time.monotonic() - started

    assert asyncio.run(run()) < 1.0  # counting 1 ms per sleep took about 2 s here
