"""The label horizon (``reports.presume_genuine_hours``): with fraud reports a genuine
payment's label comes days later, so the retrainer reads labels complete up to a horizon and
none after it; off, the store reads what arrived."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest

from lifecycle.labelstore import LabelStore
from schemas.events import FraudReport, LabelFeedback, ShadowResult, Transaction

T0 = datetime(2024, 3, 1, tzinfo=UTC)
HOURS = 12


def _store(path: Path, presume: float) -> LabelStore:
    """Payments t0..t9 an hour apart from T0, then t10 at T0 + 30 h (the newest: the horizon
    is T0 + 18 h with 12 hours). t1 has a genuine chargeback, t3 a fraud label, t8 a fraud
    report by id, t9 a fraud label that came before the horizon, t10 a fraud label; every
    payment has a shadow result."""
    store = LabelStore(path, presume_genuine_hours=presume)
    times = [T0 + timedelta(hours=h) for h in (*range(10), 30)]
    store.add_transactions(Transaction(transaction_id=f"t{i}", card_id="c", terminal_id="m",
                                       amount=1.0, event_time=t) for i, t in enumerate(times))

    def label(i: int, fraud: bool, after_h: float) -> LabelFeedback:
        return LabelFeedback(transaction_id=f"t{i}", card_id="c", terminal_id="m",
                             is_fraud=fraud, transaction_time=times[i],
                             reported_at=times[i] + timedelta(hours=after_h), source="report")

    store.add_labels([label(1, False, 1), label(3, True, 1), label(9, True, 2),
                      label(10, True, 0.5)])
    store.add_reports([FraudReport(report_id="r8", card_id="c", transaction_id="t8",
                                   reported_at=times[8] + timedelta(hours=3))])
    store.add_shadow(ShadowResult(
        transaction_id=f"t{i}", card_id="c", champion_version="1", candidate_version="2",
        champion_score=0.1, candidate_score=0.2, champion_decision="approve",
        candidate_decision="approve", agree=True, event_time=t)
        for i, t in enumerate(times))
    return store


def _labels(frame: pd.DataFrame) -> dict[str, tuple[int, str]]:
    return {r.transaction_id: (int(r.is_fraud), r.label_source)
            for r in frame.itertuples(index=False)}


def test_without_the_presumption_only_arrived_labels_count(tmp_path: Path) -> None:
    store = _store(tmp_path / "s.sqlite", 0)
    assert store.horizon() is None
    tx, labels = store.training_frame()
    assert len(tx) == 11
    assert _labels(labels) == {"t1": (0, "report"), "t3": (1, "report"), "t8": (1, "report"),
                               "t9": (1, "report"), "t10": (1, "report")}
    assert (store.labels_since(T0), store.frauds_since(T0)) == (5, 4)
    assert set(store.shadow_joined("2")["transaction_id"]) == {"t1", "t3", "t8", "t9", "t10"}


def test_up_to_the_horizon_every_payment_is_labelled_and_none_after_it(tmp_path: Path) -> None:
    store = _store(tmp_path / "s.sqlite", HOURS)
    assert store.horizon() == pd.Timestamp(T0 + timedelta(hours=18))
    tx, labels = store.training_frame()
    assert len(tx) == 11  # every payment stays for the features' history
    expected = {f"t{i}": (0, "presumed") for i in range(10)}
    expected |= {"t1": (0, "report"), "t3": (1, "report"), "t8": (1, "report"),
                 "t9": (1, "report")}  # t10 is after the horizon, fraud label or not
    assert _labels(labels) == expected
    presumed = labels[labels["label_source"] == "presumed"].merge(tx, on="transaction_id")
    assert (presumed["label_time"] - presumed["event_time"] == pd.Timedelta(hours=HOURS)).all()
    assert list(labels["label_time"]) == sorted(labels["label_time"])
    assert (store.labels_since(T0), store.frauds_since(T0)) == (10, 3)
    assert (store.labels_since(T0 + timedelta(hours=5)),
            store.frauds_since(T0 + timedelta(hours=5))) == (5, 2)
    joined = store.shadow_joined("2")
    assert _labels(joined) == expected


@pytest.mark.parametrize("presume", [0, HOURS])
def test_a_fraud_that_comes_later_wins_over_the_presumption(tmp_path: Path,
                                                            presume: float) -> None:
    store = _store(tmp_path / "s.sqlite", presume)
    store.add_labels([LabelFeedback(transaction_id="t5", card_id="c", terminal_id="m",
                                    is_fraud=True, transaction_time=T0 + timedelta(hours=5),
                                    reported_at=T0 + timedelta(days=3), source="chargeback")])
    _, labels = store.training_frame()
    assert _labels(labels)["t5"] == (1, "chargeback")
