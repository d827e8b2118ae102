"""Label arrival models: the book's fixed delay, fraud reports from a seeded mixture."""

from __future__ import annotations

import argparse
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from cli.data import label_arrival, simulation_config
from schemas import LabelFeedback, decode, encode
from sentinel.errors import ConfigurationError
from sentinel.settings import Settings
from training.producer import label_event
from training.simulation import SimulationConfig, SimulationError, simulate
from training.simulation.arrival import (
    FIXED,
    REPORTS,
    REPORTS_FAST,
    LabelArrival,
    parse_bands,
)
from training.stream_order import label_frame

SMALL = SimulationConfig(n_customers=300, n_terminals=600, n_days=40, seed=3)


@pytest.fixture(scope="module")
def book() -> pd.DataFrame:
    return simulate(SMALL)


@pytest.fixture(scope="module")
def reported() -> pd.DataFrame:
    return simulate(replace(SMALL, arrival=REPORTS))


def _delay_days(frame: pd.DataFrame) -> pd.Series:
    return (frame["label_time"] - frame["event_time"]) / pd.Timedelta(days=1)


def test_book_default_is_every_label_seven_days_later_as_a_chargeback(book: pd.DataFrame) -> None:
    assert (_delay_days(book) == 7).all()
    assert set(book["label_source"]) == {"chargeback"}
    explicit = simulate(replace(SMALL, arrival=FIXED))
    pd.testing.assert_frame_equal(explicit, book)


def test_reports_change_only_label_times_and_sources(
        book: pd.DataFrame, reported: pd.DataFrame) -> None:
    rest = ["label_time", "label_source"]
    pd.testing.assert_frame_equal(reported.drop(columns=rest), book.drop(columns=rest))


def test_reports_follow_the_mixture_and_genuine_labels_the_genuine_delay(
        reported: pd.DataFrame) -> None:
    fraud = reported["is_fraud"] == 1
    delay = _delay_days(reported)
    assert (delay[~fraud] == 7).all()
    assert set(reported.loc[fraud, "label_source"]) == {"report"}
    assert set(reported.loc[~fraud, "label_source"]) == {"chargeback"}
    d = delay[fraud]
    assert ((d > 0) & (d <= 14)).all()
    shares = [((d > lo) & (d <= hi)).mean() for lo, hi, _ in REPORTS.bands]
    assert shares == pytest.approx([0.3, 0.3, 0.4], abs=0.08)


def test_same_seed_same_arrivals_other_seed_other_arrivals(reported: pd.DataFrame) -> None:
    pd.testing.assert_frame_equal(simulate(replace(SMALL, arrival=REPORTS)), reported)
    draws = [REPORTS.delays_days(np.ones(50, bool), np.random.default_rng(s)) for s in (1, 2)]
    assert not np.array_equal(*draws)


def test_fast_mixture_and_a_separate_genuine_delay() -> None:
    arrival = replace(REPORTS_FAST, genuine_delay_days=3)
    d = arrival.delays_days(np.array([True] * 2000 + [False] * 10), np.random.default_rng(0))
    assert (d[2000:] == 3).all()
    assert (d[:2000] <= 7).all() and (d[:2000] <= 0.25).mean() == pytest.approx(0.5, abs=0.05)
    assert arrival.horizon_days == 7 and REPORTS.horizon_days == 14


@pytest.mark.parametrize("bad", [
    {"kind": "reports"},
    {"kind": "reports", "bands": ((0.0, 1.0, 0.5),)},
    {"kind": "reports", "bands": ((2.0, 1.0, 1.0),)},
    {"kind": "weekly"},
    {"genuine_delay_days": -1.0},
])
def test_bad_arrival_is_a_sentinel_error(bad: dict[str, object]) -> None:
    with pytest.raises(SimulationError):
        LabelArrival(**bad)  # type: ignore[arg-type]


def test_bands_parse_and_bad_bands_are_one_line_errors() -> None:
    assert parse_bands("0-1:0.3, 1-3:0.3,3-14:0.4") == REPORTS.bands
    with pytest.raises(SimulationError, match="LO-HI:SHARE"):
        parse_bands("0-1")


def _args(**kw: object) -> argparse.Namespace:
    base = {"customers": 10, "terminals": 20, "days": 2, "seed": 0, "drift": None,
            "drift_day": None, "arrival": None, "report_bands": None, "genuine_delay_days": None}
    return argparse.Namespace(**(base | kw))


def test_cli_flags_choose_the_arrival() -> None:
    assert label_arrival(_args()) is None
    assert label_arrival(_args(arrival="reports")) == REPORTS
    custom = label_arrival(_args(arrival="reports", report_bands="0-2:1", genuine_delay_days=5))
    assert custom == LabelArrival(kind="reports", bands=((0.0, 2.0, 1.0),), genuine_delay_days=5)
    assert simulation_config(Settings(), _args(arrival="reports-fast")).arrival == REPORTS_FAST
    for bad in (_args(report_bands="0-1:1"), _args(arrival="fixed", report_bands="0-1:1"),
                _args(arrival="reports", report_bands="x")):
        with pytest.raises(ConfigurationError):
            simulation_config(Settings(), bad)


def test_each_label_event_carries_its_own_time_and_source(reported: pd.DataFrame) -> None:
    labels = label_frame(reported.head(3000))
    events = [decode(LabelFeedback, encode(label_event(r)))
              for r in labels.itertuples(index=False)]
    fraud = labels["is_fraud"].to_numpy()
    assert fraud.any()
    assert [e.source for e in events] == ["report" if f else "chargeback" for f in fraud]
    assert [e.reported_at for e in events] == [t.to_pydatetime() for t in labels["label_time"]]
