"""HDDM-A (Frías-Blanco et al. 2015): river's Hoeffding drift test on averages of a binary
stream, behind :class:`~drift.base.DriftDetector`.

It compares the mean of the whole stream so far with the mean since its lowest point, with a
Hoeffding bound: a rise of the error rate of ``drift_confidence`` significance is a drift.
River's ``binary.HDDMA`` does the work; the label monitor runs one on the champion's binary
error over all labels.

>>> import numpy as np
>>> hddm = HDDMA()
>>> rng = np.random.default_rng(0)
>>> any(hddm.update(x) for x in rng.random(2000) < 0.05)
False
>>> [i for i, x in enumerate(rng.random(500) < 0.3) if hddm.update(x)][:1]
[40]
"""

from __future__ import annotations

from river import drift as river_drift

from drift.base import DriftDetector


class HDDMA(DriftDetector):
    """HDDM-A on a 0/1 stream (a float is read as its truth)."""

    name = "hddm_a"

    def __init__(self, drift_confidence: float = 0.001, warning_confidence: float = 0.005,
                 two_sided_test: bool = False) -> None:
        super().__init__()
        self.drift_confidence = drift_confidence
        self.warning_confidence = warning_confidence
        self.two_sided_test = two_sided_test
        self._hddm = self._new()

    def _new(self) -> river_drift.binary.HDDMA:
        return river_drift.binary.HDDMA(  # type: ignore[no-untyped-call]
            drift_confidence=self.drift_confidence,
            warning_confidence=self.warning_confidence, two_sided_test=self.two_sided_test)

    def update(self, x: float, /) -> bool:
        self._hddm.update(x)  # type: ignore[no-untyped-call]
        self.drift_detected = bool(self._hddm.drift_detected)
        return self.drift_detected

    def reset(self) -> None:
        super().reset()
        self._hddm = self._new()
