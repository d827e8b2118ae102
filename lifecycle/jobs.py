"""How the retrainer's decisions reach the registry: jobs, run by idempotent steps.

A retrain, promotion or rollback is recorded as a job in the lifecycle store (in the same
transaction as the decision, by :class:`~lifecycle.retrainer.Retrainer`) before it touches
MLflow, and closed when done. Each step checks what the registry already holds, so running an
open job again after a crash completes it: a version a retrain registered (tagged
``sentinel.retrain_job``) gets its ``@candidate`` and events instead of a second training; a
promotion or rollback whose alias already moved gets its tags and event; one whose alias
someone else moved since is closed as superseded. On start, ``@candidate`` and ``@champion``
on one version (a promotion stopped half-way) is completed. A registry outage propagates
(:class:`~training.errors.RegistryUnavailableError`) and leaves the job open.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from lifecycle.backfill import cutoff_of
from lifecycle.state_store import Job
from sentinel.errors import SentinelError, StoreUnavailableError
from training.errors import RegistryUnavailableError

if TYPE_CHECKING:
    from lifecycle.retrainer import Retrainer

logger = logging.getLogger(__name__)

JOB_TAG = "sentinel.retrain_job"
CANDIDATE, CHAMPION = "candidate", "champion"
PREVIOUS_CHAMPION_TAG = "sentinel.previous_champion"


def _time(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text else None


class RegistryJobs:
    """The open jobs of one retrainer (``r``: its store, registry, counters and outbox)."""

    def __init__(self, retrainer: Retrainer) -> None:
        self.r = retrainer
        self.reconciled = False  # the start-up repairs are done

    def run(self) -> None:
        """Repair on the first run, then run the open jobs, oldest first, and publish the
        outbox; a registry outage propagates and leaves the rest open."""
        r = self.r
        if not self.reconciled:
            self._reconcile()
        runners = {"retrain": self._retrain, "promote": self._promote,
                   "rollback": self._rollback}
        for job in r.state.open_jobs():
            if not r.is_leader():
                return
            try:
                runners[job.kind](job)
            except (RegistryUnavailableError, StoreUnavailableError):
                raise  # an outage, not the job's failure: it stays open
            except Exception as exc:  # a job that cannot succeed must not stop the others
                logger.exception("%s job=%s failed", job.kind, job.job_id[:8])
                self.supersede(job, f"failed: {exc}", status="failed")
        r.flush_events()

    def _reconcile(self) -> None:
        """A promotion stopped between its steps leaves @candidate and @champion on one
        version: complete it (its event follows)."""
        r = self.r
        open_jobs = r.state.open_jobs()
        if open_jobs:
            logger.warning("resuming %d open job(s) left by a stop: %s", len(open_jobs),
                           ", ".join(f"{j.kind} {j.job_id[:8]}" for j in open_jobs))
        candidate, champion = r.registry.resolve(CANDIDATE), r.registry.resolve(CHAMPION)
        if candidate is not None and champion is not None \
                and candidate.version == champion.version \
                and not any(j.kind == "promote" for j in open_jobs):
            r.registry.drop_alias(CANDIDATE, champion.version)
            previous = champion.tags.get(PREVIOUS_CHAMPION_TAG)
            with r.durably():
                r.state.add_event(r.event("promoted", champion.version, previous,
                                          "completed on start", {}))
                r.state.record("reconciled", champion.version,
                               "half-done promotion: @candidate removed from @champion")
            logger.warning("reconciled a half-done promotion of v%s: @candidate removed",
                           champion.version)
        self.reconciled = True

    def _publishing_registry(self) -> Any:
        r = self.r
        make = getattr(r.registry, "publishing", None)
        return make(r.publish_event, r.on_step) if make else None

    def _retrain(self, job: Job) -> None:
        r = self.r
        r.on_step("job_started")
        reason = job.payload["reason"]
        mine = [v for v in r.registry.versions() if v.tags.get(JOB_TAG) == job.job_id]
        if mine:  # registered before a stop: complete it, do not train again
            self._complete_candidate(job, mine[-1].version)
            return
        now = datetime.fromisoformat(job.payload["now"])
        since = now - timedelta(days=r.settings.drift.retrain_label_window_days)
        try:
            spec = r.feature_spec()  # the attributes of the model the candidate would replace
            frame, labels = r.store.training_frame(since, spec)
            cutoff = cutoff_of(frame, labels)
            outcome = r.train(r.settings, frame, labels, reason=reason,
                              publish=r.publish_event,
                              config=r.training_config(_time(job.payload["shift_onset"]), spec),
                              registry=self._publishing_registry(),
                              version_tags={JOB_TAG: job.job_id})
        except (RegistryUnavailableError, StoreUnavailableError):
            raise  # the job stays open: retried when the registry (or the store) is back
        except SentinelError as exc:
            r.retrains["failed"] += 1
            logger.warning("retrain failed reason=%s error=%s", reason, exc)
            with r.durably():
                r.state.finish_job(job, "failed")
                r.state.record("retrain", job.job_id, {"status": "failed", "error": str(exc)})
            return
        version = outcome.model.version if outcome.model else None
        r.retrains[outcome.status] += 1
        with r.durably():
            r.shift_onset = None
            r.state.finish_job(job, outcome.status)
            r.state.record("retrain", job.job_id, {"status": outcome.status,
                                                   "version": version})
        logger.info("retrain done status=%s version=%s", outcome.status, version)
        if outcome.status == "registered" and outcome.model is not None and cutoff is not None \
                and r.settings.drift.promotion_backfill:
            r.backfill(outcome.model, cutoff)

    def _complete_candidate(self, job: Job, version: str) -> None:
        """A retrain's version exists: make sure it is @candidate and announced."""
        r = self.r
        reason = job.payload["reason"]
        registered = r.event("registered", version, None, reason, {}, alias=None)
        if not r.state.has_event(registered):
            r.publish_event(registered)
        candidate, champion = r.registry.resolve(CANDIDATE), r.registry.resolve(CHAMPION)
        alias_set = r.event("alias_set", version, None, reason, {}, alias=CANDIDATE)
        on_it = candidate is not None and candidate.version == version
        if (champion is None or champion.version != version) and (
                not on_it or not r.state.has_event(alias_set)):
            r.registry.publishing(r.publish_event).set_candidate(version, reason=reason)
        r.retrains["registered"] += 1
        with r.durably():
            r.shift_onset = None
            r.state.finish_job(job, "registered")
            r.state.record("reconciled", job.job_id, {"status": "registered",
                                                      "version": version})
        logger.warning("reconciled retrain job=%s: v%s was registered before a stop; "
                       "@candidate and its events completed", job.job_id[:8], version)

    def _promote(self, job: Job) -> None:
        r = self.r
        p = job.payload
        version, previous = p["version"], p["previous"]
        champion = r.registry.resolve(CHAMPION)
        current = champion.version if champion else None
        if current != version:
            if current != previous:  # someone moved @champion since the decision
                self.supersede(job, f"@champion is v{current}, not v{previous}")
                return
            # the evidence first: whoever sees the alias move (a worker, the demo) sees it all
            r.registry.tag_version(version, {f"sentinel.promotion.{k}": str(v)
                                             for k, v in p["evidence"].items()})
            r.registry.promote(version, reason=p["reason"])
        else:  # moved before a stop: finish the steps after the move
            r.registry.drop_alias(CANDIDATE, version)
        r.promotions["promoted"] += 1
        with r.durably():
            r.state.add_event(r.event("promoted", version, previous, p["reason"],
                                      p["evidence"]))
            r.state.finish_job(job, "done")

    def _rollback(self, job: Job) -> None:
        r = self.r
        p = job.payload
        champion = r.registry.resolve(CHAMPION)
        current = champion.version if champion else None
        if current == p["from"]:
            r.registry.rollback(reason=p["reason"])
        elif current == p["to"]:  # moved before a stop: finish the steps after the move
            r.registry.tag_version(p["from"], {"sentinel.rolled_back": "true"})
        else:
            self.supersede(job, f"@champion is v{current}, not v{p['from']}")
            return
        r.promotions["rolled_back"] += 1
        with r.durably():
            r.state.add_event(r.event("rolled_back", p["to"], p["from"], p["reason"],
                                      p["evidence"]))
            r.state.finish_job(job, "done")

    def supersede(self, job: Job, why: str, status: str = "superseded") -> None:
        r = self.r
        logger.warning("%s job=%s not done: %s", job.kind, job.job_id[:8], why)
        with r.durably():
            r.state.finish_job(job, status)
            r.state.record(job.kind, job.job_id, {"status": status, "why": why})
