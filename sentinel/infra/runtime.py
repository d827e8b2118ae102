"""What a command needs before it works: the broker running (unless one is configured), and
a configured cluster that accepts this process's credentials."""

from __future__ import annotations

import logging

from sentinel.errors import KafkaRejectedError, SentinelKafkaError
from sentinel.infra.broker import EmbeddedKafka
from sentinel.settings import Settings

logger = logging.getLogger(__name__)


def embedded_broker(settings: Settings) -> EmbeddedKafka:
    return EmbeddedKafka(settings.broker, settings.data_dir / "kafka")


def ensure_kafka(settings: Settings) -> str:
    """Return the bootstrap address, starting the embedded broker when none is configured."""
    if not settings.uses_embedded_broker:
        return settings.bootstrap_servers
    status = embedded_broker(settings).start()
    logger.info("embedded broker %s at %s (pid %s)", status.detail, status.bootstrap, status.pid)
    return status.bootstrap


def check_access(settings: Settings, timeout_s: float = 10.0) -> None:
    """Fail at once, with one line, when a configured cluster refuses this process's
    credentials or certificates (librdkafka would retry them forever). A cluster that does not
    answer yet is only logged: the clients keep trying, as they would without this check.
    For long-running processes (retrainer, replay, the worker); commands that create topics
    get the same failure from :func:`sentinel.infra.admin.create_topics`."""
    if settings.uses_embedded_broker:
        return
    from sentinel.infra.admin import check_connection  # local: confluent_kafka at the edge

    try:
        check_connection(settings.librdkafka(), timeout_s)
    except KafkaRejectedError:
        raise
    except SentinelKafkaError as exc:
        logger.warning("%s; the clients keep trying", exc)
