"""The settings object and the CLI's error contract: one clear line, no traceback."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from pydantic import SecretStr, ValidationError

from sentinel.settings import KafkaSettings, LabelStoreSettings, Settings


def run_cli(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cli.main", *args], capture_output=True, text=True,
        env={**os.environ, **env}, timeout=60, check=False,
    )


def test_nested_settings_come_from_prefixed_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SENTINEL_KAFKA__BOOTSTRAP_SERVERS", "broker-a:9092,broker-b:9092")
    monkeypatch.setenv("SENTINEL_TOPICS__PREFIX", "staging.")
    monkeypatch.setenv("SENTINEL_SCORING__BATCH_SIZE", "64")
    settings = Settings()
    assert settings.bootstrap_servers == "broker-a:9092,broker-b:9092"
    assert not settings.uses_embedded_broker
    assert settings.topics.name("verdicts") == "staging.sentinel.verdicts"
    assert settings.scoring.batch_size == 64


def test_settings_are_frozen() -> None:
    settings = Settings()
    with pytest.raises(ValidationError):
        settings.log_level = "DEBUG"  # type: ignore[misc]


def test_librdkafka_dict_carries_credentials_without_leaking_them_in_repr() -> None:
    kafka = KafkaSettings(bootstrap_servers="b:9093", security_protocol="SASL_SSL",
                          sasl_mechanism="PLAIN", sasl_username="u",
                          sasl_password=SecretStr("hunter2"))
    conf = kafka.as_librdkafka_dict()
    assert conf["sasl.password"] == "hunter2"
    assert conf["security.protocol"] == "SASL_SSL"
    assert "hunter2" not in repr(kafka)


def test_embedded_broker_is_the_default() -> None:
    settings = Settings(kafka=KafkaSettings())
    assert settings.uses_embedded_broker
    assert settings.bootstrap_servers == "127.0.0.1:9092"
    assert settings.tracking_uri.startswith("sqlite:///")


@pytest.mark.parametrize(
    "args",
    [("kafka", "explode"), ("demo", "--count", "-3"), ("produce", "--rate", "fast"), ("nope",)],
)
def test_bad_cli_argument_is_one_line_without_traceback(args: tuple[str, ...]) -> None:
    result = run_cli(*args)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "error:" in lines[0]
    assert "Traceback" not in result.stderr


def test_bad_setting_in_env_is_one_line() -> None:
    result = run_cli("kafka", "status", SENTINEL_BROKER__PORT="not-a-port")
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "sentinel: error: invalid setting broker.port: "
        "Input should be a valid integer, unable to parse string as an integer"
    )


def test_bad_label_store_uri_is_one_line_without_its_password() -> None:
    result = run_cli("retrainer", SENTINEL_LABEL_STORE__URI="mysql://app:S3cret-pw@db/x")
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "sentinel: error: invalid setting label_store.uri: unsupported label store URI "
        "mysql://***@db/x: expected a file path, sqlite:///relative/path, "
        "sqlite:////absolute/path or postgresql://user:password@host:port/database")


def test_unreachable_label_store_is_one_line_without_its_password(tmp_path: object) -> None:
    """Nothing listens at the port: the retrainer stops at start with one line."""
    from sentinel.infra.worker_process import free_port

    uri = f"postgresql://app:S3cret-pw@127.0.0.1:{free_port()}/sentinel"
    result = run_cli("retrainer", SENTINEL_LABEL_STORE__URI=uri,
                     SENTINEL_DATA_DIR=str(tmp_path), SENTINEL_LOG_LEVEL="ERROR")
    assert result.returncode == 1, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    assert lines[0].startswith("sentinel: error: cannot connect to the label store at "
                               "postgresql://***@127.0.0.1:")
    assert "Connection refused" in lines[0] and "S3cret-pw" not in result.stderr


def test_configured_cluster_means_nothing_is_started() -> None:
    result = run_cli("kafka", "start", SENTINEL_KAFKA__BOOTSTRAP_SERVERS="10.0.0.1:9092")
    assert result.returncode == 0
    assert "nothing to start" in result.stdout


def test_as_env_gives_a_child_process_exactly_these_settings(
    monkeypatch: pytest.MonkeyPatch, tmp_path: object
) -> None:
    kafka = KafkaSettings(bootstrap_servers="b:1", security_protocol="SASL_PLAINTEXT",
                          sasl_mechanism="PLAIN", sasl_username="u", sasl_password=SecretStr("pw"))
    original = Settings(kafka=kafka, log_level="WARNING", label_store=LabelStoreSettings(
        uri=SecretStr("postgresql://u:pw@db:5432/sentinel")))
    original = original.model_copy(update={
        "drift": original.drift.model_copy(update={"grace_events": 123})})
    for key, value in original.as_env().items():
        monkeypatch.setenv(key, value)
    rebuilt = Settings()
    assert rebuilt.drift.grace_events == 123
    assert rebuilt.kafka.sasl_password is not None
    assert rebuilt.kafka.sasl_password.get_secret_value() == "pw"
    assert rebuilt.as_env() == original.as_env()
    assert rebuilt.label_store_location.target == "postgresql://u:pw@db:5432/sentinel"
