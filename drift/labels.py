"""The label monitor: the champion's errors on matured labels, watched for drift.

The input monitor (:mod:`drift.monitor`) sees the stream as it is scored; the patterns the
inputs cannot show (night fraud, a higher fraud rate) only show in the labels, days later.
:class:`LabelMonitor` takes labels joined with the champion's verdicts, in label-time order:

- fraud labels feed :class:`~drift.adwin.ADWIN` on the miss indicator (a recall drop,
  signal ``missed_fraud``);
- all labels feed :class:`~drift.hddm_a.HDDMA` on the binary error (signal ``error``);
- each batch's fraud count feeds a :class:`~drift.cusum.PoissonCusum` (signal
  ``fraud_share``: more compromised terminals and cards, even ones the champion catches);
  send labels in batches of a few hundred or more.

An ADWIN or HDDM-A change is an alert only past ``grace_events`` labels, out of the signal's
cooldown (``alert_cooldown_events`` labels) and when the errors rose (the window of the
signal's last values, split at the most likely change point, says by how much). Alerts are
made by the owner's ``alert`` callable (:meth:`drift.monitor.DriftMonitor.observe_labels`
owns one; the retrainer's :mod:`lifecycle.label_drift` feeds that).

>>> import numpy as np
>>> from datetime import datetime, UTC
>>> from sentinel.settings import DriftSettings
>>> made = []
>>> def alert(detector, signal, statistic, reference, current, when):
...     made.append((detector, signal))
...     return made[-1]
>>> labels = LabelMonitor(DriftSettings(grace_events=0), alert)
>>> rng = np.random.default_rng(0)
>>> when = [datetime(2024, 1, 1, tzinfo=UTC)] * 400
>>> def batch(recall):
...     y = rng.random(400) < 0.1
...     return labels.observe(np.where(y & (rng.random(400) < recall), 0.9, 0.1), y, when)
>>> [a for _ in range(20) for a in batch(0.9)]
[]
>>> sorted({a for _ in range(10) for a in batch(0.3)})
[('adwin', 'missed_fraud'), ('hddm_a', 'error')]
>>> labels.labels_seen
12000
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Generic, TypeVar

import numpy as np

from drift.adwin import ADWIN
from drift.base import DriftDetector, DriftInputError
from drift.cusum import PoissonCusum
from drift.hddm_a import HDDMA
from drift.window import SplitWindow
from sentinel.settings import DriftSettings

A = TypeVar("A")

AlertFactory = Callable[[str, str, float, dict[str, float], dict[str, float], datetime], A]
"""``(detector, signal, statistic, reference, current, event_time) -> alert``."""

_NEVER = -(10**18)


class LabelMonitor(Generic[A]):
    """Watches the champion's errors on labels; returns what ``alert`` makes of its changes."""

    def __init__(self, settings: DriftSettings, alert: AlertFactory[A]) -> None:
        self.settings = settings
        self._alert = alert
        self.miss = ADWIN(delta=settings.adwin_delta, clock=1)
        self.error = HDDMA()
        self.fraud = PoissonCusum(settings.label_fraud_cusum_ratio,
                                  settings.label_fraud_cusum_threshold,
                                  settings.rate_min_baseline * 20, 2000)
        self._windows = {"missed_fraud": SplitWindow(4096), "error": SplitWindow(4096)}
        self._last_alert = {name: _NEVER for name in self._windows}
        self.labels_seen = 0

    def observe(self, scores: np.ndarray, is_fraud: np.ndarray,
                event_times: Sequence[datetime], flagged: np.ndarray | None = None) -> list[A]:
        """Alerts completed by this batch of labels (verdicts joined with labels).

        ``flagged`` is the champion's review-or-decline decision; without it a score >= 0.5
        counts as flagged.
        """
        scores = np.asarray(scores, dtype=np.float64)
        y = np.asarray(is_fraud).astype(bool)
        if len(y) != len(scores) or len(event_times) != len(scores):
            raise DriftInputError("scores, is_fraud and event_times must have equal lengths")
        hit = scores >= 0.5 if flagged is None else np.asarray(flagged).astype(bool)
        alerts: list[A] = []
        errors = (hit != y).astype(np.float64)
        for i in range(len(y)):
            self.labels_seen += 1
            if y[i]:
                miss = float(not hit[i])
                alerts += self._watch(self.miss, "missed_fraud", miss, event_times[i])
            alerts += self._watch(self.error, "error", float(errors[i]), event_times[i])
        alerts += self._fraud_share_update(y, event_times)
        return alerts

    def _watch(self, detector: DriftDetector, signal: str, value: float, when: datetime
               ) -> list[A]:
        detector.update(value)
        self._windows[signal].push(value, value, 1)
        return self._change(detector.name, signal, when) if detector.drift_detected else []

    def _change(self, detector: str, signal: str, when: datetime) -> list[A]:
        if self.labels_seen - self._last_alert[signal] < self.settings.alert_cooldown_events:
            return []
        if self.labels_seen < self.settings.grace_events:
            return []
        win = self._windows[signal]
        if len(win.z) < 2:
            return []
        reference, current, shift = win.split(min_blocks=30)
        if shift <= 0:  # fewer errors is not a problem
            return []
        self._last_alert[signal] = self.labels_seen
        win.clear()
        return [self._alert(detector, signal, shift, reference, current, when)]

    def _fraud_share_update(self, y: np.ndarray, event_times: Sequence[datetime]) -> list[A]:
        cusum = self.fraud
        armed = self.labels_seen >= self.settings.grace_events
        if len(y) == 0 or not cusum.update(float(y.sum()), len(y), armed=armed):
            return []
        reference = {"mean": cusum.baseline_rate, "n": cusum.baseline_events}
        current = {"mean": cusum.run_count / max(cusum.run_events, 1),
                   "n": float(cusum.run_events), "count": cusum.run_count}
        statistic = cusum.statistic
        cusum.reset()
        return [self._alert(cusum.name, "fraud_share", statistic, reference, current,
                            max(event_times))]
