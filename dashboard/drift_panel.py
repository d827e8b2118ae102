"""Live windows against the champion's reference profile: per variable, the shares of the
training reference and of the live window on the reference's quantile bins, and their PSI.

Pure: the values come from :mod:`dashboard.topics`, the profile from the registry.

>>> from drift.reference_profile import Distribution
>>> ref = Distribution.from_values([float(x) for x in range(100)], bins=4)
>>> d = compare("amount", ref, [float(x) for x in range(100)], threshold=0.2)
>>> [row["bin"] for row in d.rows()]
['0 to 24.8', '24.8 to 49.5', '49.5 to 74.2', '74.2 to 99']
>>> round(d.psi, 6), d.status
(0.0, 'ok')
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from drift.reference_profile import Distribution


@dataclass(frozen=True)
class Drift:
    """One variable's comparison; ``psi`` is NaN when the live window is empty."""

    variable: str
    edges: tuple[float, ...]
    reference: tuple[float, ...]
    live: tuple[float, ...]
    psi: float
    threshold: float
    n_reference: int
    n_live: int

    @property
    def status(self) -> str:
        if math.isnan(self.psi):
            return "nodata"
        return "breach" if self.psi > self.threshold else "ok"

    def rows(self) -> list[dict[str, float | str | int]]:
        """One row per bin, in numeric order (``order`` keeps it when a chart sorts)."""
        return [{"order": i, "bin": f"{_short(lo)} to {_short(hi)}", "low": lo,
                 "reference": ref, "live": cur}
                for i, (lo, hi, ref, cur) in enumerate(
                    zip(self.edges, self.edges[1:], self.reference, self.live, strict=False))]


def compare(variable: str, reference: Distribution, live: Sequence[float],
            threshold: float) -> Drift:
    shares, n = reference.live_shares(live)
    return Drift(variable, reference.edges, reference.shares, tuple(shares),
                 reference.psi(live) if n else math.nan, threshold, reference.count, n)


def _short(value: float) -> str:
    """Short bin edges: ``1,250``, ``24.8``, ``0.0123`` (scores: four decimals at most).

    >>> [_short(v) for v in (1250.4, 24.75, 0.0123, 5.4e-7, 0.5)]
    ['1,250', '24.8', '0.0123', '0', '0.5']
    """
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 1:
        return f"{value:.3g}"
    text = f"{value:.4f}".rstrip("0").rstrip(".")
    return "0" if text in ("", "-0") else text
