"""POST /predict, pure: parse a body into a transaction and score it on copies of live state.

Defaults for optional fields: ``terminal_id`` = ``"predict"`` (an unseen terminal: zero
terminal features unless a real terminal id is given), ``event_time`` = now (UTC),
``transaction_id`` = a random ``predict-<hex>``; ``id`` is the card id; ``attributes`` as in the
contract (a model with a feature spec reads them). Nothing is mutated.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import numpy as np

from features import (
    CardState,
    FeatureConfig,
    TerminalState,
    TransactionRecord,
    card_stage,
    terminal_stage,
    transaction_stage,
)
from features.attributes import attributes_of
from schemas import SchemaValidationError, Transaction, validate
from stream_app import scoring
from stream_app.errors import PredictInputError
from stream_app.serving import Slot
from stream_app.state import KeyedState

ALLOWED = {"id", "amount", "terminal_id", "event_time", "transaction_id", "currency",
           "merchant_category", "channel", "attributes"}


def parse(body: Any) -> Transaction:
    """The body as a Transaction; :class:`PredictInputError` lists every bad field."""
    if not isinstance(body, dict):
        raise PredictInputError([("<body>", "expected a JSON object")])
    problems = [(k, "unknown field") for k in body if k not in ALLOWED]
    if "id" not in body:
        problems.append(("id", "required field is missing"))
    elif not isinstance(body["id"], int | str) or isinstance(body["id"], bool):
        problems.append(("id", "expected a card id (integer or string)"))
    if problems:
        raise PredictInputError(problems)
    payload = {k: v for k, v in body.items() if k != "id"}
    payload["card_id"] = str(body["id"])
    payload.setdefault("terminal_id", "predict")
    payload.setdefault("event_time", datetime.now(UTC).isoformat())
    payload.setdefault("transaction_id", f"predict-{uuid.uuid4().hex[:16]}")
    try:
        return validate(Transaction, payload)
    except SchemaValidationError as exc:
        raise PredictInputError([("id" if f == "card_id" else f, r)
                                 for f, r in exc.problems]) from exc


def features(tx: Transaction, card: KeyedState[CardState] | None,
             terminal: KeyedState[TerminalState] | None, config: FeatureConfig) -> np.ndarray:
    """One feature row from copies of the live states (the callers pass copies)."""
    rec = TransactionRecord.from_event(tx)
    c = card.state if card is not None else CardState()
    t = terminal.state if terminal is not None else TerminalState()
    row = [*transaction_stage(rec), *card_stage(c, rec, config), *terminal_stage(t, rec, config)]
    return np.asarray([row], dtype=np.float64)


def answer(tx: Transaction, X: np.ndarray, champion: Slot, candidate: Slot | None,
           k: int, names: tuple[str, ...]) -> dict[str, Any]:
    events = [attributes_of(tx)]
    Xc = scoring.inputs(scoring.spec_of(champion.model), X,
                        scoring.columns(tuple(champion.model.feature_names), names), events)
    result = scoring.score(champion, Xc)
    codes = scoring.reasons(champion, Xc, result.decisions, k)
    shadow = None
    if candidate is not None:
        try:
            Xk = scoring.inputs(scoring.spec_of(candidate.model), X, scoring.columns(
                tuple(candidate.model.feature_names), names), events)
            shadow = float(candidate.model.score(Xk)[0])
        except Exception:  # the candidate never breaks an answer
            shadow = None
    return {"transaction_id": tx.transaction_id, "card_id": tx.card_id,
            "score": float(result.scores[0]), "decision": str(result.decisions[0]),
            "model_name": champion.name, "model_version": champion.version,
            "reason_codes": codes[0], "candidate_score": shadow,
            "candidate_version": candidate.version if candidate else None,
            "feature_hash": scoring.feature_hash(X[0])}
