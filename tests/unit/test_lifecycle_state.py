"""The retrainer's durable parts without a broker, registry or database: guardrail memory and
URI redaction. The lifecycle tables and the lease are tested on both store backends in
``tests/integration/test_store_backends.py``."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from lifecycle.guardrails import Guardrails
from sentinel.settings import DriftSettings
from training.errors import RegistryUnavailableError, redact_uri

T0 = datetime(2024, 3, 1, tzinfo=UTC)


def test_guardrails_memory_round_trips() -> None:
    rails = Guardrails(DriftSettings(retrain_cooldown_s=600, retrain_min_labels=100))
    rails.decide("score", T0, labels_since_shift=5)  # held: pending
    rails.record_retrain(T0 + timedelta(minutes=1))
    rails.decide("amount", T0 + timedelta(minutes=2), labels_since_shift=5)
    again = Guardrails(DriftSettings(retrain_cooldown_s=600, retrain_min_labels=100))
    again.restore(rails.to_dict())
    assert again.to_dict() == rails.to_dict()
    assert again.decide("alert_rate", T0 + timedelta(minutes=3), 1000).reason == "cooldown"
    assert again.retrains_today(T0 + timedelta(hours=1)) == 1


def test_registry_uris_are_printed_without_credentials() -> None:
    assert redact_uri("at https://bob:s3cret@mlflow.example:5000/api and "
                      "postgresql://u:p@db/mlflow") == (
        "at https://***@mlflow.example:5000/api and postgresql://***@db/mlflow")
    assert redact_uri("sqlite:////data/mlflow.db") == "sqlite:////data/mlflow.db"
    error = RegistryUnavailableError("http://alice:pw@host:5000",
                                     "API request to http://alice:pw@host:5000/x failed")
    assert "pw" not in str(error) and "alice" not in str(error) and "pw" not in error.uri
