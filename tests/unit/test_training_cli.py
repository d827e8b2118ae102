"""Flags of ``sentinel train`` become a TrainingConfig; bad ones are ConfigurationErrors."""

from __future__ import annotations

import argparse
from datetime import date

import pytest

from cli.train import training_config
from sentinel.errors import ConfigurationError
from sentinel.settings import FeatureSettings, Settings


def test_flags_map_to_config() -> None:
    settings = Settings(features=FeatureSettings(label_delay_days=5))
    args = argparse.Namespace(
        alert_budget=0.5, train_days=14, train_start="2018-07-01", num_trees=50
    )
    config = training_config(settings, args)
    assert config.policy.alert_budget == pytest.approx(0.005)  # percent -> share
    assert config.split.train_days == 14 and config.split.delay_days == 5
    assert config.split.train_start == date(2018, 7, 1)
    assert config.booster.num_trees == 50


def test_defaults_without_flags() -> None:
    config = training_config(Settings(), argparse.Namespace())
    assert (config.split.train_days, config.split.test_days, config.policy.alert_budget) == (
        7,
        7,
        None,
    )


@pytest.mark.parametrize(("name", "value"), [("alert_budget", 150.0), ("train_start", "07/01")])
def test_bad_flags(name: str, value: object) -> None:
    with pytest.raises(ConfigurationError):
        training_config(Settings(), argparse.Namespace(**{name: value}))


def test_per_label_mode_keeps_the_split_gap_it_is_given() -> None:
    """D = 0 (each label from its own arrival time) does not collapse the split's gap."""
    settings = Settings(features=FeatureSettings(label_delay_days=0, split_gap_days=7))
    assert training_config(settings, argparse.Namespace()).split.delay_days == 7
    assert training_config(settings, argparse.Namespace(delay_days=3)).split.delay_days == 3
    assert Settings(features=FeatureSettings(label_delay_days=5)).features.gap_days == 5
