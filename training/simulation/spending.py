"""Legitimate spending: Poisson counts per customer-day, times of day and amounts (book 3.2)."""

from __future__ import annotations

import numpy as np

from training.simulation.ledger import DAY_S, Ledger
from training.simulation.population import Population, pick_reachable

TIME_MEAN_S = 43_200.0
TIME_STD_S = 20_000.0


def simulate_spending(
    population: Population,
    n_days: int,
    rng: np.random.Generator,
    amount_factor_from: tuple[int, float] | None = None,
) -> Ledger:
    """The book's genuine transactions, all customer-days at once.

    Time-of-day draws outside (0, 86400) are discarded, as in the book, so they drop the
    transaction. ``amount_factor_from=(day, factor)`` scales amounts drawn from ``day`` on.
    """
    active = np.flatnonzero(population.reach_counts > 0)
    counts = rng.poisson(population.mean_nb_tx_per_day[active, None], size=(len(active), n_days))
    flat = counts.ravel()
    customer = np.repeat(np.repeat(active, n_days), flat)
    day = np.repeat(np.tile(np.arange(n_days, dtype=np.int64), len(active)), flat)
    tod = rng.normal(TIME_MEAN_S, TIME_STD_S, size=len(customer))
    mean = population.mean_amount[customer]
    amount = np.round(rng.normal(mean, population.std_amount[customer]), 2)
    fallback = np.round(rng.uniform(0, 2 * mean), 2)
    amount = np.where(amount < 0, fallback, amount)
    terminal = pick_reachable(population, customer, rng)
    keep = (tod > 0) & (tod < DAY_S)
    if amount_factor_from is not None:
        start, factor = amount_factor_from
        amount = np.where(day >= start, np.round(amount * factor, 2), amount)
    return Ledger(
        customer=customer[keep],
        terminal=terminal[keep],
        time_s=day[keep] * DAY_S + tod[keep].astype(np.int64),
        amount=amount[keep],
        scenario=np.zeros(int(keep.sum()), dtype=np.int64),
    )
