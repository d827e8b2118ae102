"""A small seeded LightGBM model on three features, shared by the registry tests."""

from __future__ import annotations

import numpy as np

from training.learners import BoosterParams, fit_booster
from training.model import FraudModel, Thresholds

FEATURES = ("amount", "velocity", "risk")


def data(seed: int = 0, n: int = 400) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, len(FEATURES)))
    y = (X[:, 0] + 0.5 * X[:, 2] + rng.normal(scale=0.5, size=n) > 1.2).astype(int)
    return X, y


def booster(seed: int = 0) -> FraudModel:
    X, y = data(seed)
    model = fit_booster(
        X, y, FEATURES, BoosterParams(num_trees=5, num_leaves=4, min_child_samples=5, seed=seed)
    )
    return model.with_thresholds(Thresholds(review=0.3, decline=0.8))
