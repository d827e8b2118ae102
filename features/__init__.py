"""Features, written once: the one place training and serving meet.

:func:`compute_features` (offline, pandas) and :class:`OnlineFeatureStore` (per event) compute
the same values, proven equal by ``tests/unit/test_features_parity.py``. Definitions, including
when a fraud label counts, are in :mod:`features.spec`.

Layer 3 of 9: may import ``schemas`` and ``sentinel``.
"""

from __future__ import annotations

from features.card_state import CardState
from features.errors import FeatureError
from features.offline import compute_features
from features.online import (
    OnlineFeatureStore,
    assemble,
    card_stage,
    terminal_stage,
    transaction_stage,
)
from features.record import LabelRecord, TransactionRecord
from features.spec import FEATURE_NAMES, FeatureConfig
from features.terminal_state import TerminalState

__all__ = [
    "FEATURE_NAMES",
    "CardState",
    "FeatureConfig",
    "FeatureError",
    "LabelRecord",
    "OnlineFeatureStore",
    "TerminalState",
    "TransactionRecord",
    "assemble",
    "card_stage",
    "compute_features",
    "terminal_stage",
    "transaction_stage",
]
