"""JSON encoding and decoding of events, with errors that name the field and the reason."""

from __future__ import annotations

import json
from typing import TypeVar

from pydantic import ValidationError

from schemas.errors import SchemaValidationError
from schemas.events import SCHEMA_VERSION, Event, FraudReport, LabelFeedback

E = TypeVar("E", bound=Event)


def encode(event: Event) -> bytes:
    """The event as compact UTF-8 JSON."""
    return event.model_dump_json().encode()


def decode(event_type: type[E], data: bytes | str | None) -> E:
    """Parse and validate one event; raise :class:`SchemaValidationError` naming each bad field.

    ``None`` (a Kafka message without a value, e.g. a tombstone) is invalid input too.
    """
    if data is None:
        raise SchemaValidationError(event_type.__name__, [("<body>", "empty message (no value)")])
    try:
        return event_type.model_validate_json(data)
    except ValidationError as exc:
        raise SchemaValidationError(event_type.__name__, _problems(exc, data)) from exc


def decode_label(data: bytes | str | None) -> LabelFeedback | FraudReport:
    """A message of the labels topic: a ``FraudReport`` when it has a ``report_id`` key, else
    a ``LabelFeedback``. The one reading of that topic, the worker's and the retrainer's."""
    raw = data.encode() if isinstance(data, str) else data
    if raw is not None and b'"report_id"' in raw:
        return decode(FraudReport, data)
    return decode(LabelFeedback, data)


def validate(event_type: type[E], payload: dict[str, object]) -> E:
    """Validate an already-parsed JSON payload (e.g. an HTTP body) into an event, with the wire's
    rules (times as ISO strings, strict types)."""
    try:
        return event_type.model_validate_json(json.dumps(payload, default=str))
    except ValidationError as exc:
        raise SchemaValidationError(event_type.__name__, _problems(exc, None)) from exc


def _problems(exc: ValidationError, raw: bytes | str | None) -> list[tuple[str, str]]:
    problems: list[tuple[str, str]] = []
    for err in exc.errors(include_url=False):
        field = ".".join(str(part) for part in err["loc"]) or "<body>"
        reason = err["msg"]
        if err["type"] == "json_invalid":
            reason = f"not valid JSON ({err.get('ctx', {}).get('error', 'parse error')})"
        elif field == "schema_version":
            reason = (
                f"unsupported schema_version {_version_of(raw)!s}; "
                f"this consumer reads version {SCHEMA_VERSION}"
            )
        elif err["type"] == "missing":
            reason = "required field is missing"
        elif err["type"] == "extra_forbidden":
            reason = "unknown field"
        problems.append((field, reason))
    return problems


def _version_of(raw: bytes | str | None) -> object:
    if raw is None:
        return "?"
    try:
        return json.loads(raw).get("schema_version", "?")
    except (ValueError, AttributeError):
        return "?"
