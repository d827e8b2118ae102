"""The handbook's time-based split: train window, label delay, test window.

Test days exclude cards already known to be compromised: a card with a fraud between
``known_lookback_days`` before the end of training (the handbook: the train week) and that day's
delay cutoff (test day minus the delay) is removed from that day, as the Fraud Detection
Handbook does. The look-back is fixed so that the test set does not depend on ``train_days``.
A validation window, for choosing thresholds, is the
``validation_days`` just before the train window (the model has not seen it and its labels are
old enough to be known); without room for it, it is the tail of the train window.

By default the windows follow the handbook's baseline when the data covers it: the test window
starts 129 days after the first day (2018-08-08 for the book's data that starts 2018-04-01),
train ends ``delay_days`` before it (2018-07-25..07-31 with 7 train days; more train days
extend it backwards). Otherwise the test window ends on the last day of the data.

``anchor="latest"`` is for retraining on a fresh shift when labels arrive within hours: the
windows are measured back from the newest payment itself, not from midnight, and may be
fractional days (``test_days=0.25`` is the newest six hours), so the train window reaches up to
the label delay before the newest labels instead of stopping at the previous calendar day.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date, timedelta
from typing import cast

import numpy as np
import pandas as pd

from training.errors import SplitError

logger = logging.getLogger(__name__)

BOOK_TEST_OFFSET_DAYS = 129


@dataclass(frozen=True)
class SplitConfig:
    """Window lengths in days; ``train_start`` pins the split, else see the module docstring."""

    train_days: float = 7
    delay_days: float = 7
    test_days: float = 7
    validation_days: float = 7
    known_lookback_days: float = 7
    train_start: date | None = None
    anchor: str = "auto"  # "auto" (book offset if it fits, else end), "book", "end", "latest"
    # (train, validation, test) shares of the rows in time order, no delay: for histories too
    # short for the windows in days (``sentinel train --split-fractions 0.6,0.1,0.3``)
    fractions: tuple[float, float, float] | None = None

    def __post_init__(self) -> None:
        if self.fractions is not None:
            f = self.fractions
            if len(f) != 3 or min(f) <= 0 or abs(sum(f) - 1.0) > 1e-9:
                raise SplitError(f"split fractions {f}: three shares > 0 that sum to 1")
        if self.anchor not in ("auto", "book", "end", "latest"):
            raise SplitError(f"unknown split anchor {self.anchor!r}")
        spans = (self.train_days, self.delay_days, self.test_days, self.validation_days,
                 self.known_lookback_days)
        if min(spans) < 0 or min(self.train_days, self.test_days, self.validation_days) <= 0:
            raise SplitError("split windows must be > 0 days (the delay >= 0)")
        if self.anchor != "latest" and any(float(v) != int(v) for v in spans):
            raise SplitError("fractional days need anchor='latest' (calendar windows are days)")


@dataclass(frozen=True)
class Windows:
    """The resolved days (UTC midnights, end exclusive)."""

    validation: tuple[pd.Timestamp, pd.Timestamp]
    train: tuple[pd.Timestamp, pd.Timestamp]
    test: tuple[pd.Timestamp, pd.Timestamp]
    delay_days: float
    known_lookback_days: float = 7

    def as_params(self) -> dict[str, str]:
        def fmt(window: tuple[pd.Timestamp, pd.Timestamp]) -> str:
            start, end = window
            if start != start.normalize() or end != end.normalize():  # anchor="latest"
                return f"{start:%Y-%m-%dT%H:%M}..{end:%Y-%m-%dT%H:%M}"
            return f"{start.date()}..{(end - pd.Timedelta(days=1)).date()}"

        return {
            "split.validation": fmt(self.validation),
            "split.train": fmt(self.train),
            "split.test": fmt(self.test),
            "split.delay_days": str(self.delay_days),
        }


@dataclass(frozen=True)
class Split:
    """Row positions (into the canonical frame) of each part."""

    windows: Windows
    train: np.ndarray
    validation: np.ndarray
    test: np.ndarray


def _day(ts: pd.Timestamp) -> pd.Timestamp:
    return ts.tz_convert("UTC").normalize()


def resolve_windows(times: pd.Series, config: SplitConfig) -> Windows:
    """Place the windows on the data's calendar."""
    first, last = _day(times.min()), _day(times.max())
    span = config.train_days + config.delay_days + config.test_days
    if config.anchor == "latest":
        end = times.max() + pd.Timedelta(microseconds=1)  # the newest payment is tested
        train_start = end - pd.Timedelta(days=span)
    elif config.train_start is not None:
        train_start = pd.Timestamp(config.train_start, tz="UTC")
    else:
        book_test = first + pd.Timedelta(days=BOOK_TEST_OFFSET_DAYS)
        book = book_test - pd.Timedelta(days=config.delay_days + config.train_days)
        fits = book >= first and book_test + pd.Timedelta(days=config.test_days - 1) <= last
        if config.anchor == "book" or (config.anchor == "auto" and fits):
            train_start = book
        else:
            train_start = last - pd.Timedelta(days=span - 1)
    train_end = train_start + pd.Timedelta(days=config.train_days)
    test_start = train_end + pd.Timedelta(days=config.delay_days)
    test = (test_start, test_start + pd.Timedelta(days=config.test_days))
    validation_start = train_start - pd.Timedelta(days=config.validation_days)
    if validation_start >= first:
        validation = (validation_start, train_start)
        train = (train_start, train_end)
    else:
        tail = max(1, config.train_days // 4)
        validation = (train_end - pd.Timedelta(days=tail), train_end)
        train = (train_start, validation[0])
    return Windows(
        validation=validation,
        train=train,
        test=test,
        delay_days=config.delay_days,
        known_lookback_days=config.known_lookback_days,
    )


def _between(times: pd.Series, window: tuple[pd.Timestamp, pd.Timestamp]) -> np.ndarray:
    return cast(np.ndarray, ((times >= window[0]) & (times < window[1])).to_numpy())


def known_compromised_mask(frame: pd.DataFrame, windows: Windows) -> np.ndarray:
    """True for test rows whose card had a known fraud before that day's delay cutoff."""
    times = frame["event_time"]
    in_test = _between(times, windows.test)
    keep_out = np.zeros(len(frame), dtype=bool)
    since = windows.test[0] - pd.Timedelta(days=windows.delay_days + windows.known_lookback_days)
    frauds = frame.loc[(frame["is_fraud"] == 1) & (times >= since)]
    fraud_times, fraud_cards = frauds["event_time"], frauds["card_id"]
    day = windows.test[0]
    while day < windows.test[1]:
        cutoff = day - pd.Timedelta(days=windows.delay_days)
        known = set(fraud_cards[fraud_times < cutoff])
        rows = in_test & _between(times, (day, day + pd.Timedelta(days=1)))
        keep_out |= rows & frame["card_id"].isin(known).to_numpy()
        day += pd.Timedelta(days=1)
    return keep_out


def split(frame: pd.DataFrame, config: SplitConfig | None = None) -> Split:
    """Split a canonical frame; raise :class:`SplitError` if a part is empty or one-class."""
    config = config or SplitConfig()
    if config.fractions is not None:
        windows, parts = _by_fractions(frame["event_time"], config.fractions)
        compromised = np.zeros(len(frame), dtype=bool)
    else:
        windows = resolve_windows(frame["event_time"], config)
        times = frame["event_time"]
        compromised = known_compromised_mask(frame, windows)
        parts = {
            "train": np.flatnonzero(_between(times, windows.train)),
            "validation": np.flatnonzero(_between(times, windows.validation)),
            "test": np.flatnonzero(_between(times, windows.test) & ~compromised),
        }
    labels = frame["is_fraud"].to_numpy()
    for name, rows in parts.items():
        if len(rows) == 0 or labels[rows].min() == labels[rows].max():
            raise SplitError(
                f"{name} window {windows.as_params()[f'split.{name}']} has {len(rows)} rows and "
                "needs both frauds and genuine payments: adjust --train-days/--test-days/"
                "--delay-days or --train-start"
            )
    logger.info(
        "split %s train=%d validation=%d test=%d removed_known_compromised=%d",
        windows.as_params(),
        len(parts["train"]),
        len(parts["validation"]),
        len(parts["test"]),
        int(compromised.sum()),
    )
    return Split(windows=windows, **parts)


def _by_fractions(times: pd.Series, fractions: tuple[float, float, float],
                  ) -> tuple[Windows, dict[str, np.ndarray]]:
    """Rows in time order (the canonical frame is sorted): the first share trains, the next
    validates, the rest tests; no delay between them."""
    n = len(times)
    a = int(n * fractions[0])
    b = a + int(n * fractions[1])
    stamp = times.to_numpy()
    end = times.max() + pd.Timedelta(microseconds=1)

    def at(i: int) -> pd.Timestamp:
        return pd.Timestamp(stamp[i]) if i < n else end

    windows = Windows(validation=(at(a), at(b)), train=(at(0), at(a)), test=(at(b), end),
                      delay_days=0, known_lookback_days=0)
    return windows, {"train": np.arange(0, a), "validation": np.arange(a, b),
                     "test": np.arange(b, n)}


def days_since(times: pd.Series, origin: pd.Timestamp) -> np.ndarray:
    """Whole days since ``origin``: the per-day grouping key of card precision."""
    return cast(np.ndarray, ((times - origin) // timedelta(days=1)).to_numpy())
