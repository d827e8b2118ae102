"""Registry round trips on a real MLflow store: a unique temporary SQLite database per test."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from lifecycle.registry import CANDIDATE, CHAMPION, LoggedRun, ModelRegistry
from schemas.events import ModelEvent
from sentinel.settings import MlflowSettings, Settings
from tests.integration.model_support import FEATURES
from tests.integration.model_support import booster as _booster
from tests.integration.model_support import data as _data
from training.errors import AliasNotSetError, RegistryError, RegistryUnavailableError
from training.learners import fit_logistic
from training.model import FraudModel, Thresholds


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path / "data", mlflow=MlflowSettings(model_name="fraud-test"))


@pytest.fixture
def events() -> list[ModelEvent]:
    return []


@pytest.fixture
def registry(settings: Settings, events: list[ModelEvent]) -> ModelRegistry:
    return ModelRegistry(settings, publish=events.append)


def _log(registry: ModelRegistry, model: FraudModel) -> LoggedRun:
    return registry.log_run(
        model, params={"kind": model.kind}, metrics={"average_precision": 0.5}, tags={}
    )


def test_aliases_start_unset(registry: ModelRegistry) -> None:
    assert registry.resolve(CHAMPION) is None
    assert registry.history() == []


def test_register_sets_candidate_and_publishes(
    registry: ModelRegistry, events: list[ModelEvent]
) -> None:
    ref = registry.register(_log(registry, _booster()), reason="first")
    assert ref.version == "1"
    assert registry.resolve(CANDIDATE) == ref
    assert registry.resolve(CHAMPION) is None
    assert [e.action for e in events] == ["registered", "alias_set"]
    assert events[1].alias == CANDIDATE


def test_promote_rollback_round_trip(registry: ModelRegistry, events: list[ModelEvent]) -> None:
    first = registry.register(_log(registry, _booster(0)))
    registry.promote(reason="first champion")
    second = registry.register(_log(registry, _booster(1)))
    promoted = registry.promote(reason="better AP")
    assert promoted.version == second.version
    assert promoted.tags["sentinel.previous_champion"] == first.version
    assert registry.resolve(CANDIDATE) is None
    restored = registry.rollback(reason="bad in prod")
    assert restored.version == first.version
    assert [(e.action, e.version, e.previous_version) for e in events if e.alias == CHAMPION] == [
        ("promoted", "1", None),
        ("promoted", "2", "1"),
        ("rolled_back", "1", "2"),
    ]
    history = registry.history()
    assert [h.action for h in history if h.action != "candidate_set"] == [
        "promoted",
        "promoted",
        "rolled_back",
    ]
    with pytest.raises(RegistryError):
        registry.rollback()


def test_promote_without_candidate_fails(registry: ModelRegistry) -> None:
    with pytest.raises(AliasNotSetError):
        registry.promote()


def test_pyfunc_and_fast_path_agree(registry: ModelRegistry, settings: Settings) -> None:
    import mlflow
    import pandas as pd

    model = _booster()
    registry.register(_log(registry, model))
    registry.promote()
    X, _ = _data(seed=7, n=50)
    pyfunc = mlflow.pyfunc.load_model(f"models:/{settings.mlflow.model_name}@champion")
    via_pyfunc = pyfunc.predict(pd.DataFrame(X, columns=list(FEATURES)))
    ref = registry.resolve(CHAMPION)
    assert ref is not None
    fast = registry.load(ref)
    assert registry.load(ref) is fast  # cached by version
    np.testing.assert_allclose(via_pyfunc["score"].to_numpy(), fast.score(X), rtol=1e-12)
    np.testing.assert_allclose(fast.score(X), model.score(X), rtol=1e-12)
    assert list(via_pyfunc["decision"]) == list(fast.decide(fast.score(X)))
    assert fast.thresholds == model.thresholds


def test_logistic_round_trip(registry: ModelRegistry) -> None:
    X, y = _data()
    model = fit_logistic(X, y, FEATURES).with_thresholds(Thresholds(0.4, 0.9))
    ref = registry.register(_log(registry, model))
    loaded = registry.load(ref)
    np.testing.assert_allclose(loaded.score(X), model.score(X))
    assert loaded.reasons(X[:2], k=2) == model.reasons(X[:2], k=2)


def test_unreachable_store_is_typed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from sentinel.infra.worker_process import free_port

    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "2")
    port = free_port()
    settings = Settings(
        data_dir=tmp_path, mlflow=MlflowSettings(tracking_uri=f"http://127.0.0.1:{port}")
    )
    with pytest.raises(RegistryUnavailableError, match="unreachable"):
        ModelRegistry(settings).resolve(CHAMPION)
