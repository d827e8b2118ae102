"""Every contract accepts a valid event and rejects each kind of bad one with a clear error."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import jsonschema
import pytest

from schemas import (
    EVENT_TYPES,
    DeadLetter,
    DriftAlert,
    FraudReport,
    LabelFeedback,
    ModelEvent,
    SchemaValidationError,
    ShadowResult,
    Transaction,
    Verdict,
    decode,
    encode,
)
from schemas.jsonschema_export import SCHEMA_DIR, render

NOW = "2018-04-01T10:00:00+00:00"
VALID: dict[type, dict[str, object]] = {
    Transaction: {"transaction_id": "tx1", "card_id": "c1", "terminal_id": "t1", "amount": 12.5,
                  "event_time": NOW, "merchant_category": "5411", "channel": "pos"},
    Verdict: {"transaction_id": "tx1", "card_id": "c1", "score": 0.3, "decision": "approve",
              "model_name": "m", "model_version": "1", "reason_codes": ["amount"],
              "feature_hash": "ab", "event_time": NOW, "scored_at": NOW, "latency_ms": 3.0},
    ShadowResult: {"transaction_id": "tx1", "card_id": "c1", "champion_version": "1",
                   "champion_score": 0.1, "champion_decision": "approve",
                   "candidate_version": "2", "candidate_score": 0.9,
                   "candidate_decision": "decline", "agree": False, "event_time": NOW},
    LabelFeedback: {"transaction_id": "tx1", "card_id": "c1", "terminal_id": "t1",
                    "is_fraud": True, "transaction_time": NOW, "reported_at": NOW},
    FraudReport: {"report_id": "r1", "card_id": "c1", "transaction_id": "tx1",
                  "terminal_id": "t1", "transaction_time": NOW, "reported_at": NOW},
    DriftAlert: {"alert_id": "a1", "detector": "adwin", "signal": "score", "statistic": 0.2,
                 "reference": {"mean": 0.1}, "current": {"mean": 0.3}, "event_time": NOW,
                 "detected_at": NOW, "events_seen": 10},
    ModelEvent: {"event_id": "e1", "model_name": "m", "action": "promoted", "alias": "champion",
                 "version": "2", "previous_version": "1", "at": NOW},
    DeadLetter: {"original_base64": "e30=", "reason": "bad", "error_type": "schema",
                 "source_topic": "t", "source_partition": 0, "source_offset": 5, "at": NOW},
}


def raw(event_type: type, **changes: object) -> bytes:
    payload = {**VALID[event_type], **changes}
    return json.dumps({k: v for k, v in payload.items() if v is not ...}).encode()


@pytest.mark.parametrize("event_type", list(VALID), ids=lambda t: t.__name__)
def test_valid_event_round_trips(event_type: type) -> None:
    event = decode(event_type, raw(event_type))
    assert decode(event_type, encode(event)) == event
    assert json.loads(encode(event))["schema_version"] == 1


@pytest.mark.parametrize("event_type", list(VALID), ids=lambda t: t.__name__)
def test_every_contract_rejects_missing_fields_and_unknown_version(event_type: type) -> None:
    first_field = next(iter(VALID[event_type]))
    with pytest.raises(SchemaValidationError) as missing:
        decode(event_type, raw(event_type, **{first_field: ...}))
    assert missing.value.fields == [first_field]
    assert "required field is missing" in str(missing.value)
    with pytest.raises(SchemaValidationError, match="unsupported schema_version 2"):
        decode(event_type, raw(event_type, schema_version=2))


@pytest.mark.parametrize(
    ("changes", "field", "reason"),
    [
        ({"amount": "twelve"}, "amount", "valid number"),
        ({"amount": -1.0}, "amount", "greater than or equal to 0"),
        ({"amount": float("nan")}, "amount", "finite number"),
        ({"amount": float("inf")}, "amount", "finite number"),
        ({"amount": "12.5"}, "amount", "valid number"),  # strict: a string is not a number
        ({"amount": True}, "amount", "valid number"),
        ({"event_time": "yesterday-ish"}, "event_time", "datetime"),
        ({"card_id": ""}, "card_id", "at least 1 character"),
        ({"card_id": 7}, "card_id", "valid string"),
        ({"currency": "euro"}, "currency", "pattern"),
        ({"channel": "carrier-pigeon"}, "channel", "pos"),
        ({"surprise": 1}, "surprise", "unknown field"),
    ],
)
def test_transaction_rejects_bad_values_naming_the_field(
    changes: dict[str, object], field: str, reason: str
) -> None:
    with pytest.raises(SchemaValidationError) as err:
        decode(Transaction, raw(Transaction, **changes))
    assert err.value.fields == [field]
    assert reason in str(err.value)
    assert str(err.value).startswith(f"invalid Transaction: {field}: ")


def test_unparseable_bytes_are_a_validation_error_not_a_crash() -> None:
    for garbage in (b"{not json", b"\xff\xfe\x00", b"", b"[]", b"42"):
        with pytest.raises(SchemaValidationError):
            decode(Transaction, garbage)
    with pytest.raises(SchemaValidationError, match="empty message"):
        decode(Transaction, None)  # a tombstone


def test_naive_times_are_read_as_utc() -> None:
    tx = decode(Transaction, raw(Transaction, event_time="2018-04-01T10:00:00"))
    assert tx.event_time == datetime(2018, 4, 1, 10, tzinfo=UTC)


@pytest.mark.parametrize("name", list(EVENT_TYPES))
def test_exported_json_schema_is_current_and_validates_the_wire_format(name: str) -> None:
    path = SCHEMA_DIR / f"{name}.v1.json"
    assert path.read_text() == render(name), "run `sentinel schemas export`"
    schema = json.loads(path.read_text())
    event_type = EVENT_TYPES[name]
    wire = json.loads(encode(decode(event_type, raw(event_type))))
    jsonschema.validate(wire, schema)
    wire.pop(next(iter(VALID[event_type])))
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(wire, schema)
