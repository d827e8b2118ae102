"""The handbook's three fraud scenarios, applied in its order (later ones overwrite codes)."""

from __future__ import annotations

import numpy as np

from training.simulation.config import FraudScenario
from training.simulation.ledger import Ledger

HIGH_AMOUNT = 220.0
TERMINAL_DAYS = 28
CARD_DAYS = 14
TERMINALS_PER_DAY = 2
CARDS_PER_DAY = 3


def mark_high_amounts(ledger: Ledger) -> None:
    """Scenario 1: every transaction above 220 is fraud."""
    ledger.scenario[ledger.amount > HIGH_AMOUNT] = FraudScenario.HIGH_AMOUNT


def compromise_terminals(
    ledger: Ledger, n_terminals: int, per_day: np.ndarray, rng: np.random.Generator
) -> None:
    """Scenario 2: ``per_day[d]`` terminals compromised on day d; 28 days of their tx are fraud."""
    n_days = len(per_day)
    diff = np.zeros((n_terminals, n_days + 1), dtype=np.int32)
    for d, k in enumerate(per_day):
        if k:
            chosen = rng.choice(n_terminals, size=min(int(k), n_terminals), replace=False)
            diff[chosen, d] += 1
            diff[chosen, min(d + TERMINAL_DAYS, n_days)] -= 1
    compromised = np.cumsum(diff, axis=1)[:, :n_days] > 0
    hit = compromised[ledger.terminal, ledger.day]
    ledger.scenario[hit] = FraudScenario.COMPROMISED_TERMINAL


def compromise_cards(
    ledger: Ledger, n_customers: int, per_day: np.ndarray, rng: np.random.Generator
) -> None:
    """Scenario 3: ``per_day[d]`` customers compromised on day d; over the next 14 days a third
    of their transactions (drawn across the day's group, as the book does) get amount x5."""
    n_days = len(per_day)
    day = ledger.day
    key = ledger.customer * n_days + day
    order = np.argsort(key, kind="stable")
    sorted_key = key[order]
    for d, k in enumerate(per_day):
        if not k:
            continue
        customers = rng.choice(n_customers, size=min(int(k), n_customers), replace=False)
        lo = np.searchsorted(sorted_key, customers * n_days + d, side="left")
        hi = np.searchsorted(sorted_key, customers * n_days + min(d + CARD_DAYS, n_days))
        candidates = np.concatenate([order[a:b] for a, b in zip(lo, hi, strict=True)])
        chosen = rng.choice(candidates, size=len(candidates) // 3, replace=False)
        ledger.amount[chosen] = np.round(ledger.amount[chosen] * 5, 2)
        ledger.scenario[chosen] = FraudScenario.COMPROMISED_CARD
