"""Fitting the two model kinds: LightGBM (the candidate) and logistic regression (the baseline).

Class imbalance: the booster weighs frauds by ``scale_pos_weight``, the regression uses
balanced class weights. Both are seeded and deterministic.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from training.model import FraudModel, LinearParams, Thresholds

logger = logging.getLogger(__name__)

_PLACEHOLDER = Thresholds(review=0.5, decline=0.5)


@dataclass(frozen=True)
class BoosterParams:
    """LightGBM hyper-parameters (the ones worth changing)."""

    num_trees: int = 400
    learning_rate: float = 0.05
    num_leaves: int = 31
    min_child_samples: int = 50
    feature_fraction: float = 0.8
    bagging_fraction: float = 0.8
    lambda_l2: float = 1.0
    scale_pos_weight: float = 1.0
    num_threads: int = 1  # >1 thrashes on a shared 2-core machine (7x slower measured)
    seed: int = 42
    extra: dict[str, Any] = field(default_factory=dict)

    def as_lightgbm(self) -> dict[str, Any]:
        return {
            "objective": "binary",
            "learning_rate": self.learning_rate,
            "num_leaves": self.num_leaves,
            "min_child_samples": self.min_child_samples,
            "feature_fraction": self.feature_fraction,
            "bagging_fraction": self.bagging_fraction,
            "bagging_freq": 1 if self.bagging_fraction < 1 else 0,
            "lambda_l2": self.lambda_l2,
            "scale_pos_weight": self.scale_pos_weight,
            "num_threads": self.num_threads,
            "seed": self.seed,
            "deterministic": True,
            "force_row_wise": True,
            "verbosity": -1,
            **self.extra,
        }


def fit_booster(
    X: np.ndarray,
    y: np.ndarray,
    feature_names: tuple[str, ...],
    params: BoosterParams,
    weight: np.ndarray | None = None,
) -> FraudModel:
    """Train a LightGBM booster (optionally with per-row weights); thresholds are
    placeholders until chosen on validation."""
    import lightgbm as lgb

    data = lgb.Dataset(
        np.asarray(X, dtype=np.float64),
        label=y,
        weight=None if weight is None else np.asarray(weight, dtype=np.float64),
        feature_name=list(feature_names),
        free_raw_data=True,
    )
    booster = lgb.train(params.as_lightgbm(), data, num_boost_round=params.num_trees)
    logger.info("booster trained trees=%d rows=%d", booster.num_trees(), len(y))
    return FraudModel("lightgbm", tuple(feature_names), _PLACEHOLDER, booster=booster)


def fit_logistic(
    X: np.ndarray, y: np.ndarray, feature_names: tuple[str, ...], seed: int = 42
) -> FraudModel:
    """Train the logistic-regression baseline on standardised inputs, balanced classes."""
    from sklearn.linear_model import LogisticRegression

    X = np.asarray(X, dtype=np.float64)
    mean = X.mean(axis=0)
    scale = X.std(axis=0)
    scale[scale == 0] = 1.0
    model = LogisticRegression(max_iter=1000, class_weight="balanced", random_state=seed)
    model.fit((X - mean) / scale, y)
    linear = LinearParams(
        mean=tuple(mean.tolist()),
        scale=tuple(scale.tolist()),
        coef=tuple(model.coef_[0].tolist()),
        intercept=float(model.intercept_[0]),
    )
    return FraudModel("logistic", tuple(feature_names), _PLACEHOLDER, linear=linear)
