"""Topic administration through confluent-kafka's AdminClient (an adapter at the edge)."""

from __future__ import annotations

import logging
from typing import Any

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, NewTopic

from sentinel.errors import SentinelKafkaError
from sentinel.topics import TopicSpec

logger = logging.getLogger(__name__)


def broker_answers(bootstrap: str, timeout_s: float = 1.0) -> bool:
    """True when a broker at ``bootstrap`` answers a metadata request."""
    admin = AdminClient({"bootstrap.servers": bootstrap, "socket.connection.setup.timeout.ms": 1000,
                         "log_level": 0})
    try:
        metadata = admin.list_topics(timeout=timeout_s)
    except KafkaException:
        return False
    return bool(metadata.brokers)


def create_topics(conf: dict[str, Any], specs: list[TopicSpec], replication_factor: int = 1,
                  timeout_s: float = 30.0) -> dict[str, str]:
    """Create the topics that do not exist yet. Idempotent: returns name -> created|exists."""
    admin = AdminClient(conf)
    try:
        existing = set(admin.list_topics(timeout=timeout_s).topics)
    except KafkaException as exc:
        raise SentinelKafkaError(f"cannot reach Kafka at {conf.get('bootstrap.servers')}") from exc
    outcome = {spec.name: "exists" for spec in specs if spec.name in existing}
    missing = [
        NewTopic(spec.name, num_partitions=spec.partitions, replication_factor=replication_factor,
                 config=spec.config)
        for spec in specs if spec.name not in existing
    ]
    if not missing:
        return outcome
    for name, future in admin.create_topics(missing, operation_timeout=timeout_s).items():
        try:
            future.result()
            outcome[name] = "created"
        except KafkaException as exc:
            if exc.args[0].code() == KafkaError.TOPIC_ALREADY_EXISTS:
                outcome[name] = "exists"
            else:
                raise SentinelKafkaError(f"creating topic failed: {exc}", topic=name) from exc
    return outcome


def delete_topics(conf: dict[str, Any], names: list[str], timeout_s: float = 30.0) -> None:
    """Delete topics (used by tests and `sentinel topics delete`)."""
    if not names:
        return
    admin = AdminClient(conf)  # must outlive the futures
    for name, future in admin.delete_topics(names, operation_timeout=timeout_s).items():
        try:
            future.result()
        except KafkaException as exc:
            logger.warning("delete topic failed topic=%s error=%s", name, exc)


def list_topics(conf: dict[str, Any], timeout_s: float = 10.0) -> dict[str, int]:
    """Topic name -> partition count."""
    try:
        metadata = AdminClient(conf).list_topics(timeout=timeout_s)
    except KafkaException as exc:
        raise SentinelKafkaError(f"cannot reach Kafka at {conf.get('bootstrap.servers')}") from exc
    return {name: len(t.partitions) for name, t in metadata.topics.items()}
