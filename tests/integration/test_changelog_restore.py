"""Restoring a state partition reads the previous owner's last checkpoint, even when that
checkpoint's transaction is still unresolved on the changelog when the restore starts."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable

import pytest
from confluent_kafka import Producer

from stream_app.restore import read_changelog

pytestmark = pytest.mark.integration


def test_a_restore_waits_for_a_transaction_that_is_not_resolved_yet(
        kafka_bootstrap: str, topic_factory: Callable[..., str]) -> None:
    topic = topic_factory(partitions=1, prefix="changelog")
    conf = {"bootstrap.servers": kafka_bootstrap}
    owner = Producer({**conf, "transactional.id": f"restore-{uuid.uuid4().hex[:8]}"})
    owner.init_transactions(30)
    owner.begin_transaction()
    owner.produce(topic, b"1", b"committed", partition=0)
    owner.commit_transaction(30)
    owner.begin_transaction()  # the previous owner's last checkpoint, not resolved yet
    owner.produce(topic, b"2", b"last-checkpoint", partition=0)
    owner.flush(30)

    looks = threading.Semaphore(0)
    result: dict[bytes, bytes | None] = {}

    def restore() -> None:
        def progress(done: int, total: int) -> None:
            looks.release()
        result.update(read_changelog(conf, topic, 0, 120.0, progress))

    reader = threading.Thread(target=restore)
    reader.start()
    for _ in range(4):  # the restore has read what is stable and looked for the end again
        assert looks.acquire(timeout=60)
    assert reader.is_alive(), "the restore ended before the open transaction did"
    owner.commit_transaction(30)
    reader.join(timeout=120)
    assert not reader.is_alive()
    assert result == {b"committed": b"1", b"last-checkpoint": b"2"}
