"""Promotion on evidence and rollback: pure, synthetic decisions with seeded generators."""

from __future__ import annotations

import numpy as np

from lifecycle.promotion import (
    PromotionRules,
    decide_live_rollback,
    decide_promotion,
    decide_rollback,
    net_gain,
    recall_at_rate,
)
from lifecycle.sequential import bounds, log_capital, rejects_at_least, rejects_at_most

RULES = PromotionRules(min_labels=1000, min_frauds=30, min_live=0, alert_budget=0.01)


def _scores(y: np.ndarray, separation: float, rng: np.random.Generator) -> np.ndarray:
    return 1 / (1 + np.exp(-(rng.normal(0, 1, len(y)) + separation * y - 4)))


def _world(seed: int = 0, n: int = 20_000, shift_share: float = 0.4):
    """Payments with frauds, a share of them in the shift's segment, and the champion's
    decisions: it catches 80 % of the known frauds, 5 % of the shift's, 0.2 % of genuine."""
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.02).astype(int)
    shift = (y == 1) & (rng.random(n) < shift_share)
    known = (y == 1) & ~shift
    champion = np.where(known, rng.random(n) < 0.8, np.where(
        shift, rng.random(n) < 0.05, rng.random(n) < 0.002))
    return rng, y, shift, champion


def _flip(rng: np.random.Generator, base: np.ndarray, mask: np.ndarray, to: bool,
          share: float) -> np.ndarray:
    """A copy of ``base`` with ``share`` of the ``mask`` rows set to ``to``."""
    out = base.copy()
    out[mask & (rng.random(len(base)) < share)] = to
    return out


def _null_differences(rng: np.random.Generator, n: int) -> np.ndarray:
    """Paired net-gain differences of two equally good models (an A/A pair): frauds one model
    flags and the other does not (+-1), genuine payments the same (+-0.1), symmetric."""
    fraud = rng.random(n) < 0.02
    disagree = rng.random(n) < np.where(fraud, 0.15, 0.004)
    sign = np.where(rng.random(n) < 0.5, 1.0, -1.0)
    return np.where(disagree, sign * np.where(fraud, 1.0, 0.1), 0.0)


def test_recall_at_rate_counts_top_share() -> None:
    y = np.array([1, 0, 1, 0])
    assert recall_at_rate(y, np.array([0.9, 0.8, 0.1, 0.0]), 0.25) == 0.5


def test_sequential_error_rate_holds_however_often_it_looks() -> None:
    """500 seeded null sequences of 20,000 paired differences, a look after every payment:
    the always-valid test refutes "no gain" in at most alpha of them; a fixed-sample z test
    repeated every 500 payments (the old evaluator's habit) refutes it far more often."""
    alpha, looks = 0.05, np.arange(500, 20_001, 500)
    sequential = naive = 0
    for seed in range(500):
        d = _null_differences(np.random.default_rng(seed), 20_000)
        sequential += rejects_at_most(d, low=-1, high=1, m=0.0, alpha=alpha)
        cum, cum2 = np.cumsum(d)[looks - 1], np.cumsum(d * d)[looks - 1]
        se = np.sqrt(np.maximum(cum2 / looks - (cum / looks) ** 2, 1e-12) / looks)
        naive += bool(((cum / looks) / se > 1.645).any())
    assert sequential / 500 <= alpha
    assert naive / 500 > 2 * alpha


def test_sequential_test_finds_a_real_gain() -> None:
    """Power: a candidate that catches 12 more frauds in 100 is found in 20,000 payments."""
    found = 0
    for seed in range(50):
        rng = np.random.default_rng(1000 + seed)
        d = _null_differences(rng, 20_000)
        d[(d == 0) & (rng.random(len(d)) < 0.02 * 0.12)] = 1.0
        found += rejects_at_most(d, low=-1, high=1, m=0.0, alpha=0.05)
    assert found >= 45


def test_a_refutation_stays_at_every_later_look() -> None:
    rng = np.random.default_rng(3)
    d = np.where(rng.random(4000) < 0.05, 1.0, 0.0) - np.where(rng.random(4000) < 0.01, 1, 0)
    capital = log_capital(d, -1, 1, 0.0)
    first = int(np.argmax(capital >= np.log(20)))
    assert first > 0
    assert all(rejects_at_most(d[:t], low=-1, high=1, m=0.0, alpha=0.05)
               for t in range(first + 1, 4000, 97))


def test_bounds_hold_the_mean_and_shrink() -> None:
    rng = np.random.default_rng(5)
    x = (rng.random(20_000) < 0.008).astype(float)
    small, large = bounds(x[:2000], low=0, high=1, alpha=0.05), bounds(x, low=0, high=1,
                                                                       alpha=0.05)
    assert small.lower <= 0.008 <= small.upper and large.lower <= 0.008 <= large.upper
    assert large.upper - large.lower < small.upper - small.lower
    assert rejects_at_least(x, low=0, high=1, m=0.02, alpha=0.05)


def test_net_gain_counts_frauds_and_charges_false_alerts() -> None:
    y = np.array([1, 1, 0, 0])
    champion = np.array([False, True, False, True])
    candidate = np.array([True, True, True, False])
    assert net_gain(y, champion, candidate, 0.1).tolist() == [1.0, 0.0, -0.1, 0.1]


def test_better_candidate_is_promoted_with_evidence_per_segment() -> None:
    rng, y, shift, champion = _world()
    candidate = _flip(rng, champion, shift, True, 0.8)  # learns the new pattern
    verdict = decide_promotion(y, rng.random(len(y)), rng.random(len(y)), champion, candidate,
                               rules=RULES, shift=shift)
    assert verdict.action == "promote", verdict.reason
    ev = verdict.evidence
    assert ev is not None and ev.gain_low > 0
    assert ev.shift_recall_candidate > ev.shift_recall_champion + 0.5
    assert ev.known_recall_candidate == ev.known_recall_champion
    row = ev.as_dict()
    assert (row["gain_rule"], row["known_rule"], row["budget_rule"]) == ("pass",) * 3
    assert {"known_frauds", "shift_frauds", "genuine_flagged_high", "live"} <= set(row)


def test_equal_candidates_are_not_promoted_by_chance() -> None:
    """A/A: the candidate is as good as the champion (its own coin flips on the same
    payments); over 40 seeded worlds at most alpha of them promote."""
    promoted = 0
    for seed in range(40):
        rng, y, shift, champion = _world(seed)
        known = (y == 1) & ~shift
        p = np.where(known, 0.8, np.where(shift, 0.05, 0.002))
        candidate = rng.random(len(y)) < p
        verdict = decide_promotion(y, rng.random(len(y)), rng.random(len(y)), champion,
                                   candidate, rules=RULES, shift=shift)
        promoted += verdict.action == "promote"
    assert promoted <= 2


def test_known_pattern_regression_blocks_promotion() -> None:
    """The candidate catches the new pattern but misses a fifth of the frauds the champion
    caught on the known patterns: a clear gain overall, kept."""
    rng, y, shift, champion = _world(1)
    candidate = _flip(rng, champion, shift, True, 0.8)
    candidate = _flip(rng, candidate, (y == 1) & ~shift & champion, False, 0.2)
    verdict = decide_promotion(y, rng.random(len(y)), rng.random(len(y)), champion, candidate,
                               rules=RULES, shift=shift)
    assert verdict.action == "keep" and "known-pattern recall" in verdict.reason
    ev = verdict.evidence
    assert ev is not None and ev.gain_rule == "pass" and ev.known_rule == "fail"
    assert ev.known_recall_candidate < 0.95 * ev.known_recall_champion
    # without the segment, the shift's gain hides the loss: every fraud counts as known
    blind = decide_promotion(y, rng.random(len(y)), rng.random(len(y)), champion, candidate,
                             rules=RULES)
    assert blind.action == "promote"


def test_one_or_two_known_frauds_missed_are_noise_three_are_a_regression() -> None:
    """Small evidence: 16 known frauds, the champion catches 14. The candidate catches the
    new pattern and proves its gain. Missing 2 of the champion's catches (12.5 %, beyond the
    5 % margin) is what a fair coin over 2 discordant frauds does 1 time in 4: promoted.
    Missing 3 (p = 1/8) blocks, and so does 4 missed against 1 gained (p = 3/16)."""
    n = 1200
    y = np.zeros(n, int)
    known, shift = np.arange(0, 1200, 75)[:16], np.arange(5, 1200, 30)[:40]
    y[known] = y[shift] = 1
    shift_mask = np.zeros(n, bool)
    shift_mask[shift] = True
    champion = np.zeros(n, bool)
    champion[known[:14]] = True
    rules = PromotionRules(min_labels=500, min_frauds=20, min_live=0)
    scores = np.linspace(0, 1, n)

    def judge(missed: int, gained: int = 0) -> str:
        candidate = champion.copy()
        candidate[shift] = True
        candidate[known[:missed]] = False
        candidate[known[14:14 + gained]] = True
        verdict = decide_promotion(y, scores, scores, champion, candidate, rules=rules,
                                   shift=shift_mask)
        assert verdict.evidence is not None and verdict.evidence.gain_rule == "pass"
        assert (verdict.evidence.known_only_champion,
                verdict.evidence.known_only_candidate) == (missed, gained)
        return verdict.action

    assert judge(2) == "promote"
    assert judge(3) == "keep"
    assert judge(4, gained=1) == "keep"
    assert judge(2, gained=2) == "promote"
    rules = PromotionRules(**{**rules.__dict__, "known_block_p": 1.0})  # any observed loss
    assert decide_promotion(y, scores, scores, champion, np.where(shift_mask, True, champion)
                            & ~np.isin(np.arange(n), known[:1]), rules=rules,
                            shift=shift_mask).action == "keep"


def test_budget_breach_blocks_promotion() -> None:
    """The candidate catches the new pattern by flagging 3 % of genuine payments (budget
    1 %): at a false-alert cost of 0.1 the net gain is still proved, the budget blocks it."""
    rng, y, shift, champion = _world(2)
    candidate = _flip(rng, champion, shift, True, 0.8)
    candidate = _flip(rng, candidate, y == 0, True, 0.03)
    verdict = decide_promotion(y, rng.random(len(y)), rng.random(len(y)), champion, candidate,
                               rules=RULES, shift=shift)
    assert verdict.action == "keep" and "budget" in verdict.reason
    ev = verdict.evidence
    assert ev is not None and ev.gain_rule == "pass" and ev.budget_rule == "fail"
    assert ev.genuine_flagged_low > RULES.alert_budget
    roomy = PromotionRules(**{**RULES.__dict__, "alert_budget": 0.05})
    assert decide_promotion(y, rng.random(len(y)), rng.random(len(y)), champion, candidate,
                            rules=roomy, shift=shift).action == "promote"


def test_backfill_alone_cannot_promote() -> None:
    rng, y, shift, champion = _world(4)
    candidate = _flip(rng, champion, shift, True, 0.8)
    rules = PromotionRules(**{**RULES.__dict__, "min_live": 5000})
    args = (y, rng.random(len(y)), rng.random(len(y)), champion, candidate)
    backfilled = decide_promotion(*args, rules=rules, shift=shift, live=np.zeros(len(y)))
    assert backfilled.action == "wait" and "live shadow results" in backfilled.reason
    assert backfilled.evidence is not None and backfilled.evidence.backfilled == len(y)
    assert backfilled.evidence.gain_rule == "pass"
    live = np.arange(len(y)) >= len(y) - 6000  # the newest 6,000 from the worker
    assert decide_promotion(*args, rules=rules, shift=shift, live=live).action == "promote"


def test_segments_are_computed_only_once_the_gain_is_proved() -> None:
    rng, y, shift, champion = _world(6)
    calls: list[int] = []

    def segments() -> np.ndarray:
        calls.append(1)
        return shift

    args = (y, rng.random(len(y)), rng.random(len(y)), champion)
    decide_promotion(*args, champion.copy(), rules=RULES, shift=segments)
    assert calls == []
    decide_promotion(*args, _flip(rng, champion, shift, True, 0.8), rules=RULES, shift=segments)
    assert calls == [1]


def test_too_few_labels_waits() -> None:
    rng, y, _, champion = _world(n=500)
    verdict = decide_promotion(y, rng.random(500), rng.random(500), champion, champion,
                               rules=RULES)
    assert verdict.action == "wait"


def test_live_rollback_on_a_known_pattern_regression() -> None:
    """The promoted model's live labels: known-pattern recall 0.6 against a predecessor's
    0.8 (floor 0.76) is a proved breach; a healthy champion is never rolled back, at any
    look."""
    rng = np.random.default_rng(8)
    n = 30_000
    y = (rng.random(n) < 0.02).astype(int)
    shift = (y == 1) & (rng.random(n) < 0.4)
    known = (y == 1) & ~shift
    bad = np.where(known, rng.random(n) < 0.6, np.where(shift, rng.random(n) < 0.8,
                                                        rng.random(n) < 0.004))
    verdict = decide_live_rollback(y, bad, shift, known_baseline=0.8, rules=RULES)
    assert verdict.action == "rollback" and verdict.extra["breach"] == "known"
    assert verdict.extra["known_recall_high"] < verdict.extra["known_recall_floor"]
    good = np.where(known, rng.random(n) < 0.8, np.where(shift, rng.random(n) < 0.8,
                                                         rng.random(n) < 0.004))
    assert all(decide_live_rollback(y[:t], good[:t], shift[:t], known_baseline=0.8,
                                    rules=RULES).action == "keep"
               for t in range(1000, n + 1, 1000))


def test_live_rollback_judges_against_the_predecessor_on_the_same_payments() -> None:
    """After a shift both models catch fewer of the known frauds (0.6 here, against the
    predecessor's 0.8 before): paired with the predecessor's decisions on the same payments,
    that is no loss and no rollback, where the earlier window's 0.8 would roll back a model
    that catches the new pattern. A paired loss (0.45 vs 0.6) is proved and rolled back."""
    rng = np.random.default_rng(10)
    n = 30_000
    y = (rng.random(n) < 0.02).astype(int)
    shift = (y == 1) & (rng.random(n) < 0.4)
    known = (y == 1) & ~shift
    hard = rng.random(n)  # how hard a known fraud is now: both models miss the same hard ones
    served = np.where(known, hard < 0.6, np.where(shift, rng.random(n) < 0.8,
                                                  rng.random(n) < 0.004))
    predecessor = np.where(known, hard < 0.6, np.nan)  # same payments, same catches
    predecessor[known & (rng.random(n) < 0.1)] = np.nan  # not scored yet: left out
    assert decide_live_rollback(y, served, shift, known_baseline=0.8,
                                rules=RULES).action == "rollback"
    assert all(decide_live_rollback(y[:t], served[:t], shift[:t], known_baseline=0.8,
                                    rules=RULES, baseline_flagged=predecessor[:t]).action
               == "keep" for t in range(1000, n + 1, 1000))
    worse = np.where(known, hard < 0.45, served)
    verdict = decide_live_rollback(y, worse, shift, known_baseline=0.8, rules=RULES,
                                   baseline_flagged=predecessor)
    assert verdict.action == "rollback" and verdict.extra["breach"] == "known"
    assert verdict.extra["paired"] == "yes"
    assert abs(verdict.extra["known_recall_predecessor"] - 0.6) < 0.03


def test_live_rollback_on_a_budget_breach() -> None:
    rng = np.random.default_rng(9)
    y = (rng.random(20_000) < 0.02).astype(int)
    loud = np.where(y == 1, True, rng.random(20_000) < 0.02)  # 2 % of genuine, budget 1 %
    verdict = decide_live_rollback(y, loud, np.zeros(len(y), bool), known_baseline=0.8,
                                   rules=RULES)
    assert verdict.action == "rollback" and verdict.extra["breach"] == "budget"


def test_regression_triggers_rollback_and_good_champion_stays() -> None:
    rng = np.random.default_rng(1)
    y_old = (rng.random(20_000) < 0.02).astype(int)
    old = _scores(y_old, 3.0, rng)
    y_new = (np.random.default_rng(2).random(20_000) < 0.02).astype(int)
    worse = _scores(y_new, 1.0, rng)
    better = _scores(y_new, 3.5, rng)
    assert decide_rollback(y_new, worse, y_old, old, min_labels=1000).action == "rollback"
    assert decide_rollback(y_new, better, y_old, old, min_labels=1000).action == "keep"
    assert decide_rollback(y_new[:10], worse[:10], y_old, old, min_labels=1000).action == "wait"
