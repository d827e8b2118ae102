"""Drift patterns added on top of the book's world from a scenario's ``start_day``.

Each generator draws from its own generator so the days before ``start_day`` are identical
to the same seed's drift-free run. See :class:`DriftScenario` for the patterns.
"""

from __future__ import annotations

from typing import cast

import numpy as np

from training.simulation.config import DriftScenario, FraudScenario
from training.simulation.ledger import DAY_S, Ledger
from training.simulation.population import Population, pick_reachable, pick_unreachable

NIGHT_END_S = 5 * 3600


def _daily_cards(
    population: Population, scenario: DriftScenario, n_days: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """(day, customer) pairs: ``round(3 * intensity)`` active customers per day from start."""
    per_day = max(1, round(3 * scenario.intensity))
    days = np.arange(scenario.start_day, n_days, dtype=np.int64)
    active = np.flatnonzero(population.reach_counts > 0)
    customers = rng.choice(active, size=(len(days), per_day))
    return np.repeat(days, per_day), customers.ravel()


def card_testing(
    population: Population,
    scenario: DriftScenario,
    n_days: int,
    radius: float,
    rng: np.random.Generator,
) -> Ledger:
    """Bursts of small payments at a never-used terminal outside the card's radius (code 4)."""
    day, customer = _daily_cards(population, scenario, n_days, rng)
    burst = 3 + rng.poisson(3, size=len(day))
    terminal = pick_unreachable(population, customer, radius, rng)
    start = day * DAY_S + rng.integers(0, DAY_S - 2 * 3600, size=len(day))
    n = int(burst.sum())
    gaps = rng.integers(10, 300, size=n)
    return Ledger.of_fraud(
        customer=np.repeat(customer, burst),
        terminal=np.repeat(terminal, burst),
        time_s=np.repeat(start, burst) + _within_burst(gaps, burst),
        amount=rng.uniform(1, 5, size=n),
        scenario=FraudScenario.CARD_TESTING,
    )


def _within_burst(gaps: np.ndarray, burst: np.ndarray) -> np.ndarray:
    """Cumulative gaps restarting at every burst (first gap of each burst is 0)."""
    total = np.cumsum(gaps)
    base = np.repeat(total[np.cumsum(burst) - burst], burst)
    return cast(np.ndarray, total - base)


def night_fraud(
    population: Population, scenario: DriftScenario, n_days: int, rng: np.random.Generator
) -> Ledger:
    """Payments between 00:00 and 05:00 over 7 nights, U(1.5, 3) x the card's mean (code 5)."""
    day, customer = _daily_cards(population, scenario, n_days, rng)
    count = 2 + rng.poisson(2, size=len(day))
    customer = np.repeat(customer, count)
    tx_day = np.repeat(day, count) + rng.integers(0, 7, size=len(customer))
    keep = tx_day < n_days
    customer, tx_day = customer[keep], tx_day[keep]
    n = len(customer)
    return Ledger.of_fraud(
        customer=customer,
        terminal=pick_reachable(population, customer, rng),
        time_s=tx_day * DAY_S + rng.integers(0, NIGHT_END_S, size=n),
        amount=population.mean_amount[customer] * rng.uniform(1.5, 3.0, size=n),
        scenario=FraudScenario.NIGHT_FRAUD,
    )
