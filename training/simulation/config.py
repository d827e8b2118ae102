"""What to simulate: the book's population and calendar, plus an optional drift scenario."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from enum import IntEnum
from typing import Literal

from training.simulation.arrival import LabelArrival
from training.simulation.errors import SimulationError

DriftKind = Literal["card_testing", "night_fraud", "amount_shift", "fraud_rate"]


class FraudScenario(IntEnum):
    """The ``fraud_scenario`` codes: 0 legit, 1-3 the handbook's, 4+ drift patterns."""

    LEGIT = 0
    HIGH_AMOUNT = 1
    COMPROMISED_TERMINAL = 2
    COMPROMISED_CARD = 3
    CARD_TESTING = 4
    NIGHT_FRAUD = 5


@dataclass(frozen=True)
class DriftScenario:
    """A change in the world switched on from ``start_day`` (0-based day of the simulation).

    - ``card_testing``: a pattern the model has never seen. Each day ``round(3 * intensity)``
      cards are tested: a burst of 3 + Poisson(3) small payments (U(1, 5) EUR) a few seconds
      to minutes apart, at one terminal outside the card's radius (never used by the card).
      All are fraud, scenario code 4.
    - ``night_fraud``: each day ``round(3 * intensity)`` cards are compromised; each gets
      2 + Poisson(2) fraudulent payments over the next 7 nights, between 00:00 and 05:00 UTC,
      at the card's usual terminals, for U(1.5, 3) times the card's mean amount. Code 5.
    - ``amount_shift``: a covariate shift, not a fraud pattern. Every amount drawn from
      ``start_day`` on is multiplied by ``1 + 0.5 * intensity`` (x1.5 at intensity 1); the
      book's rules still hold, so more amounts cross the scenario-1 threshold of 220.
    - ``fraud_rate``: the book's scenarios 2 and 3 compromise ``1 + 2 * intensity`` times as
      many terminals and cards per day (x3 at intensity 1). Their frauds keep codes 2 and 3.
    """

    kind: DriftKind
    start_day: int
    intensity: float = 1.0

    def __post_init__(self) -> None:
        if self.kind not in ("card_testing", "night_fraud", "amount_shift", "fraud_rate"):
            raise SimulationError(f"unknown drift kind {self.kind!r}", field="kind")
        if self.start_day < 0:
            raise SimulationError("start_day must be >= 0", field="start_day")
        if self.intensity <= 0:
            raise SimulationError("intensity must be > 0", field="intensity")


@dataclass(frozen=True)
class SimulationConfig:
    """Size, calendar and seed of a simulated dataset; the defaults are the handbook's."""

    n_customers: int = 5000
    n_terminals: int = 10000
    n_days: int = 183
    start_date: str = "2018-04-01"
    radius: float = 5.0
    seed: int = 0
    label_delay_days: float = 7  # fractional days allowed: 0.125 = labels 3 hours late
    drift: DriftScenario | None = None
    # None: every label at label_delay_days (the book); else its own arrival model
    arrival: LabelArrival | None = None

    def __post_init__(self) -> None:
        for name in ("n_customers", "n_terminals", "n_days"):
            if getattr(self, name) < 1:
                raise SimulationError(f"{name} must be >= 1", field=name)
        if self.radius <= 0:
            raise SimulationError("radius must be > 0", field="radius")
        if self.label_delay_days < 0:
            raise SimulationError("label_delay_days must be >= 0", field="label_delay_days")
        try:
            date.fromisoformat(self.start_date)
        except ValueError as exc:
            raise SimulationError(
                f"start_date {self.start_date!r} is not an ISO date (YYYY-MM-DD)",
                field="start_date",
            ) from exc
