"""Choosing decision thresholds on validation scores (never on the test window).

Review: the F1-best threshold, raised if needed so that at most ``alert_budget`` of payments
are flagged. Decline: the lowest threshold whose precision reaches ``decline_precision``
(and not below review); 1.0 when no threshold is that precise.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.metrics import precision_recall_curve

from training.model import Thresholds


@dataclass(frozen=True)
class ThresholdPolicy:
    """What the thresholds should achieve on validation data."""

    decline_precision: float = 0.9
    alert_budget: float | None = None  # e.g. 0.01: flag at most 1 % of payments


def choose_thresholds(
    y: np.ndarray, scores: np.ndarray, policy: ThresholdPolicy | None = None
) -> Thresholds:
    """Review and decline thresholds from validation labels and scores."""
    policy = policy or ThresholdPolicy()
    precision, recall, cuts = precision_recall_curve(y, scores)
    precision, recall = precision[:-1], recall[:-1]
    f1 = np.divide(
        2 * precision * recall,
        precision + recall,
        out=np.zeros_like(precision),
        where=(precision + recall) > 0,
    )
    review = float(cuts[int(np.argmax(f1))]) if len(cuts) else 0.5
    if policy.alert_budget is not None:
        review = max(review, budget_threshold(scores, policy.alert_budget))
    precise = np.flatnonzero(precision >= policy.decline_precision)
    decline = float(cuts[precise[0]]) if len(precise) else 1.0
    review = float(min(max(review, 0.0), 1.0))
    decline = float(min(max(decline, review), 1.0))
    return Thresholds(review=review, decline=decline, alert_budget=policy.alert_budget)


def budget_threshold(scores: np.ndarray, budget: float) -> float:
    """The lowest threshold that flags at most ``budget`` (a share) of ``scores``.

    >>> budget_threshold(np.array([0.1, 0.2, 0.3, 0.4]), 0.5) > 0.2
    True
    """
    ranked = np.sort(np.asarray(scores, dtype=np.float64))[::-1]
    allowed = int(np.floor(budget * len(ranked)))
    if allowed >= len(ranked):
        return 0.0
    return float(np.nextafter(ranked[allowed], np.inf))
