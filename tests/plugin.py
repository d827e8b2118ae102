"""The test suite's pytest plugin: every shared fixture, and the one topic collector.

Loaded by ``pytest_plugins`` in tests/conftest.py, so its fixtures serve every directory.

Kafka (:func:`kafka_bootstrap`, session scope) is one real broker per session: in order of
preference the cluster named by SENTINEL_TEST_BOOTSTRAP; a testcontainers Kafka when
SENTINEL_TEST_DOCKER=1 and a Docker engine answers (it must be able to pull apache/kafka);
otherwise the embedded broker that ``sentinel kafka start`` runs (Maven Central artifacts,
Java 17), on free loopback ports. On it, ``unique`` is a short random name, ``topic_factory``
creates uniquely named topics and ``settings_factory`` builds :class:`Settings` with a unique
topic prefix (the catalog's topics created) and a private data directory; both clean up.

The secured broker (``secured_kafka``, session scope, started only when a test asks for it) is
a second embedded broker with certificates generated for the session: a PLAINTEXT listener
(the broker's own), a SASL_SSL listener (users for PLAIN, SCRAM-SHA-256 and SCRAM-SHA-512) and
an SSL listener that requires a client certificate. It yields a :class:`SecuredKafka`, whose
``settings(data_dir, ...)`` builds :class:`Settings` for one of those listeners and
``env(...)`` the ``SENTINEL_KAFKA__*`` variables of a child process (``sentinel produce``, the
worker). ``secured_settings`` is the per-test factory: a unique topic prefix, the catalog's
topics created over SASL_SSL, deleted afterwards.

PostgreSQL: ``postgres`` (session scope) is a private server, started once when a test asks
for it; ``postgres_uri`` a fresh database on it per test; ``store_uri`` runs a test over both
label store backends (SQLite, PostgreSQL).

Models and the worker: ``model_store`` (session scope) is one MLflow store with three small
registered versions; ``worker_settings`` builds settings on the test broker whose store holds
v1..v3 of a fresh model name, with the champion and candidate aliases set.

Prometheus: ``fake_worker`` serves the worker's metric names over real HTTP with steady
traffic, ``prometheus`` is a real Prometheus scraping it
(:mod:`tests.integration.test_prometheus_harness` holds both servers).

:class:`TopicCollector` reads one topic from the beginning into a list (decoded events, or raw
values): ``until`` a predicate holds, failing at once when a watched process exits, and
``drain`` up to what the topic holds when it is called (the observable end: each partition's
end offset, so that nothing is waited for blindly). The worker tests, the closed loop and the
stream parity tests all read topics with it.

Support code that holds no fixture stays beside its tests: tests/e2e/worker_support.py (the
worker process, transactions, HTTP), tests/integration/lifecycle_support.py (shared with a
child process), tests/integration/model_support.py, tests/integration/postgres_server.py.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition
from pydantic import SecretStr

from schemas import decode
from sentinel.infra.admin import create_topics, delete_topics
from sentinel.infra.broker import EmbeddedKafka
from sentinel.infra.broker_security import BrokerSecurity
from sentinel.infra.tls import TlsFiles, generate
from sentinel.infra.worker_process import free_port
from sentinel.settings import (
    EmbeddedBrokerSettings,
    KafkaSettings,
    MlflowSettings,
    Settings,
    TopicSettings,
)
from sentinel.topics import TopicSpec, catalog
from tests.integration.postgres_server import PostgresServer, postgres_bindir

if TYPE_CHECKING:  # imported where used: MLflow and the harness cost seconds to import
    from lifecycle.registry import ModelRegistry
    from tests.integration.test_prometheus_harness import FakeWorkerMetrics, PrometheusServer

__all__ = ["SecuredKafka", "TopicCollector"]

# -- Kafka: the session's broker, topics and settings on it ---------------------------------

KAFKA_IMAGE = "apache/kafka:3.9.1"


def _docker_engine() -> bool:
    """An engine answers and already holds the Kafka image (no registry here: a pull fails)."""
    if shutil.which("docker") is None:
        return False
    return subprocess.run(["docker", "image", "inspect", KAFKA_IMAGE], capture_output=True,
                          check=False).returncode == 0


@pytest.fixture(scope="session")
def kafka_bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The session's broker (see the module's docstring for which one)."""
    external = os.environ.get("SENTINEL_TEST_BOOTSTRAP")
    if external:
        yield external
        return
    if os.environ.get("SENTINEL_TEST_DOCKER") == "1" and _docker_engine():  # pragma: no cover
        from testcontainers.kafka import KafkaContainer

        with KafkaContainer(KAFKA_IMAGE).with_kraft() as container:
            yield container.get_bootstrap_server()
        return
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


# -- the secured broker (SASL_SSL, mutual TLS) ----------------------------------------------

Listener = Literal["sasl_ssl", "mtls"]


@dataclass(frozen=True)
class SecuredKafka:
    """The secured broker's addresses, its SASL user and the session's certificates."""

    plaintext: str  # the broker's own listener (nothing of Sentinel's should use it)
    sasl_ssl: str
    mtls: str
    tls: TlsFiles
    username: str
    password: str

    def kafka(self, listener: Listener = "sasl_ssl", mechanism: str = "SCRAM-SHA-512",
              password: str | None = None) -> KafkaSettings:
        """Connection settings for a listener: SASL (``mechanism``, the user's password unless
        ``password``) with TLS, or mutual TLS with the client certificate."""
        if listener == "mtls":
            return KafkaSettings(
                bootstrap_servers=self.mtls, security_protocol="SSL",
                ssl_ca_location=str(self.tls.ca_cert),
                ssl_certificate_location=str(self.tls.client_cert),
                ssl_key_location=str(self.tls.client_key),
                ssl_key_password=SecretStr(self.tls.client_key_password))
        return KafkaSettings(
            bootstrap_servers=self.sasl_ssl, security_protocol="SASL_SSL",
            sasl_mechanism=mechanism, sasl_username=self.username,  # type: ignore[arg-type]
            sasl_password=SecretStr(password or self.password),
            ssl_ca_location=str(self.tls.ca_cert))

    def settings(self, data_dir: Path, listener: Listener = "sasl_ssl",
                 mechanism: str = "SCRAM-SHA-512", **overrides: object) -> Settings:
        """Settings on this broker with a unique topic prefix (topics are not created)."""
        prefix = f"s{uuid.uuid4().hex[:8]}."
        base: dict[str, object] = {
            "data_dir": data_dir,
            "kafka": self.kafka(listener, mechanism),
            "topics": TopicSettings(prefix=prefix, partitions=3),
            "mlflow": MlflowSettings(model_name=f"fraud-{prefix[:-1]}"),
        }
        base.update(overrides)
        return Settings(**base)  # type: ignore[arg-type]

    @staticmethod
    def env(kafka: KafkaSettings) -> dict[str, str]:
        """``kafka`` as the ``SENTINEL_KAFKA__*`` variables a deployment would set."""
        out = {}
        for name, value in kafka:
            if value is None:
                continue
            text = value.get_secret_value() if isinstance(value, SecretStr) else str(value)
            out[f"SENTINEL_KAFKA__{name.upper()}"] = text
        return out


@pytest.fixture(scope="session")
def secured_kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecuredKafka]:
    home = tmp_path_factory.mktemp("secured-kafka")
    tls = generate(home / "tls")
    username, password = "sentinel-app", f"pw-{uuid.uuid4().hex[:12]}"
    security = BrokerSecurity(tls, sasl_port=free_port(), users={username: password},
                              mtls_port=free_port())
    broker = EmbeddedKafka(
        EmbeddedBrokerSettings(port=free_port(), controller_port=free_port(), heap="512m"),
        home / "broker", security=security)
    status = broker.start()
    try:
        yield SecuredKafka(status.bootstrap, broker.secured_bootstraps["SASL_SSL"],
                           broker.secured_bootstraps["MTLS"], tls, username, password)
    finally:
        broker.stop()


@pytest.fixture
def secured_settings(secured_kafka: SecuredKafka,
                     tmp_path: Path) -> Iterator[Callable[..., Settings]]:
    """Settings on the secured broker (SASL_SSL, SCRAM-SHA-512 unless told), with the
    catalog's topics created through that listener; deleted after the test."""
    made: list[Settings] = []

    def make(listener: Listener = "sasl_ssl", mechanism: str = "SCRAM-SHA-512",
             **overrides: object) -> Settings:
        data_dir = tmp_path / f"sentinel-{len(made)}"
        settings = secured_kafka.settings(data_dir, listener, mechanism, **overrides)
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        create_topics(settings.librdkafka(), catalog(settings.topics))
        made.append(settings)
        return settings

    yield make
    for settings in made:
        delete_topics(settings.librdkafka(), [s.name for s in catalog(settings.topics)])


# -- PostgreSQL -----------------------------------------------------------------------------

@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """One private PostgreSQL server for the session, started when a test first asks for it
    (:mod:`tests.integration.postgres_server`); skips only when the binaries are missing."""
    bindir = postgres_bindir()
    if bindir is None:
        pytest.skip("PostgreSQL server binaries (initdb, pg_ctl) not found: install Debian's "
                    "postgresql package (scripts/install-system-deps.sh, run by make test)")
    server = PostgresServer(bindir, free_port())
    try:
        server.start()
        yield server
    finally:
        server.stop()


@pytest.fixture
def postgres_uri(postgres: PostgresServer) -> Iterator[str]:
    """The URI of a fresh database on the session's server, dropped after the test."""
    name = postgres.create_database()
    yield postgres.uri(name)
    postgres.drop_database(name)


@pytest.fixture(params=["sqlite", "postgresql"])
def store_uri(request: pytest.FixtureRequest) -> str | None:
    """The label store of a test run on both backends: None (the default SQLite file in the
    data directory) or a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return None
    return str(request.getfixturevalue("postgres_uri"))


# -- models and the worker ------------------------------------------------------------------

@pytest.fixture(scope="session")
def model_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One MLflow store with three small registered versions, shared by every worker test."""
    from lifecycle.registry import ModelRegistry
    from tests.e2e.worker_support import register

    root = tmp_path_factory.mktemp("models")
    settings = Settings(data_dir=root)
    registry = ModelRegistry(settings.model_copy(update={"mlflow": settings.mlflow.model_copy(
        update={"model_name": "e2e-base"})}))
    for seed in (1, 2, 3):
        register(registry, seed)
    return root


@pytest.fixture
def worker_settings(settings_factory: Callable[..., Settings], model_store: Path,
                    ) -> Callable[..., tuple[Settings, ModelRegistry]]:
    """Settings on the test broker whose MLflow store already holds v1..v3 of a model."""
    from lifecycle.registry import ModelRegistry

    def make(champion: str | None = "1", candidate: str | None = "2") -> tuple[Settings,
                                                                             ModelRegistry]:
        settings = settings_factory()
        name = f"e2e-{uuid.uuid4().hex[:8]}"
        uri = f"sqlite:///{model_store}/mlflow.db"
        settings = settings.model_copy(update={"mlflow": settings.mlflow.model_copy(update={
            "model_name": name, "tracking_uri": uri, "registry_uri": uri})})
        registry = ModelRegistry(settings)
        base = ModelRegistry(settings.model_copy(update={"mlflow": settings.mlflow.model_copy(
            update={"model_name": "e2e-base"})}))
        registry.client.create_registered_model(name)
        for v in base.versions():
            registry.client.create_model_version(name, v.source, run_id=v.run_id, tags=v.tags)
        if champion:
            registry.client.set_registered_model_alias(name, "champion", champion)
        if candidate:
            registry.client.set_registered_model_alias(name, "candidate", candidate)
        return settings, registry

    return make


# -- Prometheus ------------------------------------------------------------------------------


@pytest.fixture
def fake_worker() -> Iterator[FakeWorkerMetrics]:
    """The worker's metric names with steady traffic, on a free loopback port."""
    from tests.integration.test_prometheus_harness import FakeWorkerMetrics

    worker = FakeWorkerMetrics().start()
    yield worker
    worker.stop()


@pytest.fixture
def prometheus(tmp_path: Path, fake_worker: FakeWorkerMetrics) -> Iterator[PrometheusServer]:
    """A real Prometheus scraping ``fake_worker`` every second, with rates already computable."""
    from tests.integration.test_prometheus_harness import PrometheusServer

    server = PrometheusServer(tmp_path, {"sentinel-worker": [fake_worker.target]}).start()
    try:
        server.wait_for("sum(rate(sentinel_transactions_total[1m])) > 0")
        yield server
    finally:
        server.stop()


# -- the topic collector ---------------------------------------------------------------------


class TopicCollector:
    """Reads one topic of the catalog, from the beginning, into ``items``.

    ``kind`` is the event type each value is decoded into (None keeps the raw bytes). With
    ``proc`` (a process whose output this is; reassign it when a test restarts the process),
    waiting fails at once when it exits. The consumer reads committed records only
    (``read_committed``) in a group of its own, and commits nothing. Close it, or use it as a
    context manager.
    """

    def __init__(self, settings: Settings, logical: str | None, kind: type | None,
                 proc: subprocess.Popen[bytes] | None = None, *, topic: str | None = None,
                 ) -> None:
        """``logical`` names a topic of the catalog (``settings.topics``); ``topic``, given
        instead, names any topic in full."""
        self.kind, self.proc = kind, proc
        self.items: list[Any] = []
        if topic is None:
            assert logical is not None, "a logical topic or a topic's full name"
            topic = settings.topics.name(logical)
        self.topic = topic
        self.consumer = Consumer({
            "group.id": f"c-{uuid.uuid4().hex[:8]}", "auto.offset.reset": "earliest",
            "enable.auto.commit": False, "session.timeout.ms": 10_000,
            "topic.metadata.refresh.interval.ms": 2_000, "enable.partition.eof": True,
            **settings.librdkafka(), "isolation.level": "read_committed"})
        self.consumer.subscribe([self.topic])
        self._eof: dict[int, int] = {}  # partition -> the end offset it was last read up to

    def poll(self, timeout_s: float = 0.2) -> list[Any]:
        """Read what has arrived (up to ``timeout_s`` for the first message); all read so far."""
        for msg in self.consumer.consume(5000, timeout_s):
            err = msg.error()
            if err is None:
                value = msg.value()
                self.items.append(value if self.kind is None else decode(self.kind, value))
                self._eof.pop(msg.partition(), None)
            elif err.code() == KafkaError._PARTITION_EOF:
                self._eof[msg.partition()] = msg.offset()
            else:
                raise KafkaException(err)
        return self.items

    def until(self, predicate: Callable[[list[Any]], bool], timeout_s: float = 120.0,
              ) -> list[Any]:
        """Read until ``predicate`` holds on everything read; TimeoutError after ``timeout_s``,
        RuntimeError as soon as the watched process exits."""
        deadline = time.monotonic() + timeout_s
        while not predicate(self.poll()):
            self._check_alive()
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self._name()}: {len(self.items)} seen")
        return self.items

    def drain(self, timeout_s: float = 60.0) -> list[Any]:
        """Read everything the topic holds now: until each partition is read to the end offset
        it had when called, transaction markers included (a read_committed reader gets there
        once the transactions written before the call are finished). All read so far."""
        metadata = self.consumer.list_topics(self.topic, timeout=10)
        ends = {}
        for partition in metadata.topics[self.topic].partitions:
            low, high = self.consumer.get_watermark_offsets(
                TopicPartition(self.topic, partition), timeout=10)
            if high > low:
                ends[partition] = high
        deadline = time.monotonic() + timeout_s
        while any(self._eof.get(p, -1) < end for p, end in ends.items()):
            self.poll()
            self._check_alive()
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self._name()}: not read to the end in {timeout_s}s")
        return self.items

    def close(self) -> None:
        self.consumer.close()

    def __enter__(self) -> TopicCollector:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _check_alive(self) -> None:
        if self.proc is not None and self.proc.poll() is not None:
            raise RuntimeError(f"worker exited with {self.proc.returncode}")

    def _name(self) -> str:
        return self.kind.__name__ if self.kind is not None else self.topic


class FakeMessage:
    """A consumed Kafka message as the retrainer's loop reads it (``TermLoop.store``): a
    topic, a value and an offset; key ``b"k"``, partition 0."""

    def __init__(self, topic: str, value: bytes, offset: int) -> None:
        self._topic, self._value, self._offset = topic, value, offset

    def topic(self) -> str:
        return self._topic

    def value(self) -> bytes:
        return self._value

    def key(self) -> bytes:
        return b"k"

    def partition(self) -> int:
        return 0

    def offset(self) -> int:
        return self._offset


class FakeProducer:
    """An event producer that keeps what it is asked to send, ``(topic, value)``."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, object]] = []

    def send(self, topic: str, key: object, value: object) -> None:
        self.sent.append((topic, value))
