"""Scoring released hand-offs: the champion's verdicts, the candidate in shadow, drift.

Every transaction ends in exactly one of: a verdict, a dead letter, or held (no champion under
the ``hold`` policy; the engine then keeps its message unscored). A batch whose scoring raises
is tried ``scoring_attempts`` times, then scored row by row: the rows that still fail are
dead-lettered with the reason (their original transaction rebuilt from the hand-off) and the
others get their verdicts. The candidate runs in a thread beside the champion and can never
change or delay a verdict beyond ``candidate_timeout_s``.
"""

from __future__ import annotations

import logging
import time
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from datetime import datetime
from typing import Any

import numpy as np

from features.attributes import FIELDS, AttributeTypeError
from schemas import Transaction, encode
from sentinel.settings import ScoringSettings
from stream_app import scoring
from stream_app.card_stage import Output
from stream_app.dead_letter import dead_letter
from stream_app.handoff import Handoff, unpack
from stream_app.metrics import WorkerMetrics
from stream_app.serving import ServingModels, Slot
from stream_app.topology import Topics

logger = logging.getLogger(__name__)


class Scorer:
    """Scores batches of feature rows with the serving models and publishes the results."""

    def __init__(self, topics: Topics, out: Output, models: ServingModels,
                 metrics: WorkerMetrics, names: tuple[str, ...], settings: ScoringSettings,
                 drift: Any = None) -> None:
        self.topics = topics
        self.out = out
        self.models = models
        self.metrics = metrics
        self.names = names
        self.settings = settings
        self.drift = drift
        self._columns: dict[tuple[str, str], np.ndarray] = {}
        self._psi_key: Any = None
        self._shadow_pool = ThreadPoolExecutor(1, thread_name_prefix="candidate")

    def close(self) -> None:
        self._shadow_pool.shutdown(wait=False, cancel_futures=True)

    def columns(self, slot: Slot) -> np.ndarray:
        """The model's inputs within the worker's feature row (KeyError: a missing feature)."""
        key = (slot.name, slot.version)
        cols = self._columns.get(key)
        if cols is None:
            cols = scoring.columns(tuple(slot.model.feature_names), self.names)
            self._columns[key] = cols
        return cols

    def score(self, records: list[Handoff], X: np.ndarray, champion: Slot) -> None:
        """Verdicts (or dead letters) for every record; shadow results; drift alerts."""
        if not records:
            return
        candidate = self.models.candidate
        batch = scoring.BatchAttributes([h.attrs for h in records])
        shadow = None if candidate is None else self._shadow_pool.submit(
            self._candidate_scores, candidate, X, batch)
        ok, result, codes = self._champion(champion, X, records, batch)
        if not ok.all():
            keep = np.flatnonzero(ok)
            records = [records[i] for i in keep]
            X = X[keep]
        if not records:
            return
        self.metrics.scoring_latency.observe(result.seconds)
        self.metrics.batch_size.observe(len(records))
        self._verdicts(records, X, result, codes)
        self._drift(X, result, records)
        self._shadow(records, result, candidate, shadow, ok)

    # -- champion --------------------------------------------------------------------------------
    def _champion(self, champion: Slot, X: np.ndarray, records: list[Handoff],
                  batch: scoring.BatchAttributes,
                  ) -> tuple[np.ndarray, scoring.Scored, list[list[str]]]:
        last: Exception | None = None
        for _ in range(self.settings.scoring_attempts):
            try:
                missing: list[str] = []
                result, codes = self._scores(champion, X, batch, missing)
                for name in missing:
                    self.metrics.attribute_missing.labels(attribute=name).inc()
                return np.ones(len(records), bool), result, codes
            except Exception as exc:
                last = exc
        logger.error("champion version=%s failed on a batch of %d, isolating rows error=%s",
                     champion.version, len(records), last)
        ok = np.zeros(len(records), bool)
        parts: list[tuple[scoring.Scored, list[list[str]]]] = []
        for i, record in enumerate(records):
            try:
                missing = []
                parts.append(self._scores(champion, X[i:i + 1],
                                          scoring.BatchAttributes([record.attrs]), missing))
                for name in missing:
                    self.metrics.attribute_missing.labels(attribute=name).inc()
                ok[i] = True
            except AttributeTypeError as exc:
                self._reject(record, exc, "attribute_type")
            except Exception as exc:
                self._reject(record, exc)
        if not parts:
            empty = scoring.Scored(champion.version, champion.name, np.empty(0), np.empty(0),
                                   0.0)
            return ok, empty, []
        scores = np.concatenate([p[0].scores for p in parts])
        decisions = np.concatenate([p[0].decisions for p in parts])
        seconds = sum(p[0].seconds for p in parts)
        codes = [c for p in parts for c in p[1]]
        return ok, scoring.Scored(champion.version, champion.name, scores, decisions,
                                  seconds), codes

    def _inputs(self, slot: Slot, X: np.ndarray, batch: scoring.BatchAttributes,
                missing: list[str] | None = None) -> np.ndarray:
        """The model's input matrix: computed columns, then its feature spec's attributes."""
        return scoring.inputs(scoring.spec_of(slot.model), X, self.columns(slot), batch,
                              missing)

    def _scores(self, champion: Slot, X: np.ndarray, batch: scoring.BatchAttributes,
                missing: list[str] | None = None) -> tuple[scoring.Scored, list[list[str]]]:
        Xc = self._inputs(champion, X, batch, missing)
        result = scoring.score(champion, Xc)
        scoring.finite(result.scores)
        return result, scoring.reasons(champion, Xc, result.decisions,
                                       self.settings.reason_codes)

    def _reject(self, h: Handoff, exc: Exception, reason: str = "scoring_error") -> None:
        """Dead-letter one transaction that could not be scored (the original rebuilt)."""
        attrs = unpack(h.attrs) or {}
        fields = {f: attrs.pop(f) for f in FIELDS if f in attrs}
        tx = Transaction(transaction_id=h.transaction_id, card_id=h.card_id,
                         terminal_id=h.terminal_id, amount=h.amount,
                         event_time=datetime.fromisoformat(h.event_time),
                         attributes=attrs or None, **fields)
        self.out.produce(self.topics.dead_letters, h.card_id.encode(), dead_letter(
            encode(tx), h.card_id.encode(), reason, exc, self.topics.transactions, -1, -1,
            self.settings.dead_letter_max_bytes))
        self.metrics.dead_letters.labels(reason=reason).inc()
        self.metrics.transactions.labels(outcome="dead_lettered").inc()

    def reject_unscored(self, records: list[Handoff], reason: str, exc: Exception) -> None:
        """Dead-letter transactions that will not be scored (e.g. no champion)."""
        for h in records:
            self._reject(h, exc, reason)

    def _verdicts(self, records: list[Handoff], X: np.ndarray, result: scoring.Scored,
                  codes: list[list[str]]) -> None:
        topic, produce = self.topics.verdicts, self.out.produce
        rows = X if self.settings.verdict_features else None
        for key, value in scoring.verdicts(records, X, result, codes, rows):
            produce(topic, key, value)
        self.metrics.observe_decisions([d != "approve" for d in result.decisions])
        m = self.metrics
        m.transactions.labels(outcome="scored").inc(len(records))
        for decision, count in zip(*np.unique(result.decisions.astype(str), return_counts=True),
                                   strict=True):
            m.verdicts.labels(decision=decision, model_version=result.version).inc(int(count))
        done = time.time()
        for h in records:
            m.event_to_verdict.observe(max(0.0, done - h.arrival_ms / 1000.0))

    # -- candidate -------------------------------------------------------------------------------
    def _candidate_scores(self, candidate: Slot, X: np.ndarray,
                          batch: scoring.BatchAttributes) -> scoring.Scored:
        result = scoring.score(candidate, self._inputs(candidate, X, batch))
        scoring.finite(result.scores)
        return result

    def _shadow(self, records: list[Handoff], champion: scoring.Scored, candidate: Slot | None,
                future: Future[scoring.Scored] | None, ok: np.ndarray) -> None:
        failures = self.metrics.candidate_failures
        if candidate is None or future is None:
            failures.labels(kind="missing").inc(len(records))
            return
        try:
            result = future.result(self.settings.candidate_timeout_s)
        except FutureTimeout:
            failures.labels(kind="timeout").inc(len(records))
            return
        except Exception as exc:
            logger.warning("candidate failed version=%s error=%s", candidate.version, exc)
            failures.labels(kind="error").inc(len(records))
            return
        if not ok.all():
            keep = np.flatnonzero(ok)
            result = scoring.Scored(result.version, result.name, result.scores[keep],
                                    result.decisions[keep], result.seconds)
        agree = 0
        produce, topic = self.out.produce, self.topics.shadow
        for key, value, agreed in scoring.shadow_results(records, champion, result):
            produce(topic, key, value)
            agree += agreed
        self.metrics.shadow_results.labels(agree="true").inc(agree)
        self.metrics.shadow_results.labels(agree="false").inc(len(records) - agree)

    # -- drift -----------------------------------------------------------------------------------
    def _drift(self, X: np.ndarray, result: scoring.Scored, records: list[Handoff]) -> None:
        if self.drift is None:
            return
        try:
            alerts = self.drift.observe_batch(X, result.scores, result.decisions,
                                              [h.event_datetime for h in records],
                                              attributes=[h.attrs for h in records],
                                              model_version=result.version)
            key, psi = self.drift.reference_psi()
            if key != self._psi_key:  # PSI is computed every psi_every_events events
                self._psi_key = key
                self.metrics.set_drift_psi(psi)
        except Exception as exc:  # drift must never stop scoring
            logger.error("drift monitor failed error=%s", exc)
            return
        for alert in alerts:
            self.out.produce(self.topics.drift_alerts, alert.signal, encode(alert))
            self.metrics.drift_alerts.labels(detector=alert.detector, signal=alert.signal).inc()
