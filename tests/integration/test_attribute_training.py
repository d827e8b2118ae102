"""Training on a user's file: renamed columns, numeric times, no card or terminal ids, declared
attributes learned into a feature spec that travels with the model (a real SQLite MLflow store);
bad attributes fail the data gate, listing each problem, and nothing is registered."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cli import train as cli_commands
from features.attributes import Attribute, encode_frame
from lifecycle.pipeline import TrainingConfig, run_training
from lifecycle.registry import CANDIDATE, ModelRegistry
from sentinel.errors import ConfigurationError
from sentinel.settings import MlflowSettings, Settings
from training import columns
from training.errors import DataQualityError, DatasetError
from training.learners import BoosterParams
from training.split import SplitConfig


def anonymised(n: int = 4000, seed: int = 0) -> pd.DataFrame:
    """A public-style file: Time (seconds), V1..V3, Amount, a channel, Class; no ids."""
    rng = np.random.default_rng(seed)
    fraud = rng.random(n) < 0.03
    v1 = rng.normal(size=n) + 2.5 * fraud
    return pd.DataFrame({
        "Time": np.sort(rng.integers(0, 5 * 86_400, n)).astype(float),
        "V1": v1, "V2": rng.normal(size=n), "V3": np.where(rng.random(n) < 0.05, np.nan, 1.0),
        "Amount": rng.gamma(2.0, 30.0, n).round(2),
        "chan": np.where(fraud & (rng.random(n) < 0.6), "ecom",
                         rng.choice(["pos", "atm", "ecom"], size=n)),
        "Class": fraud.astype(int),
    })


CONFIG = TrainingConfig(split=SplitConfig(fractions=(0.6, 0.1, 0.3)), numeric=("V1", "V2", "V3"),
                        categorical=("chan",),
                        booster=BoosterParams(num_trees=40, num_leaves=7, min_child_samples=10))
MAPPING = {"event_time": "Time", "is_fraud": "Class", "amount": "Amount"}
ORIGIN = pd.Timestamp("2013-09-01", tz="UTC")


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path / "data", mlflow=MlflowSettings(model_name="fraud-attr"))


def test_column_mapping_numeric_time_and_absent_ids() -> None:
    shaped = columns.shape(anonymised(10), MAPPING, ORIGIN)
    assert shaped["event_time"].iloc[0] == ORIGIN + pd.Timedelta(seconds=anonymised(10)["Time"][0])
    assert shaped["transaction_id"].tolist()[:2] == ["row-0", "row-1"]
    assert shaped["card_id"].iloc[1] == "card-row-1" and shaped["terminal_id"].iloc[1] == (
        "terminal-row-1")
    assert columns.parse_mapping("event_time=Time, is_fraud=Class") == {
        "event_time": "Time", "is_fraud": "Class"}
    for bad in ("event_time", "when=Time"):
        with pytest.raises(DatasetError, match="--columns"):
            columns.parse_mapping(bad)
    with pytest.raises(DatasetError, match="does not have"):
        columns.shape(anonymised(10), {"event_time": "Tme"})
    with pytest.raises(DatasetError, match="--time-origin"):
        columns.parse_origin("yesterday")


def test_bad_flags_are_one_line_errors(tmp_path: Path) -> None:
    for flags in ({"split_fractions": "0.6,0.1"}, {"split_fractions": "0.6,0.6,0.3"},
                  {"attributes": "a,a"}, {"attributes": "a", "categorical": "a"},
                  {"spec": str(tmp_path / "none.yaml")}):
        with pytest.raises(ConfigurationError):
            cli_commands.training_config(Settings(), argparse.Namespace(**flags))
    spec = tmp_path / "spec.yaml"
    spec.write_text("attributes: [V1, V2]\ncategorical: [chan]\n")
    config = cli_commands.training_config(Settings(), argparse.Namespace(
        spec=str(spec), split_fractions="0.6,0.1,0.3"))
    assert (config.numeric, config.categorical) == (("V1", "V2"), ("chan",))
    assert config.split.fractions == (0.6, 0.1, 0.3)


def test_a_users_file_trains_with_attributes_and_the_spec_round_trips(
        settings: Settings) -> None:
    frame = columns.shape(anonymised(), MAPPING, ORIGIN)
    registry = ModelRegistry(settings)
    outcome = run_training(settings, frame, source="file", config=CONFIG, registry=registry)
    assert outcome.accepted, outcome.gate_reasons
    assert outcome.metrics["average_precision"] > outcome.baseline_metrics["average_precision"]
    ref = registry.resolve(CANDIDATE)
    assert ref is not None
    model = registry.load(ref)
    spec = model.attributes
    assert [a.name for a in spec.attributes] == ["V1", "V2", "V3", "chan"]
    assert spec.attributes[3] == Attribute("chan", "cat", spec.attributes[3].categories)
    assert set(spec.attributes[3].categories) == {"pos", "atm", "ecom"}
    assert model.feature_names[-4:] == spec.columns
    # the registered spec encodes the file exactly as training did
    A = encode_frame(spec, frame.sort_values("event_time", kind="stable"))
    assert A.shape == (len(frame), 4) and np.isnan(A[:, 2]).sum() == frame["V3"].isna().sum()


def test_bad_attributes_fail_the_data_gate_and_register_nothing(settings: Settings) -> None:
    frame = columns.shape(anonymised(600), MAPPING, ORIGIN)
    frame["V2"] = frame["V2"].astype(str)  # numbers as text
    frame["V3"] = np.nan  # all null
    frame["chan"] = [f"x{i}" for i in range(len(frame))]  # one category per row
    registry = ModelRegistry(settings)
    config = TrainingConfig(split=CONFIG.split, numeric=("V1", "V2", "V3", "V9"),
                            categorical=("chan",), quality=CONFIG.quality)
    from dataclasses import replace

    config = replace(config, quality=replace(config.quality, max_categories=100))
    with pytest.raises(DataQualityError) as caught:
        run_training(settings, frame, source="bad", config=config, registry=registry)
    text = str(caught.value)
    for problem in ("V2: column_values_to_be_in_type_list", "V3: column_values_to_not_be_null",
                    "V9: column_to_exist", "chan: column_unique_value_count_to_be_between"):
        assert problem in text, text
    assert registry.versions() == []
