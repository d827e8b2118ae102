"""Rare-event rate signals: a Poisson CUSUM on per-block counts of a fraud-shaped indicator.

A new fraud pattern that is a fraction of a percent of the volume does not move means or
distributions, but it can multiply the rate of an event that is almost never seen in honest
traffic. Card testing is the example: bursts of tiny payments (the card's third payment or
more within the hour, at under a tenth of its usual amount) happen about once a day among
~9,700 honest payments and about ten times more often during a wave.

:class:`PoissonCusum` watches the count ``k`` of indicator events in each closed block of
``n`` events against the baseline rate ``p0`` (learned from the stream, so the daily volume
cycle cancels: the expected count is ``p0 * n``) with Page's CUSUM for a Poisson rate
rising ``ratio`` times: ``S = max(0, S + k ln(ratio) - p0 n (ratio - 1))``, alarm at
``S > threshold``. The baseline only learns from blocks that leave ``S`` at zero, so a wave
does not teach the detector that it is normal before it alarms. (This biases ``p0`` low,
since a block with an event usually lifts ``S`` above zero; ``ratio`` and ``threshold`` are
calibrated on the seeded simulator with that bias in place.)

>>> cusum = PoissonCusum(ratio=10.0, threshold=22.0, min_baseline=5, memory_blocks=336)
>>> [cusum.update(0, 400) for _ in range(100)][-1] or cusum.baseline_rate > 0
True
>>> any(cusum.update(3, 400) for _ in range(10))  # from ~0 to 3 per block: an alarm
True
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

Indicator = Callable[..., np.ndarray]


@dataclass(frozen=True)
class RateSignal:
    """An indicator over one or more feature columns (``inputs``, passed in that order)."""

    name: str
    inputs: tuple[str, ...]
    indicator: Indicator


def _card_testing(amount_ratio: np.ndarray, nb_tx_1h: np.ndarray) -> np.ndarray:
    return ((nb_tx_1h >= 3) & (amount_ratio < 0.1)).astype(np.float64)


RATE_SIGNALS: tuple[RateSignal, ...] = (
    RateSignal("card_testing_bursts", ("card_amount_ratio_30d", "card_nb_tx_1h"),
               _card_testing),
)
"""Rare indicators watched when the model has their inputs (looked up by name).

``card_testing_bursts``: the card's third or later payment within the hour at under a tenth
of its 30-day average amount. Tried and rejected on the seeded simulator (see
docs/benchmarks.md): ``amount <= 5`` instead of the ratio (honest small-ticket cards,
three false alarms in 60 days), ``card_terminal_seen_30d == 0`` (only the first payment of a
burst is at an unseen terminal), night share of high amount ratios for night fraud (the
~5 extra payments a night are lost in ~250 honest ones)."""


def default_rate_signals(feature_names: Sequence[str]) -> list[RateSignal]:
    """Every :data:`RATE_SIGNALS` entry whose inputs all exist in ``feature_names``."""
    names = set(feature_names)
    return [s for s in RATE_SIGNALS if set(s.inputs) <= names]


class PoissonCusum:
    """Page's CUSUM for a rise of a Poisson rate, the rate per event learned online."""

    def __init__(self, ratio: float, threshold: float, min_baseline: int,
                 memory_blocks: int) -> None:
        if ratio <= 1:
            raise ValueError("ratio must be > 1")
        self.ratio, self.threshold = ratio, threshold
        self.min_baseline, self.memory_blocks = min_baseline, memory_blocks
        self._log_ratio = math.log(ratio)
        self.statistic = 0.0
        self.baseline_count = 0.0
        self.baseline_events = 0.0
        self.blocks = 0
        self.run_count = 0.0
        self.run_events = 0
        self.run_blocks = 0

    @property
    def baseline_rate(self) -> float:
        return (self.baseline_count + 0.5) / max(self.baseline_events, 1.0)

    @property
    def ready(self) -> bool:
        return self.baseline_count >= self.min_baseline

    def update(self, count: float, n: int, armed: bool = True) -> bool:
        """Fold one block in; True on an alarm (then the run summary is still readable)."""
        self.blocks += 1
        if self.ready and armed:
            expected = self.baseline_rate * n
            self.statistic = max(0.0, self.statistic + count * self._log_ratio
                                 - expected * (self.ratio - 1))
            if self.statistic > 0:
                self.run_count += count
                self.run_events += n
                self.run_blocks += 1
            else:
                self.run_count, self.run_events, self.run_blocks = 0.0, 0, 0
            if self.statistic > self.threshold:
                return True
            if self.statistic > 0:
                return False
        self._learn(count, n)
        return False

    def reset(self) -> None:
        """After an alarm: forget the baseline; the new world becomes the reference."""
        self.statistic = 0.0
        self.baseline_count = self.baseline_events = 0.0
        self.run_count, self.run_events, self.run_blocks = 0.0, 0, 0

    def _learn(self, count: float, n: int) -> None:
        keep = 1.0 - 1.0 / self.memory_blocks if self.ready else 1.0
        self.baseline_count = self.baseline_count * keep + count
        self.baseline_events = self.baseline_events * keep + n
