"""The retrainer's core: drift alerts in, guarded retrains and evidence-based promotions out.

Pure of Kafka (the adapter is :mod:`lifecycle.retrainer_kafka`): it reads the
:class:`~lifecycle.labelstore.LabelStore`, asks :class:`~lifecycle.guardrails.Guardrails`
whether to retrain, trains through the pipeline (data gate, training gate, ``@candidate``),
and on a timer compares the candidate with the champion on shadow results joined with matured
labels (:mod:`lifecycle.promotion`), promoting or rolling back through the registry and
publishing a :class:`~schemas.events.ModelEvent` with the evidence. Times are event times.

Under faults (issue 19): every decision and its state are saved in one transaction of the
:class:`~lifecycle.state_store.LifecycleStore` (in the label store's database), so a restarted
retrainer resumes exactly; every registry change is first recorded as a job and done by
idempotent steps, so a crash leaves an open job that the next start completes (a version
registered by a retrain carries the job's id in ``sentinel.retrain_job``, and is completed,
not trained again); events go through an outbox and are published once. A registry outage
leaves the jobs open and is retried with backoff; it never costs a retrain.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd

from features.attributes import AttributeSpec
from lifecycle.backfill import backfill_shadow
from lifecycle.guardrails import Decision, Guardrails
from lifecycle.jobs import CANDIDATE, CHAMPION, JOB_TAG, PREVIOUS_CHAMPION_TAG, RegistryJobs
from lifecycle.labelstore import LabelStore
from lifecycle.predecessor import PredecessorDecisions
from lifecycle.promotion import (
    Judgement,
    PromotionRules,
    decide_live_rollback,
    decide_promotion,
    decide_rollback,
)
from lifecycle.registry import model_event
from lifecycle.segments import ShiftSegments
from lifecycle.state_store import LifecycleStore
from schemas.events import DriftAlert, ModelEvent
from sentinel.errors import SentinelError
from sentinel.settings import Settings
from training.errors import ModelLoadRefusedError, RegistryUnavailableError

logger = logging.getLogger(__name__)

Publish = Callable[[ModelEvent], None]
BUDGET_HEADROOM = 0.8  # a retrain's review threshold flags at most this share of the budget
Train = Callable[..., Any]
StepHook = Callable[[str], None]
__all__ = ["JOB_TAG", "Retrainer", "alert_onset"]
_EARLIEST, _LATEST = datetime(1900, 1, 1, tzinfo=UTC), datetime(2200, 1, 1, tzinfo=UTC)


def alert_onset(alert: DriftAlert, block_seconds: int) -> datetime:
    """When the shift an alert reports began (its event time minus the blocks it spans);
    raises ValueError for an alert no retrain can use (the retrainer dead-letters it)."""
    blocks = float(alert.current.get("blocks", 0.0))
    if not (0 <= blocks <= 10**6 and _EARLIEST <= alert.event_time <= _LATEST):
        raise ValueError(f"drift alert {alert.alert_id}: blocks={blocks}, event_time "
                         f"{alert.event_time.isoformat()} (expected 0..1e6 blocks, years "
                         f"{_EARLIEST.year}..{_LATEST.year})")
    return alert.event_time - timedelta(seconds=blocks * block_seconds)


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None


def _time(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text else None


def _no_step(step: str) -> None:
    return None


def _default_train(*args: Any, **kwargs: Any) -> Any:
    from lifecycle.pipeline import train_and_register

    return train_and_register(*args, **kwargs)


class Retrainer:
    """Decides and acts; counts outcomes in ``retrains`` and ``promotions`` for metrics.

    ``state`` defaults to the lifecycle tables in ``store``'s file; ``on_step`` is called
    between the steps of a retrain ("job_started", "trained", "registered", "alias_set"),
    where the crash tests stop it; ``is_leader`` is checked before each registry change.
    """

    def __init__(self, settings: Settings, store: LabelStore, registry: Any, publish: Publish,
                 train: Train | None = None, state: LifecycleStore | None = None,
                 on_step: StepHook | None = None) -> None:
        self.settings = settings
        self.store = store
        self.registry = registry  # ModelRegistry without its own publisher: we add evidence
        self.publish = publish
        self.train = train or _default_train
        self.state = state or LifecycleStore(store.location)
        self.on_step = on_step or _no_step
        self.is_leader: Callable[[], bool] = lambda: True
        self.guardrails = Guardrails(settings.drift)
        self.retrains: Counter[str] = Counter()
        self.promotions: Counter[str] = Counter()
        self.backfilled: dict[str, int] = {}  # candidate version -> backfilled shadow results
        self._followups: list[datetime] = []  # event times of the follow-up retrains due
        self._followup_onset: datetime | None = None
        self.shift_onset: datetime | None = None
        self._judged_champion: str | None = None
        self._on_track: str | None = None  # a candidate with its gain proved, guards passed
        self.last_event_time: datetime | None = None
        from features.spec import FeatureConfig

        self.segments = ShiftSegments(store, FeatureConfig.from_settings(settings.features))
        self._predecessor_model: tuple[str | None, Any] = (None, None)
        self.predecessor = PredecessorDecisions(store,
                                                FeatureConfig.from_settings(settings.features))
        self.registry_up = True
        self.registry_error = ""
        self.registry_failures = 0
        self._retry_at = 0.0  # time.monotonic() of the next registry attempt after a failure
        self._backoff = settings.drift.registry_retry_initial_s
        self.jobs = RegistryJobs(self)
        self._restore()

    # -- durable state ----------------------------------------------------------------------

    def _snapshot(self) -> dict[str, Any]:
        return {"guardrails": self.guardrails.to_dict(),
                "followups": [t.isoformat() for t in self._followups],
                "followup_onset": _iso(self._followup_onset),
                "shift_onset": _iso(self.shift_onset),
                "judged_champion": self._judged_champion, "backfilled": self.backfilled}

    def _restore(self) -> None:
        saved = self.state.load_state()
        self.guardrails.restore(saved.get("guardrails", {}))
        self._followups = [datetime.fromisoformat(t) for t in saved.get("followups", [])]
        self._followup_onset = _time(saved.get("followup_onset"))
        self.shift_onset = _time(saved.get("shift_onset"))
        self._judged_champion = saved.get("judged_champion")
        self.backfilled = dict(saved.get("backfilled", {}))

    @contextmanager
    def durably(self) -> Iterator[None]:
        """Changes of state inside are saved in one transaction; on an error the memory is
        restored from the store, so memory and store never disagree."""
        try:
            with self.state.transaction():
                yield
                self.state.save_state(self._snapshot())
        except BaseException:
            self._restore()
            raise

    # -- alerts and retrains ----------------------------------------------------------------

    def on_alert(self, alert: DriftAlert) -> Decision:
        """Judge an alert; retrain if the guardrails allow. An alert already judged (a
        redelivery after a restart) is ignored."""
        if self.state.alert_done(alert.alert_id):
            self.retrains["skipped_redelivered"] += 1
            logger.info("drift alert alert_id=%s already judged: ignored", alert.alert_id)
            return Decision(False, "redelivered")
        now = alert.event_time
        onset = alert_onset(alert, self.settings.drift.block_seconds)
        with self.durably():
            self.shift_onset = min(self.shift_onset, onset) if self.shift_onset else onset
            self.segments.on_alert(alert.signal)
            decision = self.guardrails.decide(alert.signal, now, self.store.labels_since(onset),
                                              self.store.frauds_since(onset))
            if decision.retrain:
                self._schedule_retrain(now, f"drift:{alert.detector}/{alert.signal}")
            else:
                self.retrains[f"skipped_{decision.reason}"] += 1
            self.state.mark_alert(alert, decision.reason)
            self.state.record("alert", alert.alert_id, {
                "signal": alert.signal, "detector": alert.detector, "decision": decision.reason,
                "event_time": now.isoformat()})
        logger.info("drift alert signal=%s detector=%s decision=%s", alert.signal,
                    alert.detector, decision.reason)
        self.run_jobs()
        return decision

    def retry_pending(self) -> None:
        """Release a retrain held for labels once enough have arrived (after label batches)."""
        pending = self.guardrails.pending_since
        if pending is not None and self.shift_onset is not None:
            labels = self.store.labels_since(self.shift_onset)
            frauds = self.store.frauds_since(self.shift_onset)
            with self.durably():
                if self.guardrails.decide("__pending__", pending, labels, frauds).retrain:
                    self._schedule_retrain(pending, "drift:pending")
            self.run_jobs()

    def tick(self, now: datetime) -> None:
        """Timer (``now``: the newest event time seen): release a held retrain, run a
        follow-up retrain that is due, the open jobs, then promotion and rollback checks.
        A registry outage is noted and retried later; it never raises."""
        self.retry_pending()
        self.run_followup(now)
        self.run_jobs()
        self._guard(self.check_promotion)
        self._guard(self.check_rollback)

    def run_followup(self, now: datetime) -> None:
        """Retrain again once a follow-up is due: a new pattern is learnt from its examples,
        and the first retrain after the alert had few (or failed the training gate); each
        candidate must beat the champion of its time, so a better one replaces a weak one."""
        if not any(t <= now for t in self._followups):
            return
        if self._on_track is not None:  # a candidate about to be promoted is not replaced
            return  # by a new one that starts its evidence over; it runs once that is decided
        with self.durably():
            self._followups = [t for t in self._followups if t > now]
            limits = self.guardrails.limits(now)
            if limits.retrain:
                self.shift_onset = self._followup_onset
                self._schedule_retrain(now, "drift:followup", followup=True)
            else:
                self.retrains[f"skipped_followup_{limits.reason}"] += 1
        self.run_jobs()

    def feature_spec(self) -> AttributeSpec:
        """The attributes a retrain reads: the feature spec of the model its candidate would
        replace (@champion; @candidate while there is none), so the candidate consumes the
        same attributes, numeric and categorical, as the model serving the stream. Its
        categories are learnt again on the retrain's data (new values are no longer
        ``other``)."""
        for alias in (CHAMPION, CANDIDATE):
            ref = self.registry.resolve(alias)
            if ref is None:
                continue
            try:
                model = self.registry.load(ref)
            except ModelLoadRefusedError as exc:  # not served either: train as before
                logger.warning("feature spec of @%s v%s unreadable, retrain without "
                               "attributes: %s", alias, ref.version, exc)
                return AttributeSpec()
            return getattr(model, "attributes", None) or AttributeSpec()
        return AttributeSpec()

    def training_config(self, shift_onset: datetime | None = None,
                        spec: AttributeSpec | None = None) -> Any:
        """The split of a retrain: anchored at the newest data, the gap = the label delay.

        The book's split (7-day gap, 7 test days, placed at the book's offset) would train on
        data from before a shift that is days old; a retrain must see the new pattern, so the
        test window is short (``retrain_test_days``) and ends on the last day of the store.
        With ``retrain_test_hours`` the windows are hours back from the newest labelled payment
        (labels within hours): a calendar-day split would stop training at the midnight before
        the shift. The served model is refit on the newest labels (``retrain_refit_on_newest``)
        and the frauds since ``shift_onset`` weigh ``retrain_shift_fraud_weight``. ``spec``
        names the attributes a retrain reads (:meth:`feature_spec`).
        """
        from lifecycle.pipeline import TrainingConfig
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
                delay_days=self.settings.features.gap_days,
                test_days=d.retrain_test_days, validation_days=d.retrain_test_days,
                anchor="end")
        from training.selection import ThresholdPolicy

        spec = spec or AttributeSpec()
        return TrainingConfig(split=split, refit_on_newest=d.retrain_refit_on_newest,
                              # headroom below the promotion's budget: a threshold capped at
                              # the budget on validation data lands on either side of it live
                              policy=ThresholdPolicy(
                                  alert_budget=BUDGET_HEADROOM * d.alert_budget),
                              shift_onset=shift_onset,
                              shift_fraud_weight=d.retrain_shift_fraud_weight,
                              numeric=tuple(a.name for a in spec.attributes if a.kind == "num"),
                              categorical=tuple(a.name for a in spec.attributes
                                                if a.kind == "cat"))

    def _schedule_retrain(self, now: datetime, reason: str, followup: bool = False) -> None:
        """Inside :meth:`_durably`: count the retrain and record its job (run after commit)."""
        self.guardrails.record_retrain(now)
        d = self.settings.drift
        if not followup:  # a shift's first retrain schedules its follow-ups, counted from
            # the newest payment (``now`` is the alert's time when the retrain was held)
            newest = self.store.newest_transaction_time()
            base = max(now, newest) if newest is not None else now
            self._followup_onset = self.shift_onset
            self._followups = [base + timedelta(hours=d.retrain_followup_hours * (k + 1))
                               for k in range(d.retrain_followups)]
        job = self.state.add_job("retrain", {"now": now.isoformat(), "reason": reason,
                                             "shift_onset": _iso(self.shift_onset)})
        self.state.record("retrain_scheduled", job.job_id, {"reason": reason,
                                                            "event_time": now.isoformat()})

    # -- jobs: every registry change --------------------------------------------------------

    def run_jobs(self) -> None:
        """Run the open jobs, oldest first, then publish the outbox; a registry outage leaves
        them open until a retry (exponential backoff), and never raises."""
        self._guard(self.jobs.run)

    def start(self) -> None:
        """On becoming the active retrainer: repair what a stop left half done (logged), then
        run the open jobs and publish the events not yet sent."""
        self.jobs.reconciled = False
        self.run_jobs()
        self.flush_events()

    def _guard(self, action: Callable[[], Any]) -> Any:
        if time.monotonic() < self._retry_at or not self.is_leader():
            return None
        try:
            result = action()
        except RegistryUnavailableError as exc:
            self.registry_failures += 1
            self.registry_up, self.registry_error = False, str(exc)
            self._retry_at = time.monotonic() + self._backoff
            logger.warning("model registry unavailable, retry in %.1fs: %s", self._backoff, exc)
            self._backoff = min(self._backoff * 2, self.settings.drift.registry_retry_max_s)
            return None
        if not self.registry_up:
            logger.warning("model registry reachable again")
        self.registry_up, self.registry_error = True, ""
        self._backoff = self.settings.drift.registry_retry_initial_s
        return result

    def backfill(self, candidate: Any, cutoff: datetime) -> None:
        """Shadow results for the payments after the candidate's training data
        (:mod:`lifecycle.backfill`); a failure costs only the head start."""
        from features.spec import FeatureConfig

        champion = self.registry.resolve(CHAMPION)
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
        with self.durably():
            self.backfilled[candidate.version] = n

    # -- promotion and rollback -------------------------------------------------------------

    def check_promotion(self) -> Judgement | None:
        """Compare the candidate with the champion; promote on evidence only. With no
        @champion, nothing is promoted unless ``drift.promote_first_candidate`` is set: the
        first champion is a person's choice (``sentinel promote``)."""
        self._on_track = None
        candidate = self.registry.resolve(CANDIDATE)
        champion = self.registry.resolve(CHAMPION)
        if candidate is None:
            return None
        if champion is None:
            if not self.settings.drift.promote_first_candidate:
                self.promotions["waiting_for_first_champion"] += 1
                logger.info("no @champion: v%s waits for `sentinel promote`", candidate.version)
                return Judgement("wait", "no @champion: the first is promoted by a person")
            verdict = Judgement("promote", "no champion yet (drift.promote_first_candidate)")
            self._schedule_promotion(candidate.version, None, verdict)
            return verdict
        joined = self.store.shadow_joined(candidate.version)
        joined = joined[(joined["champion_version"] == champion.version)
                        & joined["candidate_flagged"].notna()]
        joined = joined.sort_values(self._evidence_order(), kind="stable")
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
        ev = verdict.evidence
        self._on_track = candidate.version if verdict.action == "wait" and ev is not None and (
            ev.gain_rule, ev.known_rule, ev.budget_rule) == ("pass", "pass", "pass") else None
        if verdict.action == "promote":
            self._schedule_promotion(candidate.version, champion.version, verdict)
        elif verdict.action == "keep":
            self.promotions["kept"] += 1
        return verdict

    def _evidence_order(self) -> list[str]:
        """The order the always-valid tests read evidence in: as the labels arrived; with a
        label horizon (``reports.presume_genuine_hours``), as the payments happened. Fraud
        reports come hours after a payment and genuine labels days after, so label-time order
        would put a stretch of frauds first and prove a gain no later evidence can take back;
        up to the horizon every payment is labelled, and payment order keeps the frauds and
        genuine payments of each hour together."""
        if self.store.presume_genuine_hours > 0:
            return ["event_time", "transaction_id"]
        return ["label_time", "transaction_id"]

    def _schedule_promotion(self, version: str, previous: str | None, verdict: Judgement) -> None:
        evidence = verdict.evidence.as_dict() if verdict.evidence else {}
        with self.durably():
            job = self.state.add_job("promote", {"version": version, "previous": previous,
                                                 "reason": verdict.reason, "evidence": evidence})
            self.state.record("promotion", job.job_id, {"version": version,
                                                        "previous": previous,
                                                        "reason": verdict.reason})
        self.run_jobs()

    def check_rollback(self) -> Judgement | None:
        champion = self.registry.resolve(CHAMPION)
        if champion is None:
            return None
        previous = champion.tags.get(PREVIOUS_CHAMPION_TAG)
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
        if verdict.action == "wait":
            return verdict
        self._judge(champion.version, previous, verdict)
        return verdict

    def _judge(self, version: str, previous: str, verdict: Judgement) -> None:
        """Record a judgement of the champion; a rollback becomes a durable job."""
        with self.durably():
            self._judged_champion = version
            if verdict.action == "rollback":
                self.state.add_job("rollback", {
                    "from": version, "to": previous, "reason": verdict.reason,
                    "evidence": {k: v if isinstance(v, str) else float(v)  # NaN: unknown
                                 for k, v in verdict.extra.items() if v == v}})
            self.state.record("rollback_check", version,
                              {"action": verdict.action, "reason": verdict.reason})
        self.run_jobs()

    def _check_live_guards(self, champion: Any, previous: str) -> Judgement:
        """The promotion's guards on the champion's own live verdicts, every tick (always-valid
        tests: :func:`lifecycle.promotion.decide_live_rollback`); rolls back on a proved breach."""
        new = self.store.verdicts_joined(champion.version)
        new = new.sort_values(self._evidence_order(), kind="stable")
        fraud = new["is_fraud"].to_numpy() == 1
        segment = self.segments.of_frauds(new, min_batch=25)
        known_tag = champion.tags.get("sentinel.promotion.known_recall_champion")
        keep = ~(fraud & np.isnan(segment))  # frauds not segmented yet wait for a batch
        baseline = self._predecessor_on(previous, new, fraud)
        verdict = decide_live_rollback(
            new["is_fraud"].to_numpy()[keep], new["flagged"].to_numpy()[keep],
            segment[keep] == 1, known_baseline=float(known_tag) if known_tag else float("nan"),
            rules=PromotionRules.from_settings(self.settings.drift),
            baseline_flagged=None if baseline is None else baseline[keep])
        if verdict.action == "rollback":
            self._judge(champion.version, previous, verdict)
        return verdict


    def _predecessor_on(self, previous: str, verdicts: pd.DataFrame,
                        fraud: np.ndarray) -> np.ndarray | None:
        """The predecessor's decisions on the champion's labelled frauds (NaN elsewhere and
        while a batch of 25 gathers; :mod:`lifecycle.predecessor`), or None when it cannot
        be loaded: the rollback then falls back to its recall in the promotion's evidence."""
        if self._predecessor_model[0] != previous:
            try:
                ref = next((v for v in self.registry.versions() if v.version == previous), None)
                model = self.registry.load(ref) if ref is not None else None
            except SentinelError as exc:
                logger.warning("predecessor v%s not loaded for the rollback check: %s",
                               previous, exc)
                return None
            self._predecessor_model = (previous, model)
        model = self._predecessor_model[1]
        if model is None:
            return None
        out = np.full(len(verdicts), np.nan)
        out[fraud] = self.predecessor.of(model, previous, verdicts["transaction_id"][fraud],
                                         verdicts["event_time"][fraud], min_batch=25)
        return out

    # -- events -----------------------------------------------------------------------------

    def event(self, action: str, version: str, previous: str | None, reason: str,
               evidence: dict[str, float | str], alias: str | None = CHAMPION) -> ModelEvent:
        return model_event(self.registry.name, action, version, previous=previous,
                           reason=reason, alias=alias, evidence=evidence, event_id="-")

    def publish_event(self, event: ModelEvent) -> None:
        """The outbox first (durable), then the topic when not inside a transaction."""
        self.state.add_event(event)
        if not self.state.in_transaction:
            self.flush_events()

    def flush_events(self) -> None:
        """Publish the outbox's unsent events in order; a failure keeps them for later."""
        for seq, event in self.state.unsent_events():
            try:
                self.publish(event)
            except Exception as exc:  # the broker's problem must not stop the retrainer
                logger.warning("ModelEvent %s v%s not published yet: %s", event.action,
                               event.version, exc)
                return
            self.state.mark_sent(seq)
