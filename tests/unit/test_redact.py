"""Credentials never leave through URIs, settings dumps, error lines or log lines."""

from __future__ import annotations

import io
import json
import logging

from pydantic import SecretStr

from sentinel.redact import (
    MASK,
    RedactingFormatter,
    redact_settings,
    redact_text,
    redact_uri,
    secrets_of,
)
from sentinel.settings import (
    HttpSettings,
    KafkaSettings,
    LabelStoreSettings,
    MlflowSettings,
    Settings,
)

PW, SASL, TOKEN = "S3cret-mlflow-pw", "S3cret-sasl-pw", "S3cret-http-token-0123"
STORE = "S3cret-store-pw"


def _settings() -> Settings:
    return Settings(
        kafka=KafkaSettings(security_protocol="SASL_PLAINTEXT", sasl_mechanism="PLAIN",
                            sasl_username="svc", sasl_password=SecretStr(SASL)),
        mlflow=MlflowSettings(tracking_uri=f"https://alice:{PW}@mlflow.internal:5000/"),
        http=HttpSettings(tokens=(SecretStr(TOKEN),)),
        label_store=LabelStoreSettings(
            uri=SecretStr(f"postgresql://retrainer:{STORE}@db.internal:5432/sentinel")),
    )


def test_uri_userinfo_and_secret_query_values_are_removed() -> None:
    assert redact_uri(f"http://alice:{PW}@127.0.0.1:1/") == "http://***@127.0.0.1:1/"
    assert redact_uri("postgresql+psycopg2://u:p4ss@db/mlflow") == "postgresql+psycopg2://***@db/mlflow"
    assert PW not in redact_uri(f"https://h/x?a=1&access_token={PW}")
    assert "a=1" in redact_uri(f"https://h/x?a=1&access_token={PW}")
    assert redact_uri("sqlite:////data/mlflow.db") == "sqlite:////data/mlflow.db"
    assert redact_uri("127.0.0.1:9092") == "127.0.0.1:9092"


def test_text_masks_uris_inside_messages_and_the_settings_secrets() -> None:
    settings = _settings()
    message = (f"API request to https://alice:{PW}@mlflow.internal:5000/api failed; "
               f"sasl.password={SASL} token {TOKEN}; again 'http://bob:{PW}@x/'; "
               f"store password {STORE!r} rejected")
    out = redact_text(message, settings)
    for secret in (PW, SASL, TOKEN, STORE, "alice:"):
        assert secret not in out, secret
    assert "https://***@mlflow.internal:5000/api" in out
    assert set(secrets_of(settings)) >= {PW, SASL, TOKEN, STORE}


def test_settings_dump_shows_no_secret() -> None:
    dump = json.dumps(redact_settings(_settings()))
    for secret in (PW, SASL, TOKEN, STORE):
        assert secret not in dump
    assert MASK in dump and "mlflow.internal" in dump


def test_log_lines_and_tracebacks_are_redacted() -> None:
    settings = _settings()
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(RedactingFormatter("%(levelname)s %(message)s", settings=settings))
    log = logging.getLogger("test_redact")
    log.addHandler(handler)
    try:
        log.warning("registry down uri=%s", settings.tracking_uri)
        try:
            raise ConnectionError(f"cannot reach https://alice:{PW}@mlflow.internal with {SASL}")
        except ConnectionError:
            log.exception("failed")
    finally:
        log.removeHandler(handler)
    text = stream.getvalue()
    assert "registry down uri=https://***@mlflow.internal:5000/" in text
    assert "ConnectionError" in text
    for secret in (PW, SASL):
        assert secret not in text


def test_records_of_libraries_with_their_own_handlers_are_redacted() -> None:
    from sentinel.redact import install_record_redaction

    settings = _settings()
    stream = io.StringIO()
    own = logging.getLogger("test_redact.library")  # like mlflow: its own handler, no propagation
    own.propagate = False
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(message)s"))
    own.addHandler(handler)
    original = logging.getLogRecordFactory()
    try:
        install_record_redaction(settings)
        install_record_redaction(settings)  # idempotent: wraps the original once
        own.warning("retrying %s with %s", settings.tracking_uri, SASL)
    finally:
        logging.setLogRecordFactory(original)
        own.removeHandler(handler)
    assert stream.getvalue() == "retrying https://***@mlflow.internal:5000/ with ***\n"
