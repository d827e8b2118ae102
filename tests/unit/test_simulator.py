"""The handbook simulator: reproducible, the book's patterns, drift only from its start day."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from training.simulation import (
    COLUMNS,
    DriftScenario,
    SimulationConfig,
    SimulationError,
    day_index,
    read_csv,
    read_parquet,
    simulate,
    write_csv,
    write_parquet,
)

SMALL = SimulationConfig(n_customers=500, n_terminals=1000, n_days=60, seed=7)
START = 30


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    return simulate(SMALL)


@pytest.fixture(scope="module")
def drifted() -> dict[str, pd.DataFrame]:
    kinds = ("card_testing", "night_fraud", "amount_shift", "fraud_rate")
    return {
        kind: simulate(SimulationConfig(**{**SMALL.__dict__, "drift": DriftScenario(kind, START)}))
        for kind in kinds
    }


def test_same_seed_same_frame(frame: pd.DataFrame) -> None:
    pd.testing.assert_frame_equal(simulate(SMALL), frame)


def test_different_seed_different_frame(frame: pd.DataFrame) -> None:
    other = simulate(SimulationConfig(**{**SMALL.__dict__, "seed": 8}))
    assert len(other) != len(frame) or not other["amount"].equals(frame["amount"])


def test_shape_ids_and_order(frame: pd.DataFrame) -> None:
    assert tuple(frame.columns) == COLUMNS
    assert 50_000 < len(frame) < 65_000  # 500 customers x 2 tx/day x 60 days x 0.97
    assert frame["transaction_id"].is_unique
    assert frame["transaction_id"].iloc[0] == "tx00000001"
    assert frame["card_id"].str.fullmatch(r"c\d{5}").all()
    assert frame["terminal_id"].str.fullmatch(r"t\d{5}").all()
    assert frame["event_time"].is_monotonic_increasing
    assert str(frame["event_time"].dtype) == "datetime64[ns, UTC]"
    assert (frame["label_time"] - frame["event_time"] == pd.Timedelta(days=7)).all()
    assert frame["event_time"].min() >= pd.Timestamp("2018-04-01", tz="UTC")
    assert frame["event_time"].max() < pd.Timestamp("2018-05-31", tz="UTC")


def test_amounts_are_cents_and_non_negative(frame: pd.DataFrame) -> None:
    assert (frame["amount"] >= 0).all()
    np.testing.assert_allclose(frame["amount"], frame["amount"].round(2), atol=1e-9, rtol=0)


def test_fraud_labels_match_scenarios(frame: pd.DataFrame) -> None:
    assert (frame["is_fraud"] == (frame["fraud_scenario"] > 0)).all()
    assert set(frame["fraud_scenario"].unique()) == {0, 1, 2, 3}
    counts = frame["fraud_scenario"].value_counts()
    # 1000 terminals and 2 compromised per day give a far higher rate than the book's 0.84 %
    assert 0.03 < frame["is_fraud"].mean() < 0.12
    assert counts[1] > 0
    assert counts[2] > counts[3] > 0


def test_every_amount_above_220_is_fraud(frame: pd.DataFrame) -> None:
    assert frame.loc[frame["amount"] > 220, "is_fraud"].all()
    assert (frame.loc[frame["fraud_scenario"] == 1, "amount"] > 220).all()


def test_compromised_terminal_days_are_all_fraud(frame: pd.DataFrame) -> None:
    day = day_index(frame, SMALL)
    hit = frame.assign(day=day)
    compromised = hit.loc[hit["fraud_scenario"] == 2, ["terminal_id", "day"]].drop_duplicates()
    same = hit.merge(compromised, on=["terminal_id", "day"])
    assert len(same) > 100
    assert same["is_fraud"].all()


def test_compromised_cards_spend_five_times_more(frame: pd.DataFrame) -> None:
    legit = frame[frame["fraud_scenario"] == 0].groupby("card_id")["amount"].median()
    stolen = frame[frame["fraud_scenario"] == 3]
    ratio = stolen["amount"] / stolen["card_id"].map(legit)
    assert 3.5 < ratio.median() < 7


def _before(frame: pd.DataFrame) -> pd.DataFrame:
    kept = frame[day_index(frame, SMALL) < START].drop(columns="transaction_id")
    return kept.reset_index(drop=True)


@pytest.mark.parametrize("kind", ["card_testing", "night_fraud", "amount_shift", "fraud_rate"])
def test_drift_leaves_days_before_start_unchanged(
    kind: str, frame: pd.DataFrame, drifted: dict[str, pd.DataFrame]
) -> None:
    pd.testing.assert_frame_equal(_before(drifted[kind]), _before(frame))
    assert len(drifted[kind]) >= len(frame)


def test_card_testing_bursts_small_amounts_at_new_terminals(
    frame: pd.DataFrame, drifted: dict[str, pd.DataFrame]
) -> None:
    df = drifted["card_testing"]
    tests = df[df["fraud_scenario"] == 4]
    assert len(tests) >= 3 * (SMALL.n_days - START) * 3
    assert (day_index(tests, SMALL) >= START).all()
    assert tests["amount"].between(1, 5).all()
    assert tests["is_fraud"].all()
    usual = set(zip(frame["card_id"], frame["terminal_id"], strict=True))
    pairs = zip(tests["card_id"], tests["terminal_id"], strict=True)
    assert not any(pair in usual for pair in pairs)
    bursts = tests.groupby(["card_id", "terminal_id"])["event_time"].agg(["size", "min", "max"])
    assert (bursts["size"] >= 3).all()
    assert ((bursts["max"] - bursts["min"]) < pd.Timedelta(hours=2)).all()


def test_night_fraud_happens_at_night_with_elevated_amounts(
    frame: pd.DataFrame, drifted: dict[str, pd.DataFrame]
) -> None:
    df = drifted["night_fraud"]
    night = df[df["fraud_scenario"] == 5]
    assert len(night) > 100
    assert (day_index(night, SMALL) >= START).all()
    assert (night["event_time"].dt.hour < 5).all()
    usual = frame[frame["fraud_scenario"] == 0].groupby("card_id")["amount"].mean()
    assert (night["amount"] / night["card_id"].map(usual)).median() > 1.5


def test_amount_shift_scales_amounts_without_new_fraud_codes(
    drifted: dict[str, pd.DataFrame],
) -> None:
    df = drifted["amount_shift"]
    assert df["fraud_scenario"].max() <= 3
    legit = df[df["fraud_scenario"] == 0]
    after = day_index(legit, SMALL) >= START
    ratio = legit.loc[after, "amount"].mean() / legit.loc[~after, "amount"].mean()
    assert 1.3 < ratio < 1.6


def test_fraud_rate_multiplies_compromises(
    frame: pd.DataFrame, drifted: dict[str, pd.DataFrame]
) -> None:
    df = drifted["fraud_rate"]
    assert df["fraud_scenario"].max() <= 3
    after = day_index(df, SMALL) >= START + 14
    base_after = day_index(frame, SMALL) >= START + 14
    assert df.loc[after, "is_fraud"].mean() > 2 * frame.loc[base_after, "is_fraud"].mean()


def test_parquet_and_csv_round_trip(frame: pd.DataFrame, tmp_path) -> None:
    small = frame.head(500)
    pd.testing.assert_frame_equal(read_parquet(write_parquet(small, tmp_path / "a.parquet")), small)
    back = read_csv(write_csv(small, tmp_path / "a.csv"))
    pd.testing.assert_frame_equal(back, small, check_dtype=False)
    assert str(back["event_time"].dtype) == "datetime64[ns, UTC]"


@pytest.mark.parametrize(
    "kwargs",
    [{"n_customers": 0}, {"radius": 0.0}, {"start_date": "April"}, {"label_delay_days": -1}],
)
def test_bad_config_is_a_sentinel_error(kwargs: dict[str, object]) -> None:
    with pytest.raises(SimulationError):
        SimulationConfig(**kwargs)  # type: ignore[arg-type]


def test_bad_drift_is_a_sentinel_error() -> None:
    with pytest.raises(SimulationError):
        DriftScenario("card_testing", start_day=-1)


def test_fractional_label_delay_is_hours_and_changes_nothing_else(frame: pd.DataFrame) -> None:
    fast = simulate(SimulationConfig(**{**SMALL.__dict__, "label_delay_days": 0.125}))
    assert (fast["label_time"] - fast["event_time"] == pd.Timedelta(hours=3)).all()
    pd.testing.assert_frame_equal(fast.drop(columns="label_time"), frame.drop(columns="label_time"))
