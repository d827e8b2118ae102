"""Sentinel's Kafka clients on a secured cluster: SASL_SSL (PLAIN, SCRAM-SHA-256/512) and mutual
TLS, against the embedded broker started with those listeners and certificates made for the
test session (``secured_kafka`` in conftest.py)."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from pydantic import SecretStr

from schemas import DeadLetter, Transaction, decode
from sentinel.errors import SentinelKafkaError
from sentinel.infra.admin import check_connection, delete_topics
from sentinel.infra.kafka_io import EventProducer, read_all
from sentinel.settings import DriftSettings, KafkaSettings, Settings
from sentinel.topics import catalog
from tests.plugin import SecuredKafka

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


def _tx(i: int) -> Transaction:
    return Transaction(transaction_id=f"tx-{i}", card_id=f"card-{i % 7}",
                       terminal_id=f"term-{i % 5}", amount=10.0 + i,
                       event_time=datetime(2026, 1, 1, tzinfo=UTC))


def _sentinel(*args: str, kafka: dict[str, str], tmp_path: Path,
              prefix: str) -> subprocess.CompletedProcess[str]:
    """The CLI as a deployment runs it: security settings from SENTINEL_KAFKA__* only."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SENTINEL_")}
    env.update(kafka, SENTINEL_TOPICS__PREFIX=prefix, SENTINEL_TOPICS__PARTITIONS="3",
               SENTINEL_DATA_DIR=str(tmp_path / "cli"), SENTINEL_LOG_LEVEL="WARNING")
    return subprocess.run([sys.executable, "-m", "cli.main", *args], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=120, check=False)


def test_produce_cli_writes_over_sasl_ssl_and_a_consumer_reads_it_back(
        secured_kafka: SecuredKafka, tmp_path: Path) -> None:
    settings = secured_kafka.settings(tmp_path / "reader")
    prefix = settings.topics.prefix
    try:
        result = _sentinel("produce", "--count", "150", "--customers", "100", "--terminals", "200",
                           "--days", "5", "--no-labels", kafka=secured_kafka.env(settings.kafka),
                           tmp_path=tmp_path, prefix=prefix)
        assert result.returncode == 0, result.stderr
        assert "produced 150 transactions and 0 labels" in result.stdout
        assert secured_kafka.sasl_ssl in result.stdout
        got = read_all(settings.librdkafka(), settings.topics.name("transactions"), 150,
                       timeout_s=30)
        assert len({decode(Transaction, m.value()).transaction_id for m in got}) == 150
    finally:
        delete_topics(settings.librdkafka(), [s.name for s in catalog(settings.topics)])


@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"])
def test_each_sasl_mechanism_creates_produces_and_consumes(
        secured_settings: Callable[..., Settings], mechanism: str) -> None:
    settings = secured_settings(mechanism=mechanism)  # the topics: created by the admin client
    topic = settings.topics.name("transactions")
    with EventProducer(settings.librdkafka()) as producer:
        for i in range(20):
            producer.send(topic, f"card-{i}", _tx(i))
    got = read_all(settings.librdkafka(), topic, 20, timeout_s=30)
    assert sorted(decode(Transaction, m.value()).transaction_id for m in got) == sorted(
        f"tx-{i}" for i in range(20))


def test_mutual_tls_client_produces_and_consumes(
        secured_settings: Callable[..., Settings]) -> None:
    settings = secured_settings("mtls")
    assert settings.librdkafka()["security.protocol"] == "SSL"
    topic = settings.topics.name("labels")
    with EventProducer(settings.librdkafka()) as producer:
        producer.send(topic, "k", _tx(1))
    got = read_all(settings.librdkafka(), topic, 1, timeout_s=30)
    assert [decode(Transaction, m.value()).transaction_id for m in got] == ["tx-1"]


def test_dashboard_samples_and_replay_read_over_sasl_ssl(
        secured_settings: Callable[..., Settings]) -> None:
    from dashboard.topics import read_topic
    from lifecycle.replay import read_stretch

    settings = secured_settings(mechanism="SCRAM-SHA-256")
    topic = settings.topics.name("transactions")
    with EventProducer(settings.librdkafka()) as producer:
        for i in range(12):
            producer.send(topic, f"card-{i % 7}", _tx(i))
    values = read_topic(settings.librdkafka(), topic, 100, from_end=True, timeout_s=10)
    assert sorted(decode(Transaction, v).transaction_id for v in values) == sorted(
        f"tx-{i}" for i in range(12))
    transactions, labels = read_stretch(settings, idle_s=1.5)
    assert len(transactions) == 12 and labels.empty


def test_mtls_listener_refuses_a_client_without_its_certificate(
        secured_kafka: SecuredKafka) -> None:
    anonymous = KafkaSettings(bootstrap_servers=secured_kafka.mtls, security_protocol="SSL",
                              ssl_ca_location=str(secured_kafka.tls.ca_cert))
    with pytest.raises(SentinelKafkaError, match=r"rejected the connection: .*bad certificate"):
        check_connection(anonymous.as_librdkafka_dict(), timeout_s=30)


def test_a_client_that_does_not_trust_the_broker_ca_is_refused_at_once(
        secured_kafka: SecuredKafka) -> None:
    untrusting = secured_kafka.kafka().model_copy(update={"ssl_ca_location": None})
    with pytest.raises(SentinelKafkaError, match=r"rejected the connection: .*certificate verify"):
        check_connection(untrusting.as_librdkafka_dict(), timeout_s=30)


def test_retrainer_consumes_and_produces_over_sasl_ssl(
        secured_settings: Callable[..., Settings]) -> None:
    """The retrainer's consumer fills its label store from the topics, and its producer
    dead-letters an undecodable message, both through the SASL_SSL listener."""
    from lifecycle.retrainer_kafka import run

    settings = secured_settings(drift=DriftSettings(retrainer_port=0))
    t = settings.topics
    with EventProducer(settings.librdkafka()) as producer:
        for i in range(30):
            producer.send(t.name("transactions"), f"card-{i % 7}", _tx(i))
        producer.send(t.name("transactions"), "card-x", b"{not json")
    stop, failure = threading.Event(), []

    def retrainer() -> None:
        try:
            run(settings, stop=stop, serve_metrics=False, max_seconds=80,
                group_id=f"retrainer-{uuid.uuid4().hex[:6]}")
        except Exception as exc:  # reported by the test below
            failure.append(exc)

    thread = threading.Thread(target=retrainer, daemon=True)
    thread.start()
    try:
        letters = read_all(settings.librdkafka(), t.name("dead_letters"), 1, timeout_s=60)
        assert [decode(DeadLetter, m.value()).source_topic for m in letters] == [
            t.name("transactions")], failure
        assert _eventually(lambda: _stored(settings) == 30), (_stored(settings), failure)
    finally:
        stop.set()
        thread.join(30)
    assert not failure


@pytest.mark.parametrize("command", [
    ("produce", "--count", "10", "--customers", "10", "--terminals", "20", "--days", "1"),
    ("retrainer",)], ids=["produce", "retrainer"])
def test_wrong_password_fails_at_once_with_one_clear_line(
        secured_kafka: SecuredKafka, tmp_path: Path, command: tuple[str, ...]) -> None:
    kafka = secured_kafka.kafka(password="not-the-password")
    assert isinstance(kafka.sasl_password, SecretStr)
    result = _sentinel(*command, kafka=secured_kafka.env(kafka), tmp_path=tmp_path,
                       prefix=f"w{uuid.uuid4().hex[:6]}.")
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"sentinel: error: Kafka at {secured_kafka.sasl_ssl} (SASL_SSL) "
                               "rejected the connection: "), lines[0]
    assert "Authentication failed" in lines[0] or "authentication" in lines[0].lower()
    assert "not-the-password" not in result.stderr


def test_worker_scores_over_sasl_ssl(secured_settings: Callable[..., Settings],
                                     tmp_path: Path) -> None:
    """``sentinel worker`` as a process, every client over SASL_SSL: transactions in,
    a verdict for each out."""
    assert_worker_scores(secured_settings(), tmp_path)


def assert_worker_scores(settings: Settings, tmp_path: Path, n: int = 200) -> None:
    """Register a champion, start the worker on ``settings``, produce ``n`` transactions and
    read a verdict for each (run once on the shared PLAINTEXT broker: it passes there)."""
    from lifecycle.registry import ModelRegistry
    from schemas import Verdict
    from sentinel.infra.worker_process import free_port
    from tests.e2e.worker_support import (
        log_tail,
        produce,
        register,
        start_worker,
        stop_worker,
        transactions,
        wait_ready,
        worker_env,
    )

    registry = ModelRegistry(settings)
    version = register(registry, seed=1)
    registry.client.set_registered_model_alias(settings.mlflow.model_name, "champion", version)
    port = free_port()
    proc = start_worker(worker_env(settings, port, f"w-{uuid.uuid4().hex[:8]}"),
                        tmp_path / "worker.log")
    try:
        wait_ready(port, proc)
        txs = transactions(n, seed=5)
        produce(settings, txs)
        got = read_all(settings.librdkafka(), settings.topics.name("verdicts"), n, timeout_s=60)
        assert {decode(Verdict, m.value()).transaction_id for m in got} == {
            t.transaction_id for t in txs}, log_tail(tmp_path)
    finally:
        stop_worker(proc)


def _stored(settings: Settings) -> int:
    path = settings.data_dir / "retrainer" / "labelstore.sqlite"
    if not path.exists():
        return 0
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
        try:
            return int(db.execute("SELECT COUNT(*) FROM transactions").fetchone()[0])
        except sqlite3.OperationalError:  # the schema is being created
            return 0


def _eventually(check: Callable[[], bool], timeout_s: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.3)
    return check()
