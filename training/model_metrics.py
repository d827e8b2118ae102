"""Model quality metrics, pure: ROC AUC, AP, card precision@k, and threshold metrics."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score, roc_auc_score


@dataclass(frozen=True)
class ThresholdMetrics:
    """Confusion-derived metrics of ``score >= threshold``."""

    threshold: float
    precision: float
    recall: float
    f1: float
    flagged_rate: float


def roc_auc(y: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve (0.5 = chance)."""
    return float(roc_auc_score(y, scores))


def average_precision(y: np.ndarray, scores: np.ndarray) -> float:
    """Average precision: the area under the precision-recall curve, step-wise."""
    return float(average_precision_score(y, scores))


def card_precision_at_k(
    cards: np.ndarray,
    days: np.ndarray,
    y: np.ndarray,
    scores: np.ndarray,
    k: int = 100,
    *,
    remove_detected: bool = True,
) -> float:
    """Card precision top-k as the handbook: per day, each card's max score and max label,
    the share of frauds among the k highest cards, averaged over days.

    With ``remove_detected``, a fraudulent card caught in a day's top k is left out of the
    following days (it has been blocked). The denominator is always ``k``.

    >>> cards = np.array(["a", "a", "b", "c"])
    >>> card_precision_at_k(cards, np.zeros(4), np.array([0, 1, 0, 0]),
    ...                     np.array([0.1, 0.9, 0.5, 0.2]), k=2)
    0.5
    """
    frame = pd.DataFrame({"card": cards, "day": days, "y": y, "score": scores})
    detected: set[object] = set()
    precisions = []
    for _, day in frame.groupby("day", sort=True):
        if remove_detected and detected:
            day = day[~day["card"].isin(detected)]
        per_card = day.groupby("card")[["score", "y"]].max()
        top = per_card.sort_values("score", ascending=False, kind="stable").head(k)
        caught = top.index[top["y"] == 1]
        precisions.append(len(caught) / k)
        detected.update(caught)
    return float(np.mean(precisions)) if precisions else 0.0


def at_threshold(y: np.ndarray, scores: np.ndarray, threshold: float) -> ThresholdMetrics:
    """Precision, recall and F1 when flagging ``scores >= threshold``."""
    flagged = scores >= threshold
    tp = float(np.sum(flagged & (y == 1)))
    precision = tp / flagged.sum() if flagged.any() else 0.0
    positives = float(np.sum(y == 1))
    recall = tp / positives if positives else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return ThresholdMetrics(
        threshold=float(threshold),
        precision=float(precision),
        recall=float(recall),
        f1=float(f1),
        flagged_rate=float(flagged.mean()) if len(flagged) else 0.0,
    )


def evaluate(
    y: np.ndarray,
    scores: np.ndarray,
    cards: np.ndarray,
    days: np.ndarray,
    threshold: float,
    k: int = 100,
) -> dict[str, float]:
    """All test metrics of one model, flat, ready to log."""
    out = {
        "roc_auc": roc_auc(y, scores),
        "average_precision": average_precision(y, scores),
        f"card_precision_at_{k}": card_precision_at_k(cards, days, y, scores, k),
    }
    at = asdict(at_threshold(y, scores, threshold))
    out.update({f"{name}_at_threshold": value for name, value in at.items() if name != "threshold"})
    return out
