"""Promotion on evidence and rollback: pure, synthetic scores with a seeded generator."""

from __future__ import annotations

import numpy as np

from training.promotion import compare, decide_promotion, decide_rollback, recall_at_rate


def _scores(y: np.ndarray, separation: float, rng: np.random.Generator) -> np.ndarray:
    return 1 / (1 + np.exp(-(rng.normal(0, 1, len(y)) + separation * y - 4)))


def _world(seed: int = 0, n: int = 20_000):
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.02).astype(int)
    return rng, y


def test_recall_at_rate_counts_top_share() -> None:
    y = np.array([1, 0, 1, 0])
    assert recall_at_rate(y, np.array([0.9, 0.8, 0.1, 0.0]), 0.25) == 0.5


def test_better_candidate_is_promoted_with_evidence() -> None:
    rng, y = _world()
    champion, candidate = _scores(y, 2.0, rng), _scores(y, 3.5, rng)
    flagged = champion >= np.quantile(champion, 0.98)
    verdict = decide_promotion(y, champion, candidate, flagged, min_labels=1000, min_frauds=30,
                               rounds=100, seed=1)
    assert verdict.action == "promote"
    ev = verdict.evidence
    assert ev is not None and ev.ap_gain_low > 0 and ev.recall_candidate > ev.recall_champion
    assert set(ev.as_dict()) >= {"ap_champion", "ap_candidate", "ap_gain_low", "alert_rate"}


def test_worse_candidate_is_never_promoted() -> None:
    for seed in range(5):
        rng, y = _world(seed)
        champion, candidate = _scores(y, 3.0, rng), _scores(y, 2.0, rng)
        flagged = champion >= np.quantile(champion, 0.98)
        verdict = decide_promotion(y, champion, candidate, flagged, min_labels=1000,
                                   min_frauds=30, rounds=100, seed=seed)
        assert verdict.action == "keep"


def test_equal_candidate_is_not_promoted_by_chance() -> None:
    rng, y = _world(7)
    champion, candidate = _scores(y, 3.0, rng), _scores(y, 3.0, rng)
    verdict = decide_promotion(y, champion, candidate, champion > 0.5, min_labels=1000,
                               min_frauds=30, rounds=100, seed=7)
    assert verdict.action == "keep"


def test_too_few_labels_waits() -> None:
    rng, y = _world(n=500)
    verdict = decide_promotion(y, _scores(y, 2, rng), _scores(y, 4, rng), y == 1,
                               min_labels=1000, min_frauds=30)
    assert verdict.action == "wait"


def test_bootstrap_is_seeded() -> None:
    rng, y = _world()
    a, b = _scores(y, 2.0, rng), _scores(y, 2.5, rng)
    assert compare(y, a, b, 0.02, rounds=100, seed=3) == compare(y, a, b, 0.02, rounds=100, seed=3)


def test_regression_triggers_rollback_and_good_champion_stays() -> None:
    rng, y_old = _world(1)
    old = _scores(y_old, 3.0, rng)
    _, y_new = _world(2)
    worse = _scores(y_new, 1.0, rng)
    better = _scores(y_new, 3.5, rng)
    assert decide_rollback(y_new, worse, y_old, old, min_labels=1000).action == "rollback"
    assert decide_rollback(y_new, better, y_old, old, min_labels=1000).action == "keep"
    assert decide_rollback(y_new[:10], worse[:10], y_old, old, min_labels=1000).action == "wait"


def test_a_better_ranking_that_flags_fewer_frauds_at_its_own_threshold_is_kept() -> None:
    """A candidate that ranks better but whose review threshold flags fewer frauds than the
    champion's would lose recall once served; with its decisions known it is kept."""
    rng, y = _world(3)
    champion, candidate = _scores(y, 2.0, rng), _scores(y, 3.5, rng)
    flagged = champion >= np.quantile(champion, 0.98)
    strict = candidate >= np.quantile(candidate, 0.995)  # a much higher threshold
    loose = candidate >= np.quantile(candidate, 0.98)
    args = dict(min_labels=1000, min_frauds=30, rounds=100, seed=1)
    kept = decide_promotion(y, champion, candidate, flagged, candidate_flagged=strict, **args)
    assert kept.action == "keep" and "flags fewer frauds" in kept.reason
    assert kept.evidence.recall_own_candidate < kept.evidence.recall_own_champion
    promoted = decide_promotion(y, champion, candidate, flagged, candidate_flagged=loose, **args)
    assert promoted.action == "promote"
    assert promoted.evidence.recall_own_candidate >= promoted.evidence.recall_own_champion
    # unknown decisions (shadow rows from before they were stored): the rank test alone
    unknown = np.full(len(y), np.nan)
    alone = decide_promotion(y, champion, candidate, flagged, candidate_flagged=unknown, **args)
    assert alone.action == "promote" and np.isnan(alone.evidence.recall_own_candidate)
    assert "recall_own_candidate" not in alone.evidence.as_dict()
