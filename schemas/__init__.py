"""Sentinel's event contracts (versioned JSON) and their codec.

Layer 2 of 9: may import ``sentinel`` (the error base).
"""

from schemas.codec import decode, decode_label, encode, validate
from schemas.errors import SchemaValidationError
from schemas.events import (
    EVENT_TYPES,
    SCHEMA_VERSION,
    DeadLetter,
    DriftAlert,
    Event,
    FraudReport,
    LabelFeedback,
    ModelEvent,
    ShadowResult,
    Transaction,
    Verdict,
)

__all__ = [
    "EVENT_TYPES",
    "SCHEMA_VERSION",
    "DeadLetter",
    "DriftAlert",
    "Event",
    "FraudReport",
    "LabelFeedback",
    "ModelEvent",
    "SchemaValidationError",
    "ShadowResult",
    "Transaction",
    "Verdict",
    "decode",
    "decode_label",
    "encode",
    "validate",
]
