"""Which frauds belong to the shift: the drift alert's own signature, payment by payment.

A retrain after a drift alert is meant to catch the new pattern; the promotion must also show
it did not give up the patterns the champion already caught. The new pattern's segment is the
alert's signature when the alert came from a rare-event rate signal
(:data:`drift.rate.RATE_SIGNALS`, e.g. ``card_testing_bursts``: the card's third
payment or more within the hour; the alarm takes those under a tenth of the card's 30-day
average, the segment those under half, ``RateSignal.segment``), computed with the serving
feature code over the stored history; every other fraud is a *known pattern*. An
alert without a per-payment signature (a score or amount shift) has no segment: every fraud
is then compared as a known pattern.

A burst's other payments (its first two, before the signature fires, and those whose amount
does not fire it) are in the segment too: the card's payments within ``AROUND`` of a hit.
Features are computed for the cards of the payments asked about, over their history, once
per payment (cached): a payment's card features never change once it is stored.
"""

from __future__ import annotations

import logging
from datetime import timedelta

import numpy as np
import pandas as pd

from drift.rate import RATE_SIGNALS, RateSignal
from features.spec import FeatureConfig
from lifecycle.backfill import cached_over_history
from lifecycle.labelstore import LabelStore

logger = logging.getLogger(__name__)

AROUND = {"card_testing_bursts": timedelta(hours=1)}
"""How close to a signature hit the same card's payments belong to the same event (the
signature counts the card's payments within the hour, and a burst's payments whose amount is
not under a tenth of the card's average do not fire it themselves)."""


def signature(signal: str | None, config: FeatureConfig) -> RateSignal | None:
    """The rate signal named ``signal`` when the features hold its inputs, else None."""
    for rate in RATE_SIGNALS:
        if rate.name == signal and set(rate.inputs) <= set(config.names):
            return rate
    return None


def mark(transactions: pd.DataFrame, labels: pd.DataFrame, ids: list[str],
         rate: RateSignal, config: FeatureConfig) -> dict[str, bool]:
    """Whether each of ``ids`` matches the signature, from the history in ``transactions``."""
    from features.offline import compute_features

    wanted = transactions["transaction_id"].isin(ids)
    cards = transactions.loc[wanted, "card_id"].unique()
    sub = transactions[transactions["card_id"].isin(cards)].reset_index(drop=True)
    if sub.empty:
        return {}
    feats = compute_features(sub, labels[labels["transaction_id"].isin(sub["transaction_id"])],
                             config)
    hit = rate.in_segment(*(feats[c].to_numpy(np.float64) for c in rate.inputs)) > 0
    hit |= _around(sub, hit, AROUND.get(rate.name, timedelta(0)))
    keep = sub["transaction_id"].isin(ids).to_numpy()
    return dict(zip(sub["transaction_id"].to_numpy()[keep].tolist(), hit[keep].tolist(),
                    strict=True))


def _around(tx: pd.DataFrame, hit: np.ndarray, window: timedelta) -> np.ndarray:
    """The card's payments within ``window`` of a hit: a burst's first payments belong to it
    although the signature only fires from its third on, and so do its larger ones."""
    hits = tx.loc[hit, ["card_id", "event_time"]].rename(columns={"event_time": "hit_time"})
    if hits.empty:
        return np.zeros(len(tx), bool)
    rows = tx[["card_id", "event_time"]].reset_index().merge(hits, on="card_id")
    lag = rows["hit_time"] - rows["event_time"]
    near = rows.loc[lag.abs() <= window, "index"].unique()
    out = np.zeros(len(tx), bool)
    out[near] = True
    return out


class ShiftSegments:
    """Per-payment segment of the current shift, cached; reset when the shift changes."""

    def __init__(self, store: LabelStore, config: FeatureConfig) -> None:
        self.store = store
        self.config = config
        self.signal: str | None = None
        self._cache: dict[str, bool] = {}

    def on_alert(self, signal: str) -> None:
        """A drift alert: its signal becomes the segment's when it has a signature (the
        other alerts of the same shift, a score or amount move, have none)."""
        if signal != self.signal and signature(signal, self.config) is not None:
            self.signal, self._cache = signal, {}

    def of(self, ids: pd.Series, times: pd.Series, min_batch: int = 1) -> np.ndarray:
        """1.0 in the shift's segment, 0.0 not, NaN not computed yet (fewer than
        ``min_batch`` new payments: the caller leaves them out until the next batch)."""
        rate = signature(self.signal, self.config)
        if rate is None:
            return np.zeros(len(ids))
        def segment(tx: pd.DataFrame, labels: pd.DataFrame, wanted: list[str]) -> dict[str, bool]:
            found = mark(tx, labels, wanted, rate, self.config)
            logger.info("segmented %d payments for signal=%s: %d in the shift", len(wanted),
                        self.signal, sum(found.values()))
            return {i: found.get(i, False) for i in wanted}

        return cached_over_history(self._cache, self.store, self.config, ids, times, min_batch,
                                   segment)

    def of_frauds(self, frame: pd.DataFrame, min_batch: int = 1) -> np.ndarray:
        """:meth:`of` for the frauds of ``frame`` (``transaction_id``, ``event_time``,
        ``is_fraud``); genuine payments are 0.0 (only frauds have a pattern)."""
        fraud = frame["is_fraud"].to_numpy() == 1
        out = np.zeros(len(frame))
        out[fraud] = self.of(frame["transaction_id"][fraud], frame["event_time"][fraud],
                             min_batch)
        return out
