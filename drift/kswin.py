"""KSWIN (Raab et al. 2020) in numpy: river's algorithm at about a twentieth of the cost per
update, behind :class:`~drift.base.DriftDetector`.

river's ``KSWIN.update`` runs ``scipy.stats.ks_2samp`` on every update once its window is
full (~0.5-1.7 ms, mostly argument handling). Here the same test (the last ``stat_size``
values against a seeded random sample of ``stat_size`` older values of the window) uses the
two-sample statistic computed with ``searchsorted`` and a critical value fixed at start-up
(the asymptotic Kolmogorov bound for equal sizes), so one update costs tens of microseconds.
The input monitor runs one on a sub-sample of the seasonally standardised score.

>>> import numpy as np
>>> ks = KSWindow(alpha=1e-4, window_size=300, stat_size=100, seed=0)
>>> rng = np.random.default_rng(1)
>>> any(ks.update(x) for x in rng.normal(0, 1, 400))
False
>>> any(ks.update(x) for x in rng.normal(3, 1, 150))
True
>>> len(ks.window), ks.statistic > ks.critical
(100, True)
>>> ks.reset(); len(ks.window)
0
"""

from __future__ import annotations

import math

import numpy as np

from drift.base import DriftDetector


class KSWindow(DriftDetector):
    """Kolmogorov-Smirnov windowing drift test (Raab et al. 2020), as river's KSWIN."""

    name = "kswin"

    def __init__(self, alpha: float, window_size: int = 300, stat_size: int = 100,
                 seed: int = 0) -> None:
        if not 0 < stat_size < window_size // 2 + 1:
            raise ValueError("need 0 < stat_size <= window_size / 2")
        super().__init__()
        self.window_size, self.stat_size, self.seed = window_size, stat_size, seed
        self.critical = math.sqrt(-math.log(alpha / 2) / 2) * math.sqrt(2 / stat_size)
        self._buf = np.empty(window_size)
        self.reset()

    def reset(self) -> None:
        """Empty the window and restart the sampler from its seed."""
        super().reset()
        self._n = 0
        self._rng = np.random.default_rng(self.seed)
        self.statistic = 0.0

    @property
    def window(self) -> np.ndarray:
        return self._buf[: self._n]

    def update(self, x: float, /) -> bool:
        """Add a value; True when the recent values differ in distribution from the older."""
        if self._n == self.window_size:
            self._buf[:-1] = self._buf[1:]
            self._buf[-1] = x
        else:
            self._buf[self._n] = x
            self._n += 1
        self.drift_detected = False
        if self._n < self.window_size:
            return False
        s = self.stat_size
        recent = np.sort(self._buf[-s:])
        older = np.sort(self._rng.choice(self._buf[:-s], size=s, replace=False))
        both = np.concatenate([recent, older])
        cdf_r = np.searchsorted(recent, both, side="right") / s
        cdf_o = np.searchsorted(older, both, side="right") / s
        self.statistic = float(np.abs(cdf_r - cdf_o).max())
        if self.statistic > self.critical:
            self.drift_detected = True
            self._buf[:s] = self._buf[-s:]  # as river: keep only the recent values
            self._n = s
        return self.drift_detected
