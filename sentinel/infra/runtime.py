"""What a command needs running before it works: the broker (unless one is configured)."""

from __future__ import annotations

import logging

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
