"""Metrics on hand-computed cases, thresholds, the split and the FraudModel fast path."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from training.gate import judge
from training.learners import BoosterParams, fit_booster, fit_logistic
from training.model import FraudModel, Thresholds
from training.model_metrics import at_threshold, average_precision, card_precision_at_k, roc_auc
from training.selection import ThresholdPolicy, budget_threshold, choose_thresholds
from training.split import SplitConfig, known_compromised_mask, resolve_windows, split


def test_roc_auc_and_ap_by_hand() -> None:
    y = np.array([0, 0, 1, 1])
    s = np.array([0.1, 0.4, 0.35, 0.8])
    assert roc_auc(y, s) == pytest.approx(0.75)  # 3 of 4 (pos, neg) pairs ordered
    # ranking: 0.8(+) 0.4(-) 0.35(+) 0.1(-): AP = 0.5*1 + 0.5*(2/3)
    assert average_precision(y, s) == pytest.approx(0.5 + 1 / 3)


def test_card_precision_by_hand() -> None:
    cards = np.array(["a", "a", "b", "c", "a", "b", "d"])
    days = np.array([0, 0, 0, 0, 1, 1, 1])
    y = np.array([0, 1, 0, 0, 1, 0, 1])
    s = np.array([0.2, 0.9, 0.8, 0.1, 0.95, 0.5, 0.4])
    # day 0: cards a(0.9, fraud), b(0.8), c(0.1) -> top-2 = a, b -> 1/2
    # day 1: a was caught on day 0 and is removed; b(0.5), d(0.4, fraud) -> 1/2
    assert card_precision_at_k(cards, days, y, s, k=2) == pytest.approx(0.5)
    # without removal day 1 top-2 = a(fraud), b -> 1/2 as well; with k=1: day0 1, day1 a -> 1
    assert card_precision_at_k(cards, days, y, s, k=1, remove_detected=False) == 1.0
    assert card_precision_at_k(cards, days, y, s, k=1) == pytest.approx(0.5)


def test_threshold_metrics_by_hand() -> None:
    y = np.array([1, 0, 1, 0, 0])
    s = np.array([0.9, 0.8, 0.3, 0.2, 0.1])
    m = at_threshold(y, s, 0.5)
    assert (m.precision, m.recall, m.flagged_rate) == (0.5, 0.5, 0.4)
    assert m.f1 == pytest.approx(0.5)


def test_thresholds_respect_budget_and_order() -> None:
    rng = np.random.default_rng(1)
    y = (rng.random(2000) < 0.05).astype(int)
    s = np.clip(0.6 * y + rng.normal(0.2, 0.15, size=2000), 0, 1)
    free = choose_thresholds(y, s)
    capped = choose_thresholds(y, s, ThresholdPolicy(alert_budget=0.01))
    assert 0 <= free.review <= free.decline <= 1
    assert (s >= capped.review).mean() <= 0.01
    assert capped.review >= free.review
    assert (
        np.array([0.1, 0.2, 0.3, 0.4]) >= budget_threshold(np.array([0.1, 0.2, 0.3, 0.4]), 0.5)
    ).sum() == 2


def test_gate_needs_both_wins() -> None:
    assert judge(0.7, 0.6, None).passed
    assert not judge(0.7, 0.75, None).passed
    assert not judge(0.7, 0.6, 0.7).passed  # equal to the champion is not better


def _frame(days: int = 40, per_day: int = 50, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    n = days * per_day
    start = pd.Timestamp("2018-04-01", tz="UTC")
    return pd.DataFrame(
        {
            "transaction_id": [f"t{i}" for i in range(n)],
            "event_time": start
            + pd.to_timedelta(np.repeat(np.arange(days), per_day), unit="D")
            + pd.to_timedelta(rng.integers(0, 86_400, n), unit="s"),
            "card_id": [f"c{i}" for i in rng.integers(0, 100, n)],
            "terminal_id": [f"m{i}" for i in rng.integers(0, 50, n)],
            "amount": rng.gamma(2.0, 30.0, n).round(2),
            "is_fraud": (rng.random(n) < 0.05).astype(int),
        }
    )


def test_split_anchors_at_end_and_removes_known_cards() -> None:
    frame = _frame().sort_values("event_time").reset_index(drop=True)
    windows = resolve_windows(frame["event_time"], SplitConfig())
    assert str(windows.test[1].date()) == "2018-05-11"  # day after the last day
    assert windows.train[1] + pd.Timedelta(days=7) == windows.test[0]
    assert windows.validation[1] == windows.train[0]
    parts = split(frame)
    removed = known_compromised_mask(frame, windows)
    test_cards = set(frame.loc[parts.test, "card_id"])
    known = set(
        frame.loc[
            (frame.is_fraud == 1)
            & (frame.event_time >= windows.train[0])
            & (frame.event_time < windows.test[0] - pd.Timedelta(days=7)),
            "card_id",
        ]
    )
    assert removed.any()
    assert not (test_cards & known)  # the first test day excludes every card known by then


def test_book_anchor() -> None:
    times = pd.Series(pd.date_range("2018-04-01", "2018-09-30", freq="D", tz="UTC"))
    w = resolve_windows(times, SplitConfig())
    assert (str(w.train[0].date()), str(w.test[0].date())) == ("2018-07-25", "2018-08-08")
    longer = resolve_windows(times, SplitConfig(train_days=28))
    assert longer.test == w.test and str(longer.train[0].date()) == "2018-07-04"


def test_latest_anchor_measures_hours_back_from_the_newest_payment() -> None:
    newest = pd.Timestamp("2018-05-10 09:30", tz="UTC")
    times = pd.Series(pd.date_range(pd.Timestamp("2018-04-01", tz="UTC"), newest, freq="15min"))
    config = SplitConfig(train_days=7, delay_days=0.125, test_days=0.25, validation_days=1,
                         anchor="latest")
    w = resolve_windows(times, config)
    assert w.test[0] == newest - pd.Timedelta(hours=6) + pd.Timedelta(microseconds=1)
    assert w.test[0] <= newest < w.test[1]  # the newest payment is in the test window
    assert w.train[1] == w.test[0] - pd.Timedelta(hours=3)  # the gap is the label delay
    assert w.train[0] == w.train[1] - pd.Timedelta(days=7)
    assert w.validation == (w.train[0] - pd.Timedelta(days=1), w.train[0])
    assert w.as_params()["split.test"] == "2018-05-10T03:30..2018-05-10T09:30"
    # "end" would stop training at midnight two days before the newest payment
    assert resolve_windows(times, SplitConfig(train_days=7, delay_days=1, test_days=1,
                                              anchor="end")).train[1] < w.train[1]


@pytest.mark.parametrize(
    "kwargs", [{"test_days": 0.5}, {"anchor": "latest", "test_days": 0}, {"anchor": "noon"}])
def test_bad_split_config(kwargs: dict[str, object]) -> None:
    from training.errors import SplitError

    with pytest.raises(SplitError):
        SplitConfig(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize("kind", ["lightgbm", "logistic"])
def test_fraud_model_fast_path(kind: str, tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    X = rng.normal(size=(300, 3))
    y = (X[:, 1] > 1).astype(int)
    names = ("a", "b", "c")
    if kind == "lightgbm":
        model = fit_booster(X, y, names, BoosterParams(num_trees=10, min_child_samples=5))
    else:
        model = fit_logistic(X, y, names)
    model = model.with_thresholds(Thresholds(review=0.3, decline=0.7))
    scores = model.score(X)
    assert scores.shape == (300,) and ((scores >= 0) & (scores <= 1)).all()
    assert roc_auc(y, scores) > 0.95
    decisions = model.decide(np.array([0.1, 0.5, 0.9]))
    assert list(decisions) == ["approve", "review", "decline"]
    top = X[np.argmax(scores)][None, :]
    assert model.reasons(top, k=1) == [["b"]]
    loaded = FraudModel.load(model.save(tmp_path / kind))
    np.testing.assert_allclose(loaded.score(X), scores)
    with pytest.raises(ValueError, match="shape"):
        model.score(X[:, :2])
