"""The pipeline against a real (temporary SQLite) MLflow store: both gates and registration."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from lifecycle.pipeline import TrainingConfig, run_training, train_and_register
from lifecycle.registry import CANDIDATE, CHAMPION, ModelRegistry
from schemas.events import ModelEvent
from sentinel.settings import MlflowSettings, Settings
from training.errors import DataQualityError
from training.learners import BoosterParams


def _transactions(days: int = 36, per_day: int = 300, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    n = days * per_day
    start = pd.Timestamp("2018-04-01", tz="UTC")
    amount = rng.gamma(2.0, 30.0, n).round(2)
    risky = rng.random(n) < 0.1
    fraud = (risky & (amount > 40) & (amount < 90)) | (rng.random(n) < 0.003)
    return pd.DataFrame(
        {
            "transaction_id": [f"t{i}" for i in range(n)],
            "event_time": start
            + pd.to_timedelta(np.repeat(np.arange(days), per_day), unit="D")
            + pd.to_timedelta(rng.integers(0, 86_400, n), unit="s"),
            "card_id": [f"c{i}" for i in rng.integers(0, 300, n)],
            "terminal_id": np.where(risky, "risky", [f"m{i}" for i in rng.integers(0, 50, n)]),
            "amount": amount,
            "is_fraud": fraud.astype(int),
        }
    )


def featurizer(transactions: pd.DataFrame, labels: object, config: object) -> pd.DataFrame:
    """A stand-in for features.offline: two informative columns and one of noise."""
    rng = np.random.default_rng(0)
    return pd.DataFrame(
        {
            "transaction_id": transactions["transaction_id"].to_numpy(),
            "amount": transactions["amount"].to_numpy(),
            "risky_terminal": (transactions["terminal_id"] == "risky").to_numpy(float),
            "noise": rng.normal(size=len(transactions)),
        }
    )


SMALL = TrainingConfig(booster=BoosterParams(num_trees=30, num_leaves=7, min_child_samples=10))


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path / "data", mlflow=MlflowSettings(model_name="fraud-train"))


def test_train_registers_candidate_then_same_model_fails_gate(settings: Settings) -> None:
    events: list[ModelEvent] = []
    registry = ModelRegistry(settings, publish=events.append)
    frame = _transactions()
    first = run_training(
        settings,
        frame,
        source="test",
        config=SMALL,
        registry=registry,
        featurizer=featurizer,
        promote=True,
    )
    assert first.accepted and first.promoted
    assert first.metrics["average_precision"] > first.baseline_metrics["average_precision"]
    champion = registry.resolve(CHAMPION)
    assert champion is not None and champion.version == first.model.version
    run = registry.client.get_run(first.run_id)
    assert run.data.params["data.digest"] == first.dataset_digest
    assert run.data.tags["sentinel.gate"] == "passed"
    assert "test.average_precision" in run.data.metrics
    # Same data, same seed: equal AP, so not better than the champion: logged, not registered.
    second = run_training(
        settings,
        frame.sample(frac=1.0, random_state=1),
        source="test",
        config=SMALL,
        registry=registry,
        featurizer=featurizer,
    )
    assert not second.accepted and second.model is None
    assert second.dataset_digest == first.dataset_digest  # row order does not change it
    assert second.champion_metrics is not None
    assert any("champion" in r and "<=" in r for r in second.gate_reasons)
    assert len(registry.versions()) == 1
    assert registry.resolve(CANDIDATE) is None
    assert registry.client.get_run(second.run_id).data.tags["sentinel.gate"] == "failed"
    assert events[-1].action == "rejected"


def test_model_worse_than_baseline_is_not_registered(settings: Settings) -> None:
    registry = ModelRegistry(settings)
    stump = replace(SMALL, booster=BoosterParams(num_trees=1, min_child_samples=100_000))
    outcome = run_training(
        settings,
        _transactions(),
        source="test",
        config=stump,
        registry=registry,
        featurizer=featurizer,
    )
    assert outcome.status == "rejected"
    assert any("baseline" in r and "<=" in r for r in outcome.gate_reasons)
    assert registry.versions() == []


@pytest.mark.parametrize(
    ("corrupt", "expected"),
    [
        (lambda f: f.drop(columns=["card_id"]), "card_id: column_to_exist"),
        (lambda f: f.assign(amount=f["amount"].astype(str)), "amount: column_values_to_be_in"),
        (lambda f: f.assign(amount=-f["amount"]), "amount: column_values_to_be_between"),
        (lambda f: f.assign(transaction_id="same"), "transaction_id: column_values_to_be_uni"),
        (lambda f: f.assign(event_time="not a time"), "event_time: column_values_to_be_pres"),
        (lambda f: f.assign(is_fraud=1), "is_fraud: column_mean_to_be_between"),
    ],
    ids=[
        "missing-column",
        "wrong-type",
        "negative-amount",
        "duplicate-id",
        "bad-time",
        "fraud-rate",
    ],
)
def test_corrupted_data_fails_gate_and_registers_nothing(
    settings: Settings,
    corrupt: Callable[[pd.DataFrame], pd.DataFrame],
    expected: str,
) -> None:
    registry = ModelRegistry(settings)
    with pytest.raises(DataQualityError, match=expected) as caught:
        run_training(
            settings,
            corrupt(_transactions(days=30, per_day=20)),
            source="bad",
            config=SMALL,
            registry=registry,
            featurizer=featurizer,
        )
    assert caught.value.report_path is not None and caught.value.report_path.exists()
    assert caught.value.report_path.parent == settings.data_dir.resolve() / "reports"
    assert registry.versions() == []
    assert (
        registry.client.search_runs([e.experiment_id for e in registry.client.search_experiments()])
        == []
    )


def test_train_and_register_with_separate_labels(settings: Settings) -> None:
    frame = _transactions()
    labels = frame[["transaction_id", "is_fraud"]].assign(
        label_time=frame["event_time"] + pd.Timedelta(days=7)
    )
    outcome = train_and_register(
        settings,
        frame.drop(columns=["is_fraud"]),
        labels,
        reason="drift",
        config=SMALL,
        featurizer=featurizer,
    )
    assert outcome.accepted and outcome.model is not None
    assert ModelRegistry(settings).resolve(CANDIDATE).version == outcome.model.version


def test_refused_champion_is_not_compared_and_training_goes_on(settings: Settings) -> None:
    """A champion whose artifact is refused (here: its digest tag is gone; in an upgrade, a
    pickled champion of an old release) is never loaded: the candidate is judged on the
    baseline alone, so the way out (retrain, promote) stays open."""
    registry = ModelRegistry(settings)
    frame = _transactions()
    first = run_training(settings, frame, source="test", config=SMALL, registry=registry,
                         featurizer=featurizer, promote=True)
    assert first.model is not None
    registry.client.delete_model_version_tag(registry.name, first.model.version,
                                             "sentinel.artifact_sha256")
    second = run_training(settings, frame, source="test", config=SMALL, registry=registry,
                          featurizer=featurizer)
    assert second.accepted and second.champion_metrics is None


def test_training_logs_the_reference_profile_with_the_model(
    settings: Settings, tmp_path: Path
) -> None:
    from drift.reference_profile import ProfileError, load_profile
    from sentinel.settings import DriftSettings

    registry = ModelRegistry(settings)
    frame = _transactions()
    outcome = run_training(settings, frame, source="test", config=SMALL, registry=registry,
                           featurizer=featurizer, promote=True)
    champion = registry.resolve(CHAMPION)
    assert champion is not None and outcome.model is not None
    profile = load_profile(registry, champion, tmp_path / "profile")
    assert profile.model_version == champion.version
    amount, score = profile.variables["amount"], profile.variables["score"]
    assert amount.count == len(frame) and amount.source == "transactions"
    assert score.source == "verdicts" and 0 < score.count < len(frame)  # held-out rows only
    assert list(amount.edges) == sorted(amount.edges) and len(amount.shares) == 10
    # the training amounts against themselves: no drift; doubled amounts: drift
    assert amount.psi(frame["amount"]) < 0.01
    assert amount.psi(2 * frame["amount"]) > DriftSettings().psi_threshold
    # a version logged without a profile (before profiles existed) says so in one line
    bare = registry.log_run(registry.load(champion), params={}, metrics={}, tags={})
    old = registry.register(bare)
    with pytest.raises(ProfileError, match="without a reference profile"):
        load_profile(registry, old, tmp_path / "old")
