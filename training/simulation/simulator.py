"""The simulator: the handbook's world (chapter 3.2) as one seeded, vectorised function."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import cast

import numpy as np
import pandas as pd

from training.simulation.arrival import LabelArrival
from training.simulation.config import SimulationConfig
from training.simulation.drift import card_testing, night_fraud
from training.simulation.fraud import (
    CARDS_PER_DAY,
    TERMINALS_PER_DAY,
    compromise_cards,
    compromise_terminals,
    mark_high_amounts,
)
from training.simulation.ledger import DAY_S, Ledger
from training.simulation.population import Population, make_population
from training.simulation.spending import simulate_spending

logger = logging.getLogger(__name__)

COLUMNS = (
    "transaction_id",
    "event_time",
    "card_id",
    "terminal_id",
    "amount",
    "is_fraud",
    "fraud_scenario",
    "label_time",
    "label_source",
)


def simulate(config: SimulationConfig | None = None) -> pd.DataFrame:
    """Simulate transactions; the same config (seed included) always gives the same frame.

    Returns one row per transaction sorted by ``event_time`` with columns :data:`COLUMNS`;
    ``label_time = event_time + label_delay_days`` is when the label becomes known (a float:
    ``0.125`` is a fraud confirmed three hours after the payment), or each row's own delay under
    ``config.arrival`` (:mod:`training.simulation.arrival`); ``label_source`` is the label's
    ``source`` (``chargeback`` or ``report``).
    """
    config = config or SimulationConfig()
    _, ledger = simulate_ledger(config)
    frame = to_frame(ledger, config)
    logger.info(
        "simulated n_transactions=%s fraud_rate=%.4f seed=%s drift=%s",
        len(frame),
        frame["is_fraud"].mean() if len(frame) else 0.0,
        config.seed,
        config.drift,
    )
    return frame


def simulate_ledger(config: SimulationConfig) -> tuple[Population, Ledger]:
    """The population and the unsorted transaction arrays (base, then drift additions)."""
    streams = [np.random.default_rng(s) for s in np.random.SeedSequence(config.seed).spawn(4)]
    pop_rng, spend_rng, fraud_rng, drift_rng = streams
    drift = config.drift
    population = make_population(config, pop_rng)
    shift = None
    if drift is not None and drift.kind == "amount_shift":
        shift = (drift.start_day, 1 + 0.5 * drift.intensity)
    ledger = simulate_spending(population, config.n_days, spend_rng, amount_factor_from=shift)
    mark_high_amounts(ledger)
    days = config.n_days
    compromise_terminals(
        ledger, population.n_terminals, np.full(days, TERMINALS_PER_DAY), fraud_rng
    )
    compromise_cards(ledger, population.n_customers, np.full(days, CARDS_PER_DAY), fraud_rng)
    if drift is None or drift.kind == "amount_shift":
        return population, ledger
    if drift.kind == "fraud_rate":
        multiplier = 1 + 2 * drift.intensity
        after = np.arange(days) >= drift.start_day
        extra_t = after * (round(TERMINALS_PER_DAY * multiplier) - TERMINALS_PER_DAY)
        extra_c = after * (round(CARDS_PER_DAY * multiplier) - CARDS_PER_DAY)
        compromise_terminals(ledger, population.n_terminals, extra_t, drift_rng)
        compromise_cards(ledger, population.n_customers, extra_c, drift_rng)
        return population, ledger
    if drift.kind == "card_testing":
        added = card_testing(population, drift, days, config.radius, drift_rng)
    else:
        added = night_fraud(population, drift, days, drift_rng)
    return population, Ledger.concat([ledger, added])


def _ids(prefix: str, numbers: np.ndarray, width: int) -> np.ndarray:
    width = max(width, len(str(int(numbers.max())))) if len(numbers) else width
    return np.array([f"{prefix}{i:0{width}d}" for i in numbers.tolist()], dtype=object)


def to_frame(ledger: Ledger, config: SimulationConfig) -> pd.DataFrame:
    """Sort by event time (ties in generation order) and name everything."""
    order = np.argsort(ledger.time_s, kind="stable")
    start = int(datetime.fromisoformat(config.start_date).replace(tzinfo=UTC).timestamp())
    seconds = ledger.time_s[order] + start
    event_time = pd.to_datetime(seconds, unit="s", utc=True).astype("datetime64[ns, UTC]")
    card_names = _ids("c", np.arange(config.n_customers), 5)
    terminal_names = _ids("t", np.arange(config.n_terminals), 5)
    scenario = ledger.scenario[order]
    frame = pd.DataFrame(
        {
            "transaction_id": _ids("tx", np.arange(1, len(order) + 1), 8),
            "event_time": event_time,
            "card_id": card_names[ledger.customer[order]],
            "terminal_id": terminal_names[ledger.terminal[order]],
            "amount": ledger.amount[order].astype(np.float64),
            "is_fraud": (scenario > 0).astype(np.int64),
            "fraud_scenario": scenario.astype(np.int64),
        }
    )
    if config.arrival is None:
        frame["label_time"] = frame["event_time"] + pd.Timedelta(days=config.label_delay_days)
        arrival = LabelArrival()
    else:
        arrival = config.arrival
        delays = arrival.delays_days(frame["is_fraud"].to_numpy(), _arrival_rng(config))
        micros = np.rint(delays * DAY_S * 1e6).astype(np.int64)
        frame["label_time"] = frame["event_time"] + pd.to_timedelta(micros, unit="us")
    frame["label_source"] = arrival.sources(frame["is_fraud"].to_numpy())
    return frame


def _arrival_rng(config: SimulationConfig) -> np.random.Generator:
    """The label arrival's own stream (the fifth child of the seed): drawing arrival times
    leaves every other stream, hence the transactions, unchanged."""
    return np.random.default_rng(np.random.SeedSequence(config.seed).spawn(5)[4])


def day_index(frame: pd.DataFrame, config: SimulationConfig) -> np.ndarray:
    """0-based simulation day of each row (useful to check drift start days)."""
    start = pd.Timestamp(config.start_date, tz="UTC")
    return cast(np.ndarray,
                ((frame["event_time"] - start) // pd.Timedelta(seconds=DAY_S)).to_numpy())
