"""Customers, terminals and which terminals each customer can reach (handbook 3.2)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

import numpy as np
from scipy.spatial import cKDTree

from training.simulation.config import SimulationConfig

AREA = 100.0


@dataclass(frozen=True)
class Population:
    """Customer and terminal profiles; reachable terminals as CSR (offsets into ``reach``)."""

    customer_xy: np.ndarray
    mean_amount: np.ndarray
    std_amount: np.ndarray
    mean_nb_tx_per_day: np.ndarray
    terminal_xy: np.ndarray
    reach_offsets: np.ndarray
    reach: np.ndarray

    @property
    def n_customers(self) -> int:
        return len(self.mean_amount)

    @property
    def n_terminals(self) -> int:
        return len(self.terminal_xy)

    @property
    def reach_counts(self) -> np.ndarray:
        return np.diff(self.reach_offsets)


def make_population(config: SimulationConfig, rng: np.random.Generator) -> Population:
    """Draw the book's profiles and index each customer's terminals within ``radius``."""
    n_c, n_t = config.n_customers, config.n_terminals
    customer_xy = rng.uniform(0, AREA, size=(n_c, 2))
    mean_amount = rng.uniform(5, 100, size=n_c)
    mean_nb_tx = rng.uniform(0, 4, size=n_c)
    terminal_xy = rng.uniform(0, AREA, size=(n_t, 2))
    neighbours = cKDTree(terminal_xy).query_ball_point(customer_xy, r=config.radius)
    counts = np.fromiter((len(n) for n in neighbours), dtype=np.int64, count=n_c)
    offsets = np.concatenate([[0], np.cumsum(counts)])
    reach = np.fromiter(
        (t for n in neighbours for t in sorted(n)), dtype=np.int64, count=int(offsets[-1])
    )
    return Population(
        customer_xy=customer_xy,
        mean_amount=mean_amount,
        std_amount=mean_amount / 2,
        mean_nb_tx_per_day=mean_nb_tx,
        terminal_xy=terminal_xy,
        reach_offsets=offsets,
        reach=reach,
    )


def pick_reachable(
    population: Population, customers: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """One terminal per customer, uniform among its reachable ones (customers must have some)."""
    counts = population.reach_counts[customers]
    pick = (rng.random(len(customers)) * counts).astype(np.int64)
    return cast(np.ndarray, population.reach[population.reach_offsets[customers] + pick])


def pick_unreachable(
    population: Population, customers: np.ndarray, radius: float, rng: np.random.Generator
) -> np.ndarray:
    """One terminal per customer, uniform among those outside its radius (rejection)."""
    terminals = rng.integers(0, population.n_terminals, size=len(customers))
    for _ in range(1000):
        dist = np.linalg.norm(
            population.terminal_xy[terminals] - population.customer_xy[customers], axis=1
        )
        bad = np.flatnonzero(dist <= radius)
        if len(bad) == 0:
            return terminals
        terminals[bad] = rng.integers(0, population.n_terminals, size=len(bad))
    raise RuntimeError("no terminal outside the radius; the radius covers the whole area")
