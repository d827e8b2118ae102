"""The online and offline feature forms agree on every value of a seeded simulation."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from features import (
    FEATURE_NAMES,
    CardState,
    FeatureConfig,
    LabelRecord,
    OnlineFeatureStore,
    TerminalState,
    TransactionRecord,
    card_stage,
    compute_features,
    terminal_stage,
    transaction_stage,
)
from training.simulation import DriftScenario, SimulationConfig, simulate
from training.stream_order import feature_events, label_frame

CONFIG = FeatureConfig()
SIM = SimulationConfig(
    n_customers=500,
    n_terminals=1000,
    n_days=60,
    seed=3,
    drift=DriftScenario("card_testing", start_day=40),
)


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    df = simulate(SIM)
    assert len(df) >= 50_000
    return df


@pytest.fixture(scope="module")
def offline(frame: pd.DataFrame) -> np.ndarray:
    result = compute_features(frame, config=CONFIG)
    assert result["transaction_id"].tolist() == frame["transaction_id"].tolist()
    assert tuple(result.columns[1:]) == FEATURE_NAMES
    return result[list(FEATURE_NAMES)].to_numpy()


def _replay(store: OnlineFeatureStore, events: list, rows: dict[str, list[float]]) -> None:
    for event in events:
        if isinstance(event, TransactionRecord):
            rows[event.transaction_id] = store.process_transaction(event)
        else:
            store.process_label(event)


def _in_frame_order(frame: pd.DataFrame, rows: dict[str, list[float]]) -> np.ndarray:
    return np.array([rows[i] for i in frame["transaction_id"]])


def test_online_replay_equals_offline(frame: pd.DataFrame, offline: np.ndarray) -> None:
    rows: dict[str, list[float]] = {}
    store = OnlineFeatureStore(CONFIG)
    _replay(store, list(feature_events(frame)), rows)
    online = _in_frame_order(frame, rows)
    np.testing.assert_allclose(online, offline, atol=1e-9, rtol=0)
    # the frame exercises every feature: none is constant
    assert (offline.std(axis=0) > 0).all()
    assert offline[:, FEATURE_NAMES.index("terminal_risk_7d")].max() > 0.5


def test_state_round_trip_mid_stream(frame: pd.DataFrame, offline: np.ndarray) -> None:
    events = list(feature_events(frame))
    half = len(events) // 2
    rows: dict[str, list[float]] = {}
    store = OnlineFeatureStore(CONFIG)
    _replay(store, events[:half], rows)
    restored = OnlineFeatureStore.from_dict(json.loads(json.dumps(store.to_dict())), CONFIG)
    _replay(restored, events[half:], rows)
    np.testing.assert_allclose(_in_frame_order(frame, rows), offline, atol=1e-9, rtol=0)


def test_out_of_order_terminal_stage(frame: pd.DataFrame, offline: np.ndarray) -> None:
    """Two stages: cards in order, terminals seeing transactions up to 10 minutes late."""
    rng = np.random.default_rng(11)
    events = list(feature_events(frame))
    cards: dict[str, CardState] = {}
    front: dict[str, list[float]] = {}
    for event in events:
        if isinstance(event, TransactionRecord):
            state = cards.setdefault(event.card_id, CardState())
            front[event.transaction_id] = transaction_stage(event) + card_stage(
                state, event, CONFIG
            )
    arrival = np.array(
        [
            e.event_time_us + int(rng.integers(0, 600_000_000))
            if isinstance(e, TransactionRecord)
            else e.label_time_us
            for e in events
        ]
    )
    late = [events[i] for i in np.argsort(arrival, kind="stable")]
    assert late != events
    terminals: dict[str, TerminalState] = {}
    back: dict[str, list[float]] = {}
    for event in late:
        state = terminals.setdefault(event.terminal_id, TerminalState())
        if isinstance(event, LabelRecord):
            state.apply_label(
                event.transaction_id,
                event.transaction_time_us,
                event.is_fraud,
                event.label_time_us,
            )
        else:
            back[event.transaction_id] = terminal_stage(state, event, CONFIG)
    rows = {k: front[k] + back[k] for k in front}
    np.testing.assert_allclose(_in_frame_order(frame, rows), offline, atol=1e-9, rtol=0)


def test_delayed_and_missing_labels_agree(frame: pd.DataFrame) -> None:
    """Labels with varying delays, some never arriving: both forms count the same ones."""
    rng = np.random.default_rng(5)
    sample = frame.head(20_000)
    labels = label_frame(sample)
    labels["label_time"] = labels["transaction_time"] + pd.to_timedelta(
        rng.integers(0, 20 * 86_400, size=len(labels)), unit="s"
    )
    labels = labels[rng.random(len(labels)) < 0.8]
    offline = compute_features(sample, labels, CONFIG)[list(FEATURE_NAMES)].to_numpy()
    rows: dict[str, list[float]] = {}
    _replay(OnlineFeatureStore(CONFIG), list(feature_events(sample, labels)), rows)
    np.testing.assert_allclose(_in_frame_order(sample, rows), offline, atol=1e-9, rtol=0)


def test_zero_label_delay_agrees(frame: pd.DataFrame) -> None:
    config = FeatureConfig(label_delay_days=0, card_windows=(1, 7), terminal_windows=(1, 3))
    sample = frame.head(20_000).assign(label_time=lambda f: f["event_time"])
    offline = compute_features(sample, config=config)[list(config.names)].to_numpy()
    rows: dict[str, list[float]] = {}
    _replay(OnlineFeatureStore(config), list(feature_events(sample)), rows)
    np.testing.assert_allclose(_in_frame_order(sample, rows), offline, atol=1e-9, rtol=0)


@pytest.fixture(scope="module")
def reported() -> pd.DataFrame:
    """The first 20 000 payments with labels from the fraud-report arrival."""
    from dataclasses import replace

    from training.simulation.arrival import REPORTS

    return simulate(replace(SIM, arrival=REPORTS)).head(20_000)


ARRIVAL = FeatureConfig(label_delay_days=0)  # each label from its own arrival time


def test_report_arrival_times_agree_without_a_global_delay(reported: pd.DataFrame) -> None:
    """Mixed arrival times (hours to weeks for frauds, 7 days for genuine payments), no
    global shift: both forms count each fraud from its own ``label_time``."""
    offline = compute_features(reported, config=ARRIVAL)[list(ARRIVAL.names)].to_numpy()
    rows: dict[str, list[float]] = {}
    _replay(OnlineFeatureStore(ARRIVAL), list(feature_events(reported)), rows)
    np.testing.assert_allclose(_in_frame_order(reported, rows), offline, atol=1e-9, rtol=0)
    shifted = compute_features(reported, config=CONFIG)[list(CONFIG.names)].to_numpy()
    assert not np.allclose(shifted, offline)  # the mode matters


def test_labels_read_before_their_transactions_agree(reported: pd.DataFrame) -> None:
    """A backlog: every third label is read before its transaction (it waits as pending);
    the features equal the offline ones, which only look at label times."""
    events = list(feature_events(reported))
    early = [e for i, e in enumerate(events) if isinstance(e, LabelRecord) and i % 3 == 0]
    moved = {id(e) for e in early}
    assert sum(e.is_fraud for e in early) > 10
    order = early + [e for e in events if id(e) not in moved]
    offline = compute_features(reported, config=ARRIVAL)[list(ARRIVAL.names)].to_numpy()
    rows: dict[str, list[float]] = {}
    _replay(OnlineFeatureStore(ARRIVAL), order, rows)
    np.testing.assert_allclose(_in_frame_order(reported, rows), offline, atol=1e-9, rtol=0)
