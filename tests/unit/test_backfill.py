"""Shadow backfill: the payments after a candidate's training data, scored as the worker would."""

from __future__ import annotations

import sqlite3
from datetime import timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from features.attributes import encode_frame, fit
from features.offline import compute_features
from features.spec import FeatureConfig
from lifecycle.backfill import backfill_shadow, cutoff_of, history_days
from lifecycle.labelstore import LabelStore
from schemas.events import LabelFeedback, ShadowResult, Verdict
from training.learners import BoosterParams, fit_booster
from training.model import FraudModel, Thresholds
from training.producer import transaction_event
from training.simulation import SimulationConfig, simulate
from training.simulation.attributes import add_attributes

CONFIG = FeatureConfig(label_delay_days=1)


@pytest.fixture(scope="module")
def world() -> pd.DataFrame:
    # 45 days: the backfilled payments' features need 32 days of history before them
    frame = simulate(SimulationConfig(n_customers=150, n_terminals=300, n_days=45, seed=11,
                                      label_delay_days=0.125))
    return frame.sort_values("event_time", kind="stable").reset_index(drop=True)


def _candidate(frame: pd.DataFrame) -> FraudModel:
    feats = compute_features(frame, config=CONFIG)
    names = tuple(c for c in feats.columns if c != "transaction_id")
    model = fit_booster(feats[list(names)].to_numpy(np.float64), frame["is_fraud"].to_numpy(),
                        names, BoosterParams(num_trees=5, num_leaves=4, min_child_samples=5,
                                             seed=1))
    return model.with_thresholds(Thresholds(review=0.5, decline=0.9))


def _fill(store: LabelStore, frame: pd.DataFrame, now: pd.Timestamp,
          attributes: tuple[str, ...] = ()) -> None:
    """The retrainer's view at ``now``: every payment so far (``attributes``: these columns
    in its ``attributes``, as ``sentinel produce`` sends them), its champion verdict (v1),
    and the labels that have arrived."""
    seen = frame[frame["event_time"] <= now]
    at = [list(frame.columns).index(name) for name in attributes]
    store.add_transactions(transaction_event(r, tuple(zip(attributes, at, strict=True)))
                           for r in seen.itertuples(index=False))
    rng = np.random.default_rng(5)
    store.add_verdicts(Verdict(transaction_id=r.transaction_id, card_id=r.card_id,
                               score=float(s), decision="review" if s > 0.9 else "approve",
                               model_name="m", model_version="1", feature_hash="-",
                               event_time=r.event_time, scored_at=r.event_time, latency_ms=1.0)
                       for r, s in zip(seen.itertuples(index=False), rng.random(len(seen)),
                                       strict=True))
    arrived = seen[seen["label_time"] <= now]
    store.add_labels(LabelFeedback(transaction_id=r.transaction_id, card_id=r.card_id,
                                   terminal_id=r.terminal_id, is_fraud=bool(r.is_fraud),
                                   transaction_time=r.event_time, reported_at=r.label_time,
                                   source="simulator") for r in arrived.itertuples(index=False))


def _shadow(tx: str, candidate: str, score: float, at: pd.Timestamp) -> ShadowResult:
    return ShadowResult(transaction_id=tx, card_id="c", champion_version="1",
                        champion_score=0.5, champion_decision="approve",
                        candidate_version=candidate, candidate_score=score,
                        candidate_decision="approve", agree=True, event_time=at)


def test_backfill_scores_only_unseen_payments_as_the_full_history_would(
        world: pd.DataFrame, tmp_path: Path) -> None:
    now = world["event_time"].min().normalize() + pd.Timedelta(days=44, hours=20)
    store = LabelStore(tmp_path / "store.sqlite")
    _fill(store, world, now)
    frame, labels = store.training_frame()
    cutoff = cutoff_of(frame, labels)
    assert cutoff is not None
    after = world[(world["event_time"] > cutoff) & (world["event_time"] <= now)]
    # labels 3 hours late: the newest trained-on payment is at least 3 hours old
    assert timedelta(hours=3) <= now - cutoff < timedelta(hours=6)
    assert len(after) > 20 and world.loc[after.index, "label_time"].gt(now).all()
    model = _candidate(world[world["label_time"] <= now])
    # the worker already shadowed one of them (kept), another carries an older candidate's
    # result (replaced)
    kept, stale = after["transaction_id"].iloc[0], after["transaction_id"].iloc[1]
    store.add_shadow([_shadow(kept, "2", 0.123, after["event_time"].iloc[0]),
                      _shadow(stale, "0", 0.456, after["event_time"].iloc[1])])

    stored = backfill_shadow(store, model, "2", "1", cutoff, CONFIG)

    assert stored == len(after) - 1  # all but the worker's own result
    shadow = pd.read_sql_query("SELECT * FROM shadow", sqlite3.connect(store.path))
    assert set(shadow["transaction_id"]) == set(after["transaction_id"])
    assert set(shadow["candidate_version"]) == {"2"}
    by_id = shadow.set_index("transaction_id")
    assert by_id.loc[kept, "candidate_score"] == 0.123 and by_id.loc[kept, "source"] == "worker"
    assert (by_id.drop(index=kept)["source"] == "backfill").all()
    # the candidate's score from features over the whole history, with the labels as they
    # had arrived: what the worker's online state would have given (parity tests)
    seen = world[world["event_time"] <= now]
    arrived = seen.loc[seen["label_time"] <= now, ["transaction_id", "is_fraud", "label_time"]]
    full = compute_features(seen.drop(columns=["is_fraud", "label_time"]), arrived, CONFIG)
    full = full.set_index("transaction_id").loc[after["transaction_id"].iloc[1:]]
    expected = model.score(full[list(model.feature_names)].to_numpy(np.float64))
    got = by_id.loc[after["transaction_id"].iloc[1:], "candidate_score"].to_numpy()
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)
    np.testing.assert_array_equal(  # the candidate's own decisions, as the worker would send
        by_id.loc[after["transaction_id"].iloc[1:], "candidate_flagged"].to_numpy(),
        (model.decide(expected) != "approve").astype(int))
    assert by_id.loc[kept, "candidate_flagged"] == 0  # the worker's: "approve"
    verdicts = store.verdicts_of(after["transaction_id"].iloc[1:].tolist())
    champion = verdicts.set_index("transaction_id").loc[after["transaction_id"].iloc[1:]]
    np.testing.assert_array_equal(
        by_id.loc[after["transaction_id"].iloc[1:], "champion_score"], champion["score"])
    assert history_days(CONFIG) == 32
    store.close()


def test_backfill_feeds_a_candidate_its_attributes_from_the_store(
        world: pd.DataFrame, tmp_path: Path) -> None:
    """A candidate reading attributes (a retrain of a champion that does) is scored on the
    attributes each stored transaction carried, encoded by its feature spec."""
    world = add_attributes(world, seed=3)
    numeric, categorical = ("new_device", "country_mismatch"), ("channel", "merchant_category")
    now = world["event_time"].min().normalize() + pd.Timedelta(days=44, hours=20)
    store = LabelStore(tmp_path / "store.sqlite")
    _fill(store, world, now, (*numeric, *categorical))
    spec = fit(world, numeric, categorical)
    trained = world[world["label_time"] <= now]
    feats = compute_features(trained, config=CONFIG)
    names = (*(c for c in feats.columns if c != "transaction_id"), *spec.columns)
    X = np.hstack([feats[list(names[:-4])].to_numpy(np.float64), encode_frame(spec, trained)])
    model = fit_booster(X, trained["is_fraud"].to_numpy(), names,
                        BoosterParams(num_trees=5, num_leaves=4, min_child_samples=5, seed=1))
    model = FraudModel(**{**model.with_thresholds(Thresholds(0.5, 0.9)).__dict__,
                          "attributes": spec})
    frame, labels = store.training_frame(spec=spec)
    by_id = world.set_index("transaction_id").loc[frame["transaction_id"]]
    assert frame["channel"].tolist() == by_id["channel"].tolist()
    assert frame["new_device"].tolist() == by_id["new_device"].astype(float).tolist()
    cutoff = cutoff_of(frame, labels)
    assert cutoff is not None

    stored = backfill_shadow(store, model, "2", "1", cutoff, CONFIG)

    after = world[(world["event_time"] > cutoff) & (world["event_time"] <= now)]
    assert stored == len(after) > 20
    seen = world[world["event_time"] <= now]
    arrived = seen.loc[seen["label_time"] <= now, ["transaction_id", "is_fraud", "label_time"]]
    full = compute_features(seen.drop(columns=["is_fraud", "label_time"]), arrived, CONFIG)
    full = full.set_index("transaction_id").loc[after["transaction_id"]]
    expected = model.score(np.hstack([full[list(names[:-4])].to_numpy(np.float64),
                                      encode_frame(spec, after)]))
    shadow = pd.read_sql_query("SELECT * FROM shadow", sqlite3.connect(store.path))
    got = shadow.set_index("transaction_id").loc[after["transaction_id"], "candidate_score"]
    np.testing.assert_allclose(got.to_numpy(), expected, rtol=0, atol=1e-12)
    # the same candidate without its attributes would have scored differently
    blind = model.score(np.hstack([full[list(names[:-4])].to_numpy(np.float64),
                                   np.full((len(after), 4), np.nan)]))
    assert not np.allclose(blind, expected)
    store.close()


def test_backfill_needs_the_champions_verdicts(world: pd.DataFrame, tmp_path: Path) -> None:
    now = world["event_time"].min().normalize() + pd.Timedelta(days=44, hours=20)
    store = LabelStore(tmp_path / "store.sqlite")
    _fill(store, world, now)
    frame, labels = store.training_frame()
    model = _candidate(world[world["label_time"] <= now])
    cutoff = cutoff_of(frame, labels)
    assert cutoff is not None
    # verdicts of another champion are no evidence against this one; nothing after ``now``
    assert backfill_shadow(store, model, "2", "7", cutoff, CONFIG) == 0
    assert backfill_shadow(store, model, "2", "1", now.to_pydatetime(), CONFIG) == 0
    assert store.count("shadow") == 0
    store.close()


def test_a_store_from_before_backfill_gains_the_source_column(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite"
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE shadow (transaction_id TEXT PRIMARY KEY, champion_version TEXT, "
               "candidate_version TEXT, champion_score REAL, candidate_score REAL, "
               "champion_flagged INTEGER, event_time TEXT)")
    db.execute("INSERT INTO shadow VALUES ('x', '1', '2', 0.1, 0.2, 0, '2024-01-01')")
    db.commit()
    db.close()
    store = LabelStore(path)
    rows = pd.read_sql_query("SELECT * FROM shadow", sqlite3.connect(path))
    assert rows["source"].tolist() == ["worker"]
    assert rows["candidate_flagged"].isna().all()  # unknown for old rows
    store.close()


def test_a_store_from_before_attributes_gains_the_column(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite"
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE transactions (transaction_id TEXT PRIMARY KEY, card_id TEXT, "
               "terminal_id TEXT, amount REAL, event_time TEXT)")
    db.execute("INSERT INTO transactions VALUES ('x', 'c', 't', 1.0, "
               "'2024-01-01T00:00:00+00:00')")
    db.commit()
    db.close()
    store = LabelStore(path)
    spec = fit(pd.DataFrame({"risk": [1.0]}), ["risk"])
    frame, _ = store.training_frame(spec=spec)
    assert frame["transaction_id"].tolist() == ["x"] and frame["risk"].isna().all()
    store.close()


def test_predecessor_decisions_are_the_full_history_scores_in_batches(
        world: pd.DataFrame, tmp_path: Path) -> None:
    """The live rollback's yardstick: the predecessor's decisions on the champion's payments,
    from the serving features over the stored history (as the worker would have decided),
    NaN until a batch gathers, cached once computed."""
    from lifecycle.predecessor import PredecessorDecisions

    now = world["event_time"].min().normalize() + pd.Timedelta(days=44, hours=20)
    store = LabelStore(tmp_path / "store.sqlite")
    _fill(store, world, now)
    recent = world[(world["event_time"] > now - pd.Timedelta(days=2))
                   & (world["event_time"] <= now)]
    model = _candidate(world[world["event_time"] < now - pd.Timedelta(days=2)])
    flag_at = float(np.quantile(model.score(compute_features(world, config=CONFIG).set_index(
        "transaction_id").loc[recent["transaction_id"], list(model.feature_names)]
        .to_numpy(np.float64)), 0.9))  # about a tenth flagged
    model = model.with_thresholds(Thresholds(review=flag_at, decline=1.0))
    decisions = PredecessorDecisions(store, CONFIG)
    few = recent.iloc[:3]
    assert np.isnan(decisions.of(model, "1", few["transaction_id"], few["event_time"],
                                 min_batch=10)).all()
    got = decisions.of(model, "1", recent["transaction_id"], recent["event_time"], min_batch=10)
    seen = world[world["event_time"] <= now]
    arrived = seen.loc[seen["label_time"] <= now, ["transaction_id", "is_fraud", "label_time"]]
    full = compute_features(seen.drop(columns=["is_fraud", "label_time"]), arrived, CONFIG)
    full = full.set_index("transaction_id").loc[recent["transaction_id"]]
    expected = model.decide(model.score(full[list(model.feature_names)].to_numpy(np.float64)))
    np.testing.assert_array_equal(got, (expected != "approve").astype(float))
    assert 0 < got.sum() < len(got)  # both decisions occur: the comparison is not vacuous
    store.close()
    # cached: answered without the store
    again = decisions.of(model, "1", recent["transaction_id"], recent["event_time"])
    np.testing.assert_array_equal(again, got)
