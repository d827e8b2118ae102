"""Hand-computed feature values on tiny histories: a wrong definition fails here."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pytest

from features import (
    FEATURE_NAMES,
    FeatureConfig,
    FeatureError,
    OnlineFeatureStore,
    TerminalState,
    TransactionRecord,
    compute_features,
)
from schemas.events import Transaction
from training.stream_order import feature_events, label_frame, stream_order

MONDAY = pd.Timestamp("2018-04-02 12:00", tz="UTC")
H = pd.Timedelta(hours=1)
D = pd.Timedelta(days=1)
WEEK = pd.Timedelta(days=7)


def _frame(rows: list[tuple], delay: pd.Timedelta = WEEK) -> pd.DataFrame:
    frame = pd.DataFrame(
        rows,
        columns=["transaction_id", "event_time", "card_id", "terminal_id", "amount", "is_fraud"],
    )
    frame["label_time"] = frame["event_time"] + delay
    return frame


def _both(
    frame: pd.DataFrame, labels: pd.DataFrame | None = None, config: FeatureConfig | None = None
) -> pd.DataFrame:
    """Offline features, after checking the online replay gives the same values."""
    config = config or FeatureConfig()
    offline = compute_features(frame, labels, config).set_index("transaction_id")
    store = OnlineFeatureStore(config)
    rows = {}
    for event in feature_events(frame, label_frame(frame) if labels is None else labels):
        if isinstance(event, TransactionRecord):
            rows[event.transaction_id] = store.features(event)
        else:
            store.process_label(event)
    online = pd.DataFrame.from_dict(rows, orient="index").loc[offline.index, list(config.names)]
    np.testing.assert_allclose(online.to_numpy(), offline.to_numpy(), atol=1e-9, rtol=0)
    return offline


@pytest.fixture(scope="module")
def card() -> pd.DataFrame:
    return _both(
        _frame(
            [
                ("a", MONDAY, "c1", "t1", 10.0, 0),
                ("b", MONDAY + H, "c1", "t1", 20.0, 0),
                ("c", MONDAY + D + H / 2, "c1", "t2", 30.0, 0),
                ("d", MONDAY + D + H, "c1", "t1", 20.0, 0),
                ("e", MONDAY + 40 * D, "c1", "t2", 5.0, 0),
            ]
        )
    )


def test_card_counts_and_means_include_the_transaction(card: pd.DataFrame) -> None:
    assert card.loc["a", ["card_nb_tx_1d", "card_avg_amount_1d"]].tolist() == [1, 10]
    assert card.loc["b", ["card_nb_tx_1d", "card_avg_amount_1d"]].tolist() == [2, 15]
    # (t - 1 day, t]: a (25.5 h earlier) drops out, b (23.5 h) stays
    assert card.loc["c", ["card_nb_tx_1d", "card_avg_amount_1d"]].tolist() == [2, 25]
    assert card.loc["c", ["card_nb_tx_7d", "card_avg_amount_7d"]].tolist() == [3, 20]
    assert card.loc["d", ["card_nb_tx_30d", "card_avg_amount_30d"]].tolist() == [4, 20]
    assert card.loc["e", ["card_nb_tx_30d", "card_avg_amount_30d"]].tolist() == [1, 5]


def test_card_hour_window_excludes_exactly_one_hour_ago(card: pd.DataFrame) -> None:
    assert card["card_nb_tx_1h"].tolist() == [1, 1, 1, 2, 1]


def test_card_history_comparisons(card: pd.DataFrame) -> None:
    assert card["card_amount_ratio_30d"].tolist() == [1.0, 2.0, 2.0, 1.0, 1.0]
    # c: previous 10 and 20, mean 15, population std 5 -> (30 - 15) / 5
    assert card["card_amount_zscore_30d"].tolist() == [0.0, 0.0, 3.0, 0.0, 0.0]
    assert card["card_terminal_seen_30d"].tolist() == [0, 1, 0, 1, 0]
    assert card["card_seconds_since_last"].tolist() == [2_592_000, 3600, 84_600, 1800, 2_592_000]


def test_card_amount_rank_and_older_baselines(card: pd.DataFrame) -> None:
    # share of the previous 30 days' amounts below this one; 0.5 with no history
    assert card["card_amount_rank_30d"].tolist() == [0.5, 1.0, 1.0, 1 / 3, 0.5]
    # mean of (t - 30 d, t - 1 d]: c sees a (10) only; d sees a and b (b is exactly 1 day back)
    assert card["card_amount_ratio_30d_before_1d"].tolist() == [1.0, 1.0, 3.0, 20 / 15, 1.0]
    assert card["card_amount_ratio_30d_before_7d"].tolist() == [1.0] * 5


def test_card_older_baseline_ignores_recent_burst() -> None:
    out = _both(
        _frame(
            [
                ("x", MONDAY, "c1", "t1", 10.0, 0),
                ("y", MONDAY + 8 * D, "c1", "t1", 40.0, 0),
                ("z", MONDAY + 8 * D + H, "c1", "t1", 25.0, 0),
            ]
        )
    )
    # z: the 30-day mean (25) includes y; the baselines older than 1 and 7 days hold x only
    assert out.loc["z", "card_amount_ratio_30d"] == 1.0
    assert out.loc["z", "card_amount_ratio_30d_before_7d"] == 2.5
    assert out.loc["z", "card_amount_ratio_30d_before_1d"] == 2.5
    assert out.loc["z", "card_amount_rank_30d"] == 0.5
    assert out.loc["y", "card_amount_ratio_30d_before_7d"] == 4.0


def test_calendar_features() -> None:
    saturday = pd.Timestamp("2018-04-07", tz="UTC")
    frame = _frame(
        [
            ("a", saturday + pd.Timedelta(hours=6, minutes=59), "c1", "t1", 1.0, 0),
            ("b", saturday + 7 * H, "c1", "t1", 1.0, 0),
            ("c", saturday + D + 23 * H, "c1", "t1", 1.0, 0),
            ("d", saturday + 2 * D, "c1", "t1", 1.0, 0),
        ]
    )
    out = _both(frame)
    assert out["is_weekend"].tolist() == [1, 1, 1, 0]
    assert out["is_night"].tolist() == [1, 0, 0, 1]


def _terminal_history() -> pd.DataFrame:
    return _frame(
        [
            ("a", MONDAY, "c1", "T", 10.0, 1),
            ("b", MONDAY + 6 * H, "c2", "T", 10.0, 0),
            ("q1", MONDAY + 7 * D - pd.Timedelta(seconds=1), "c3", "T", 10.0, 0),
            ("q2", MONDAY + 7 * D, "c4", "T", 10.0, 0),
            ("q3", MONDAY + 7 * D + 6 * H, "c5", "T", 10.0, 0),
            ("q4", MONDAY + 8 * D, "c6", "T", 10.0, 0),
            ("x", MONDAY + 7 * D, "c7", "U", 10.0, 0),
        ]
    )


def test_terminal_windows_are_shifted_by_the_delay() -> None:
    out = _both(_terminal_history())
    # q1: window (day -1, day 0 12:00 - 1 s]: empty
    assert out.loc["q1", ["terminal_nb_tx_1d", "terminal_risk_1d"]].tolist() == [0, 0]
    # q2: (day -1 12:00, day 0 12:00] holds a (its label arrived exactly at q2's time)
    assert out.loc["q2", ["terminal_nb_tx_1d", "terminal_risk_1d"]].tolist() == [1, 1]
    assert out.loc["q3", ["terminal_nb_tx_1d", "terminal_risk_1d"]].tolist() == [2, 0.5]
    # q4: 1 day window (day 0 12:00, day 1 12:00] holds b only; 7 days hold a and b
    assert out.loc["q4", ["terminal_nb_tx_1d", "terminal_risk_1d"]].tolist() == [1, 0]
    assert out.loc["q4", ["terminal_nb_tx_7d", "terminal_risk_7d"]].tolist() == [2, 0.5]
    assert out.loc["x", ["terminal_nb_tx_30d", "terminal_risk_30d"]].tolist() == [0, 0]


def test_terminal_risk_counts_only_arrived_labels() -> None:
    frame = _terminal_history()
    labels = label_frame(frame)
    labels.loc[labels["transaction_id"] == "a", "label_time"] = MONDAY + 7 * D + 3 * H
    out = _both(frame, labels)
    assert out.loc["q2", ["terminal_nb_tx_1d", "terminal_risk_1d"]].tolist() == [1, 0]
    assert out.loc["q3", ["terminal_nb_tx_1d", "terminal_risk_1d"]].tolist() == [2, 0.5]


FRAUD_SPAN = [
    "terminal_nb_fraud_30d",
    "terminal_seconds_since_first_fraud_30d",
    "terminal_seconds_since_last_fraud_30d",
]


def test_terminal_fraud_count_and_span() -> None:
    out = _both(_terminal_history())
    assert out.loc["q1", FRAUD_SPAN].tolist() == [0, -1, -1]
    # a (label arrived exactly at q2's time) is 7 days before q2, 7 d 6 h before q3
    assert out.loc["q2", FRAUD_SPAN].tolist() == [1, 604_800, 604_800]
    assert out.loc["q3", FRAUD_SPAN].tolist() == [1, 626_400, 626_400]
    assert out.loc["x", FRAUD_SPAN].tolist() == [0, -1, -1]
    labels = label_frame(_terminal_history())
    labels.loc[labels["transaction_id"] == "a", "label_time"] = MONDAY + 7 * D + 3 * H
    late = _both(_terminal_history(), labels)
    assert late.loc["q2", FRAUD_SPAN].tolist() == [0, -1, -1]
    assert late.loc["q3", FRAUD_SPAN].tolist() == [1, 626_400, 626_400]


def test_terminal_fraud_span_skips_labels_still_to_come() -> None:
    frame = _frame(
        [
            ("f1", MONDAY, "c1", "T", 10.0, 1),
            ("g", MONDAY + D, "c2", "T", 10.0, 0),
            ("f2", MONDAY + 2 * D, "c3", "T", 10.0, 1),
            ("q", MONDAY + 10 * D, "c4", "T", 10.0, 0),
        ]
    )
    assert _both(frame).loc["q", FRAUD_SPAN].tolist() == [2, 864_000, 691_200]
    for late, expected in (("f1", 691_200), ("f2", 864_000)):
        labels = label_frame(frame)
        labels.loc[labels["transaction_id"] == late, "label_time"] = MONDAY + 11 * D
        out = _both(frame, labels)
        assert out.loc["q", FRAUD_SPAN].tolist() == [1, expected, expected]


def test_zero_delay_excludes_the_transaction_itself() -> None:
    config = FeatureConfig(label_delay_days=0)
    frame = _frame(
        [("a", MONDAY, "c1", "T", 1.0, 1), ("b", MONDAY + 2 * H, "c2", "T", 1.0, 0)],
        delay=H,
    )
    out = _both(frame, config=config)
    assert out.loc["a", ["terminal_nb_tx_1d", "terminal_risk_1d"]].tolist() == [0, 0]
    assert out.loc["b", ["terminal_nb_tx_1d", "terminal_risk_1d"]].tolist() == [1, 1]


def test_feature_names_and_config() -> None:
    assert len(FEATURE_NAMES) == 26
    assert FEATURE_NAMES[:3] == ("amount", "is_weekend", "is_night")
    assert "terminal_risk_30d" in FEATURE_NAMES
    from sentinel.settings import FeatureSettings

    assert FeatureConfig.from_settings(FeatureSettings(label_delay_days=3)).label_delay_days == 3
    with pytest.raises(ValueError, match="windows"):
        FeatureConfig(card_windows=())


def test_labels_for_unknown_or_expired_transactions_are_ignored() -> None:
    config = FeatureConfig()
    state = TerminalState()
    t0 = 1_522_670_400_000_000
    state.update("a", t0, config)
    assert not state.apply_label("zz", t0, True, t0 + 1)
    assert state.apply_label("a", t0, True, t0 + 1)
    assert state.apply_label("a", t0, True, t0 + 1)  # idempotent
    assert state.fraud_ids == ["a"]
    state.update("b", t0 + 40 * 86_400_000_000, config)
    assert state.ids == ["b"] and state.fraud_ids == []
    assert not state.apply_label("a", t0, True, t0 + 1)
    restored = TerminalState.from_dict(json.loads(json.dumps(state.to_dict())))
    assert restored.to_dict() == state.to_dict()


def test_adapter_from_the_wire_contract() -> None:
    event = Transaction(
        transaction_id="x1",
        card_id="c1",
        terminal_id="t1",
        amount=12.5,
        event_time=datetime(2018, 4, 2, 12, 0, 0, 250, tzinfo=UTC),
    )
    record = TransactionRecord.from_event(event)
    assert record.event_time_us == 1_522_670_400_000_250
    row = OnlineFeatureStore().features(record)
    assert row["amount"] == 12.5 and row["card_nb_tx_1d"] == 1


def test_stream_order_puts_labels_known_at_t_before_transactions_at_t() -> None:
    frame = _terminal_history()
    kinds = [(kind, row.transaction_id) for kind, row in stream_order(frame)]
    assert kinds.index(("label", "a")) < kinds.index(("transaction", "q2"))
    assert kinds.index(("transaction", "q1")) < kinds.index(("label", "a"))
    assert [k for k, _ in kinds].count("label") == len(frame)


def test_missing_columns_are_a_feature_error() -> None:
    with pytest.raises(FeatureError, match="amount"):
        compute_features(_terminal_history().drop(columns="amount"))


def test_a_label_before_its_transaction_is_applied_when_the_transaction_arrives() -> None:
    """Arrival order does not matter: the features equal those of label-after-transaction."""
    config = FeatureConfig()
    t0 = 1_522_670_400_000_000
    day = 86_400_000_000
    early, late = TerminalState(), TerminalState()
    assert not early.apply_label("a", t0, True, t0 + 3 * day)  # before "a" arrived: pending
    assert early.pending == {"a": (t0, True, t0 + 3 * day)}
    for state in (early, late):
        state.update("a", t0, config)
    assert late.apply_label("a", t0, True, t0 + 3 * day)
    assert early.pending == {} and early.fraud_ids == ["a"]
    at = t0 + 7 * day + 1  # the delay-shifted 1-day window holds t0
    assert early.features(at, config) == late.features(at, config)
    assert early.features(at, config)[1] == 1.0  # the 1-day window's fraud rate counts it
    restored = TerminalState.from_dict(json.loads(json.dumps(early.to_dict())))
    assert restored.to_dict() == early.to_dict()


def test_pending_labels_expire_with_the_window_horizon() -> None:
    config = FeatureConfig()
    t0 = 1_522_670_400_000_000
    state = TerminalState()
    state.apply_label("never", t0, True, t0 + 1)
    state.update("b", t0 + 60 * 86_400_000_000, config)
    assert state.pending == {}
