"""PSI against the champion's reference profile: windows, cadence, hysteresis, the monitor's
alerts and the retrainer's reading of them. Pure and seeded."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from pydantic import ValidationError

from drift.monitor import DriftMonitor
from drift.psi import BinnedWindow, ReferencePsi
from drift.reference_profile import Distribution, ReferenceProfile, build_profile
from schemas import DriftAlert, decode, encode
from sentinel.settings import DriftSettings

T0 = datetime(2024, 3, 1, tzinfo=UTC)
PSI = {"psi_window_events": 2000, "psi_every_events": 500, "psi_min_events": 1000}


def _amounts(rng: np.random.Generator, n: int, scale: float = 60.0) -> np.ndarray:
    return rng.gamma(2.0, scale, n)


def _reference() -> Distribution:
    return Distribution.from_values(_amounts(np.random.default_rng(0), 20_000))


def test_window_psi_equals_the_profiles_psi_of_the_newest_values_across_wraps() -> None:
    rng = np.random.default_rng(1)
    ref = _reference()
    window = BinnedWindow(ref, capacity=1000)
    seen: list[float] = []
    for size in rng.integers(1, 700, 40):  # batches of every size, the ring wraps many times
        values = _amounts(rng, int(size), scale=rng.choice([60.0, 150.0]))
        values[rng.random(len(values)) < 0.05] = np.nan  # events without the value
        window.push(values, np.zeros(len(values)))
        seen += [v for v in values if np.isfinite(v)]
        newest = seen[-1000:]
        assert window.n == len(newest)
        assert window.counts.sum() == window.n and window.counts.min() >= 0
        assert window.psi() == pytest.approx(ref.psi(newest), rel=1e-12, abs=1e-15)
    big = _amounts(rng, 2500)  # one batch larger than the window: its newest values
    window.push(big, np.zeros(len(big)))
    assert window.psi() == pytest.approx(ref.psi(big[-1000:]), rel=1e-12)


def test_time_window_keeps_the_values_within_its_horizon_of_event_time() -> None:
    rng = np.random.default_rng(2)
    ref = _reference()
    window = BinnedWindow(ref, capacity=5000)
    values, secs = _amounts(rng, 3000), np.arange(3000.0)
    for lo in range(0, 3000, 250):
        window.push(values[lo:lo + 250], secs[lo:lo + 250])
        window.expire(secs[lo + 249] - 600.0)
        keep = (secs <= secs[lo + 249]) & (secs >= secs[lo + 249] - 600.0)
        assert window.n == keep.sum()
        assert window.psi() == pytest.approx(ref.psi(values[keep]), rel=1e-12)
    assert window.span_s() == 600.0


def _stream(settings: DriftSettings, segments: list[tuple[int, float]], batch: int = 100,
            ) -> tuple[ReferencePsi, list[tuple[int, str, float]]]:
    """Feed amounts of gamma(2, scale) per segment (events, scale); the (events seen,
    variable, PSI) of every shift."""
    rng = np.random.default_rng(3)
    psi = ReferencePsi(ReferenceProfile({"amount": _reference()}), "5", settings)
    fired, t = [], 0.0
    for n, scale in segments:
        for _ in range(n // batch):
            secs = t + np.arange(batch, dtype=np.float64)
            t += batch
            for shift in psi.observe({"amount": _amounts(rng, batch, scale)}, secs):
                fired.append((psi.events, shift.variable, shift.psi))
    return psi, fired


def test_one_shift_fires_once_and_rearms_below_the_threshold() -> None:
    settings = DriftSettings(**PSI)
    stable, shifted = (6000, 60.0), (6000, 150.0)
    psi, fired = _stream(settings, [stable, shifted, stable, shifted])
    # pinned on the seeded stream: one alert per shift, each soon after its onset
    assert [(at, name) for at, name, _ in fired] == [(7000, "amount"), (19000, "amount")]
    assert all(value > settings.psi_threshold for _, _, value in fired)
    assert psi.last_psi["amount"] > settings.psi_threshold  # still shifted: no third alert
    assert psi.evaluations == 24000 // 500


def test_an_unshifted_stream_never_fires_and_psi_waits_for_the_minimum() -> None:
    settings = DriftSettings(**PSI)
    psi, fired = _stream(settings, [(500, 60.0)])
    assert psi.evaluations == 1 and psi.last_psi == {}  # 500 < psi_min_events: no PSI yet
    psi, fired = _stream(settings, [(20_000, 60.0)])
    assert fired == []
    assert psi.last_psi["amount"] < 0.02


def test_psi_is_computed_only_every_n_events() -> None:
    settings = DriftSettings(psi_window_events=1000, psi_every_events=1000, psi_min_events=10)
    psi = ReferencePsi(ReferenceProfile({"amount": _reference()}), "1", settings)
    rng = np.random.default_rng(4)
    psi.observe({"amount": _amounts(rng, 999)}, np.zeros(999))
    assert psi.evaluations == 0 and psi.last_psi == {}
    psi.observe({"amount": _amounts(rng, 1)}, np.zeros(1))
    assert psi.evaluations == 1
    psi.observe({"amount": _amounts(rng, 2500, 500.0)}, np.zeros(2500))  # passes 2000 and 3000
    assert psi.evaluations == 2


def test_settings_refuse_a_minimum_larger_than_the_window() -> None:
    with pytest.raises(ValidationError, match="psi_min_events"):
        DriftSettings(psi_window_events=500, psi_min_events=1000)


# -- the monitor -----------------------------------------------------------------------------


def _profile() -> ReferenceProfile:
    rng = np.random.default_rng(5)
    return build_profile(_amounts(rng, 20_000), rng.beta(1, 20, 20_000),
                         {"v1": rng.normal(0, 1, 20_000)})


def _batches(monitor: DriftMonitor, n_batches: int, scale: float, version: str = "4",
             v1_shift: float = 0.0, start: int = 0) -> list[DriftAlert]:
    rng = np.random.default_rng(6 + start)
    alerts = []
    for b in range(start, start + n_batches):
        n = 200
        times = [T0 + timedelta(seconds=30 * (b * n + i)) for i in range(n)]
        features = _amounts(rng, n, scale)[:, None]
        attrs = [{"v1": float(v)} if i % 2 else None  # half the events lack it
                 for i, v in enumerate(rng.normal(v1_shift, 1, n))]
        alerts += monitor.observe_batch(features, rng.beta(1, 20, n),
                                        np.array(["approve"] * n), times, attributes=attrs,
                                        model_version=version)
    return alerts


def _monitor() -> DriftMonitor:
    # the other detectors stay in their grace period: only PSI can fire here
    return DriftMonitor(DriftSettings(grace_events=10**9, **PSI), ["amount"],
                        model_version="4")


def test_monitor_alerts_once_per_variable_against_the_champions_profile() -> None:
    monitor = _monitor()
    monitor.set_reference(_profile(), "4")
    assert _batches(monitor, 30, 60.0) == []
    (key, psi) = monitor.reference_psi()
    assert key == ("4", 12) and set(psi) == {"amount", "score", "v1"}
    assert max(psi.values()) < 0.05
    alerts = _batches(monitor, 30, 200.0, v1_shift=1.5, start=30)
    assert sorted(a.signal for a in alerts) == ["amount", "v1"]  # the score did not move
    amount = next(a for a in alerts if a.signal == "amount")
    assert amount.detector == "psi_reference" and amount.model_version == "4"
    assert amount.statistic > 0.2 and amount.reference["threshold"] == 0.2
    assert amount.current["n"] == 2000 and amount.reference["n"] == 20_000
    assert sum(v for k, v in amount.current.items() if k.startswith("share_")) == (
        pytest.approx(1.0))
    # the window spans 2,000 events 30 s apart: the shift's onset is dated to its start
    assert amount.current["blocks"] == pytest.approx(1999 * 30 / 3600)
    assert decode(DriftAlert, encode(amount)) == amount  # the drift-alerts topic's contract


def test_monitor_without_a_profile_or_for_another_version_computes_no_psi() -> None:
    monitor = _monitor()
    assert _batches(monitor, 30, 200.0) == []  # no profile: nothing to compare with
    assert monitor.reference_psi() == ((None, 0), {})
    monitor.set_reference(_profile(), "4")
    assert _batches(monitor, 30, 200.0, version="3") == []  # the previous champion's batches
    assert monitor.reference_psi() == (("4", 0), {})
    monitor.set_reference(None, "5")  # a champion logged without a profile
    assert _batches(monitor, 30, 200.0, version="5") == []
    assert monitor.snapshot()["reference"] is None


def test_a_swap_starts_a_new_window_and_rearms() -> None:
    monitor = _monitor()
    monitor.set_reference(_profile(), "4")
    assert [a.signal for a in _batches(monitor, 30, 200.0)] == ["amount"]
    monitor.set_reference(_profile(), "6")  # a new champion trained on the same world
    alerts = _batches(monitor, 30, 200.0, version="6", start=30)
    assert [(a.signal, a.model_version) for a in alerts] == [("amount", "6")]


def test_the_retrainer_acts_on_a_psi_alert_like_any_drift_alert(tmp_path) -> None:
    from lifecycle.labelstore import LabelStore
    from lifecycle.retrainer import Retrainer, alert_onset
    from sentinel.settings import Settings
    from tests.unit.test_retrainer_guardrails import _NoRegistry, _Outcome

    monitor = _monitor()
    monitor.set_reference(_profile(), "4")
    _batches(monitor, 30, 60.0)
    (alert,) = [a for a in _batches(monitor, 30, 200.0, start=30) if a.signal == "amount"]
    settings = Settings(data_dir=tmp_path, drift=DriftSettings(retrain_min_labels=0))
    onset = alert_onset(alert, settings.drift.block_seconds)
    assert alert.event_time - onset == timedelta(seconds=1999 * 30)
    calls: list = []
    retrainer = Retrainer(settings, LabelStore(tmp_path / "s.sqlite"), _NoRegistry(),
                          calls.append, train=lambda *a, **k: calls.append(
                              (k["reason"], k["config"].shift_onset)) or _Outcome())
    retrainer.check_promotion = lambda: None
    retrainer.check_rollback = lambda: None
    decision = retrainer.on_alert(alert)
    assert decision.retrain and calls == [("drift:psi_reference/amount", onset)]
