"""The online form's inputs: small records of a transaction and of a label.

Adapters build them from the wire contracts (:mod:`schemas.events`) or from plain rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from features.clock import to_micros

if TYPE_CHECKING:
    from schemas.events import LabelFeedback, Transaction


@dataclass(frozen=True, slots=True)
class TransactionRecord:
    """What the features need from a payment; ``event_time_us`` is microseconds since epoch."""

    transaction_id: str
    card_id: str
    terminal_id: str
    amount: float
    event_time_us: int

    @classmethod
    def from_event(cls, event: Transaction) -> TransactionRecord:
        return cls(
            transaction_id=event.transaction_id,
            card_id=event.card_id,
            terminal_id=event.terminal_id,
            amount=event.amount,
            event_time_us=to_micros(event.event_time),
        )


@dataclass(frozen=True, slots=True)
class LabelRecord:
    """A label for one transaction; ``label_time_us`` is when it became known."""

    transaction_id: str
    card_id: str
    terminal_id: str
    is_fraud: bool
    transaction_time_us: int
    label_time_us: int

    @classmethod
    def from_event(cls, event: LabelFeedback) -> LabelRecord:
        return cls(
            transaction_id=event.transaction_id,
            card_id=event.card_id,
            terminal_id=event.terminal_id,
            is_fraud=event.is_fraud,
            transaction_time_us=to_micros(event.transaction_time),
            label_time_us=to_micros(event.reported_at),
        )
