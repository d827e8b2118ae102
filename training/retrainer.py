"""The retrainer's core: drift alerts in, guarded retrains and evidence-based promotions out.

Pure of Kafka (the adapter is :mod:`training.retrainer_kafka`): it reads the
:class:`~training.labelstore.LabelStore`, asks :class:`~training.guardrails.Guardrails`
whether to retrain, trains through the pipeline (data gate, training gate, ``@candidate``),
and on a timer compares the candidate with the champion on shadow results joined with matured
labels (:mod:`training.promotion`), promoting or rolling back through the registry and
publishing a :class:`~schemas.events.ModelEvent` with the evidence. Times are event times.
"""

from __future__ import annotations

import logging
import uuid
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np

from schemas.events import DriftAlert, ModelEvent
from sentinel.errors import SentinelError
from sentinel.settings import Settings
from training.backfill import backfill_shadow, cutoff_of
from training.guardrails import Decision, Guardrails
from training.labelstore import LabelStore
from training.promotion import (
    PromotionRules,
    Verdict,
    decide_live_rollback,
    decide_promotion,
    decide_rollback,
)
from training.segments import ShiftSegments

logger = logging.getLogger(__name__)

Publish = Callable[[ModelEvent], None]
Train = Callable[..., Any]


def _default_train(*args: Any, **kwargs: Any) -> Any:
    from training.pipeline import train_and_register

    return train_and_register(*args, **kwargs)


class Retrainer:
    """Decides and acts; counts outcomes in ``retrains`` and ``promotions`` for metrics."""

    def __init__(self, settings: Settings, store: LabelStore, registry: Any, publish: Publish,
                 train: Train | None = None) -> None:
        self.settings = settings
        self.store = store
        self.registry = registry  # ModelRegistry without its own publisher: we add evidence
        self.publish = publish
        self.train = train or _default_train
        self.guardrails = Guardrails(settings.drift)
        self.retrains: Counter[str] = Counter()
        self.promotions: Counter[str] = Counter()
        self.backfilled: dict[str, int] = {}  # candidate version -> backfilled shadow results
        self._followups: list[datetime] = []  # event times of the follow-up retrains due
        self._followup_onset: datetime | None = None
        self.shift_onset: datetime | None = None
        self._judged_champion: str | None = None
        self.last_event_time: datetime | None = None
        from features.spec import FeatureConfig

        self.segments = ShiftSegments(store, FeatureConfig.from_settings(settings.features))

    def on_alert(self, alert: DriftAlert) -> Decision:
        """Judge an alert; retrain if the guardrails allow."""
        now = alert.event_time
        blocks = alert.current.get("blocks", 0.0)
        onset = now - timedelta(seconds=blocks * self.settings.drift.block_seconds)
        self.shift_onset = min(self.shift_onset, onset) if self.shift_onset else onset
        self.segments.on_alert(alert.signal)
        decision = self.guardrails.decide(alert.signal, now, self.store.labels_since(onset),
                                          self.store.frauds_since(onset))
        logger.info("drift alert signal=%s detector=%s decision=%s", alert.signal,
                    alert.detector, decision.reason)
        if decision.retrain:
            self._retrain(now, f"drift:{alert.detector}/{alert.signal}")
        else:
            self.retrains[f"skipped_{decision.reason}"] += 1
        return decision

    def retry_pending(self) -> None:
        """Release a retrain held for labels once enough have arrived (after label batches)."""
        pending = self.guardrails.pending_since
        if pending is not None and self.shift_onset is not None:
            labels = self.store.labels_since(self.shift_onset)
            frauds = self.store.frauds_since(self.shift_onset)
            if self.guardrails.decide("__pending__", pending, labels, frauds).retrain:
                self._retrain(pending, "drift:pending")

    def tick(self, now: datetime) -> None:
        """Timer (``now``: the newest event time seen): release a held retrain, run a
        follow-up retrain that is due, then promotion and rollback checks."""
        self.retry_pending()
        self.run_followup(now)
        self.check_promotion()
        self.check_rollback()

    def run_followup(self, now: datetime) -> None:
        """Retrain again once a follow-up is due: a new pattern is learnt from its examples,
        and the first retrain after the alert had few (or failed the training gate); each
        candidate must beat the champion of its time, so a better one replaces a weak one."""
        if not any(t <= now for t in self._followups):
            return
        self._followups = [t for t in self._followups if t > now]
        limits = self.guardrails.limits(now)
        if not limits.retrain:
            self.retrains[f"skipped_followup_{limits.reason}"] += 1
            return
        self.shift_onset = self._followup_onset
        self._retrain(now, "drift:followup", followup=True)

    def training_config(self, shift_onset: datetime | None = None) -> Any:
        """The split of a retrain: anchored at the newest data, the gap = the label delay.

        The book's split (7-day gap, 7 test days, placed at the book's offset) would train on
        data from before a shift that is days old; a retrain must see the new pattern, so the
        test window is short (``retrain_test_days``) and ends on the last day of the store.
        With ``retrain_test_hours`` the windows are hours back from the newest labelled payment
        (labels within hours): a calendar-day split would stop training at the midnight before
        the shift. The served model is refit on the newest labels (``retrain_refit_on_newest``)
        and the frauds since ``shift_onset`` weigh ``retrain_shift_fraud_weight``.
        """
        from training.pipeline import TrainingConfig
        from training.split import SplitConfig

        d = self.settings.drift
        if d.retrain_test_hours > 0:
            split = SplitConfig(
                train_days=d.retrain_train_days, delay_days=d.retrain_gap_hours / 24,
                test_days=d.retrain_test_hours / 24, validation_days=d.retrain_test_days,
                anchor="latest")
        else:
            split = SplitConfig(
                train_days=d.retrain_train_days,
                delay_days=self.settings.features.label_delay_days,
                test_days=d.retrain_test_days, validation_days=d.retrain_test_days,
                anchor="end")
        from training.selection import ThresholdPolicy

        return TrainingConfig(split=split, refit_on_newest=d.retrain_refit_on_newest,
                              policy=ThresholdPolicy(alert_budget=d.alert_budget),
                              shift_onset=shift_onset,
                              shift_fraud_weight=d.retrain_shift_fraud_weight)

    def _retrain(self, now: datetime, reason: str, followup: bool = False) -> None:
        self.guardrails.record_retrain(now)
        d = self.settings.drift
        since = now - timedelta(days=d.retrain_label_window_days)
        frame, labels = self.store.training_frame(since)
        cutoff = cutoff_of(frame, labels)
        if not followup:  # a shift's first retrain schedules its follow-ups, counted from
            # the newest payment (``now`` is the alert's time when the retrain was held)
            base = max([now, *frame["event_time"].tail(1)])
            self._followup_onset = self.shift_onset
            self._followups = [base + timedelta(hours=d.retrain_followup_hours * (k + 1))
                               for k in range(d.retrain_followups)]
        try:
            outcome = self.train(self.settings, frame, labels, reason=reason,
                                 publish=self.publish,
                                 config=self.training_config(self.shift_onset))
        except SentinelError as exc:
            self.retrains["failed"] += 1
            logger.warning("retrain failed reason=%s error=%s", reason, exc)
            return
        self.retrains[outcome.status] += 1
        self.shift_onset = None
        logger.info("retrain done status=%s version=%s", outcome.status,
                    outcome.model.version if outcome.model else None)
        if outcome.status == "registered" and outcome.model is not None and cutoff is not None \
                and self.settings.drift.promotion_backfill:
            self._backfill(outcome.model, cutoff)

    def _backfill(self, candidate: Any, cutoff: datetime) -> None:
        """Shadow results for the payments after the candidate's training data
        (:mod:`training.backfill`); a failure costs only the head start."""
        from features.spec import FeatureConfig

        champion = self.registry.resolve("champion")
        if champion is None:
            return
        try:
            n = backfill_shadow(self.store, self.registry.load(candidate), candidate.version,
                                champion.version, cutoff,
                                FeatureConfig.from_settings(self.settings.features))
        except SentinelError as exc:
            self.retrains["backfill_failed"] += 1
            logger.warning("shadow backfill of v%s failed: %s", candidate.version, exc)
            return
        self.backfilled[candidate.version] = n

    def check_promotion(self) -> Verdict | None:
        candidate = self.registry.resolve("candidate")
        champion = self.registry.resolve("champion")
        if candidate is None:
            return None
        if champion is None:  # nothing to compare with: the first model becomes champion
            self._promote(candidate.version, None, Verdict("promote", "no champion yet"))
            return None
        joined = self.store.shadow_joined(candidate.version)
        joined = joined[(joined["champion_version"] == champion.version)
                        & joined["candidate_flagged"].notna()]
        joined = joined.sort_values(["label_time", "transaction_id"], kind="stable")
        verdict = decide_promotion(
            joined["is_fraud"].to_numpy(), joined["champion_score"].to_numpy(),
            joined["candidate_score"].to_numpy(), joined["champion_flagged"].to_numpy(),
            joined["candidate_flagged"].to_numpy(),
            rules=PromotionRules.from_settings(self.settings.drift),
            # frauds not segmented yet (fewer than 25 new) sit out the known-pattern guard
            shift=lambda: self.segments.of_frauds(joined, min_batch=25) != 0,
            live=(joined["source"] != "backfill").to_numpy())
        logger.info("promotion check candidate=%s action=%s reason=%s", candidate.version,
                    verdict.action, verdict.reason)
        if verdict.action == "promote":
            self._promote(candidate.version, champion.version, verdict)
        elif verdict.action == "keep":
            self.promotions["kept"] += 1
        return verdict

    def _promote(self, version: str, previous: str | None, verdict: Verdict) -> None:
        evidence = verdict.evidence.as_dict() if verdict.evidence else {}
        # the evidence first: whoever sees the alias move (a worker, the demo) sees all of it
        for key, value in evidence.items():
            self.registry.client.set_model_version_tag(
                self.registry.name, version, f"sentinel.promotion.{key}", str(value))
        self.registry.promote(version, reason=verdict.reason)
        self.promotions["promoted"] += 1
        self._emit("promoted", version, previous, verdict.reason, evidence)

    def check_rollback(self) -> Verdict | None:
        champion = self.registry.resolve("champion")
        if champion is None:
            return None
        previous = champion.tags.get("sentinel.previous_champion")
        if not previous:
            return None
        guard = self._check_live_guards(champion, previous)
        if guard.action == "rollback" or champion.version == self._judged_champion:
            return guard
        new = self.store.verdicts_joined(champion.version)
        old = self.store.verdicts_joined(previous)
        # the predecessor's AP on the promotion's shadow window (same payments, same world)
        # when known; its whole live history would mix in the world before the shift
        shadow_ap = champion.tags.get("sentinel.promotion.ap_champion")
        baseline = float(shadow_ap) if shadow_ap else None
        if len(old) == 0 and baseline is None:
            return None
        verdict = decide_rollback(new["is_fraud"].to_numpy(), new["score"].to_numpy(),
                                  old["is_fraud"].to_numpy(), old["score"].to_numpy(),
                                  baseline_ap=baseline,
                                  min_labels=self.settings.drift.rollback_min_labels,
                                  tolerance=self.settings.drift.rollback_ap_tolerance)
        if verdict.action == "rollback":
            self._rollback(champion.version, previous, verdict)
        if verdict.action != "wait":
            self._judged_champion = champion.version
        return verdict

    def _check_live_guards(self, champion: Any, previous: str) -> Verdict:
        """The promotion's guards on the champion's own live verdicts, every tick (always-valid
        tests: :func:`training.promotion.decide_live_rollback`); rolls back on a proved breach."""
        new = self.store.verdicts_joined(champion.version)
        new = new.sort_values(["label_time", "transaction_id"], kind="stable")
        fraud = new["is_fraud"].to_numpy() == 1
        segment = self.segments.of_frauds(new, min_batch=25)
        known_tag = champion.tags.get("sentinel.promotion.known_recall_champion")
        keep = ~(fraud & np.isnan(segment))  # frauds not segmented yet wait for a batch
        verdict = decide_live_rollback(
            new["is_fraud"].to_numpy()[keep], new["flagged"].to_numpy()[keep],
            segment[keep] == 1, known_baseline=float(known_tag) if known_tag else float("nan"),
            rules=PromotionRules.from_settings(self.settings.drift))
        if verdict.action == "rollback":
            self._rollback(champion.version, previous, verdict)
        return verdict

    def _rollback(self, version: str, previous: str, verdict: Verdict) -> None:
        self.registry.rollback(reason=verdict.reason)
        self.promotions["rolled_back"] += 1
        self._emit("rolled_back", previous, version, verdict.reason, dict(verdict.extra))

    def _emit(self, action: str, version: str, previous: str | None, reason: str,
              evidence: dict[str, float | str]) -> None:
        self.publish(ModelEvent(
            event_id=uuid.uuid4().hex, model_name=self.registry.name,
            action=action,  # type: ignore[arg-type]
            alias="champion", version=version, previous_version=previous, reason=reason,
            evidence=evidence, at=datetime.now(UTC)))

