"""Seasonal reference for drift signals: per time-of-day slot, a running mean and variance.

Card traffic has a strong daily cycle (night payments are few and different), so a raw stream
of block means swings every day and any change detector fed with it fires on a stable world.
:class:`SeasonalProfile` learns, per signal and per slot of the season (an hour of the day by
default), what a block of events usually looks like, and turns each closed block into a
z-score: how many standard errors its mean sits from that slot's reference. Under no drift the
z-stream is roughly N(0, 1) whatever the hour or the traffic volume; a shift moves its mean.

>>> import numpy as np
>>> profile = SeasonalProfile(n_signals=1, slots=2, memory=10)
>>> for _ in range(3):
...     profile.update(0, np.array([1.0]), np.array([0.25]), 100)
>>> round(float(profile.zscore(0, np.array([1.5]), 100)[0]), 2)
9.76
"""

from __future__ import annotations

import numpy as np

_VAR_FLOOR = 1e-9


class SeasonalProfile:
    """Running per-slot mean and per-event variance of ``n_signals`` block means.

    The first ``memory`` blocks of a slot are averaged equally, later ones exponentially with
    weight ``1 / memory``: the reference follows a slow legitimate trend, not a sudden shift.
    """

    def __init__(self, n_signals: int, slots: int, memory: int) -> None:
        self.slots = slots
        self.memory = memory
        self.mean = np.zeros((slots, n_signals))
        self.var = np.zeros((slots, n_signals))
        self.count = np.zeros((slots, n_signals), dtype=np.int64)

    def zscore(self, slot: int, block_mean: np.ndarray, n: int) -> np.ndarray:
        """Standard errors between a block's means and the slot's reference, per signal.

        The variance floor mixes in a tenth of the slot-average variance so that a signal that
        never varied in a slot (no declines at 3 a.m.) does not yield infinite z-scores.
        """
        var = self.var[slot] + 0.1 * self.var.mean(axis=0) + _VAR_FLOOR
        return np.asarray((block_mean - self.mean[slot]) / np.sqrt(var / n))

    def ready(self, slot: int, min_blocks: int) -> np.ndarray:
        """Per signal: has this slot seen at least ``min_blocks`` blocks?"""
        return np.asarray(self.count[slot] >= min_blocks)

    def update(self, slot: int, block_mean: np.ndarray, block_var: np.ndarray, n: int) -> None:
        """Fold a closed block (its means and per-event variances) into the slot's reference."""
        del n  # blocks are weighted equally: the reference is "a typical block at this hour"
        self.count[slot] += 1
        alpha = np.maximum(1.0 / self.count[slot], 1.0 / self.memory)
        self.mean[slot] += alpha * (block_mean - self.mean[slot])
        self.var[slot] += alpha * (block_var - self.var[slot])

    def forget(self, signal: int) -> None:
        """Drop one signal's reference (after an alert: the new world becomes the reference)."""
        self.count[:, signal] = 0
        self.mean[:, signal] = 0.0
        self.var[:, signal] = 0.0
