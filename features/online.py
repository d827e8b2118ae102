"""The online form: per-event features from card state, terminal state and the transaction.

The streaming worker runs the two halves in separate stages (card state partitioned by card,
terminal state by terminal) with :func:`card_stage` and :func:`terminal_stage`, and joins them
with :func:`assemble`. :class:`OnlineFeatureStore` does all of it in one process (replays,
tests, a single-partition worker). See :mod:`features.spec` for when a label counts.
"""

from __future__ import annotations

from typing import Any

from features.card_state import CardState
from features.clock import is_night, is_weekend, to_cents
from features.record import LabelRecord, TransactionRecord
from features.spec import FeatureConfig
from features.terminal_state import TerminalState


def transaction_stage(tx: TransactionRecord) -> list[float]:
    """amount, is_weekend, is_night: stateless."""
    t = tx.event_time_us
    return [float(tx.amount), float(is_weekend(t)), float(is_night(t))]


def card_stage(state: CardState, tx: TransactionRecord, config: FeatureConfig) -> list[float]:
    """Card features (``config.card_names`` order); updates the card's state."""
    return state.update(tx.event_time_us, to_cents(tx.amount), tx.terminal_id, config)


def terminal_stage(
    state: TerminalState, tx: TransactionRecord, config: FeatureConfig
) -> list[float]:
    """Terminal features (``config.terminal_names`` order); updates the terminal's state."""
    return state.update(tx.transaction_id, tx.event_time_us, config)


def assemble(transaction: list[float], card: list[float], terminal: list[float]) -> list[float]:
    """The model input row in ``FEATURE_NAMES`` order from the three stages' outputs."""
    return [*transaction, *card, *terminal]


class OnlineFeatureStore:
    """Card and terminal states in dicts, for processing a merged stream in one place."""

    def __init__(self, config: FeatureConfig | None = None) -> None:
        self.config = config or FeatureConfig()
        self.names = self.config.names
        self.cards: dict[str, CardState] = {}
        self.terminals: dict[str, TerminalState] = {}

    def process_transaction(self, tx: TransactionRecord) -> list[float]:
        """The transaction's feature row in ``config.names`` order; updates both states."""
        card = self.cards.get(tx.card_id)
        if card is None:
            card = self.cards[tx.card_id] = CardState()
        terminal = self.terminals.get(tx.terminal_id)
        if terminal is None:
            terminal = self.terminals[tx.terminal_id] = TerminalState()
        return [
            *transaction_stage(tx),
            *card_stage(card, tx, self.config),
            *terminal_stage(terminal, tx, self.config),
        ]

    def features(self, tx: TransactionRecord) -> dict[str, float]:
        """:meth:`process_transaction` as a name -> value dict."""
        return dict(zip(self.names, self.process_transaction(tx), strict=True))

    def process_label(self, label: LabelRecord) -> bool:
        """Apply a label at its terminal; False when not applied (yet): a label whose
        transaction has not arrived is kept until it does (``TerminalState.pending``)."""
        terminal = self.terminals.get(label.terminal_id)
        if terminal is None:
            terminal = self.terminals[label.terminal_id] = TerminalState()
        return terminal.apply_label(
            label.transaction_id, label.transaction_time_us, label.is_fraud, label.label_time_us
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "cards": {k: v.to_dict() for k, v in self.cards.items()},
            "terminals": {k: v.to_dict() for k, v in self.terminals.items()},
        }

    @classmethod
    def from_dict(
        cls, data: dict[str, Any], config: FeatureConfig | None = None
    ) -> OnlineFeatureStore:
        store = cls(config)
        store.cards = {k: CardState.from_dict(v) for k, v in data["cards"].items()}
        store.terminals = {k: TerminalState.from_dict(v) for k, v in data["terminals"].items()}
        return store
