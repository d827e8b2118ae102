"""Rare-event rate signals: fraud-shaped indicators counted per block for a Poisson CUSUM.

A new fraud pattern that is a fraction of a percent of the volume does not move means or
distributions, but it can multiply the rate of an event that is almost never seen in honest
traffic. Card testing is the example: bursts of tiny payments (the card's third payment or
more within the hour, at under a tenth of its usual amount) happen about once a day among
~9,700 honest payments and about ten times more often during a wave.

A :class:`RateSignal` is such an indicator over feature columns; the input monitor counts
its events in each closed block and watches the count with a
:class:`~drift.cusum.PoissonCusum` against the baseline rate per event.

>>> import numpy as np
>>> [s.name for s in default_rate_signals(["card_amount_ratio_30d", "card_nb_tx_1h"])]
['card_testing_bursts']
>>> RATE_SIGNALS[0].indicator(np.array([0.05, 0.05, 0.5]), np.array([3, 2, 5]))
array([1., 0., 0.])
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial

import numpy as np

Indicator = Callable[..., np.ndarray]


@dataclass(frozen=True)
class RateSignal:
    """An indicator over one or more feature columns (``inputs``, passed in that order)."""

    name: str
    inputs: tuple[str, ...]
    indicator: Indicator
    # which payments belong to the event, for splitting frauds into the shift's and the known
    # patterns (lifecycle.segments): looser than the alarm, which must stay quiet on honest
    # traffic, while a segment only sorts frauds (None: the indicator itself)
    segment: Indicator | None = None

    def in_segment(self, *columns: np.ndarray) -> np.ndarray:
        return (self.segment or self.indicator)(*columns)


def _card_testing(share: float, amount_ratio: np.ndarray, nb_tx_1h: np.ndarray) -> np.ndarray:
    """A card's third or later payment within the hour at under ``share`` of its average."""
    return ((nb_tx_1h >= 3) & (amount_ratio < share)).astype(np.float64)


RATE_SIGNALS: tuple[RateSignal, ...] = (
    RateSignal("card_testing_bursts", ("card_amount_ratio_30d", "card_nb_tx_1h"),
               partial(_card_testing, 0.1), segment=partial(_card_testing, 0.5)),
)
"""Rare indicators watched when the model has their inputs (looked up by name).

``card_testing_bursts``: the card's third or later payment within the hour at under a tenth
of its 30-day average amount. Its segment (the frauds that count as the new pattern at
promotion) takes under half the average: a card whose usual payments are small (under ~50)
has test payments of 1-5 above a tenth of it, and those frauds counted as known patterns
(seeded fast preset, seeds 800 and 802: the alarm's rule marks 0.46 and 0.43 of the burst
payments, this one 0.65 and 0.67 of the 0.69 that are a card's third or later within the hour,
and 0.16 % of the known-pattern frauds). Tried and rejected on the seeded simulator (see
docs/benchmarks.md): ``amount <= 5`` instead of the ratio (honest small-ticket cards,
three false alarms in 60 days), ``card_terminal_seen_30d == 0`` (only the first payment of a
burst is at an unseen terminal), night share of high amount ratios for night fraud (the
~5 extra payments a night are lost in ~250 honest ones)."""


def default_rate_signals(feature_names: Sequence[str]) -> list[RateSignal]:
    """Every :data:`RATE_SIGNALS` entry whose inputs all exist in ``feature_names``."""
    names = set(feature_names)
    return [s for s in RATE_SIGNALS if set(s.inputs) <= names]
