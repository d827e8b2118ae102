"""Model artifacts that cannot run code: the registry loads only Sentinel's own format, and only
the files it registered (a real MLflow store, a unique SQLite database per test)."""

from __future__ import annotations

from pathlib import Path

import mlflow
import numpy as np
import pytest
from mlflow.pyfunc import PythonModel
from prometheus_client import REGISTRY

from lifecycle.registry import CANDIDATE, DIGEST_TAG, ModelRegistry
from sentinel.settings import MlflowSettings, Settings
from stream_app.serving import ServingModels
from tests.integration.model_support import FEATURES
from tests.integration.model_support import booster as _booster
from tests.integration.model_support import data as _data
from training import artifact
from training.errors import ModelLoadRefusedError
from training.learners import fit_logistic
from training.model import FraudModel, Thresholds


class _Touch:
    """Unpickling this creates ``path``: what a hostile registry writer would ship."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple[object, tuple[str, str]]:
        return open, (str(self.path), "w")


class _Hostile(PythonModel):
    def __init__(self, marker: Path) -> None:
        self.payload = _Touch(marker)

    def predict(self, context: object, model_input: object, params: object = None) -> object:
        return model_input


def _refused() -> dict[str, float]:
    return {r: REGISTRY.get_sample_value("sentinel_model_load_refused_total", {"reason": r})
            or 0.0 for r in artifact.REFUSAL_REASONS}


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path / "data", mlflow=MlflowSettings(model_name="fraud-sec"))


@pytest.fixture
def registry(settings: Settings) -> ModelRegistry:
    return ModelRegistry(settings)


def _register(registry: ModelRegistry, model: FraudModel) -> str:
    logged = registry.log_run(model, params={}, metrics={}, tags={})
    return registry.register(logged, reason="test").version


def _hostile_version(registry: ModelRegistry, marker: Path) -> str:
    """A pickled python_function model, registered straight through MLflow (as an attacker with
    registry write access would), digest tag and all."""
    mlflow.set_tracking_uri(registry.tracking_uri)
    mlflow.set_registry_uri(registry.registry_uri)
    experiment = registry.client.get_experiment_by_name(registry.settings.mlflow.experiment)
    assert experiment is not None  # made when the champion was logged
    with mlflow.start_run(experiment_id=experiment.experiment_id):
        info = mlflow.pyfunc.log_model(name="model", python_model=_Hostile(marker))
    marker.unlink(missing_ok=True)  # MLflow round-trips the pickle while logging it
    mv = registry.client.create_model_version(registry.name, info.model_uri,
                                              tags={DIGEST_TAG: "0" * 64})
    registry.client.set_registered_model_alias(registry.name, CANDIDATE, str(mv.version))
    return str(mv.version)


def test_round_trip_scores_exactly_like_the_model_in_memory(registry: ModelRegistry) -> None:
    X, _ = _data(seed=7, n=200)
    booster = _booster()
    logistic = fit_logistic(*_data(), FEATURES).with_thresholds(Thresholds(0.4, 0.9))
    for model in (booster, logistic):
        version = _register(registry, model)
        ref = registry.resolve(CANDIDATE)
        assert ref is not None and ref.version == version
        assert len(ref.tags[DIGEST_TAG]) == 64
        loaded = registry.load(ref)
        assert loaded.kind == model.kind and loaded.feature_names == FEATURES
        assert np.array_equal(loaded.score(X), model.score(X))
        assert loaded.thresholds == model.thresholds
        assert loaded.reasons(X[:5], k=2) == model.reasons(X[:5], k=2)


def test_hostile_candidate_is_refused_and_never_runs(
    registry: ModelRegistry, tmp_path: Path
) -> None:
    marker = tmp_path / "pwned"
    _register(registry, _booster())
    registry.promote()
    hostile = _hostile_version(registry, marker)
    before = _refused()
    ref = registry.resolve(CANDIDATE)
    assert ref is not None and ref.version == hostile
    with pytest.raises(ModelLoadRefusedError, match="foreign_flavor") as caught:
        registry.load(ref)
    assert "\n" not in str(caught.value)
    assert caught.value.reason == "foreign_flavor"
    assert not marker.exists()
    assert _refused()["foreign_flavor"] == before["foreign_flavor"] + 1

    # the worker's model holder keeps the champion and never loads the candidate
    serving = ServingModels(registry)
    serving.refresh()  # ServingModels.refresh is synchronous (the follower thread calls it)
    assert serving.champion is not None and serving.champion.version == "1"
    assert serving.candidate is None
    assert not marker.exists()

    # the artifact really is hostile: MLflow's own pickle loader runs it
    mlflow.pyfunc.load_model(ref.uri)
    assert marker.exists()


def test_digest_mismatch_is_refused(registry: ModelRegistry, settings: Settings) -> None:
    version = _register(registry, _booster())
    registry.client.set_model_version_tag(registry.name, version, DIGEST_TAG, "f" * 64)
    before = _refused()
    ref = registry.resolve(CANDIDATE)
    assert ref is not None
    with pytest.raises(ModelLoadRefusedError, match="digest_mismatch"):
        registry.load(ref)
    assert _refused()["digest_mismatch"] == before["digest_mismatch"] + 1


def test_changed_artifact_file_is_refused(registry: ModelRegistry, settings: Settings) -> None:
    version = _register(registry, _booster())
    stored = [p for p in settings.artifact_root.rglob("booster.txt")]
    assert len(stored) == 1
    text = stored[0].read_text()
    stored[0].write_text(text + "\n")
    ref = registry.resolve(CANDIDATE)
    assert ref is not None and ref.version == version
    with pytest.raises(ModelLoadRefusedError, match="changed after registration"):
        registry.load(ref)


def test_version_without_digest_is_refused(registry: ModelRegistry) -> None:
    version = _register(registry, _booster())
    registry.client.delete_model_version_tag(registry.name, version, DIGEST_TAG)
    ref = registry.resolve(CANDIDATE)
    assert ref is not None
    with pytest.raises(ModelLoadRefusedError, match="no_digest"):
        registry.load(ref)


def test_pyfunc_face_needs_no_pickle(registry: ModelRegistry, settings: Settings) -> None:
    import pandas as pd

    model = _booster()
    _register(registry, model)
    X, _ = _data(seed=3, n=20)
    pyfunc = mlflow.pyfunc.load_model(  # our loader module: no pickle
        f"models:/{settings.mlflow.model_name}@{CANDIDATE}")
    out = pyfunc.predict(pd.DataFrame(X, columns=list(FEATURES)))
    np.testing.assert_array_equal(out["score"].to_numpy(), model.score(X))
    stored = {p.name for p in settings.artifact_root.rglob("*") if p.is_file()}
    assert not any(name.endswith((".pkl", ".pickle", ".cloudpickle")) for name in stored)
    assert {"MLmodel", "fraud_model.json", "booster.txt"} <= stored
