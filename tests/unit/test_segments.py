"""The shift's segment: the drift alert's signature per payment, from the stored history."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd

from features.spec import FeatureConfig
from lifecycle.labelstore import LabelStore
from lifecycle.segments import ShiftSegments, signature
from schemas.events import Transaction

T0 = datetime(2024, 3, 1, tzinfo=UTC)


def _history() -> list[Transaction]:
    """Card c1: a month of 50-euro payments, then a burst of four 1-euro payments within the
    hour (card testing); card c2: a month of 50-euro payments and one more."""
    out = [Transaction(transaction_id=f"{card}-{d}", card_id=card, terminal_id="t1",
                       amount=50.0, event_time=T0 + timedelta(days=d, hours=12))
           for card in ("c1", "c2") for d in range(30)]
    burst = T0 + timedelta(days=30, hours=3)
    out += [Transaction(transaction_id=f"burst-{k}", card_id="c1", terminal_id="t9", amount=1.0,
                        event_time=burst + timedelta(minutes=10 * k)) for k in range(4)]
    out.append(Transaction(transaction_id="burst-big", card_id="c1", terminal_id="t9",
                           amount=9.0, event_time=burst + timedelta(minutes=45)))
    out.append(Transaction(transaction_id="c2-last", card_id="c2", terminal_id="t1",
                           amount=45.0, event_time=burst))
    return out


def test_card_testing_bursts_mark_the_whole_burst(tmp_path) -> None:
    """The signature fires from the burst's third payment at under a tenth of the card's
    average; the two before it and a larger one after it, within the hour on the same card,
    belong to the burst too."""
    store = LabelStore(tmp_path / "s.sqlite")
    store.add_transactions(_history())
    segments = ShiftSegments(store, FeatureConfig())
    ids = pd.Series(["burst-0", "burst-1", "burst-2", "burst-3", "burst-big", "c2-last",
                     "c1-29"])
    times = pd.Series([T0 + timedelta(days=30)] * 7)
    assert segments.of(ids, times).tolist() == [0.0] * 7  # no alert: no segment
    segments.on_alert("score")  # a score shift has no per-payment signature
    assert segments.signal is None
    segments.on_alert("card_testing_bursts")
    assert segments.of(ids, times).tolist() == [1.0, 1.0, 1.0, 1.0, 1.0, 0.0, 0.0]
    store.close()


def test_segments_wait_for_a_batch_and_are_cached(tmp_path) -> None:
    store = LabelStore(tmp_path / "s.sqlite")
    store.add_transactions(_history())
    segments = ShiftSegments(store, FeatureConfig())
    segments.on_alert("card_testing_bursts")
    ids = pd.Series(["burst-2", "burst-3"])
    times = pd.Series([T0 + timedelta(days=30)] * 2)
    assert np.isnan(segments.of(ids, times, min_batch=3)).all()  # too few new: not yet
    assert segments.of(ids, times, min_batch=2).tolist() == [1.0, 1.0]
    store.close()
    assert segments.of(ids, times, min_batch=2).tolist() == [1.0, 1.0]  # cached: no store


def test_a_signature_needs_its_inputs_among_the_features() -> None:
    assert signature("card_testing_bursts", FeatureConfig()) is not None
    assert signature("amount", FeatureConfig()) is None


def test_only_frauds_are_segmented(tmp_path) -> None:
    store = LabelStore(tmp_path / "s.sqlite")
    store.add_transactions(_history())
    segments = ShiftSegments(store, FeatureConfig())
    segments.on_alert("card_testing_bursts")
    frame = pd.DataFrame({"transaction_id": ["burst-2", "burst-3", "c2-last"],
                          "event_time": [T0 + timedelta(days=30)] * 3, "is_fraud": [1, 0, 1]})
    assert segments.of_frauds(frame).tolist() == [1.0, 0.0, 0.0]
    store.close()


def test_a_burst_on_a_card_of_small_payments_is_in_the_segment(tmp_path) -> None:
    """Card c3 pays about 20 a day: a burst of 4-unit payments is a fifth of its average, so
    the alarm's rule (under a tenth) never fires on it, but the burst is the shift's pattern
    and must not count as a known one. Its ordinary payments stay out."""
    out = [Transaction(transaction_id=f"c3-{d}", card_id="c3", terminal_id="t1", amount=20.0,
                       event_time=T0 + timedelta(days=d, hours=12)) for d in range(30)]
    burst = T0 + timedelta(days=30, hours=3)
    out += [Transaction(transaction_id=f"small-{k}", card_id="c3", terminal_id="t9",
                        amount=4.0, event_time=burst + timedelta(minutes=10 * k))
            for k in range(4)]
    store = LabelStore(tmp_path / "s.sqlite")
    store.add_transactions(out)
    segments = ShiftSegments(store, FeatureConfig())
    segments.on_alert("card_testing_bursts")
    ids = pd.Series(["small-0", "small-1", "small-2", "small-3", "c3-29"])
    assert segments.of(ids, pd.Series([burst] * 5)).tolist() == [1.0, 1.0, 1.0, 1.0, 0.0]
    rate = signature("card_testing_bursts", FeatureConfig())
    assert rate is not None and not rate.indicator(np.array([0.2]), np.array([3.0])).any()
    store.close()
