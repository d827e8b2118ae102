"""The embedded broker's lifecycle through the CLI, and produce/consume on the real broker."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from schemas import Transaction, decode
from sentinel.infra.kafka_io import EventProducer, read_all, read_changelog, read_range
from sentinel.infra.worker_process import free_port

pytestmark = pytest.mark.integration


@pytest.fixture
def broker_env(tmp_path: Path) -> Iterator[dict[str, str]]:
    env = {
        **os.environ,
        "SENTINEL_DATA_DIR": str(tmp_path / "data"),
        "SENTINEL_BROKER__PORT": str(free_port()),
        "SENTINEL_BROKER__CONTROLLER_PORT": str(free_port()),
        "SENTINEL_BROKER__HEAP": "384m",
    }
    env.pop("SENTINEL_KAFKA__BOOTSTRAP_SERVERS", None)
    yield env
    sentinel("kafka", "stop", env=env)


def sentinel(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "cli.main", *args], env=env,
                          capture_output=True, text=True, timeout=120, check=False)


def java_processes_with(marker: str) -> list[str]:
    out = subprocess.run(["ps", "-ww", "-eo", "pid,args"], capture_output=True, text=True,
                         check=True)
    return [line for line in out.stdout.splitlines() if "kafka.Kafka" in line and marker in line]


def test_start_twice_is_harmless_and_stop_leaves_no_process(broker_env: dict[str, str]) -> None:
    first = sentinel("kafka", "start", env=broker_env)
    assert first.returncode == 0, first.stderr
    port = broker_env["SENTINEL_BROKER__PORT"]
    assert f"running at 127.0.0.1:{port}" in first.stdout
    second = sentinel("kafka", "start", env=broker_env)
    assert second.returncode == 0
    assert first.stdout.split("pid")[1] == second.stdout.split("pid")[1]  # same process
    data_dir = broker_env["SENTINEL_DATA_DIR"]
    assert len(java_processes_with(data_dir)) == 1

    stopped = sentinel("kafka", "stop", env=broker_env)
    assert stopped.returncode == 0 and "stopped" in stopped.stdout
    assert java_processes_with(data_dir) == []
    status = sentinel("kafka", "status", env=broker_env)
    assert status.returncode == 3 and "not running" in status.stdout


def test_stale_pid_file_and_busy_port_give_one_clear_line(broker_env: dict[str, str]) -> None:
    pid_file = Path(broker_env["SENTINEL_DATA_DIR"]) / "kafka" / "broker.pid"
    pid_file.parent.mkdir(parents=True)
    pid_file.write_text("999999")
    status = sentinel("kafka", "status", env=broker_env)
    assert "stale PID file" in status.stdout
    stop = sentinel("kafka", "stop", env=broker_env)
    assert "removed stale PID file" in stop.stdout and not pid_file.exists()

    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", int(broker_env["SENTINEL_BROKER__PORT"])))
        squatter.listen()
        busy = sentinel("kafka", "start", env=broker_env)
    assert busy.returncode == 1
    assert busy.stderr.strip().splitlines() == [
        f"sentinel: error: port 127.0.0.1:{broker_env['SENTINEL_BROKER__PORT']} is already in use "
        "by another process; stop it, or set SENTINEL_BROKER__PORT to a free port, or "
        "SENTINEL_KAFKA__BOOTSTRAP_SERVERS to use that cluster"
    ]


def test_round_trip_keyed_by_card_keeps_each_card_on_one_partition(
    kafka_bootstrap: str, topic_factory: Callable[..., str]
) -> None:
    topic = topic_factory(partitions=4)
    conf = {"bootstrap.servers": kafka_bootstrap}
    start = datetime(2018, 4, 1, tzinfo=UTC)
    sent = [
        Transaction(transaction_id=f"tx{i}", card_id=f"c{i % 7}", terminal_id=f"t{i % 5}",
                    amount=float(i), event_time=start + timedelta(seconds=i))
        for i in range(200)
    ]
    with EventProducer(conf) as producer:
        for tx in sent:
            producer.send(topic, tx.card_id, tx)
    messages = read_all(conf, topic, expected=len(sent), timeout_s=60)
    assert len(messages) == len(sent)
    received = [decode(Transaction, m.value()) for m in messages]
    assert sorted(received, key=lambda t: t.transaction_id) == sorted(
        sent, key=lambda t: t.transaction_id)
    partitions: dict[str, set[int]] = {}
    for msg in messages:
        partitions.setdefault(msg.key().decode(), set()).add(msg.partition())
    assert all(len(p) == 1 for p in partitions.values())
    assert len({p for ps in partitions.values() for p in ps}) > 1  # keys spread out
    for card in partitions:  # per-card order is preserved
        seq = [int(decode(Transaction, m.value()).transaction_id[2:]) for m in messages
               if m.key().decode() == card]
        assert seq == sorted(seq)


def test_read_range_returns_exactly_the_offsets_asked_for(
    kafka_bootstrap: str, topic_factory: Callable[..., str]
) -> None:
    """Reading an offset range straight from the broker (no group, no commits)."""
    topic = topic_factory(partitions=1)
    conf = {"bootstrap.servers": kafka_bootstrap}
    with EventProducer(conf) as producer:
        for i in range(10):
            producer.send(topic, b"k", b"m%d" % i)
    middle = read_range(conf, topic, 0, 3, 7)
    assert [(m.offset(), m.value()) for m in middle] == [(o, b"m%d" % o) for o in range(3, 7)]
    tail = read_range(conf, topic, 0, 8, 20)  # past the end: what exists, no waiting
    assert [m.offset() for m in tail] == [8, 9]


def test_storage_formats_when_the_random_cluster_id_starts_with_a_dash(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One random cluster id in 64 starts with "-"; Kafka's StorageTool once read it as an
    option and a test session failed to start its broker."""
    import uuid

    from sentinel.infra import broker as broker_module
    from sentinel.settings import EmbeddedBrokerSettings

    monkeypatch.setattr(broker_module.uuid, "uuid4", lambda: uuid.UUID(bytes=b"\xf8" + bytes(15)))
    kafka = broker_module.EmbeddedKafka(
        EmbeddedBrokerSettings(port=free_port(), controller_port=free_port()), tmp_path)
    try:
        kafka.start()  # formats the storage with that id, then runs on it
    finally:
        kafka.stop()
    assert "cluster.id=-" in (kafka.log_dir / "meta.properties").read_text()


def test_read_changelog_keeps_the_latest_value_per_key(
    kafka_bootstrap: str, topic_factory: Callable[..., str]
) -> None:
    """What the worker compares its recovered tables with."""
    from confluent_kafka import Producer

    topic = topic_factory(partitions=2)
    conf = {"bootstrap.servers": kafka_bootstrap}
    producer = Producer(conf)
    for key, value in [(b"a", b"1"), (b"b", b"1"), (b"a", b"2"), (b"b", None), (b"c", b"9")]:
        producer.produce(topic, value, key, partition=1)
    producer.produce(topic, b"other", b"z", partition=0)
    assert producer.flush(10) == 0
    assert read_changelog(conf, topic, 1) == {b"a": b"2", b"b": None, b"c": b"9"}
    assert read_changelog(conf, topic, 0) == {b"z": b"other"}
