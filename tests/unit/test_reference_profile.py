"""The model's reference profile: quantile bins, open outer bins, PSI, and its JSON file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from drift.reference_profile import (
    Distribution,
    ProfileError,
    ReferenceProfile,
    build_profile,
    read_profile,
    training_profile,
    write_profile,
)


def test_quantile_bins_hold_equal_shares_and_merge_ties() -> None:
    rng = np.random.default_rng(1)
    amounts = Distribution.from_values(rng.lognormal(3.0, 1.0, 10_000), bins=10)
    assert len(amounts.shares) == 10
    assert np.allclose(amounts.shares, 0.1, atol=0.002)
    assert list(amounts.edges) == sorted(amounts.edges)
    # a score that is mostly 0: ties merge into one wide bin, never an empty one
    scores = Distribution.from_values([0.0] * 900 + list(np.linspace(0.1, 1, 100)), bins=10)
    assert len(scores.shares) < 10 and min(scores.shares) > 0
    assert sum(scores.shares) == pytest.approx(1.0)


def test_live_values_outside_the_reference_fall_in_the_outer_bins() -> None:
    ref = Distribution.from_values([1.0, 2.0, 3.0, 4.0] * 10, bins=4)
    shares, n = ref.live_shares([-100.0, 1e9, float("nan"), 2.5])
    assert n == 3  # NaN is not counted
    assert shares[0] == pytest.approx(1 / 3) and shares[-1] == pytest.approx(1 / 3)


def test_psi_grows_with_the_shift_and_is_zero_without() -> None:
    rng = np.random.default_rng(2)
    ref = Distribution.from_values(rng.normal(0, 1, 20_000))
    same = ref.psi(rng.normal(0, 1, 20_000))
    small = ref.psi(rng.normal(0.2, 1, 20_000))
    large = ref.psi(rng.normal(1.0, 1, 20_000))
    assert same < 0.01 < small < 0.2 < large


def test_profile_round_trips_through_its_json_file(tmp_path: Path) -> None:
    profile = build_profile([1.0, 5.0, 9.0, 20.0] * 50, [0.01, 0.02, 0.5] * 50,
                            {"attr": [1.0, 2.0] * 10, "empty": []}, bins=4, meta={"rows": "200"})
    assert set(profile.variables) == {"amount", "score", "attr"}  # an empty attribute is skipped
    assert profile.variables["score"].source == "verdicts"
    back = read_profile(write_profile(profile, tmp_path / "p"))
    assert back.variables == profile.variables and back.meta == {"rows": "200"}


@pytest.mark.parametrize("text", ['{"format": "other"}', "not json",
                                  '{"format": "sentinel.reference_profile", "version": 99}',
                                  '{"format": "sentinel.reference_profile", "version": 1, '
                                  '"variables": {"a": {"edges": [2, 1], "shares": [1], '
                                  '"count": 1}}}'])
def test_a_foreign_or_corrupt_profile_is_one_clear_error(text: str) -> None:
    with pytest.raises(ProfileError, match="unreadable reference profile"):
        ReferenceProfile.from_json(text)


def test_training_profile_uses_the_frame_amounts_and_the_held_out_scores() -> None:
    frame = pd.DataFrame({"amount": np.arange(1.0, 101.0), "is_fraud": [0] * 100})
    profile = training_profile(frame, np.linspace(0, 1, 40))
    assert set(profile.variables) == {"amount", "score"}
    assert profile.variables["amount"].count == 100
    assert profile.variables["score"].count == 40
    assert profile.meta == {"rows": "100", "scored_rows": "40"}


def test_training_profile_includes_the_models_declared_numeric_attributes() -> None:
    rng = np.random.default_rng(3)
    frame = pd.DataFrame({"amount": rng.gamma(2.0, 60.0, 500), "V1": rng.normal(0, 1, 500),
                          "channel": ["web"] * 500, "is_fraud": [0] * 500})
    frame.loc[::10, "V1"] = np.nan  # a missing value is not profiled
    profile = training_profile(frame, np.linspace(0, 1, 40), numeric=("V1", "absent"))
    assert set(profile.variables) == {"amount", "score", "V1"}
    assert profile.variables["V1"].count == 450
    assert profile.variables["V1"].psi(frame["V1"].dropna()) < 0.01
