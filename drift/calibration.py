"""Calibration streams for the drift monitor: simulated transactions as the arrays the worker
would pass to :meth:`~drift.monitor.DriftMonitor.observe_batch`.

The first four monitored inputs are computed here directly with vectorised pandas/numpy
(amount, night, the card's payments in the previous day, whether the card used the terminal in
the previous 30 days); the inputs of the rare-event rate signals (the card's 30-day amount
ratio and payments in the last hour) come from the offline feature code
(:func:`features.offline.compute_features`, proven equal to the online form). The stream is
scored by a fixed logistic function of the first four, so a 500,000-event run takes seconds and
does not depend on a trained model. The monitor only sees arrays; how they were computed does
not change what it does with them.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import cast

import numpy as np
import pandas as pd

from drift.monitor import DriftMonitor
from schemas.events import DriftAlert

CALIBRATION_FEATURES: tuple[str, ...] = (
    "amount", "is_night", "card_nb_tx_1d", "card_terminal_seen_30d",
    "card_amount_ratio_30d", "card_nb_tx_1h",
)
_FROM_FEATURE_CODE = CALIBRATION_FEATURES[4:]
REVIEW_AT = 0.5
DECLINE_AT = 0.8


@dataclass(frozen=True)
class Stream:
    """A scored stream in event-time order."""

    features: np.ndarray
    scores: np.ndarray
    decisions: np.ndarray
    times: list[datetime]
    seconds: np.ndarray

    def __len__(self) -> int:
        return len(self.scores)

    def first_index_at(self, seconds: float) -> int:
        """Index of the first event at or after ``seconds`` since the epoch."""
        return int(np.searchsorted(self.seconds, seconds))


def stream_from_frame(frame: pd.DataFrame, warmup_days: int = 0) -> Stream:
    """Features, fixed-model scores and decisions for a simulated frame, by event time.

    The first ``warmup_days`` only build feature history (30-day windows fill up) and are not
    part of the stream, as a deployed feature store is warm before it scores.
    """
    frame = frame.sort_values("event_time", kind="stable").reset_index(drop=True)
    secs = frame["event_time"].astype("int64").to_numpy() // 10**9
    if frame["event_time"].dt.unit != "ns":
        secs = pd.to_datetime(frame["event_time"]).dt.as_unit("s").astype("int64").to_numpy()
    amount = frame["amount"].to_numpy(dtype=np.float64)
    is_night = ((secs % 86_400) // 3600 <= 6).astype(np.float64)
    card = pd.factorize(frame["card_id"])[0].astype(np.int64)
    terminal = pd.factorize(frame["terminal_id"])[0].astype(np.int64)
    card_1d = _count_before(card, secs, 86_400)
    seen_30d = _seen_before(card * 1_000_003 + terminal, secs, 30 * 86_400)
    from features.offline import compute_features

    online = compute_features(frame)
    features = np.column_stack([amount, is_night, card_1d, seen_30d,
                                *(online[c].to_numpy(np.float64) for c in _FROM_FEATURE_CODE)])
    scores = fixed_score(features)
    decisions = np.where(scores >= DECLINE_AT, "decline",
                         np.where(scores >= REVIEW_AT, "review", "approve")).astype(object)
    keep = secs >= secs.min() // 86_400 * 86_400 + warmup_days * 86_400
    times = list(frame["event_time"][keep].dt.to_pydatetime())
    return Stream(features[keep], scores[keep], decisions[keep], times,
                  secs[keep].astype(np.float64))


def fixed_score(features: np.ndarray) -> np.ndarray:
    """A fixed logistic scorer of the calibration features (large, odd hours, bursts, new)."""
    amount, night, card_1d, seen = features[:, :4].T
    z = -6.0 + 0.02 * amount + 0.7 * night + 0.3 * card_1d + 1.0 * (seen <= 0)
    return cast(np.ndarray, 1.0 / (1.0 + np.exp(-z)))


def _count_before(key: np.ndarray, secs: np.ndarray, span: int) -> np.ndarray:
    """Events of the same key in ``(t - span, t)``, excluding the event itself."""
    order = np.lexsort((secs, key))
    k, t = key[order], secs[order]
    combo = k * 10**11 + t
    left = np.searchsorted(combo, k * 10**11 + t - span, side="right")
    counts = np.arange(len(order)) - left
    out = np.empty(len(order), dtype=np.float64)
    out[order] = counts
    return out


def _seen_before(key: np.ndarray, secs: np.ndarray, span: int) -> np.ndarray:
    """1 when the same key occurred within ``span`` seconds before, else 0."""
    return (_count_before(key, secs, span) > 0).astype(np.float64)


def batches(stream: Stream, size: int = 500, start: int = 0, stop: int | None = None
            ) -> Iterator[tuple[int, slice]]:
    """(end index, slice) of consecutive batches of ``size`` events."""
    stop = len(stream) if stop is None else stop
    for lo in range(start, stop, size):
        hi = min(lo + size, stop)
        yield hi, slice(lo, hi)


def run(monitor: DriftMonitor, stream: Stream, size: int = 500
        ) -> list[tuple[int, DriftAlert]]:
    """Feed the stream in batches; return (events fed so far, alert) pairs."""
    fired: list[tuple[int, DriftAlert]] = []
    for end, part in batches(stream, size):
        for alert in monitor.observe_batch(stream.features[part], stream.scores[part],
                                           stream.decisions[part], stream.times[part]):
            fired.append((end, alert))
    return fired


@dataclass(frozen=True)
class LabelStream:
    """Matured labels in arrival order, with a simulated champion's flags and scores."""

    is_fraud: np.ndarray
    flagged: np.ndarray
    scores: np.ndarray
    label_times: list[datetime]
    label_seconds: np.ndarray
    event_seconds: np.ndarray

    def __len__(self) -> int:
        return len(self.is_fraud)


KNOWN_SCENARIOS = (1, 2, 3)


def label_stream(frame: pd.DataFrame, known_recall: float = 0.8,
                 false_positive_rate: float = 0.01, seed: int = 0) -> LabelStream:
    """The label path's input for a simulated frame: a champion that learned the book.

    The champion flags a fraud of the book's scenarios (codes 1-3) with probability
    ``known_recall``, never a fraud of a pattern it has not seen (codes 4+), and an honest
    payment with ``false_positive_rate``; labels arrive at the simulator's ``label_time``.
    """
    rng = np.random.default_rng(seed)
    frame = frame.sort_values(["label_time", "event_time"], kind="stable")
    y = frame["is_fraud"].to_numpy().astype(bool)
    known = frame["fraud_scenario"].isin(KNOWN_SCENARIOS).to_numpy()
    u = rng.random(len(frame))
    flagged = np.where(y, known & (u < known_recall), u < false_positive_rate)
    scores = np.where(flagged, 0.9, 0.1)
    label_s = pd.to_datetime(frame["label_time"]).dt.as_unit("s").astype("int64").to_numpy()
    event_s = pd.to_datetime(frame["event_time"]).dt.as_unit("s").astype("int64").to_numpy()
    return LabelStream(y, flagged, scores, list(frame["label_time"].dt.to_pydatetime()),
                       label_s.astype(np.float64), event_s.astype(np.float64))


def run_labels(monitor: DriftMonitor, labels: LabelStream, size: int = 1000
               ) -> list[tuple[int, DriftAlert]]:
    """Feed matured labels in batches; return (labels fed so far, alert) pairs."""
    fired: list[tuple[int, DriftAlert]] = []
    for end, part in batches(labels, size):  # type: ignore[arg-type]
        for alert in monitor.observe_labels(labels.scores[part], labels.is_fraud[part],
                                            labels.label_times[part],
                                            flagged=labels.flagged[part]):
            fired.append((end, alert))
    return fired
