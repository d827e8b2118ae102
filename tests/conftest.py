"""Shared fixtures: one real Kafka broker per test session, unique topics per test.

The broker is, in order of preference: the cluster named by SENTINEL_TEST_BOOTSTRAP; a
testcontainers Kafka when SENTINEL_TEST_DOCKER=1 and a Docker engine answers (it must be able to
pull apache/kafka); otherwise the embedded broker that ``sentinel kafka start`` runs (Maven
Central artifacts, Java 17), on free loopback ports.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from sentinel.infra.admin import create_topics, delete_topics
from sentinel.infra.worker_process import free_port
from sentinel.settings import (
    EmbeddedBrokerSettings,
    KafkaSettings,
    MlflowSettings,
    Settings,
    TopicSettings,
)
from sentinel.topics import TopicSpec, catalog

KAFKA_IMAGE = "apache/kafka:3.9.1"


def _docker_engine() -> bool:
    """An engine answers and already holds the Kafka image (no registry here: a pull fails)."""
    if shutil.which("docker") is None:
        return False
    return subprocess.run(["docker", "image", "inspect", KAFKA_IMAGE], capture_output=True,
                          check=False).returncode == 0


@pytest.fixture(scope="session")
def kafka_bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    external = os.environ.get("SENTINEL_TEST_BOOTSTRAP")
    if external:
        yield external
        return
    if os.environ.get("SENTINEL_TEST_DOCKER") == "1" and _docker_engine():  # pragma: no cover
        from testcontainers.kafka import KafkaContainer

        with KafkaContainer(KAFKA_IMAGE).with_kraft() as container:
            yield container.get_bootstrap_server()
        return
    from sentinel.infra.broker import EmbeddedKafka

    broker = EmbeddedKafka(
        EmbeddedBrokerSettings(port=free_port(), controller_port=free_port(), heap="1g"),
        tmp_path_factory.mktemp("kafka"),
    )
    status = broker.start()
    try:
        yield status.bootstrap
    finally:
        broker.stop()


@pytest.fixture
def unique() -> str:
    return uuid.uuid4().hex[:10]


@pytest.fixture
def topic_factory(kafka_bootstrap: str) -> Iterator[Callable[..., str]]:
    """Create uniquely named topics; delete them after the test."""
    made: list[str] = []
    conf = {"bootstrap.servers": kafka_bootstrap}

    def make(partitions: int = 3, prefix: str = "test") -> str:
        name = f"{prefix}-{uuid.uuid4().hex[:12]}"
        spec = TopicSpec(name, name, "key", "bytes", partitions, {}, "test topic")
        create_topics(conf, [spec])
        made.append(name)
        return name

    yield make
    delete_topics(conf, made)


@pytest.fixture
def settings_factory(
    kafka_bootstrap: str, tmp_path: Path
) -> Iterator[Callable[..., Settings]]:
    """Settings on the shared broker with a unique topic prefix and a private data dir.

    The topics of the catalog are created; they are deleted after the test.
    """
    made: list[Settings] = []

    def make(create: bool = True, **overrides: object) -> Settings:
        prefix = f"t{uuid.uuid4().hex[:8]}."
        base: dict[str, object] = {
            "data_dir": tmp_path / "sentinel",
            "kafka": KafkaSettings(bootstrap_servers=kafka_bootstrap),
            "topics": TopicSettings(prefix=prefix, partitions=3),
            "mlflow": MlflowSettings(model_name=f"fraud-{prefix[:-1]}"),
        }
        base.update(overrides)
        settings = Settings(**base)  # type: ignore[arg-type]
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        if create:
            create_topics(settings.librdkafka(), catalog(settings.topics))
        made.append(settings)
        return settings

    yield make
    for settings in made:
        delete_topics(settings.librdkafka(), [s.name for s in catalog(settings.topics)])
