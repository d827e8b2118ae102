"""The retrainer's label path: verdicts joined with arriving labels feed the error detectors."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

from lifecycle.label_drift import LabelDriftWatch
from lifecycle.labelstore import LabelStore
from schemas.events import LabelFeedback, Verdict
from sentinel.settings import DriftSettings, Settings

T0 = datetime(2024, 5, 1, tzinfo=UTC)


def _world(n: int, change_at: int, seed: int = 3) -> tuple[list[Verdict], list[LabelFeedback]]:
    """5 % fraud; the champion catches 80 % of frauds, then 40 % from ``change_at``."""
    rng = np.random.default_rng(seed)
    y = rng.random(n) < 0.05
    miss_p = np.where(np.arange(n) < change_at, 0.2, 0.6)
    flagged = y & (rng.random(n) >= miss_p) | (~y & (rng.random(n) < 0.01))
    verdicts, labels = [], []
    for i in range(n):
        t = T0 + timedelta(seconds=i)
        verdicts.append(Verdict(
            transaction_id=f"t{i}", card_id="c", score=0.9 if flagged[i] else 0.1,
            decision="review" if flagged[i] else "approve", model_name="m", model_version="7",
            feature_hash="0" * 32, event_time=t, scored_at=t, latency_ms=1.0))
        labels.append(LabelFeedback(transaction_id=f"t{i}", card_id="c", terminal_id="m",
                                    is_fraud=bool(y[i]), transaction_time=t,
                                    reported_at=t + timedelta(days=1), source="investigation"))
    return verdicts, labels


def _watch(tmp_path: Path) -> tuple[LabelDriftWatch, LabelStore]:
    store = LabelStore(tmp_path / "store.sqlite")
    settings = Settings(data_dir=tmp_path, drift=DriftSettings(grace_events=1000))
    return LabelDriftWatch(settings, store), store


def test_a_recall_drop_on_arriving_labels_raises_a_missed_fraud_alert(tmp_path: Path) -> None:
    watch, store = _watch(tmp_path)
    verdicts, labels = _world(60_000, change_at=40_000)
    store.add_verdicts(verdicts)
    fired = []
    for lo in range(0, len(labels), 1000):
        fired += [(lo, a) for a in watch.observe(labels[lo:lo + 1000])]
    missed = [(lo, a) for lo, a in fired if a.signal == "missed_fraud"]
    assert missed, fired
    assert 40_000 <= missed[0][0] <= 48_000
    assert all(lo >= 40_000 for lo, _ in fired)  # nothing while recall holds
    assert {a.model_version for _, a in fired} == {"7"}
    assert watch.joined == 60_000 and watch.unmatched == 0


def test_labels_without_a_stored_verdict_are_counted_not_guessed(tmp_path: Path) -> None:
    watch, store = _watch(tmp_path)
    verdicts, labels = _world(100, change_at=100)
    store.add_verdicts(verdicts[:60])
    assert watch.observe(labels) == []
    assert (watch.joined, watch.unmatched) == (60, 40)
    assert watch.observe([]) == []
