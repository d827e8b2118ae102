"""When each label becomes known: the label arrival models of the simulator.

- ``fixed`` (the handbook): every label, fraud or genuine, arrives ``fraud_delay_days`` after
  its payment (7 days), as a ``chargeback``.
- ``reports``: card-holders report frauds; a fraud's delay is drawn from a mixture of uniform
  bands ``(lo, hi]`` days with the given shares (first a band by its share, then a delay
  uniform in it), and its label's ``source`` is ``report``. A genuine payment's label arrives
  ``genuine_delay_days`` after it (no report by then means genuine), as a ``chargeback``
  (the dispute window closing).

:data:`REPORTS` and :data:`REPORTS_FAST` are the two mixtures of issue 23: 30 % within a day,
30 % in 1-3 days, 40 % in 3-14 days; and 50 % within 6 hours, 30 % in 6-48 hours, 20 % in
2-7 days. Delays are drawn from the generator the simulator passes (seeded), one per row in
event-time order, so the same seed gives the same arrival times.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from training.simulation.errors import SimulationError

ArrivalKind = Literal["fixed", "reports"]
Band = tuple[float, float, float]  # (lo days, hi days, share)


@dataclass(frozen=True)
class LabelArrival:
    """A label arrival model (see the module docstring)."""

    kind: ArrivalKind = "fixed"
    fraud_delay_days: float = 7.0
    bands: tuple[Band, ...] = ()
    genuine_delay_days: float = 7.0

    def __post_init__(self) -> None:
        if self.kind not in ("fixed", "reports"):
            raise SimulationError(f"unknown label arrival {self.kind!r}", field="arrival")
        if self.fraud_delay_days < 0 or self.genuine_delay_days < 0:
            raise SimulationError("label delays must be >= 0 days", field="arrival")
        if self.kind == "fixed":
            return
        if not self.bands:
            raise SimulationError("a reports arrival needs at least one band", field="bands")
        for lo, hi, share in self.bands:
            if not 0 <= lo < hi or share <= 0:
                raise SimulationError(
                    f"band ({lo}, {hi}, {share}): need 0 <= lo < hi days and share > 0",
                    field="bands")
        if abs(sum(b[2] for b in self.bands) - 1.0) > 1e-9:
            raise SimulationError("band shares must sum to 1", field="bands")

    @property
    def horizon_days(self) -> float:
        """The latest a label can arrive after its payment (days)."""
        if self.kind == "fixed":
            return self.fraud_delay_days
        return max(self.genuine_delay_days, *(hi for _, hi, _ in self.bands))

    def delays_days(self, is_fraud: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Each row's label delay in days (float64), one draw per row."""
        fraud = np.asarray(is_fraud, dtype=bool)
        if self.kind == "fixed":
            return np.where(fraud, self.fraud_delay_days, self.genuine_delay_days)
        shares = np.array([b[2] for b in self.bands])
        band = rng.choice(len(self.bands), size=len(fraud), p=shares / shares.sum())
        lo = np.array([b[0] for b in self.bands])[band]
        hi = np.array([b[1] for b in self.bands])[band]
        drawn = lo + (hi - lo) * (1.0 - rng.random(len(fraud)))  # in (lo, hi]: never at 0
        return np.where(fraud, drawn, self.genuine_delay_days)

    def sources(self, is_fraud: np.ndarray) -> np.ndarray:
        """Each row's label ``source``: ``report`` for reported frauds, else ``chargeback``."""
        fraud = np.asarray(is_fraud, dtype=bool)
        if self.kind == "fixed":
            return np.full(len(fraud), "chargeback", dtype=object)
        return np.where(fraud, "report", "chargeback").astype(object)


FIXED = LabelArrival()
REPORTS = LabelArrival(kind="reports", bands=((0.0, 1.0, 0.3), (1.0, 3.0, 0.3), (3.0, 14.0, 0.4)))
REPORTS_FAST = LabelArrival(
    kind="reports", bands=((0.0, 0.25, 0.5), (0.25, 2.0, 0.3), (2.0, 7.0, 0.2)))
PRESETS: dict[str, LabelArrival] = {
    "fixed": FIXED, "reports": REPORTS, "reports-fast": REPORTS_FAST}


def parse_bands(text: str) -> tuple[Band, ...]:
    """``"0-1:0.3,1-3:0.3,3-14:0.4"`` (days lo-hi:share, comma-separated) as bands."""
    bands: list[Band] = []
    for part in text.split(","):
        try:
            span, share = part.strip().split(":")
            lo, hi = span.split("-")
            bands.append((float(lo), float(hi), float(share)))
        except ValueError as exc:
            raise SimulationError(
                f"band {part.strip()!r}: write LO-HI:SHARE in days, e.g. 0-1:0.3",
                field="bands") from exc
    return tuple(bands)
