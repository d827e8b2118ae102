"""Promotion on evidence and automatic rollback: pure decisions from joined scores and labels.

The candidate is compared with the champion on the same transactions (shadow results joined
with matured labels) at the champion's alert rate: both flag the same share of payments, so a
better model is one that catches more fraud for the same review workload. Average precision
and recall at that rate are compared with a seeded paired bootstrap; the candidate is
promoted only when the lower confidence bound of its AP gain is above zero and its recall is
not worse, neither at that rate nor at the two models' own review thresholds (when the
candidate's decisions are known).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from training.metrics import average_precision


@dataclass(frozen=True)
class Evidence:
    """The comparison behind a promotion or rollback decision, flat for a ModelEvent."""

    n: int
    frauds: int
    alert_rate: float
    ap_champion: float
    ap_candidate: float
    recall_champion: float
    recall_candidate: float
    ap_gain_low: float
    ap_gain_high: float
    recall_gain_low: float
    backfilled: int = 0  # of ``n``: shadow results computed after the fact (training/backfill)
    # recall at each model's own review threshold (its live decisions); NaN when not known
    recall_own_champion: float = float("nan")
    recall_own_candidate: float = float("nan")

    def as_dict(self) -> dict[str, float | str]:
        """Flat floats for a ModelEvent and MLflow tags; unknown (NaN) fields left out."""
        return {k: float(v) for k, v in self.__dict__.items() if v == v}


@dataclass(frozen=True)
class Verdict:
    """``action`` is promote, keep (not better), wait (too little data), or rollback."""

    action: str
    reason: str
    evidence: Evidence | None = None
    extra: dict[str, float] = field(default_factory=dict)


def recall_at_rate(y: np.ndarray, scores: np.ndarray, rate: float) -> float:
    """Recall when flagging the ``rate`` share of highest scores."""
    positives = y.sum()
    if positives == 0:
        return 0.0
    k = max(1, round(rate * len(scores)))
    top = np.argpartition(-scores, k - 1)[:k]
    return float(y[top].sum() / positives)


def _safe_ap(y: np.ndarray, s: np.ndarray) -> float:
    return average_precision(y, s) if 0 < y.sum() < len(y) else 0.0


def compare(y: np.ndarray, champion: np.ndarray, candidate: np.ndarray, alert_rate: float,
            rounds: int = 500, confidence: float = 0.95, seed: int = 0) -> Evidence:
    """Paired bootstrap of the candidate-minus-champion AP and recall at ``alert_rate``."""
    y = np.asarray(y).astype(int)
    champion, candidate = np.asarray(champion, float), np.asarray(candidate, float)
    rng = np.random.default_rng(seed)
    ap_gain, rec_gain = np.empty(rounds), np.empty(rounds)
    for r in range(rounds):
        idx = rng.integers(0, len(y), len(y))
        yb = y[idx]
        ap_gain[r] = _safe_ap(yb, candidate[idx]) - _safe_ap(yb, champion[idx])
        rec_gain[r] = (recall_at_rate(yb, candidate[idx], alert_rate)
                       - recall_at_rate(yb, champion[idx], alert_rate))
    lo_q, hi_q = (1 - confidence) / 2, 1 - (1 - confidence) / 2
    return Evidence(
        n=len(y), frauds=int(y.sum()), alert_rate=float(alert_rate),
        ap_champion=_safe_ap(y, champion), ap_candidate=_safe_ap(y, candidate),
        recall_champion=recall_at_rate(y, champion, alert_rate),
        recall_candidate=recall_at_rate(y, candidate, alert_rate),
        ap_gain_low=float(np.quantile(ap_gain, lo_q)),
        ap_gain_high=float(np.quantile(ap_gain, hi_q)),
        recall_gain_low=float(np.quantile(rec_gain, lo_q)),
    )


def decide_promotion(y: np.ndarray, champion: np.ndarray, candidate: np.ndarray,
                     champion_flagged: np.ndarray, *, min_labels: int, min_frauds: int,
                     rounds: int = 500, confidence: float = 0.95, seed: int = 0,
                     candidate_flagged: np.ndarray | None = None) -> Verdict:
    """Promote only on a significant AP improvement at no loss of recall at the alert rate,
    nor at the models' own thresholds (``candidate_flagged``: the candidate's decisions; a
    better ranking with a higher threshold can still flag fewer frauds once served)."""
    y = np.asarray(y).astype(int)
    if len(y) < min_labels or y.sum() < min_frauds:
        return Verdict("wait", f"need {min_labels} labels and {min_frauds} frauds, have "
                               f"{len(y)} and {int(y.sum())}")
    flagged = np.asarray(champion_flagged).astype(bool)
    rate = float(np.mean(flagged)) or 1.0 / len(y)
    ev = compare(y, champion, candidate, rate, rounds, confidence, seed)
    own = candidate_flagged is not None and not np.isnan(
        np.asarray(candidate_flagged, dtype=float)).any()
    if own:
        mine = np.asarray(candidate_flagged).astype(bool)
        ev = replace(ev, recall_own_champion=float(y[flagged].sum() / y.sum()),
                     recall_own_candidate=float(y[mine].sum() / y.sum()))
    if ev.ap_gain_low > 0 and ev.recall_candidate >= ev.recall_champion:
        if own and ev.recall_own_candidate < ev.recall_own_champion:
            return Verdict("keep", f"flags fewer frauds at its threshold (recall "
                                   f"{ev.recall_own_candidate:.3f} < {ev.recall_own_champion:.3f})",
                           ev)
        return Verdict("promote", f"AP +{ev.ap_candidate - ev.ap_champion:.3f} "
                                  f"(CI low {ev.ap_gain_low:.3f} > 0)", ev)
    return Verdict("keep", f"no significant gain (AP gain CI [{ev.ap_gain_low:.3f}, "
                           f"{ev.ap_gain_high:.3f}])", ev)


def decide_rollback(y_new: np.ndarray, scores_new: np.ndarray, y_old: np.ndarray,
                    scores_old: np.ndarray, *, baseline_ap: float | None = None,
                    min_labels: int, tolerance: float = 0.0) -> Verdict:
    """Roll back when the new champion's live AP (verdicts joined with labels since its
    promotion) falls below its predecessor's live AP (before the promotion) by more than
    ``tolerance``. ``baseline_ap`` overrides the predecessor's measured AP."""
    y_new = np.asarray(y_new).astype(int)
    if len(y_new) < min_labels or y_new.sum() == 0:
        return Verdict("wait", f"need {min_labels} labelled verdicts of the new champion")
    live = _safe_ap(y_new, np.asarray(scores_new, float))
    before = baseline_ap if baseline_ap is not None else _safe_ap(
        np.asarray(y_old).astype(int), np.asarray(scores_old, float))
    extra = {"live_ap": live, "predecessor_ap": before, "n": float(len(y_new))}
    if live < before - tolerance:
        return Verdict("rollback", f"live AP {live:.3f} < predecessor {before:.3f}", extra=extra)
    return Verdict("keep", f"live AP {live:.3f} >= predecessor {before:.3f}", extra=extra)
