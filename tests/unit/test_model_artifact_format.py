"""Sentinel's model format on disk, without MLflow: what verify refuses and why."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from prometheus_client import REGISTRY, generate_latest

from training import artifact
from training.errors import ModelLoadError, ModelLoadRefusedError
from training.learners import BoosterParams, fit_booster
from training.model import FraudModel, Thresholds

FEATURES = ("a", "b")


def _model() -> FraudModel:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 2))
    y = (X[:, 0] + rng.normal(scale=0.3, size=300) > 1.0).astype(int)
    return fit_booster(X, y, FEATURES, BoosterParams(num_trees=3, num_leaves=4,
                                                     min_child_samples=5, seed=0)
                       ).with_thresholds(Thresholds(0.3, 0.8))


@pytest.fixture
def saved(tmp_path: Path) -> Path:
    from training.flavor import write_mlmodel

    model = _model()
    return write_mlmodel(model.save(tmp_path / "model"), model)


def test_a_saved_model_verifies_and_reads_back(saved: Path) -> None:
    sha = artifact.digest(saved)
    model = artifact.load(saved, sha, "models:/m/1")
    X = np.random.default_rng(1).normal(size=(20, 2))
    assert np.array_equal(model.score(X), _model().score(X))
    assert artifact.flavor_of(saved)["format_version"] == artifact.FORMAT_VERSION  # type: ignore[index]
    (saved / "registered_model_meta").write_text("model_name: m")  # MLflow's download adds it
    assert artifact.digest(saved) == sha


def test_any_added_or_changed_file_changes_the_digest(saved: Path) -> None:
    sha = artifact.digest(saved)
    (saved / "python_model.pkl").write_bytes(b"\x80\x04N.")
    assert artifact.digest(saved) != sha
    (saved / "python_model.pkl").unlink()
    meta = json.loads((saved / "fraud_model.json").read_text())
    meta["thresholds"]["decline"] = 0.99
    (saved / "fraud_model.json").write_text(json.dumps(meta))
    with pytest.raises(ModelLoadRefusedError, match="digest_mismatch") as caught:
        artifact.verify(saved, sha, "models:/m/1")
    assert isinstance(caught.value, ModelLoadError)


def _refused(reason: str) -> float:
    """The refusal counter, as /metrics publishes it."""
    value = REGISTRY.get_sample_value("sentinel_model_load_refused_total", {"reason": reason})
    return value or 0.0


@pytest.mark.parametrize("mlmodel", [
    None,
    "flavors:\n  python_function:\n    loader_module: mlflow.pyfunc.model\n"
    "    python_model: python_model.pkl\n",
    "!!python/object/apply:os.system ['touch pwned']\n",
    "flavors:\n  sentinel_fraud:\n    format_version: 99\n",
])
def test_other_flavors_are_refused_before_reading(tmp_path: Path, mlmodel: str | None) -> None:
    (tmp_path / "python_model.pkl").write_bytes(b"\x80\x04N.")
    if mlmodel is not None:
        (tmp_path / "MLmodel").write_text(mlmodel)
    before = _refused("foreign_flavor")
    with pytest.raises(ModelLoadRefusedError, match="foreign_flavor") as caught:
        artifact.load(tmp_path, "0" * 64, "models:/m/2")
    assert caught.value.reason == "foreign_flavor"
    assert "\n" not in str(caught.value)
    assert not (tmp_path / "pwned").exists() and not Path("pwned").exists()
    assert _refused("foreign_flavor") == before + 1


def test_a_missing_digest_or_a_malformed_model_is_refused(saved: Path, tmp_path: Path) -> None:
    with pytest.raises(ModelLoadRefusedError, match="no_digest"):
        artifact.load(saved, None, "models:/m/3")
    (saved / "fraud_model.json").write_text('{"kind": "lightgbm"}')
    with pytest.raises(ModelLoadRefusedError, match="malformed"):
        artifact.load(saved, artifact.digest(saved), "models:/m/3")
    (saved / "link").symlink_to(tmp_path)
    with pytest.raises(ModelLoadRefusedError, match="malformed"):
        artifact.verify(saved, "0" * 64, "models:/m/3")


def test_refusals_are_exported_by_reason() -> None:
    text = generate_latest(REGISTRY).decode()
    for reason in artifact.REFUSAL_REASONS:
        assert f'sentinel_model_load_refused_total{{reason="{reason}"}}' in text
