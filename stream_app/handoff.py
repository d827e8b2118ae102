"""The record stage 1 (cards) hands to stage 2 (terminals) on the internal repartition topic."""

from __future__ import annotations

import json
import marshal
from dataclasses import dataclass
from datetime import datetime
from typing import Any

MARSHAL = b"M"  # one record
BATCH = b"B"  # a list of records: what stage 1 sends, one message per partition and chunk


@dataclass(slots=True)  # not frozen: a frozen __init__ costs a setattr call per field
class Handoff:
    """A validated transaction with its stateless and card features computed.

    ``arrival_ms`` is the Kafka timestamp of the original transaction message: the start of the
    event-to-verdict latency. ``read_ms`` is the wall time at which a card stage first read it
    (``stream_app.alignment`` compares it with the label frontier). ``attrs`` holds the event's
    ``attributes`` and its ``merchant_category``/``channel`` when it has any (``None``
    otherwise): the scorer reads a model's attribute inputs from it (``features.attributes``).
    ``reported_us`` is when a fraud report that was read before this payment labels it (the
    earliest such ``reported_at``, ``features.reports``), else None: the label travels with
    the payment, so the terminal stage applies it before any frontier that passed the payment.
    """

    transaction_id: str
    card_id: str
    terminal_id: str
    amount: float
    event_time: str
    event_time_us: int
    arrival_ms: int
    head: list[float]
    read_ms: int = 0
    attrs: dict[str, Any] | None = None
    reported_us: int | None = None

    def encode(self) -> bytes:
        """``b"M"`` + marshal of the fields: floats travel as binary, exact, and encoding costs
        a tenth of JSON (this runs once per transaction). The topic is internal to the worker."""
        return MARSHAL + marshal.dumps(self.fields(), 4)

    def fields(self) -> tuple[Any, ...]:
        """The record's fields; ``reported_us`` only when set, so that a worker of the version
        before it still reads every record without a report label."""
        base = (self.transaction_id, self.card_id, self.terminal_id, self.amount,
                self.event_time, self.event_time_us, self.arrival_ms, self.head, self.read_ms,
                self.attrs)
        return base if self.reported_us is None else (*base, self.reported_us)

    @staticmethod
    def encode_batch(records: list[Handoff]) -> bytes:
        """Many records in one message: stage 2 then pays the per-message cost once per
        chunk instead of once per transaction (that cost was most of the worker's CPU)."""
        return BATCH + marshal.dumps([h.fields() for h in records], 4)

    @classmethod
    def decode_many(cls, data: bytes) -> list[Handoff]:
        """The records of a hand-off message (a batch, or one record of an older worker)."""
        if data[:1] == BATCH:
            return [cls(*f) for f in marshal.loads(data[1:])]  # noqa: S302 - ours
        return [cls.decode(data)]

    @classmethod
    def decode(cls, data: bytes) -> Handoff:
        """Read a hand-off record (JSON arrays of older workers too)."""
        if data[:1] == MARSHAL:
            return cls(*marshal.loads(data[1:]))  # noqa: S302 - written by this worker
        return cls(*json.loads(data))

    @property
    def event_datetime(self) -> datetime:
        return datetime.fromisoformat(self.event_time)

    def describe(self) -> dict[str, Any]:
        return {"transaction_id": self.transaction_id, "card_id": self.card_id}
