"""Promotion on evidence and automatic rollback: pure decisions from joined scores and labels.

The candidate is compared with the champion on the same payments (shadow results joined with
matured labels), each at its own review threshold, as served. The evidence is fed in the
order it became known (label time), and every test is an always-valid test by betting
(:mod:`lifecycle.sequential`), so the evaluator may look at the growing evidence as often as
it likes: the chance that it ever promotes a candidate that is not better is at most
``alpha``. Three rules, all required (an intersection-union test: the gain is proved at
level ``alpha``, the guards block on observed harm):

- **gain**: per payment, the paired difference of the net value of the two decisions: a
  flagged fraud is worth 1, a flagged genuine payment costs ``false_alert_cost`` (the review
  cost of a false alert relative to a missed fraud). The candidate must refute "its mean gain
  is <= ``min_gain``" (5 frauds in 10,000 payments by default: a retrain that is better by a
  negligible amount, such as the champion refit with another seed, is not worth a swap, and
  with enough evidence any real difference, however small, would be proved). A candidate
  that only flags more (a lower threshold) gains frauds and pays alerts.
- **known patterns**: on the frauds outside the shift's segment (``shift``, from the drift
  alert's signature, :mod:`lifecycle.segments`), the candidate's recall must not be below the
  champion's by more than ``known_margin`` x the champion's recall, neither proved
  (always-valid bound) nor observed beyond chance: an observed loss blocks when the known
  frauds only the champion caught outnumber those only the candidate caught by more than a
  fair coin would at one-sided ``known_block_p`` (the exact McNemar test on the discordant
  frauds). At 5 %, the margin is less than one fraud of the 10-40 known frauds a promotion's
  evidence holds: one or two frauds the models disagree on are noise, not a regression.
- **alert budget**: the candidate's flagged share of genuine payments must not exceed
  ``alert_budget``, neither observed nor proved.

Proving the guards (non-inferiority) would need weeks of known-pattern frauds (~50 a day in
the simulated book); they block on observed harm at promotion, and the live rollback
(:func:`decide_live_rollback`) removes a promoted model once its own live labels *prove* a
breach, with the same always-valid tests (so it can look every tick without flapping).
Backfilled evidence may start the test, but ``min_live`` of the worker's own shadow results
are required.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import cast

import numpy as np

from lifecycle.sequential import Bounds, bounds, rejects_at_least, rejects_at_most
from sentinel.settings import DriftSettings
from training.model_metrics import average_precision


@dataclass(frozen=True)
class PromotionRules:
    """The thresholds of a promotion and a rollback (``DriftSettings`` by default)."""

    min_labels: int = 2000
    min_frauds: int = 30
    min_live: int = 300
    alpha: float = 0.05
    min_gain: float = 0.0005
    false_alert_cost: float = 0.1
    known_margin: float = 0.05
    known_block_p: float = 0.2
    alert_budget: float = 0.01

    @classmethod
    def from_settings(cls, d: DriftSettings) -> PromotionRules:
        return cls(min_labels=d.promotion_min_labels, min_frauds=d.promotion_min_frauds,
                   min_live=d.promotion_min_live, alpha=d.promotion_alpha,
                   min_gain=d.promotion_min_gain,
                   false_alert_cost=d.promotion_false_alert_cost,
                   known_margin=d.promotion_known_margin,
                   known_block_p=d.promotion_known_block_p, alert_budget=d.alert_budget)


@dataclass(frozen=True)
class Evidence:
    """The comparison behind a promotion, flat for a ModelEvent and MLflow tags: counts, the
    gain's confidence sequence, and per segment (known-pattern frauds, shift frauds, genuine
    payments) both models' rates, the bounds of the difference and the rule's outcome."""

    n: int
    frauds: int
    live: int  # of ``n``: the worker's own shadow results
    backfilled: int  # of ``n``: shadow results computed after the fact (training/backfill)
    alert_rate: float  # the champion's flagged share of the payments
    ap_champion: float
    ap_candidate: float
    recall_champion: float
    recall_candidate: float
    gain: float  # mean net value per payment, candidate minus champion
    gain_low: float
    gain_high: float
    known_frauds: int
    known_recall_champion: float
    known_recall_candidate: float
    known_diff_low: float
    known_diff_high: float
    known_only_champion: int  # known frauds the champion flagged and the candidate did not
    known_only_candidate: int
    shift_frauds: int
    shift_recall_champion: float
    shift_recall_candidate: float
    genuine: int
    genuine_flagged_champion: float
    genuine_flagged_candidate: float
    genuine_flagged_low: float
    genuine_flagged_high: float
    alert_budget: float
    known_margin: float
    gain_rule: str = "fail"
    known_rule: str = "fail"
    budget_rule: str = "fail"

    def as_dict(self) -> dict[str, float | str]:
        """Floats and rule outcomes for a ModelEvent and MLflow tags; NaN fields left out."""
        return {k: v if isinstance(v, str) else float(v) for k, v in self.__dict__.items()
                if isinstance(v, str) or v == v}


@dataclass(frozen=True)
class Judgement:
    """A promotion or rollback judgement (not a payment's ``schemas.Verdict``): ``action`` is
    promote, keep (not better), wait (too little data), or rollback."""

    action: str
    reason: str
    evidence: Evidence | None = None
    extra: dict[str, float | str] = field(default_factory=dict)


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


def _mean(x: np.ndarray) -> float:
    return float(x.mean()) if len(x) else float("nan")


def net_gain(y: np.ndarray, champion_flagged: np.ndarray, candidate_flagged: np.ndarray,
             false_alert_cost: float) -> np.ndarray:
    """Per payment, the candidate's decision value minus the champion's, in [-1, 1] for a
    cost <= 1: +1 a fraud only the candidate flags, -cost a genuine payment only it flags."""
    value = np.where(y == 1, 1.0, -false_alert_cost)
    return cast(np.ndarray,
                value * (candidate_flagged.astype(float) - champion_flagged.astype(float)))


def _known_margin(champion_recall: float, rules: PromotionRules) -> float:
    return rules.known_margin * (champion_recall if champion_recall == champion_recall else 0.0)


def mcnemar_p(only_champion: int, only_candidate: int) -> float:
    """One-sided exact McNemar p-value that the champion-only catches are at least this many
    out of the discordant pairs, were each discordant fraud a fair coin (Binomial(d, 1/2)).

    >>> mcnemar_p(2, 0), mcnemar_p(3, 0), round(mcnemar_p(4, 1), 4), mcnemar_p(0, 0)
    (0.25, 0.125, 0.1875, 1.0)
    """
    d = only_champion + only_candidate
    return float(sum(math.comb(d, i) for i in range(only_champion, d + 1)) / 2**d)


def _bounds(x: np.ndarray, low: float, high: float, alpha: float, record: bool) -> Bounds:
    if record:
        return bounds(x, low=low, high=high, alpha=alpha)
    return Bounds(len(x), _mean(x), float("nan"), float("nan"))


def evidence_of(y: np.ndarray, champion: np.ndarray, candidate: np.ndarray,
                champion_flagged: np.ndarray, candidate_flagged: np.ndarray,
                shift: np.ndarray, live: np.ndarray, rules: PromotionRules,
                record: bool = True) -> Evidence:
    """Measure the three rules on evidence in arrival order (see the module docstring); the
    confidence sequences' bounds (a bisection each) only when ``record``."""
    fraud = y == 1
    known, shifted, genuine = fraud & ~shift, fraud & shift, ~fraud
    cost = rules.false_alert_cost
    gain = net_gain(y, champion_flagged, candidate_flagged, cost)
    top = max(1.0, cost)
    g = _bounds(gain, -top, top, rules.alpha, record)
    known_diff = candidate_flagged[known].astype(float) - champion_flagged[known]
    k = _bounds(known_diff, -1, 1, rules.alpha, record)
    flags = candidate_flagged[genuine].astype(float)
    b = _bounds(flags, 0, 1, rules.alpha, record)
    known_champion = _mean(champion_flagged[known].astype(float))
    margin = _known_margin(known_champion, rules)
    gain_ok = rejects_at_most(gain, low=-top, high=top, m=rules.min_gain, alpha=rules.alpha)
    only_champion, only_candidate = int((known_diff < 0).sum()), int((known_diff > 0).sum())
    observed_loss = (k.mean < -margin
                     and mcnemar_p(only_champion, only_candidate) < rules.known_block_p)
    known_ok = not (observed_loss or rejects_at_least(known_diff, low=-1, high=1, m=-margin,
                                                      alpha=rules.alpha))
    budget_ok = not (b.mean > rules.alert_budget or rejects_at_most(
        flags, low=0, high=1, m=rules.alert_budget, alpha=rules.alpha))
    return Evidence(
        n=len(y), frauds=int(fraud.sum()), live=int(live.sum()),
        backfilled=int((~live).sum()), alert_rate=_mean(champion_flagged.astype(float)),
        ap_champion=_safe_ap(y, champion), ap_candidate=_safe_ap(y, candidate),
        recall_champion=_mean(champion_flagged[fraud].astype(float)),
        recall_candidate=_mean(candidate_flagged[fraud].astype(float)),
        gain=g.mean, gain_low=g.lower, gain_high=g.upper,
        known_frauds=int(known.sum()), known_recall_champion=known_champion,
        known_recall_candidate=_mean(candidate_flagged[known].astype(float)),
        known_diff_low=k.lower, known_diff_high=k.upper, known_only_champion=only_champion,
        known_only_candidate=only_candidate, shift_frauds=int(shifted.sum()),
        shift_recall_champion=_mean(champion_flagged[shifted].astype(float)),
        shift_recall_candidate=_mean(candidate_flagged[shifted].astype(float)),
        genuine=int(genuine.sum()),
        genuine_flagged_champion=_mean(champion_flagged[genuine].astype(float)),
        genuine_flagged_candidate=b.mean, genuine_flagged_low=b.lower,
        genuine_flagged_high=b.upper, alert_budget=rules.alert_budget,
        known_margin=rules.known_margin, gain_rule="pass" if gain_ok else "fail",
        known_rule="pass" if known_ok else "fail", budget_rule="pass" if budget_ok else "fail")


def decide_promotion(y: np.ndarray, champion: np.ndarray, candidate: np.ndarray,
                     champion_flagged: np.ndarray, candidate_flagged: np.ndarray, *,
                     rules: PromotionRules,
                     shift: np.ndarray | Callable[[], np.ndarray] | None = None,
                     live: np.ndarray | None = None) -> Judgement:
    """Promote when the gain is proved and neither guard is breached, on at least
    ``rules.min_live`` live results. Arrays are per payment in arrival (label-time) order;
    ``shift`` marks the shift's segment (none: every fraud is a known pattern; a callable is
    only called once the gain is proved, segments cost a feature computation), ``live`` the
    worker's own shadow results (none: all live)."""
    y = np.asarray(y).astype(int)
    champion_flagged = np.asarray(champion_flagged).astype(bool)
    candidate_flagged = np.asarray(candidate_flagged).astype(bool)
    live = np.ones(len(y), bool) if live is None else np.asarray(live).astype(bool)
    if len(y) < rules.min_labels or y.sum() < rules.min_frauds:
        return Judgement("wait", f"need {rules.min_labels} labels and {rules.min_frauds} frauds, "
                               f"have {len(y)} and {int(y.sum())}")
    top = max(1.0, rules.false_alert_cost)
    proved = rejects_at_most(net_gain(y, champion_flagged, candidate_flagged,
                                      rules.false_alert_cost),
                             low=-top, high=top, m=rules.min_gain, alpha=rules.alpha)
    if callable(shift):
        shift = shift() if proved else None
    shift = np.zeros(len(y), bool) if shift is None else np.asarray(shift).astype(bool)
    args = (y, np.asarray(champion, float), np.asarray(candidate, float), champion_flagged,
            candidate_flagged, shift, live, rules)
    ev = evidence_of(*args, record=False)
    if ev.gain_rule == "pass":
        ev = evidence_of(*args)  # a promotion, or a guard's veto: the record has the bounds
    if ev.gain_rule == "fail":
        return Judgement("keep", f"no proved gain (net gain {ev.gain:+.4f} a payment, "
                               f"needs > {rules.min_gain:.4f} proved)", ev)
    if ev.known_rule == "fail":
        return Judgement("keep", f"known-pattern recall {ev.known_recall_candidate:.3f} vs "
                               f"{ev.known_recall_champion:.3f} ({ev.known_only_champion} "
                               f"caught only by the champion, {ev.known_only_candidate} only "
                               f"by the candidate): a loss of more than "
                               f"{rules.known_margin:.0%}, beyond chance, or proved at a look "
                               "(always-valid, so it stands)", ev)
    if ev.budget_rule == "fail":
        return Judgement("keep", f"flags {ev.genuine_flagged_candidate:.2%} of genuine payments, "
                               f"budget {rules.alert_budget:.2%}", ev)
    if ev.live < rules.min_live:
        return Judgement("wait", f"gain proved, need {rules.min_live} live shadow results, have "
                               f"{ev.live} (and {ev.backfilled} backfilled)", ev)
    # the lower bound is the running intersection over every look: the best evidence so far,
    # so it can sit above today's mean (a gain proved once stays proved)
    return Judgement("promote", f"net gain {ev.gain:+.4f} a payment, proved above "
                              f"{rules.min_gain:.4f} (always-valid lower bound over all looks "
                              f"{ev.gain_low:+.4f}), known recall "
                              f"{ev.known_recall_candidate:.3f} vs "
                              f"{ev.known_recall_champion:.3f}, genuine flagged "
                              f"{ev.genuine_flagged_candidate:.2%}", ev)


def decide_live_rollback(y: np.ndarray, flagged: np.ndarray, shift: np.ndarray, *,
                         known_baseline: float, rules: PromotionRules,
                         baseline_flagged: np.ndarray | None = None) -> Judgement:
    """Roll back a promoted champion whose own live verdicts (arrival order) prove a breach:
    known-pattern recall more than ``known_margin`` below its predecessor's, or a flagged share
    of genuine payments above the alert budget. Always-valid, so it may be checked at every
    tick. With ``baseline_flagged`` (the predecessor's decisions on the same payments,
    :mod:`lifecycle.predecessor`; NaN = not known yet, left out) the known-pattern test is
    paired, as at promotion: the mean difference of the two decisions on the known frauds is
    proved below ``-known_margin`` x the predecessor's recall there. Without it, the champion's
    recall is proved below ``(1 - known_margin) * known_baseline`` (the predecessor's known
    recall in the promotion's evidence: another window, so only a fallback)."""
    y = np.asarray(y).astype(int)
    flagged = np.asarray(flagged).astype(float)
    known = (y == 1) & ~np.asarray(shift).astype(bool)
    if baseline_flagged is not None:
        baseline = np.asarray(baseline_flagged, float)
        known &= ~np.isnan(baseline)
        base = _mean(baseline[known])
        floor = base - _known_margin(base, rules)
        known_diff = flagged[known] - baseline[known]
        known_breach = bool(known.any()) and rejects_at_least(
            known_diff, low=-1, high=1, m=floor - base, alpha=rules.alpha)
    else:
        base = known_baseline
        floor = known_baseline - _known_margin(known_baseline, rules)
        known_breach = known_baseline == known_baseline and rejects_at_least(
            flagged[known], low=0, high=1, m=floor, alpha=rules.alpha)
    budget_breach = rejects_at_most(flagged[y == 0], low=0, high=1, m=rules.alert_budget,
                                    alpha=rules.alpha)
    k = _bounds(flagged[known], 0, 1, rules.alpha, known_breach or budget_breach)
    b = _bounds(flagged[y == 0], 0, 1, rules.alpha, known_breach or budget_breach)
    extra: dict[str, float | str] = {
        "known_frauds": float(k.n), "known_recall": k.mean, "known_recall_high": k.upper,
        "known_recall_predecessor": base, "known_recall_floor": floor,
        "paired": "yes" if baseline_flagged is not None else "no",
        "genuine": float(b.n), "genuine_flagged": b.mean,
        "genuine_flagged_low": b.lower, "alert_budget": rules.alert_budget}
    if known_breach:
        extra["breach"] = "known"
        return Judgement("rollback", f"live known-pattern recall {k.mean:.3f} vs the "
                                   f"predecessor's {base:.3f}: proved below the floor "
                                   f"{floor:.3f}", extra=extra)
    if budget_breach:
        extra["breach"] = "budget"
        return Judgement("rollback", f"live genuine flagged {b.mean:.2%} (always-valid low "
                                   f"{b.lower:.2%}) > budget {rules.alert_budget:.2%}",
                       extra=extra)
    return Judgement("keep", f"live known recall {k.mean:.3f} (predecessor {base:.3f}), "
                           f"genuine flagged {b.mean:.2%}", extra=extra)


def decide_rollback(y_new: np.ndarray, scores_new: np.ndarray, y_old: np.ndarray,
                    scores_old: np.ndarray, *, baseline_ap: float | None = None,
                    min_labels: int, tolerance: float = 0.0) -> Judgement:
    """Roll back when the new champion's live AP (verdicts joined with labels since its
    promotion) falls below its predecessor's live AP (before the promotion) by more than
    ``tolerance``. ``baseline_ap`` overrides the predecessor's measured AP."""
    y_new = np.asarray(y_new).astype(int)
    if len(y_new) < min_labels or y_new.sum() == 0:
        return Judgement("wait", f"need {min_labels} labelled verdicts of the new champion")
    live = _safe_ap(y_new, np.asarray(scores_new, float))
    before = baseline_ap if baseline_ap is not None else _safe_ap(
        np.asarray(y_old).astype(int), np.asarray(scores_old, float))
    extra: dict[str, float | str] = {"live_ap": live, "predecessor_ap": before,
                                     "n": float(len(y_new))}
    if live < before - tolerance:
        return Judgement("rollback", f"live AP {live:.3f} < predecessor {before:.3f}", extra=extra)
    return Judgement("keep", f"live AP {live:.3f} >= predecessor {before:.3f}", extra=extra)
