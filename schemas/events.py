"""Event contracts: what travels on Sentinel's topics, as versioned JSON.

Every event carries ``schema_version``; a consumer rejects versions it does not know. Times are
ISO 8601 with a UTC offset on the wire; a time without an offset is read as UTC.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    model_validator,
)

SCHEMA_VERSION = 1

MAX_ATTRIBUTES = 64
"""At most this many entries in ``Transaction.attributes``."""
MAX_ATTRIBUTE_TEXT = 256
"""A string attribute value is at most this many characters."""

AttributeName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$")]
AttributeValue = (
    bool
    | Annotated[float, Field(allow_inf_nan=False)]  # a JSON number, integral or not, is a float
    | Annotated[str, StringConstraints(max_length=MAX_ATTRIBUTE_TEXT)]
    | None
)


def _as_utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


UtcTime = Annotated[datetime, AfterValidator(_as_utc)]
"""A time; one without an offset is read as UTC (a validator on the time fields only: one on
every field cost a Python call per field and event)."""

Decision = Literal["approve", "review", "decline"]


class Event(BaseModel):
    """Base of every contract: immutable, unknown fields rejected, version pinned."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    schema_version: Literal[1] = 1


class Transaction(Event):
    """A card payment authorisation request, keyed by ``card_id`` on the transactions topic.

    Wire types are strict, as the JSON Schema says: ``"amount": "12.5"`` (a string) is invalid.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)

    transaction_id: str = Field(min_length=1, max_length=64)
    card_id: str = Field(min_length=1, max_length=64, description="card (customer) identifier")
    terminal_id: str = Field(min_length=1, max_length=64)
    amount: float = Field(
        ge=0, le=1_000_000_000, allow_inf_nan=False, description="amount in major units, >= 0"
    )
    currency: str = Field(default="EUR", pattern=r"^[A-Z]{3}$", description="ISO 4217 code")
    event_time: UtcTime = Field(description="when the payment happened (event time)")
    merchant_category: str | None = Field(default=None, pattern=r"^\d{4}$", description="MCC")
    channel: Literal["pos", "ecom", "atm", "moto"] | None = None
    attributes: dict[AttributeName, AttributeValue] | None = Field(
        default=None, max_length=MAX_ATTRIBUTES,
        description="optional model inputs by name: number, string, boolean or null "
                    f"(at most {MAX_ATTRIBUTES}, names of 1-64 letters, digits, _ . -, strings "
                    f"of at most {MAX_ATTRIBUTE_TEXT} characters); a model's feature spec says "
                    "which it reads")


class Verdict(Event):
    """The champion's decision on one transaction, keyed by ``transaction_id``."""

    transaction_id: str
    card_id: str
    score: float = Field(ge=0, le=1)
    decision: Decision
    model_name: str
    model_version: str
    reason_codes: list[str] = Field(default_factory=list)
    feature_hash: str
    event_time: UtcTime
    scored_at: UtcTime
    latency_ms: float = Field(ge=0, description="event time of arrival to verdict, milliseconds")
    features: list[float] | None = Field(
        default=None, description="the scored feature row (only with scoring.verdict_features)")


class ShadowResult(Event):
    """The candidate's score next to the champion's, keyed by ``transaction_id``."""

    transaction_id: str
    card_id: str
    champion_version: str
    champion_score: float = Field(ge=0, le=1)
    champion_decision: Decision
    candidate_version: str
    candidate_score: float = Field(ge=0, le=1)
    candidate_decision: Decision
    agree: bool
    event_time: UtcTime


class LabelFeedback(Event):
    """A fraud/legit label that arrives after the payment (e.g. a chargeback), keyed by terminal
    (any key works: the worker re-keys labels by terminal itself). Wire types are strict."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)

    transaction_id: str = Field(min_length=1, max_length=64)
    card_id: str = Field(min_length=1, max_length=64)
    terminal_id: str = Field(min_length=1, max_length=64)
    is_fraud: bool
    transaction_time: UtcTime
    reported_at: UtcTime = Field(description="event time at which the label became known")
    source: Literal["chargeback", "report", "investigation", "simulator"] = Field(
        default="chargeback",
        description="chargeback (formal dispute, or no dispute by the deadline: genuine), "
                    "report (a card-holder's fraud report), investigation, simulator")


class FraudReport(Event):
    """A fraud report (a card-holder disputes payments), on the labels topic or ``POST /reports``.

    Either one payment (``transaction_id``; with its ``terminal_id`` and ``transaction_time``
    it becomes a label without any lookup) or every payment of ``card_id`` in
    ``[start, end)``. Each reported payment becomes a fraud label with ``source="report"``
    known at ``reported_at``.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)

    report_id: str = Field(min_length=1, max_length=64)
    card_id: str = Field(min_length=1, max_length=64)
    transaction_id: str | None = Field(default=None, min_length=1, max_length=64)
    terminal_id: str | None = Field(default=None, min_length=1, max_length=64)
    transaction_time: UtcTime | None = None
    start: UtcTime | None = Field(default=None, description="first reported time (inclusive)")
    end: UtcTime | None = Field(default=None, description="end of the range (exclusive)")
    reported_at: UtcTime = Field(description="event time at which the report was made")

    @model_validator(mode="after")
    def _one_kind(self) -> FraudReport:
        by_id = self.transaction_id is not None
        by_range = self.start is not None or self.end is not None
        if by_id == by_range:
            raise ValueError("give either transaction_id or start and end (a card's time range)")
        if by_range and (self.start is None or self.end is None or self.start >= self.end):
            raise ValueError("a range report needs start < end")
        if not by_id and (self.terminal_id is not None or self.transaction_time is not None):
            raise ValueError("terminal_id and transaction_time belong to a transaction_id report")
        if (self.terminal_id is None) != (self.transaction_time is None):
            raise ValueError("give terminal_id and transaction_time together")
        return self

    @property
    def complete(self) -> bool:
        """True when the report names a payment fully (no lookup needed)."""
        return self.terminal_id is not None


class DriftAlert(Event):
    """A drift detector fired. The retrainer acts on these."""

    alert_id: str
    detector: str = Field(description="e.g. adwin, kswin, hddm")
    signal: str = Field(description="the monitored stream, e.g. score, amount, error")
    statistic: float
    reference: dict[str, float] = Field(default_factory=dict)
    current: dict[str, float] = Field(default_factory=dict)
    model_version: str | None = None
    event_time: UtcTime
    detected_at: UtcTime
    events_seen: int = Field(ge=0)


class ModelEvent(Event):
    """A change in the registry: a version registered, promoted, rolled back, or an alias moved."""

    event_id: str
    model_name: str
    action: Literal["registered", "promoted", "rolled_back", "rejected", "alias_set"]
    alias: str | None = None
    version: str
    previous_version: str | None = None
    reason: str = ""
    evidence: dict[str, float | str] = Field(default_factory=dict)
    at: UtcTime


class DeadLetter(Event):
    """An input that could not be processed: the original bytes and why.

    A large original is truncated so that the dead letter always fits the broker's message size;
    ``original_length`` and ``original_sha256`` then still identify it.
    """

    original_base64: str = Field(description="the message value (its head if truncated), base64")
    original_length: int | None = Field(default=None, ge=0, description="bytes of the original")
    original_sha256: str | None = None
    truncated: bool = False
    original_key_base64: str | None = None
    reason: str
    error_type: str
    detail: str | None = Field(default=None, description="the error message, e.g. which field")
    source_topic: str
    source_partition: int
    source_offset: int
    at: UtcTime


EVENT_TYPES: dict[str, type[Event]] = {
    cls.__name__: cls
    for cls in (
        Transaction, Verdict, ShadowResult, LabelFeedback, FraudReport, DriftAlert, ModelEvent,
        DeadLetter,
    )
}
