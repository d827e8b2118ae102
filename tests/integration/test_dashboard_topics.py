"""The dashboard's live window on a real topic: messages by Kafka timestamp, newest first when
capped, and nobody's consumer group moved."""

from __future__ import annotations

import time
from collections.abc import Callable

from confluent_kafka import Producer

from dashboard.topics import read_topic, read_window


def test_the_live_window_is_the_messages_since_its_start(
    kafka_bootstrap: str, topic_factory: Callable[..., str]
) -> None:
    topic = topic_factory(partitions=2)
    now_ms = int(time.time() * 1000)
    producer = Producer({"bootstrap.servers": kafka_bootstrap})
    for i in range(20):  # two hours old, then recent, spread over both partitions
        producer.produce(topic, value=f"old-{i}".encode(), partition=i % 2,
                         timestamp=now_ms - 2 * 3600_000 + i)
    for i in range(30):
        producer.produce(topic, value=f"new-{i}".encode(), partition=i % 2,
                         timestamp=now_ms - 60_000 + i)
    assert producer.flush(10) == 0
    conf = {"bootstrap.servers": kafka_bootstrap}
    hour = read_window(conf, topic, now_ms - 3600_000, 1000)
    assert sorted(hour) == sorted(f"new-{i}".encode() for i in range(30))
    assert len(read_window(conf, topic, now_ms - 3 * 3600_000, 1000)) == 50
    assert read_window(conf, topic, now_ms + 60_000, 1000) == []  # nothing that recent
    capped = read_window(conf, topic, now_ms - 3600_000, 10)  # 5 per partition, the newest
    assert sorted(capped) == sorted(f"new-{i}".encode() for i in range(20, 30))
    assert len(read_topic(conf, topic, 3, from_end=True)) == 6
