"""The input monitor: online drift detection for the scorer, pure (numpy and river), no
Kafka, cheap per batch.

The worker calls :meth:`DriftMonitor.observe_batch` on every scored batch and publishes the
:class:`~schemas.events.DriftAlert` objects it returns. How it stays cheap and quiet:

- **Blocks, not events.** Each batch is folded into per-signal sums of the event-time block
  (an hour by default) its events fall in; the detectors see one value per closed block, so the
  per-event cost is a few numpy operations amortised over the batch.
- **Seasonally adjusted.** A closed block becomes a z-score against the same hour's reference
  (:class:`~drift.profile.SeasonalProfile`); the daily cycle cancels out.
- **ADWIN on the z-stream** per signal (score, alert rate, key input features), plus **KSWIN**
  on a sub-sample (every ``kswin_every``-th event) of the seasonally standardised score.
  Every detector is a :class:`~drift.base.DriftDetector` (``update``, ``drift_detected``,
  ``reset``) in a module of its own: :mod:`drift.adwin`, :mod:`drift.kswin`,
  :mod:`drift.cusum`.
- **Deduplicated.** ADWIN fires several times for one shift (river#574): an alert needs the
  shift of the window means to be at least ``min_shift_z`` standard errors in the direction
  that matters for the signal, the signal must be out of its cooldown
  (``alert_cooldown_events``), and after an alert the signal re-learns its reference and is
  silent until it has ``profile_seasons`` seasons of the new world.
- **Rare-event rates.** Fraud-shaped indicators that honest traffic almost never shows
  (:data:`~drift.rate.RATE_SIGNALS`, e.g. card-testing bursts) are counted per
  block and watched by a Poisson CUSUM against their learned rate per event.
- **Grace.** No alert before ``grace_events`` events *and* ``profile_seasons`` full seasons.
- **Against the champion's training data.** With the serving champion's reference profile
  (:meth:`DriftMonitor.set_reference`, on every champion swap), PSI of a live window of the
  amount, the score and each numeric attribute against the profile's bins, every
  ``psi_every_events`` events (:class:`~drift.psi.ReferencePsi`, detector
  ``psi_reference``, once per shift). No grace: the reference is the training data, not the
  stream's own past.

Labels (the champion's errors) are watched by :meth:`DriftMonitor.observe_labels`, which
feeds its label monitor (:class:`~drift.labels.LabelMonitor`: ADWIN on the miss indicator of
fraud labels, HDDM-A on the binary error of all labels, a Poisson CUSUM on the fraud count of
each label batch) and makes its alerts like its own. This is the detector of the patterns the
inputs cannot show (night fraud, a higher fraud rate); it is as late as the labels.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np

from drift.adwin import ADWIN
from drift.base import DriftInputError
from drift.cusum import PoissonCusum
from drift.kswin import KSWindow
from drift.labels import LabelMonitor
from drift.profile import SeasonalProfile
from drift.psi import ReferencePsi
from drift.rate import RateSignal, default_rate_signals
from drift.reference_profile import ReferenceProfile
from drift.window import SplitWindow
from schemas.events import DriftAlert
from sentinel.settings import DriftSettings

logger = logging.getLogger(__name__)

_ALERT_NS = uuid.UUID("5e9a1f3c-7d4b-4c1e-9a55-2f0d3c6b8e71")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

__all__ = ["DriftInputError", "DriftMonitor", "Signal", "default_signals"]


@dataclass(frozen=True)
class Signal:
    """A monitored stream: ``source`` is ``"score"``, ``"alert"`` or a feature name.

    ``transform`` maps the raw column to the monitored value; ``direction`` is +1 (only an
    increase matters), -1 (only a decrease) or 0 (both).
    """

    name: str
    source: str
    transform: Callable[[np.ndarray], np.ndarray] | None = None
    direction: int = 0


def _is_zero(values: np.ndarray) -> np.ndarray:
    return (values <= 0).astype(np.float64)


def _many(values: np.ndarray) -> np.ndarray:
    return (values >= 4).astype(np.float64)


FEATURE_SIGNALS: tuple[Signal, ...] = (
    Signal("amount", "amount", np.log1p, 0),
    Signal("card_burst_share", "card_nb_tx_1d", _many, +1),
    Signal("new_terminal_share", "card_terminal_seen_30d", _is_zero, +1),
)
"""Input features watched when the model has them (others are skipped).

``is_night`` is not among them: it is a function of the event hour, so its seasonally
adjusted block mean is identically zero; a change in night traffic shows in the score and
alert-rate z-streams of the night hours instead."""


def default_signals(feature_names: Sequence[str]) -> list[Signal]:
    """Score and alert rate, plus every :data:`FEATURE_SIGNALS` whose column exists."""
    out = [Signal("score", "score"), Signal("alert_rate", "alert")]
    out += [s for s in FEATURE_SIGNALS if s.source in feature_names]
    return out


@dataclass
class _Block:
    start_s: int
    sums: np.ndarray
    sumsq: np.ndarray
    n: int
    last_time_s: float


class DriftMonitor:
    """Watches the scored stream for drift; returns alerts, never publishes them.

    >>> import numpy as np
    >>> from datetime import datetime, timedelta, UTC
    >>> from sentinel.settings import DriftSettings
    >>> monitor = DriftMonitor(DriftSettings(grace_events=0), ["amount"], model_version="1")
    >>> t0 = datetime(2024, 1, 1, tzinfo=UTC)
    >>> times = [t0 + timedelta(seconds=10 * i) for i in range(500)]
    >>> monitor.observe_batch(np.ones((500, 1)), np.full(500, 0.1),
    ...                       np.array(["approve"] * 500), times)
    []
    >>> monitor.snapshot()["events_seen"]
    500
    """

    def __init__(
        self,
        settings: DriftSettings,
        feature_names: Sequence[str],
        model_version: str | None = None,
        *,
        signals: Sequence[Signal] | None = None,
        rate_signals: Sequence[RateSignal] | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.settings = settings
        self.feature_names = tuple(feature_names)
        self.model_version = model_version
        self.signals = list(signals) if signals is not None else default_signals(feature_names)
        index = {name: i for i, name in enumerate(self.feature_names)}
        for s in self.signals:
            if s.source not in ("score", "alert") and s.source not in index:
                raise DriftInputError(f"signal {s.name!r} needs feature {s.source!r}")
        self._columns = [index.get(s.source, -1) for s in self.signals]
        self.rate_signals = (list(rate_signals) if rate_signals is not None
                             else default_rate_signals(self.feature_names))
        for r in self.rate_signals:
            if not set(r.inputs) <= set(index):
                raise DriftInputError(f"rate signal {r.name!r} needs features {r.inputs!r}")
        self._rate_columns = [[index[c] for c in r.inputs] for r in self.rate_signals]
        self._clock = clock or (lambda: datetime.now(UTC))
        k = len(self.signals)
        self._n_all = k + len(self.rate_signals)
        block_s, season_s = settings.block_seconds, settings.season_seconds
        self._block_s = block_s
        self._slots = max(1, season_s // block_s)
        self._profile = SeasonalProfile(k, self._slots, settings.profile_memory_seasons)
        self._adwin = [self._new_adwin() for _ in range(k)]
        self._windows = [SplitWindow(maxlen=4 * self._slots * 7) for _ in range(k)]
        self._last_alert = np.full(k, -(10**18), dtype=np.int64)
        self._open: dict[int, _Block] = {}
        self._max_block = -(10**18)
        self._first_block: int | None = None
        self._score_slot = next((i for i, s in enumerate(self.signals) if s.source == "score"), -1)
        self._kswin = self._new_kswin()
        self._cusum = [PoissonCusum(settings.rate_cusum_ratio, settings.rate_cusum_threshold,
                                    settings.rate_min_baseline,
                                    settings.profile_memory_seasons * self._slots)
                       for _ in self.rate_signals]
        self._kswin_last_alert = -(10**18)
        self.events_seen = 0
        self.late_events = 0
        self.blocks_closed = 0
        self.alerts_emitted = 0
        self.last_event_time: datetime | None = None
        self.labels = LabelMonitor(settings, self._alert)
        self._feature_index = index
        self._reference: ReferencePsi | None = None

    # -- public API ---------------------------------------------------------------------------

    @property
    def labels_seen(self) -> int:
        """Labels fed to :meth:`observe_labels` so far."""
        return self.labels.labels_seen

    def set_model_version(self, version: str | None) -> None:
        """Label later alerts with this champion version (the stream itself is unchanged)."""
        self.model_version = version

    def set_reference(self, profile: ReferenceProfile | None, version: str | None) -> None:
        """Compare the stream with this champion version's reference profile from now on
        (None: a version without one, no PSI). The window starts empty: the old one held
        another model's scores and was compared with another training set."""
        self._reference = None if profile is None else ReferencePsi(profile, version,
                                                                     self.settings)

    def reference_psi(self) -> tuple[tuple[str | None, int], dict[str, float]]:
        """The latest PSI per variable against the champion's profile, with a key that
        changes whenever they do (the model version and the evaluations so far)."""
        ref = self._reference
        if ref is None:
            return (None, 0), {}
        return (ref.model_version, ref.evaluations), dict(ref.last_psi)

    def observe_batch(
        self,
        features: np.ndarray,
        scores: np.ndarray,
        decisions: np.ndarray,
        event_times: Sequence[datetime],
        *,
        attributes: Sequence[Mapping[str, Any] | None] | None = None,
        model_version: str | None = None,
    ) -> list[DriftAlert]:
        """Fold one scored batch in; return the alerts this batch completed (usually none).

        ``attributes`` (per event, its attributes or None) feed the PSI of numeric attributes
        in the champion's profile; ``model_version`` is the version that scored the batch:
        the profile of another version (just before or after a swap) is not compared with it.
        """
        n = len(scores)
        if not self.settings.enabled or n == 0:
            return []
        features = np.asarray(features, dtype=np.float64)
        if features.ndim != 2 or features.shape != (n, len(self.feature_names)):
            raise DriftInputError(
                f"features shape {features.shape} does not match {n} scores and "
                f"{len(self.feature_names)} feature names"
            )
        if len(decisions) != n or len(event_times) != n:
            raise DriftInputError("scores, decisions and event_times must have equal lengths")
        scores = np.asarray(scores, dtype=np.float64)
        values = self._values(features, scores, np.asarray(decisions))
        secs = _epoch_seconds(event_times)
        start_seen = self.events_seen
        self.events_seen += n
        self.last_event_time = max(event_times)
        alerts = self._kswin_update(scores, secs, start_seen)
        alerts += self._accumulate(values, secs)
        alerts += self._reference_update(features, scores, attributes, secs, model_version)
        return alerts

    def observe_labels(
        self,
        scores: np.ndarray,
        is_fraud: np.ndarray,
        event_times: Sequence[datetime],
        flagged: np.ndarray | None = None,
    ) -> list[DriftAlert]:
        """Watch the champion's errors on matured labels (verdicts joined with labels).

        ``flagged`` is the champion's review-or-decline decision; without it a score >= 0.5
        counts as flagged. Fraud labels feed ADWIN on the miss indicator (a recall drop);
        all labels feed HDDM-A on the binary error; the batch's fraud count feeds a Poisson
        CUSUM (send labels in batches of a few hundred or more). See
        :class:`~drift.labels.LabelMonitor`.
        """
        return self.labels.observe(scores, is_fraud, event_times, flagged)

    def snapshot(self) -> dict[str, Any]:
        """Detector states for the health endpoint and the dashboard (JSON-ready)."""
        signals = {}
        for i, s in enumerate(self.signals):
            win = self._windows[i]
            signals[s.name] = {
                "adwin_width": int(self._adwin[i].width),
                "adwin_estimation": float(self._adwin[i].estimation),
                "last_z": float(win.z[-1]) if win.z else None,
                "last_block_mean": float(win.mean[-1]) if win.mean else None,
                "profile_blocks": int(self._profile.count[:, i].min()),
                "last_alert_at_event": int(self._last_alert[i]) if self._last_alert[i] >= 0
                else None,
            }
        return {
            "enabled": self.settings.enabled,
            "model_version": self.model_version,
            "events_seen": self.events_seen,
            "late_events": self.late_events,
            "blocks_closed": self.blocks_closed,
            "alerts_emitted": self.alerts_emitted,
            "in_grace": self._in_grace(),
            "last_event_time": self.last_event_time.isoformat() if self.last_event_time else None,
            "labels_seen": self.labels_seen,
            "label_miss_rate": self.labels.miss.estimation,
            "label_fraud_share": self.labels.fraud.baseline_rate,
            "signals": signals,
            "rate_signals": {
                r.name: {"cusum": c.statistic, "baseline_rate": c.baseline_rate,
                         "ready": c.ready}
                for r, c in zip(self.rate_signals, self._cusum, strict=True)},
            "reference": None if self._reference is None else self._reference.snapshot(),
        }

    # -- internals ----------------------------------------------------------------------------

    def _new_adwin(self) -> ADWIN:
        return ADWIN(delta=self.settings.adwin_delta, clock=1, grace_period=10)

    def _new_kswin(self) -> KSWindow:
        return KSWindow(alpha=self.settings.kswin_alpha, window_size=300, stat_size=100,
                        seed=self.settings.seed)

    def _values(self, features: np.ndarray, scores: np.ndarray, decisions: np.ndarray
                ) -> np.ndarray:
        out = np.empty((len(scores), self._n_all))
        for j, (s, col) in enumerate(zip(self.signals, self._columns, strict=True)):
            if s.source == "score":
                raw = scores
            elif s.source == "alert":
                raw = (decisions != "approve").astype(np.float64)
            else:
                raw = features[:, col]
            out[:, j] = s.transform(raw) if s.transform is not None else raw
        k = len(self.signals)
        for j, (r, cols) in enumerate(zip(self.rate_signals, self._rate_columns, strict=True)):
            out[:, k + j] = r.indicator(*(features[:, c] for c in cols))
        return out

    def _in_grace(self) -> bool:
        if self.events_seen < self.settings.grace_events or self._first_block is None:
            return True
        seasons = (self._max_block - self._first_block) // self._slots
        return bool(seasons < self.settings.profile_seasons)

    def _accumulate(self, values: np.ndarray, secs: np.ndarray) -> list[DriftAlert]:
        block = (secs // self._block_s).astype(np.int64)
        lo, hi = int(block.min()), int(block.max())
        if self._first_block is None:
            self._first_block = lo
        if lo == hi:
            self._add(lo, values, secs)
        else:
            for b in np.unique(block):
                mask = block == b
                self._add(int(b), values[mask], secs[mask])
        alerts: list[DriftAlert] = []
        if hi > self._max_block:
            self._max_block = hi
            # a block closes once an event two blocks later arrives: one block of lateness
            for b in sorted(k for k in self._open if k < hi - 1):
                alerts += self._close(self._open.pop(b))
        return alerts

    def _add(self, b: int, values: np.ndarray, secs: np.ndarray) -> None:
        if b < self._max_block - 1:
            self.late_events += len(values)
            return
        blk = self._open.get(b)
        if blk is None:
            k = values.shape[1]
            blk = self._open[b] = _Block(b, np.zeros(k), np.zeros(k), 0, 0.0)
        blk.sums += values.sum(axis=0)
        blk.sumsq += np.square(values).sum(axis=0)
        blk.n += len(values)
        blk.last_time_s = max(blk.last_time_s, float(secs.max()))

    def _close(self, blk: _Block) -> list[DriftAlert]:
        self.blocks_closed += 1
        if blk.n < self.settings.min_block_events:
            return []
        slot = blk.start_s % self._slots
        mean = blk.sums / blk.n
        var = np.maximum(blk.sumsq / blk.n - np.square(mean), 0.0)
        k = len(self.signals)
        alerts = self._rate_update(blk)
        mean, var = mean[:k], var[:k]
        ready = self._profile.ready(slot, self.settings.profile_seasons)
        z = self._profile.zscore(slot, mean, blk.n)
        self._profile.update(slot, mean, var, blk.n)
        for i in np.flatnonzero(ready):
            zi = float(np.clip(z[i], -50.0, 50.0))  # one absurd block must not dominate ADWIN
            self._windows[i].push(zi, float(mean[i]), blk.n)
            adwin = self._adwin[i]
            if adwin.update(zi):
                alert = self._maybe_alert(int(i), adwin.width, blk)
                if alert is not None:
                    alerts.append(alert)
        return alerts

    def _rate_update(self, blk: _Block) -> list[DriftAlert]:
        alerts: list[DriftAlert] = []
        armed = not self._in_grace()
        k = len(self.signals)
        for j, (r, cusum) in enumerate(zip(self.rate_signals, self._cusum, strict=True)):
            count = float(blk.sums[k + j])
            if not cusum.update(count, blk.n, armed=armed):
                continue
            base_rate, base_n = cusum.baseline_rate, cusum.baseline_events
            reference = {"mean": base_rate, "n": base_n, "blocks": float(cusum.blocks)}
            current = {"mean": cusum.run_count / max(cusum.run_events, 1),
                       "n": float(cusum.run_events), "count": cusum.run_count,
                       "blocks": float(cusum.run_blocks)}
            statistic = cusum.statistic
            cusum.reset()
            when = datetime.fromtimestamp(blk.last_time_s, UTC)
            alerts.append(self._alert(cusum.name, r.name, statistic, reference, current, when))
        return alerts

    def _maybe_alert(self, i: int, width: int, blk: _Block) -> DriftAlert | None:
        signal, win = self.signals[i], self._windows[i]
        if len(win.z) < 2:
            return None
        reference, current, shift = win.split()
        quiet = self._in_grace() or (
            self.events_seen - self._last_alert[i] < self.settings.alert_cooldown_events)
        big = abs(shift) >= self.settings.min_shift_z and (
            signal.direction == 0 or np.sign(shift) == signal.direction)
        logger.debug("adwin change signal=%s shift_z=%.2f width=%d quiet=%s big=%s",
                     signal.name, shift, width, quiet, big)
        if quiet or not big:
            return None
        self._last_alert[i] = self.events_seen
        # the new world becomes the reference: re-learn, stay silent until it is learned
        self._profile.forget(i)
        self._adwin[i].reset()
        win.clear()
        when = datetime.fromtimestamp(blk.last_time_s, UTC)
        return self._alert(self._adwin[i].name, signal.name, shift, reference, current, when)

    def _kswin_update(self, scores: np.ndarray, secs: np.ndarray, start: int
                      ) -> list[DriftAlert]:
        every = self.settings.kswin_every
        first = (-start) % every
        if first >= len(scores) or self._score_slot < 0:
            return []
        idx = np.arange(first, len(scores), every)
        slots = ((secs[idx] // self._block_s).astype(np.int64)) % self._slots
        prof = self._profile
        ready = prof.count[slots, self._score_slot] >= self.settings.profile_seasons
        mu = prof.mean[slots, self._score_slot]
        sd = np.sqrt(prof.var[slots, self._score_slot] + 1e-12)
        std = (scores[idx] - mu) / sd
        alerts: list[DriftAlert] = []
        for j in np.flatnonzero(ready):
            if not self._kswin.update(float(std[j])):
                continue
            at = start + int(idx[j]) + 1
            cooling = at - self._kswin_last_alert < self.settings.alert_cooldown_events
            if self._in_grace() or cooling:
                continue
            self._kswin_last_alert = at
            new = self._kswin.window
            stat = self._kswin.statistic
            ref = {"mean": 0.0, "n": float(self._kswin.window_size - len(new))}
            cur = {"mean": float(new.mean()), "n": float(len(new))}
            when = datetime.fromtimestamp(float(secs[idx[j]]), UTC)
            alerts.append(self._alert(self._kswin.name, "score_distribution", stat, ref, cur,
                                      when))
        return alerts

    def _reference_update(self, features: np.ndarray, scores: np.ndarray,
                          attributes: Sequence[Mapping[str, Any] | None] | None,
                          secs: np.ndarray, model_version: str | None) -> list[DriftAlert]:
        ref = self._reference  # once: a swap on the model thread replaces it whole
        if ref is None or (model_version is not None and model_version != ref.model_version):
            return []
        columns: dict[str, np.ndarray] = {}
        for name in ref.variables:
            if name == "score":
                columns[name] = scores
            elif name in self._feature_index:
                columns[name] = features[:, self._feature_index[name]]
            elif attributes is not None:
                columns[name] = _attribute(attributes, name)
        shifts = ref.observe(columns, secs)
        if not shifts:
            return []
        when = datetime.fromtimestamp(ref.newest_s, UTC)
        return [self._alert("psi_reference", s.variable, s.psi, s.reference, s.current, when,
                            model_version=ref.model_version) for s in shifts]

    def _alert(self, detector: str, signal: str, statistic: float, reference: dict[str, float],
               current: dict[str, float], when: datetime, *,
               model_version: str | None = None) -> DriftAlert:
        self.alerts_emitted += 1
        version = model_version if model_version is not None else self.model_version
        key = f"{detector}/{signal}/{self.events_seen}/{self.labels_seen}/{when.isoformat()}"
        alert = DriftAlert(
            alert_id=str(uuid.uuid5(_ALERT_NS, key)),
            detector=detector,
            signal=signal,
            statistic=float(statistic),
            reference=reference,
            current=current,
            model_version=version,
            event_time=when,
            detected_at=self._clock(),
            events_seen=self.events_seen,
        )
        logger.info("drift alert detector=%s signal=%s statistic=%.3f events_seen=%d "
                    "model_version=%s", detector, signal, statistic, self.events_seen, version)
        return alert


def _attribute(attributes: Sequence[Mapping[str, Any] | None], name: str) -> np.ndarray:
    """One numeric attribute per event (NaN where an event lacks it or it is not a number;
    booleans are 1/0, as the model's feature spec encodes them)."""
    out = np.full(len(attributes), np.nan)
    for i, attrs in enumerate(attributes):
        value = attrs.get(name) if attrs else None
        if isinstance(value, int | float):
            out[i] = float(value)
    return out


def _epoch_seconds(times: Sequence[datetime]) -> np.ndarray:
    return np.fromiter((t.timestamp() for t in times), dtype=np.float64, count=len(times))
