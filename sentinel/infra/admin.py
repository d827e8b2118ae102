"""Topic administration through confluent-kafka's AdminClient (an adapter at the edge).

Its first request doubles as the connection check of a command: rejected credentials or a
certificate the client cannot verify end it at once with one line naming the cause, instead
of a retry loop until the timeout (librdkafka retries those forever and only reports them).
"""

from __future__ import annotations

import logging
import time
from typing import Any

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, ClusterMetadata, NewTopic

from sentinel.errors import KafkaRejectedError, SentinelKafkaError
from sentinel.topics import TopicSpec

logger = logging.getLogger(__name__)
# errors that retrying will not cure: wrong credentials, untrusted or mismatched certificates
_REJECTED = {KafkaError._AUTHENTICATION, KafkaError._SSL,
             KafkaError.SASL_AUTHENTICATION_FAILED, KafkaError.CLUSTER_AUTHORIZATION_FAILED}


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
    admin, errors = _admin(conf)
    existing = set(_metadata(admin, errors, conf, timeout_s).topics)
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
    admin, errors = _admin(conf)
    metadata = _metadata(admin, errors, conf, timeout_s)
    return {name: len(t.partitions) for name, t in metadata.topics.items()}


def check_connection(conf: dict[str, Any], timeout_s: float = 10.0) -> None:
    """Raise :class:`SentinelKafkaError` (one line: the cause) unless the cluster answers a
    metadata request with these connection settings; :class:`KafkaRejectedError` at once when
    it refuses the credentials or certificates."""
    admin, errors = _admin(conf)
    _metadata(admin, errors, conf, timeout_s)


def _admin(conf: dict[str, Any]) -> tuple[AdminClient, list[KafkaError]]:
    """An AdminClient whose errors are collected (and translated by :func:`_metadata`)
    instead of logged by librdkafka."""
    errors: list[KafkaError] = []
    client_conf: dict[str, Any] = {**conf, "error_cb": errors.append, "log_level": 0}
    return AdminClient(client_conf), errors


def _metadata(admin: AdminClient, errors: list[KafkaError], conf: dict[str, Any],
              timeout_s: float) -> ClusterMetadata:
    """The cluster's metadata; fails at once on rejected credentials or certificates."""
    protocol = conf.get("security.protocol", "PLAINTEXT")
    where = f"Kafka at {conf.get('bootstrap.servers')} ({protocol})"
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return admin.list_topics(timeout=max(0.1, min(1.0, deadline - time.monotonic())))
        except KafkaException as exc:
            admin.poll(0)  # serves error_cb
            rejected = [e for e in errors if _rejected(e)]
            if rejected:
                raise KafkaRejectedError(f"{where} rejected the connection: "
                                         f"{_first_line(rejected[0].str())}; check the "
                                         "SENTINEL_KAFKA__SASL_* and SSL_* settings") from exc
            if time.monotonic() >= deadline:
                causes = [e for e in errors if e.code() != KafkaError._ALL_BROKERS_DOWN]
                last = f": {_first_line(causes[-1].str())}" if causes else ""
                raise SentinelKafkaError(f"cannot reach {where}{last}") from exc


def _rejected(error: KafkaError) -> bool:
    # a broker that refuses the client's certificate (mutual TLS) closes the connection with
    # a TLS alert, which librdkafka reports as a transport error
    return error.code() in _REJECTED or (
        error.code() == KafkaError._TRANSPORT and "bad certificate" in error.str())


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0] if text.strip() else text
