"""Retraining guardrails: pure, with explicit times."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from lifecycle.guardrails import Guardrails
from sentinel.settings import DriftSettings

T0 = datetime(2024, 3, 1, tzinfo=UTC)


def _rails(**kw) -> Guardrails:
    base = {"retrain_cooldown_s": 600, "retrain_daily_cap": 4, "retrain_min_labels": 100}
    return Guardrails(DriftSettings(**(base | kw)))


def _run(rails: Guardrails, alerts: list[tuple[str, float]], labels: int = 1000) -> list[str]:
    out = []
    for signal, at_s in alerts:
        now = T0 + timedelta(seconds=at_s)
        d = rails.decide(signal, now, labels)
        if d.retrain:
            rails.record_retrain(now)
        out.append(d.reason)
    return out


def test_burst_of_duplicate_alerts_gives_one_retrain() -> None:
    burst = [("score", i) for i in range(20)] + [("amount", 5), ("alert_rate", 7)]
    reasons = _run(_rails(), burst)
    assert reasons.count("retrain") == 1
    assert set(reasons) <= {"retrain", "duplicate", "cooldown"}


def test_cooldown_then_retrain_again() -> None:
    reasons = _run(_rails(), [("score", 0), ("amount", 300), ("amount", 1300)])
    assert reasons == ["retrain", "cooldown", "retrain"]


def test_daily_cap() -> None:
    alerts = [(f"s{i}", i * 700.0) for i in range(6)] + [("late", 86_400 + 1)]
    reasons = _run(_rails(retrain_daily_cap=3), alerts)
    assert reasons == ["retrain"] * 3 + ["daily_cap"] * 3 + ["retrain"]


def test_min_labels_holds_then_releases() -> None:
    rails = _rails()
    assert rails.decide("score", T0, labels_since_shift=10).reason == "min_labels"
    assert rails.pending_since == T0
    # the same signal re-firing is not discarded as a duplicate while a retrain is pending
    later = T0 + timedelta(seconds=60)
    assert rails.decide("score", later, labels_since_shift=150).retrain


def test_min_frauds_holds_until_the_new_pattern_has_examples(tmp_path) -> None:
    rails = _rails(retrain_min_frauds=100)
    assert rails.decide("score", T0, labels_since_shift=5000, frauds_since_shift=40).reason == (
        "min_frauds")
    assert rails.pending_since == T0
    assert rails.decide("__pending__", T0, 5000, frauds_since_shift=100).retrain
    assert _rails().decide("score", T0, 5000, frauds_since_shift=0).retrain  # 0: off

    from lifecycle.labelstore import LabelStore
    from schemas.events import LabelFeedback, Transaction

    store = LabelStore(tmp_path / "f.sqlite")
    times = [T0 - timedelta(hours=1), T0, T0 + timedelta(hours=1), T0 + timedelta(hours=2)]
    store.add_transactions(Transaction(transaction_id=f"t{i}", card_id="c", terminal_id="m",
                                       amount=1.0, event_time=t) for i, t in enumerate(times))
    store.add_labels(LabelFeedback(transaction_id=f"t{i}", card_id="c", terminal_id="m",
                                   is_fraud=i != 2, transaction_time=t, reported_at=t,
                                   source="simulator") for i, t in enumerate(times))
    assert (store.labels_since(T0), store.frauds_since(T0)) == (3, 2)


def test_retrain_split_ends_at_the_newest_data_with_the_label_delay_as_gap(tmp_path) -> None:
    from lifecycle.labelstore import LabelStore
    from lifecycle.retrainer import Retrainer
    from sentinel.settings import FeatureSettings, Settings

    settings = Settings(data_dir=tmp_path, features=FeatureSettings(label_delay_days=1),
                        drift=DriftSettings(retrain_train_days=5, retrain_test_days=1,
                                            retrain_min_labels=0))
    calls = []
    retrainer = Retrainer(settings, LabelStore(tmp_path / "s.sqlite"), _NoRegistry(),
                          calls.append,
                          train=lambda *a, **k: calls.append(k["config"]) or _Outcome())
    retrainer.on_alert(_alert(T0, blocks=0.0))
    split = calls[0].split
    assert (split.delay_days, split.train_days, split.test_days, split.anchor) == (1, 5, 1, "end")
    assert retrainer.retrains["registered"] == 1


def test_retrain_with_per_label_times_uses_the_split_gap_not_the_zero_delay(tmp_path) -> None:
    from lifecycle.labelstore import LabelStore
    from lifecycle.retrainer import Retrainer
    from sentinel.settings import FeatureSettings, Settings

    settings = Settings(data_dir=tmp_path,
                        features=FeatureSettings(label_delay_days=0, split_gap_days=2),
                        drift=DriftSettings(retrain_train_days=5, retrain_test_days=1,
                                            retrain_min_labels=0))
    calls = []
    retrainer = Retrainer(settings, LabelStore(tmp_path / "s.sqlite"), _NoRegistry(),
                          calls.append,
                          train=lambda *a, **k: calls.append(k["config"]) or _Outcome())
    retrainer.on_alert(_alert(T0, blocks=0.0))
    assert calls[0].split.delay_days == 2


class _Outcome:
    status = "registered"
    model = None


class _NoRegistry:
    """A registry with nothing in it (the retrainer's jobs look for their versions)."""

    name = "none"

    def versions(self) -> list:
        return []

    def resolve(self, alias: str) -> None:
        return None


def test_retrain_split_in_hours_refits_and_weighs_the_shift(tmp_path) -> None:
    from lifecycle.labelstore import LabelStore
    from lifecycle.retrainer import Retrainer
    from sentinel.settings import FeatureSettings, Settings

    settings = Settings(data_dir=tmp_path, features=FeatureSettings(label_delay_days=1),
                        drift=DriftSettings(retrain_test_hours=6, retrain_gap_hours=3,
                                            retrain_shift_fraud_weight=15, retrain_min_labels=0))
    calls = []
    retrainer = Retrainer(settings, LabelStore(tmp_path / "s.sqlite"), _NoRegistry(), calls.append,
                          train=lambda *a, **k: calls.append(k["config"]) or _Outcome())
    retrainer.on_alert(_alert(T0 + timedelta(hours=5), blocks=4.0))
    config = calls[0]
    assert (config.split.anchor, config.split.test_days, config.split.delay_days) == (
        "latest", 0.25, 0.125)
    assert config.refit_on_newest and config.shift_fraud_weight == 15
    assert config.shift_onset == T0 + timedelta(hours=1)  # the alert's estimate of the onset
    assert retrainer.training_config().shift_onset is None  # the initial champion: no shift


def _alert(at: datetime, blocks: float):
    from schemas.events import DriftAlert

    return DriftAlert(alert_id="a", detector="cusum", signal="card_testing_bursts",
                      statistic=30.0, current={"blocks": blocks}, event_time=at,
                      detected_at=at, events_seen=1)


def test_follow_up_retrains_run_on_event_time_within_the_cooldown_and_cap(tmp_path) -> None:
    """After a shift's first retrain, follow-ups every ``retrain_followup_hours`` of event time
    (a weak or rejected first candidate is not the end), weighted by the same onset, limited by
    the cooldown and the daily cap; a new shift's retrain schedules its own."""
    from lifecycle.labelstore import LabelStore
    from lifecycle.retrainer import Retrainer
    from sentinel.settings import Settings

    settings = Settings(data_dir=tmp_path, drift=DriftSettings(
        retrain_min_labels=0, retrain_followups=3, retrain_followup_hours=6,
        retrain_daily_cap=3, retrain_cooldown_s=3600, retrain_shift_fraud_weight=20))
    calls: list = []
    retrainer = Retrainer(settings, LabelStore(tmp_path / "s.sqlite"), _NoRegistry(), calls.append,
                          train=lambda *a, **k: calls.append((k["reason"], k["config"]))
                          or _Outcome())
    retrainer.check_promotion = lambda: None  # no registry here: follow-ups only
    retrainer.check_rollback = lambda: None
    retrainer.on_alert(_alert(T0 + timedelta(hours=5), blocks=4.0))
    assert [r for r, _ in calls] == ["drift:cusum/card_testing_bursts"]
    retrainer.tick(T0 + timedelta(hours=10))  # not due yet (5 h + 6 h)
    assert len(calls) == 1
    retrainer.tick(T0 + timedelta(hours=11))
    assert [r for r, _ in calls] == ["drift:cusum/card_testing_bursts", "drift:followup"]
    assert calls[1][1].shift_onset == T0 + timedelta(hours=1)  # the first alert's onset
    retrainer.tick(T0 + timedelta(hours=17))
    assert len(calls) == 3
    retrainer.tick(T0 + timedelta(hours=23))  # third follow-up: the daily cap (3) is reached
    assert len(calls) == 3 and retrainer.retrains["skipped_followup_daily_cap"] == 1
    retrainer.tick(T0 + timedelta(days=3))  # none left
    assert len(calls) == 3

    # a follow-up inside the cooldown is skipped, not postponed
    calls.clear()
    quick = Settings(data_dir=tmp_path, drift=DriftSettings(
        retrain_min_labels=0, retrain_followups=1, retrain_followup_hours=0.5,
        retrain_cooldown_s=3600))
    retrainer = Retrainer(quick, LabelStore(tmp_path / "q.sqlite"), _NoRegistry(), calls.append,
                          train=lambda *a, **k: calls.append(k["reason"]) or _Outcome())
    retrainer.check_promotion = lambda: None
    retrainer.check_rollback = lambda: None
    retrainer.on_alert(_alert(T0, blocks=1.0))
    retrainer.tick(T0 + timedelta(minutes=40))
    assert calls == ["drift:cusum/card_testing_bursts"]
    assert retrainer.retrains["skipped_followup_cooldown"] == 1


def test_a_follow_up_waits_while_the_candidate_is_on_track_to_promotion(tmp_path) -> None:
    """A candidate whose gain is proved and guards pass, waiting only for live evidence, is not
    replaced by a follow-up (whose evidence would start over); the follow-up runs after."""
    from lifecycle.labelstore import LabelStore
    from lifecycle.retrainer import Retrainer
    from sentinel.settings import Settings

    settings = Settings(data_dir=tmp_path, drift=DriftSettings(
        retrain_min_labels=0, retrain_followups=1, retrain_followup_hours=6,
        retrain_cooldown_s=0))
    calls: list = []
    retrainer = Retrainer(settings, LabelStore(tmp_path / "s.sqlite"), _NoRegistry(), calls.append,
                          train=lambda *a, **k: calls.append(k["reason"]) or _Outcome())
    on_track = ["7"]

    def check() -> None:
        retrainer._on_track = on_track[0]

    retrainer.check_promotion = check
    retrainer.check_rollback = lambda: None
    retrainer.on_alert(_alert(T0, blocks=1.0))
    retrainer.tick(T0 + timedelta(hours=1))
    retrainer.tick(T0 + timedelta(hours=7))  # due, but v7 is on track
    assert calls == ["drift:cusum/card_testing_bursts"]
    on_track[0] = None  # v7 promoted, or off track: the follow-up runs at the next tick
    retrainer.tick(T0 + timedelta(hours=8))
    retrainer.tick(T0 + timedelta(hours=9))
    assert calls == ["drift:cusum/card_testing_bursts", "drift:followup"]


def test_a_held_retrain_counts_its_follow_ups_from_the_newest_payment(tmp_path) -> None:
    from lifecycle.labelstore import LabelStore
    from lifecycle.retrainer import Retrainer
    from schemas.events import LabelFeedback, Transaction
    from sentinel.settings import Settings

    settings = Settings(data_dir=tmp_path, drift=DriftSettings(
        retrain_min_labels=2, retrain_followups=1, retrain_followup_hours=6,
        retrain_cooldown_s=0))
    store = LabelStore(tmp_path / "s.sqlite")
    calls: list = []
    retrainer = Retrainer(settings, store, _NoRegistry(), calls.append,
                          train=lambda *a, **k: calls.append(k["reason"]) or _Outcome())
    retrainer.check_promotion = lambda: None
    retrainer.check_rollback = lambda: None
    retrainer.on_alert(_alert(T0 + timedelta(hours=5), blocks=1.0))  # held: no labels yet
    assert calls == []
    times = [T0 + timedelta(hours=h) for h in (6, 20)]
    store.add_transactions(Transaction(transaction_id=f"t{i}", card_id="c", terminal_id="m",
                                       amount=1.0, event_time=t) for i, t in enumerate(times))
    store.add_labels(LabelFeedback(transaction_id=f"t{i}", card_id="c", terminal_id="m",
                                   is_fraud=False, transaction_time=t, reported_at=t,
                                   source="simulator") for i, t in enumerate(times))
    retrainer.tick(T0 + timedelta(hours=20))  # released now, not at the alert's 5 h
    assert calls == ["drift:pending"]
    retrainer.tick(T0 + timedelta(hours=25))
    assert calls == ["drift:pending"]  # 20 h + 6 h, not 5 h + 6 h
    retrainer.tick(T0 + timedelta(hours=26))
    assert calls == ["drift:pending", "drift:followup"]
