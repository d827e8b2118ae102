"""ADWIN (Bifet and Gavaldà 2007): river's adaptive window behind :class:`~drift.base.
DriftDetector`.

The window grows while its values look alike and drops its older part when two sub-windows'
means differ by more than the bound that ``delta`` sets. River's ``ADWIN`` does the work; the
wrapper adds the interface (``update`` returns the detection, ``reset`` starts a fresh
window with the same parameters). The input monitor runs one on each signal's stream of
seasonally adjusted block z-scores; the label monitor runs one on the miss indicator of fraud
labels.

>>> import numpy as np
>>> adwin = ADWIN(delta=0.002, clock=1)
>>> rng = np.random.default_rng(0)
>>> any(adwin.update(x) for x in rng.normal(0, 1, 300))
False
>>> [i for i, x in enumerate(rng.normal(2, 1, 100)) if adwin.update(x)][:1]
[14]
>>> adwin.width, round(adwin.estimation, 2)
(85, 1.97)
>>> adwin.reset(); adwin.width
0
"""

from __future__ import annotations

from river import drift as river_drift

from drift.base import DriftDetector


class ADWIN(DriftDetector):
    """ADWIN on a stream of floats; ``width`` and ``estimation`` are the window's size and
    mean."""

    name = "adwin"

    def __init__(self, delta: float = 0.002, clock: int = 32, grace_period: int = 10) -> None:
        super().__init__()
        self.delta, self.clock, self.grace_period = delta, clock, grace_period
        self._adwin = self._new()

    def _new(self) -> river_drift.ADWIN:
        return river_drift.ADWIN(  # type: ignore[no-untyped-call]
            delta=self.delta, clock=self.clock, grace_period=self.grace_period)

    @property
    def width(self) -> int:
        return int(self._adwin.width)

    @property
    def estimation(self) -> float:
        return float(self._adwin.estimation)

    def update(self, x: float, /) -> bool:
        self._adwin.update(x)  # type: ignore[no-untyped-call]
        self.drift_detected = bool(self._adwin.drift_detected)
        return self.drift_detected

    def reset(self) -> None:
        super().reset()
        self._adwin = self._new()
