"""Integration fixtures beyond the shared broker: a secured broker (SASL_SSL and mutual TLS).

``secured_kafka`` (session scope) starts, once and only when a test asks for it, a second
embedded broker with certificates generated for the session: a PLAINTEXT listener (the
broker's own), a SASL_SSL listener (users for PLAIN, SCRAM-SHA-256 and SCRAM-SHA-512) and an
SSL listener that requires a client certificate. It yields a :class:`SecuredKafka`, whose
``settings(data_dir, ...)`` builds :class:`Settings` for one of those listeners and ``env(...)``
the ``SENTINEL_KAFKA__*`` variables of a child process (``sentinel produce``, the worker).
``secured_settings`` is the per-test factory: a unique topic prefix, the catalog's topics
created over SASL_SSL, deleted afterwards.

``postgres`` (session scope) is a private PostgreSQL server, started once when a test asks for
it; ``postgres_uri`` a fresh database on it per test; ``store_uri`` runs a test over both label
store backends (SQLite, PostgreSQL).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import pytest
from pydantic import SecretStr

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
from sentinel.topics import catalog
from tests.integration.postgres_server import PostgresServer, postgres_bindir

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
