"""A retrain on a fresh shift: refit on the newest labels and weigh the frauds since the onset."""

from __future__ import annotations

import numpy as np
import pandas as pd

from lifecycle.pipeline import Evaluation, TrainingConfig, fit_and_evaluate, shift_weights
from training.dataset import make_dataset
from training.learners import BoosterParams
from training.split import SplitConfig

START = pd.Timestamp("2018-04-01", tz="UTC")
DAYS, PER_DAY = 12, 300
NEW_FROM_DAY = 11 - 2 / 24  # the new pattern: the newest 26 hours, 2 of them before the gap


def _world(seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    n = DAYS * PER_DAY
    seconds = np.sort(rng.integers(0, DAYS * 86_400, n))
    known, new = rng.normal(size=n), rng.normal(size=n)
    pattern = (seconds >= NEW_FROM_DAY * 86_400) & (rng.random(n) < 0.1)
    new[pattern] = rng.normal(4.0, 0.5, int(pattern.sum()))  # a region nobody paid in before
    fraud = (known > 1.8) | pattern
    frame = pd.DataFrame({
        "transaction_id": [f"t{i:05d}" for i in range(n)],
        "event_time": START + pd.to_timedelta(seconds, unit="s"),
        "card_id": [f"c{i}" for i in rng.integers(0, 500, n)],
        "terminal_id": [f"m{i}" for i in rng.integers(0, 100, n)],
        "amount": rng.gamma(2.0, 30.0, n).round(2),
        "is_fraud": fraud.astype(int),
    })
    return frame, np.column_stack([known, new])


def _config(**kwargs: object) -> TrainingConfig:
    split = SplitConfig(train_days=7, delay_days=0.25, test_days=0.75, validation_days=1,
                        anchor="latest")
    booster = BoosterParams(num_trees=40, learning_rate=0.2, min_child_samples=5, seed=1)
    return TrainingConfig(split=split, booster=booster, **kwargs)  # type: ignore[arg-type]


def _fit(config: TrainingConfig) -> Evaluation:
    frame, X = _world()
    dataset = make_dataset(frame, "memory")
    order = dataset.frame["transaction_id"].str[1:].astype(int).to_numpy()
    return fit_and_evaluate(dataset, X[order], ("known", "new"), config)


def test_refit_on_newest_learns_the_pattern_the_held_out_fit_never_saw() -> None:
    pattern = np.array([[0.0, 4.0]])  # new-pattern fraud, nothing of the known one
    held_out = _fit(_config())
    refit = _fit(_config(refit_on_newest=True))
    # the pattern starts 2 h before the gap: too few rows for the held-out fit
    assert held_out.candidate.score(pattern)[0] < 0.2
    assert refit.candidate.score(pattern)[0] > 0.5
    # the gate judges the same held-out fit either way
    assert refit.metrics == held_out.metrics


def test_shift_weights_only_frauds_since_the_onset() -> None:
    frame, _ = _world()
    y = frame["is_fraud"].to_numpy()
    onset = (START + pd.Timedelta(days=NEW_FROM_DAY)).to_pydatetime()
    train_start = START + pd.Timedelta(days=4)
    w = shift_weights(frame, y, _config(shift_onset=onset, shift_fraud_weight=10.0), train_start)
    assert w is not None
    after = (frame["event_time"] >= pd.Timestamp(onset)).to_numpy()
    assert (w[after & (y == 1)] == 10.0).all() and (w[~(after & (y == 1))] == 1.0).all()
    assert shift_weights(frame, y, _config(shift_fraud_weight=10.0), train_start) is None
    assert shift_weights(frame, y, _config(shift_onset=onset), train_start) is None
    # an onset before the train window: every fraud would weigh more, a class weight
    early = _config(shift_onset=START.to_pydatetime(), shift_fraud_weight=10.0)
    assert shift_weights(frame, y, early, train_start) is None
