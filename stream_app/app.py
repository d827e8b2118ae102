"""The worker process: topics, serving models, the engine and the HTTP API, wired together.

:meth:`Worker.run` loads the models before joining the group (a restarted worker scores its
first batches at once), runs the engine in the main thread until SIGTERM/SIGINT, and returns
the process's exit code: 0 after a clean stop, 1 when the engine failed, so a supervisor
restarts it. Topics: docs/streaming.md.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from typing import Any

from drift.reference_profile import ProfileError, ReferenceProfile, load_profile
from features import FeatureConfig
from schemas import FraudReport, LabelFeedback
from sentinel.errors import SentinelKafkaError
from sentinel.http_guard import REJECTED, HttpGuard, require_bind_allowed
from sentinel.infra.kafka_io import EventProducer
from sentinel.redact import redact_text
from sentinel.settings import Settings
from stream_app import gc_policy, predict, reports, scoring, topology
from stream_app.engine import Engine
from stream_app.errors import PredictInputError
from stream_app.http_api import Api, Json, Routes
from stream_app.metrics import WorkerMetrics
from stream_app.serving import ModelFollower, ServingModels, Slot
from training.artifact import LOAD_REFUSED

logger = logging.getLogger(__name__)


class Worker:
    """One ``sentinel worker`` process."""

    def __init__(self, settings: Settings, registry: Any, drift: Any = None) -> None:
        self.settings = settings
        self.metrics = WorkerMetrics()
        self.metrics.drift_psi_threshold.set(settings.drift.psi_threshold)
        self.registry = registry
        self.drift = drift
        self._profile_retry: Slot | None = None  # a champion whose profile the registry failed
        self.names = FeatureConfig.from_settings(settings.features).names
        self.models = ServingModels(registry, on_swap=self._on_swap, check=self._check,
                                    on_refused=self._on_refused)
        self.follower = ModelFollower(self.models, settings.scoring.model_poll_interval_s,
                                      after=self._after_refresh)
        self.gc_pauses = gc_policy.PauseObserver(self.metrics.gc_pause)
        self.gc_settling = gc_policy.Settling()
        self.gc_freeze = gc_policy.FreezeSurvivors()
        self._settled = time.monotonic()
        self.topics = topology.ensure(settings)
        self.engine = Engine(settings, self.topics, self.models, self.metrics, drift)
        w = settings.worker
        require_bind_allowed(w.web_host, settings)
        self.metrics.registry.register(LOAD_REFUSED)
        self.metrics.registry.register(REJECTED)
        self._reports: EventProducer | None = None
        self._reports_lock = threading.Lock()
        self.api = Api(w.web_host, w.web_port, Routes(self.predict, self.health, self.ready,
                                                      self.render_metrics, self.reports),
                       HttpGuard.from_settings(settings))

    def run(self) -> int:
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: self.engine.stop())
        self.gc_pauses.install()
        self.models.refresh()
        self._gauges()
        self.gc_settling.started()
        self.gc_freeze.install()
        self.follower.start()
        self.api.start()
        try:
            self.engine.run()
        except Exception as exc:
            logger.critical("worker failed, exiting error=%s", exc, exc_info=True)
            return 1
        finally:
            self.follower.stop()
            self.api.stop()
            self.gc_pauses.remove()
            self.gc_freeze.remove()
        return 0

    def _after_refresh(self) -> None:
        self._gauges()
        retry = self._profile_retry
        if (retry is not None and self.drift is not None and self.models.registry_up
                and retry is self.models.champion):
            self.drift.set_reference(self._reference_profile(retry), retry.version)
        if time.monotonic() - self._settled > self.settings.worker.gc_settle_interval_s:
            self.gc_settling.periodic()  # frees cyclic garbage frozen since the last settle
            self._settled = time.monotonic()

    # -- models ----------------------------------------------------------------------------------
    def _check(self, model: Any) -> None:
        """Refuse a model that needs a feature the worker does not compute."""
        scoring.columns(tuple(model.feature_names), self.names)

    def _on_refused(self, role: str, reason: str) -> None:
        self.metrics.models_refused.labels(role=role, reason=reason).inc()

    def _on_swap(self, role: str, slot: Slot | None) -> None:
        self.metrics.model_swaps.labels(role=role).inc()
        self.metrics.set_model(role, slot.name if slot else None, slot.version if slot else None)
        if role == "champion" and self.drift is not None and slot is not None:
            self.drift.set_model_version(slot.version)
            self.drift.set_reference(self._reference_profile(slot), slot.version)
        self.gc_settling.swapped()  # the new model's objects live until the next swap

    def _reference_profile(self, slot: Slot) -> ReferenceProfile | None:
        """The champion's training profile, for the PSI drift monitor. Without one (a version
        logged before profiles, an unreadable file) PSI is off for that version: a log line
        and ``sentinel_drift_reference_profile`` 0. A registry failure is retried after the
        next model poll. Never raises: the worker serves the model either way."""
        again, self._profile_retry = self._profile_retry is slot, None
        self.metrics.drift_psi.clear()
        profile = None
        try:
            if slot.ref is None:
                raise ProfileError(f"version {slot.version} came without a registry reference")
            profile = load_profile(self.registry, slot.ref)
        except ProfileError as exc:
            logger.warning("no reference profile, PSI drift monitoring off version=%s "
                           "reason=%s", slot.version, exc)
        except Exception as exc:  # the registry's trouble: try again after the next poll
            self._profile_retry = slot
            (logger.debug if again else logger.error)(
                "reference profile not loaded, retrying after each model poll version=%s "
                "error=%s", slot.version, redact_text(str(exc), self.settings))
        self.metrics.drift_reference.set(0 if profile is None else 1)
        if profile is not None:
            logger.info("PSI drift against the reference profile version=%s variables=%s",
                        slot.version, ",".join(profile.variables))
        return profile

    # -- http ------------------------------------------------------------------------------------
    @property
    def is_ready(self) -> bool:
        return self.models.champion is not None and self.engine.ready

    def _gauges(self) -> None:
        self.metrics.worker_ready.set(1 if self.is_ready else 0)
        self.metrics.registry_up.set(1 if self.models.registry_up else 0)

    def render_metrics(self) -> bytes:
        self._gauges()
        return self.metrics.render()

    def ready(self) -> Json:
        self._gauges()
        body = {"ready": self.is_ready, "champion": self.models.champion is not None,
                "partitions_assigned": self.engine.joined,
                "restoring": len(self.engine.to_restore)}
        return (200 if self.is_ready else 503), body

    def health(self) -> Json:
        stalled = self.engine.stalled()
        models = self.models.describe()
        if models.get("registry_error"):
            models["registry_error"] = redact_text(models["registry_error"], self.settings)
        body = {"status": "stalled" if stalled else "alive", "ready": self.is_ready,
                "partitions_assigned": self.engine.joined, **models}
        return (503 if stalled else 200), body

    def reports(self, body: Any) -> Json:
        """``POST /reports``: a complete fraud report becomes its label on the labels topic at
        once; a report by id alone or by a card's range goes to the labels topic keyed by card,
        resolved in the stream (202 either way, once the broker has it); 422 for a bad body,
        503 when the broker does not take it."""
        with self._reports_lock:
            if self._reports is None:
                self._reports = EventProducer(self.settings.librdkafka())
            producer, topic = self._reports, self.topics.labels

            def send(label: LabelFeedback) -> None:
                producer.send(topic, label.terminal_id, label)

            def forward(report: FraudReport) -> None:
                producer.send(topic, report.card_id, report)

            try:
                status, answer = reports.intake(body, send, forward)
                producer.flush()  # durable before the 202
            except SentinelKafkaError as exc:
                logger.warning("a fraud report was not delivered error=%s", exc)
                return 503, {"error": "the labels topic did not take the report; send it again"}
        return status, answer

    def predict(self, body: Any) -> Json:
        try:
            tx = predict.parse(body)
        except PredictInputError as exc:
            return 422, {"errors": [{"field": f, "reason": r} for f, r in exc.problems]}
        champion = self.models.champion
        if champion is None:
            return 503, {"error": "no @champion model is loaded"}
        engine = self.engine
        X = predict.features(tx, engine.cards.peek(tx.card_id),
                             engine.terminals.peek(tx.terminal_id),
                             FeatureConfig.from_settings(self.settings.features))
        return 200, predict.answer(tx, X, champion, self.models.candidate,
                                   self.settings.scoring.reason_codes, self.names)
