"""PSI of the live stream against the serving champion's reference profile (issue 22).

Every training run logs a reference profile with its model (:mod:`drift.reference_profile`:
quantile bins of the amount, of the score and of each numeric attribute). :class:`ReferencePsi`
keeps, per variable of the champion's profile, a window of the newest values stored as their
bins on the profile's edges, with running counts per bin. An event costs a ``searchsorted`` and
a write into a numpy ring; PSI, computed every ``psi_every_events`` events, costs one pass over
the bins whatever the window's size. A variable whose PSI rises above the threshold yields one
:class:`PsiShift`, and fires again only after its PSI has fallen back below the threshold
(hysteresis: one shift, one alert, however many windows it lasts).

Pure (numpy): :class:`~drift.monitor.DriftMonitor` feeds it and turns the shifts into drift
alerts (detector ``psi_reference``).

>>> import numpy as np
>>> from sentinel.settings import DriftSettings
>>> from drift.reference_profile import Distribution, ReferenceProfile
>>> profile = ReferenceProfile({"amount": Distribution.from_values(np.arange(1000.0))})
>>> settings = DriftSettings(psi_window_events=500, psi_every_events=250, psi_min_events=250)
>>> monitor = ReferencePsi(profile, "7", settings)
>>> secs = np.arange(500.0)
>>> monitor.observe({"amount": np.arange(0.0, 1000.0, 2.0)}, secs)  # like the reference
[]
>>> [(s.variable, round(s.psi, 2)) for s in monitor.observe({"amount": np.full(500, 1e4)},
...                                                         secs + 500)]
[('amount', 8.29)]
>>> monitor.observe({"amount": np.full(500, 1e4)}, secs + 1000)  # still shifted: no repeat
[]
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from drift.reference_profile import Distribution, ReferenceProfile, psi_of_shares
from sentinel.settings import DriftSettings

_EXPIRE_CHUNK = 256


class BinnedWindow:
    """The newest values of one variable, as bins of its reference distribution.

    A ring of at most ``capacity`` bin indices and event times (seconds) in arrival order, and
    the count per bin; :meth:`expire` forgets the oldest values stamped before a cutoff (a
    time-based window). Non-finite values (an event without the attribute) are not counted.
    """

    def __init__(self, reference: Distribution, capacity: int) -> None:
        self.reference = reference
        self.capacity = capacity
        self._k = len(reference.shares)
        self._bins = np.zeros(capacity, dtype=np.int32)
        self._secs = np.zeros(capacity, dtype=np.float64)
        self._start = 0  # the oldest value's slot
        self.n = 0
        self.counts = np.zeros(self._k, dtype=np.int64)

    def push(self, values: np.ndarray, secs: np.ndarray) -> None:
        """Append a batch's values (with their event times), dropping the oldest beyond the
        capacity."""
        finite = np.isfinite(values)
        if not finite.all():
            values, secs = values[finite], secs[finite]
        m = len(values)
        if m == 0:
            return
        if m > self.capacity:
            values, secs, m = values[-self.capacity:], secs[-self.capacity:], self.capacity
        bins = self.reference.bin_index(values)
        if self.n + m > self.capacity:
            self._drop(self.n + m - self.capacity)
        end = (self._start + self.n) % self.capacity
        head = min(m, self.capacity - end)
        self._bins[end:end + head] = bins[:head]
        self._secs[end:end + head] = secs[:head]
        if head < m:
            self._bins[:m - head] = bins[head:]
            self._secs[:m - head] = secs[head:]
        self.n += m
        self.counts += np.bincount(bins, minlength=self._k)

    def expire(self, cutoff_s: float) -> None:
        """Forget the oldest values, in arrival order, stamped before ``cutoff_s`` (amortised
        O(1) per value: each is looked at once when it goes, plus one chunk per call)."""
        while self.n and self._secs[self._start] < cutoff_s:
            stop = min(self.n, self.capacity - self._start, _EXPIRE_CHUNK)  # contiguous
            old = self._secs[self._start:self._start + stop] < cutoff_s
            self._drop(stop if old.all() else int(np.argmin(old)))

    def _drop(self, count: int) -> None:
        """Forget the ``count`` oldest values."""
        first = min(count, self.capacity - self._start)
        self.counts -= np.bincount(self._bins[self._start:self._start + first],
                                   minlength=self._k)
        if first < count:
            self.counts -= np.bincount(self._bins[:count - first], minlength=self._k)
        self._start = (self._start + count) % self.capacity
        self.n -= count

    def shares(self) -> np.ndarray:
        return self.counts / max(self.n, 1)

    def psi(self) -> float:
        """PSI of the window against the reference (NaN when empty); equal to
        ``reference.psi(values in the window)``."""
        return psi_of_shares(self.reference.shares, self.shares()) if self.n else math.nan

    def span_s(self) -> float:
        """Event time between the window's oldest and newest values (O(n): for alerts)."""
        if not self.n:
            return 0.0
        idx = (self._start + np.arange(self.n)) % self.capacity
        secs = self._secs[idx]
        return float(secs.max() - secs.min())


@dataclass(frozen=True)
class PsiShift:
    """A variable whose live window moved past the threshold: ``reference`` and ``current``
    hold the bins' shares (``share_<i>``) and sizes, as a drift alert carries them."""

    variable: str
    psi: float
    reference: dict[str, float]
    current: dict[str, float]


class ReferencePsi:
    """PSI windows of the variables of one model version's reference profile, with
    per-variable hysteresis."""

    def __init__(self, profile: ReferenceProfile, model_version: str | None,
                 settings: DriftSettings) -> None:
        self.model_version = model_version
        self.threshold = settings.psi_threshold
        self.every = settings.psi_every_events
        self.min_events = settings.psi_min_events
        self.horizon_s = settings.psi_window_seconds
        self.block_s = settings.block_seconds
        self.windows = {name: BinnedWindow(dist, settings.psi_window_events)
                        for name, dist in profile.variables.items()}
        self.armed = dict.fromkeys(self.windows, True)
        self.last_psi: dict[str, float] = {}
        self.events = 0
        self.evaluations = 0
        self.newest_s = -math.inf

    @property
    def variables(self) -> tuple[str, ...]:
        return tuple(self.windows)

    def observe(self, columns: Mapping[str, np.ndarray], secs: np.ndarray) -> list[PsiShift]:
        """Fold one batch in and, each time the events seen pass a multiple of ``every``,
        compute PSI per variable; return the variables that crossed the threshold.

        ``columns`` maps a variable to its values, aligned with the event times ``secs``
        (NaN where an event lacks it); a variable not in ``columns`` gets nothing.
        """
        if len(secs) == 0:
            return []
        for name, values in columns.items():
            window = self.windows.get(name)
            if window is not None:
                window.push(np.asarray(values, dtype=np.float64), secs)
        self.newest_s = max(self.newest_s, float(secs.max()))
        if self.horizon_s > 0:
            for window in self.windows.values():
                window.expire(self.newest_s - self.horizon_s)
        before = self.events
        self.events += len(secs)
        if self.events // self.every == before // self.every:
            return []
        return self._evaluate()

    def _evaluate(self) -> list[PsiShift]:
        self.evaluations += 1
        shifts = []
        for name, window in self.windows.items():
            if window.n < self.min_events:
                self.last_psi.pop(name, None)
                continue
            value = window.psi()
            self.last_psi[name] = value
            if value <= self.threshold:
                self.armed[name] = True  # back below: the next crossing is a new shift
            elif self.armed[name]:
                self.armed[name] = False
                shifts.append(self._shift(name, window, value))
        return shifts

    def _shift(self, name: str, window: BinnedWindow, value: float) -> PsiShift:
        ref = window.reference
        reference = {"n": float(ref.count), "threshold": self.threshold,
                     **{f"share_{i}": float(s) for i, s in enumerate(ref.shares)}}
        # "blocks": the window's span, so that the retrainer dates the shift's onset to the
        # start of the window that showed it (lifecycle.retrainer.alert_onset)
        current = {"n": float(window.n), "blocks": window.span_s() / self.block_s,
                   **{f"share_{i}": float(s) for i, s in enumerate(window.shares())}}
        return PsiShift(name, value, reference, current)

    def snapshot(self) -> dict[str, object]:
        return {"model_version": self.model_version, "events": self.events,
                "evaluations": self.evaluations, "psi": dict(self.last_psi),
                "window": {name: w.n for name, w in self.windows.items()},
                "armed": dict(self.armed)}
