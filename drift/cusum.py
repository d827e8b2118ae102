"""Page's CUSUM for a rising Poisson rate, behind :class:`~drift.base.DriftDetector`.

A new fraud pattern that is a fraction of a percent of the volume can multiply the rate of an
event that honest traffic almost never shows (:mod:`drift.rate`). :class:`PoissonCusum`
watches the count ``k`` of indicator events in each closed block of ``n`` events against the
baseline rate ``p0`` (learned from the stream, so the daily volume cycle cancels: the
expected count is ``p0 * n``) with Page's CUSUM for a Poisson rate rising ``ratio`` times:
``S = max(0, S + k ln(ratio) - p0 n (ratio - 1))``, alarm at ``S > threshold``. The
baseline only learns from blocks that leave ``S`` at zero, so a wave does not teach the
detector that it is normal before it alarms. (This biases ``p0`` low, since a block with an
event usually lifts ``S`` above zero; ``ratio`` and ``threshold`` are calibrated on the seeded
simulator with that bias in place.) The input monitor runs one per rate signal; the label
monitor runs one on the fraud count of each label batch.

>>> cusum = PoissonCusum(ratio=10.0, threshold=22.0, min_baseline=5, memory_blocks=336)
>>> [cusum.update(0, 400) for _ in range(100)][-1] or cusum.baseline_rate > 0
True
>>> any(cusum.update(3, 400) for _ in range(10))  # from ~0 to 3 per block: an alarm
True
>>> cusum.drift_detected, cusum.run_blocks
(True, 4)
"""

from __future__ import annotations

import math

from drift.base import DriftDetector


class PoissonCusum(DriftDetector):
    """Page's CUSUM for a rise of a Poisson rate, the rate per event learned online.

    ``update(count, n)`` folds in a block of ``n`` events with ``count`` indicator events
    (``n`` defaults to 1: a 0/1 value per event).
    """

    name = "cusum"

    def __init__(self, ratio: float, threshold: float, min_baseline: int,
                 memory_blocks: int) -> None:
        if ratio <= 1:
            raise ValueError("ratio must be > 1")
        super().__init__()
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

    def update(self, count: float, /, n: int = 1, armed: bool = True) -> bool:
        """Fold one block in; True on an alarm (then the run summary is still readable).
        Unarmed (in a grace period), the block only teaches the baseline."""
        self.drift_detected = False
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
                self.drift_detected = True
                return True
            if self.statistic > 0:
                return False
        self._learn(count, n)
        return False

    def reset(self) -> None:
        """After an alarm: forget the baseline; the new world becomes the reference."""
        super().reset()
        self.statistic = 0.0
        self.baseline_count = self.baseline_events = 0.0
        self.run_count, self.run_events, self.run_blocks = 0.0, 0, 0

    def _learn(self, count: float, n: int) -> None:
        keep = 1.0 - 1.0 / self.memory_blocks if self.ready else 1.0
        self.baseline_count = self.baseline_count * keep + count
        self.baseline_events = self.baseline_events * keep + n
