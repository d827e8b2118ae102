"""Scoring released hand-offs: the champion's verdicts, the candidate in shadow, drift.

Every transaction ends in exactly one of: a verdict, a dead letter, or held (no champion under
the ``hold`` policy; the engine then keeps its message unscored). A batch whose scoring raises
is tried ``scoring_attempts`` times, then scored row by row: the rows that still fail are
dead-lettered with the reason (their original transaction rebuilt from the hand-off) and the
others get their verdicts. The candidate runs in a thread beside the champion and can never
change or delay a verdict beyond ``candidate_timeout_s``.

With ``background_reasons`` (the engine's), a batch's approved verdicts are produced at once and
the reason codes of its flagged rows (exact TreeSHAP, about 0.6 ms a row: the costliest step
per flagged row) are computed in a thread while the engine reads the next batch;
:meth:`Scorer.settle` produces those verdicts, in order, before the next batch is scored and
before every commit, so they belong to the same checkpoint. LightGBM releases the GIL in its
C call, so the thread runs beside the main one. A failing reason-code pass is tried again in
line, then row by row: a row that still fails is dead-lettered, as in line.
"""

from __future__ import annotations

import logging
import time
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
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


@dataclass
class _Flagged:
    """A scored batch's flagged rows, waiting for their reason codes."""

    records: list[Handoff]
    X: np.ndarray
    result: scoring.Scored
    rows: list[int]  # the flagged rows' indices in the batch
    inputs: np.ndarray  # the champion's input matrix of those rows
    model: Any
    codes: Future[list[list[str]]]


class Scorer:
    """Scores batches of feature rows with the serving models and publishes the results."""

    def __init__(self, topics: Topics, out: Output, models: ServingModels,
                 metrics: WorkerMetrics, names: tuple[str, ...], settings: ScoringSettings,
                 drift: Any = None, background_reasons: bool = False) -> None:
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
        self._reasons_pool = ThreadPoolExecutor(1, thread_name_prefix="reasons") if (
            background_reasons and settings.reason_codes > 0) else None
        self._flagged: list[_Flagged] = []

    def close(self) -> None:
        self._shadow_pool.shutdown(wait=False, cancel_futures=True)
        if self._reasons_pool is not None:
            self._reasons_pool.shutdown(wait=False, cancel_futures=True)

    @property
    def unsettled(self) -> int:
        """Flagged verdicts waiting for their reason codes."""
        return sum(len(f.rows) for f in self._flagged)

    def settle(self) -> None:
        """Produce the flagged verdicts of every batch scored so far, in order (each waits for
        its reason codes)."""
        while self._flagged:
            flagged = self._flagged.pop(0)
            try:
                codes: list[list[str] | None] = list(flagged.codes.result())
            except Exception as exc:
                codes = self._reasons_again(flagged, exc)
            ok = [i for i, c in zip(flagged.rows, codes, strict=True) if c is not None]
            full: list[list[str]] = [[] for _ in flagged.records]
            for i, c in zip(flagged.rows, codes, strict=True):
                if c is None:
                    self._reject(flagged.records[i], ValueError("reason codes failed"))
                else:
                    full[i] = c
            self._produce_verdicts(flagged.records, flagged.X, flagged.result, full, ok)

    def discard(self) -> None:
        """Forget unsettled verdicts: their checkpoint was aborted (the inputs come again)."""
        for flagged in self._flagged:
            flagged.codes.cancel()
        self._flagged.clear()

    def _reasons_again(self, flagged: _Flagged, exc: Exception) -> list[list[str] | None]:
        """After a failed background pass: the pass in line (``scoring_attempts`` in all),
        then row by row; None for a row that still fails."""
        k = self.settings.reason_codes
        for _ in range(self.settings.scoring_attempts - 1):
            try:
                return list(flagged.model.reasons(flagged.inputs, k))
            except Exception as again:
                exc = again
        logger.error("reason codes failed on %d flagged rows, isolating them error=%s",
                     len(flagged.rows), exc)
        out: list[list[str] | None] = []
        for j in range(len(flagged.rows)):
            try:
                out.append(flagged.model.reasons(flagged.inputs[j:j + 1], k)[0])
            except Exception:
                out.append(None)
        return out

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
        ok, result, codes, inputs = self._champion(champion, X, records, batch)
        if not ok.all():
            keep = np.flatnonzero(ok)
            records = [records[i] for i in keep]
            X = X[keep]  # (the inputs hold the scored rows only)
        if not records:
            return
        self.metrics.scoring_latency.observe(result.seconds)
        self.metrics.batch_size.observe(len(records))
        self._verdicts(records, X, result, codes, inputs, champion)
        self._drift(X, result, records)
        self._shadow(records, result, candidate, shadow, ok)

    # -- champion --------------------------------------------------------------------------------
    def _champion(self, champion: Slot, X: np.ndarray, records: list[Handoff],
                  batch: scoring.BatchAttributes,
                  ) -> tuple[np.ndarray, scoring.Scored, list[list[str]] | None, np.ndarray]:
        """(rows scored, the scores, their reason codes or None when they come later, the
        champion's input matrix)."""
        last: Exception | None = None
        for _ in range(self.settings.scoring_attempts):
            try:
                missing: list[str] = []
                result, codes, inputs = self._scores(champion, X, batch, missing)
                for name in missing:
                    self.metrics.attribute_missing.labels(attribute=name).inc()
                return np.ones(len(records), bool), result, codes, inputs
            except Exception as exc:
                last = exc
        logger.error("champion version=%s failed on a batch of %d, isolating rows error=%s",
                     champion.version, len(records), last)
        ok = np.zeros(len(records), bool)
        parts: list[tuple[scoring.Scored, list[list[str]] | None, np.ndarray]] = []
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
            return ok, empty, [], np.empty((0, 0))
        scores = np.concatenate([p[0].scores for p in parts])
        decisions = np.concatenate([p[0].decisions for p in parts])
        seconds = sum(p[0].seconds for p in parts)
        late = any(p[1] is None for p in parts)
        codes = None if late else [c for p in parts for c in p[1] or []]
        return ok, scoring.Scored(champion.version, champion.name, scores, decisions,
                                  seconds), codes, np.vstack([p[2] for p in parts])

    def _inputs(self, slot: Slot, X: np.ndarray, batch: scoring.BatchAttributes,
                missing: list[str] | None = None) -> np.ndarray:
        """The model's input matrix: computed columns, then its feature spec's attributes."""
        return scoring.inputs(scoring.spec_of(slot.model), X, self.columns(slot), batch,
                              missing)

    def _scores(self, champion: Slot, X: np.ndarray, batch: scoring.BatchAttributes,
                missing: list[str] | None = None,
                ) -> tuple[scoring.Scored, list[list[str]] | None, np.ndarray]:
        """Scores, reason codes (None: they come from the background pass) and the inputs."""
        Xc = self._inputs(champion, X, batch, missing)
        result = scoring.score(champion, Xc)
        scoring.finite(result.scores)
        if self._reasons_pool is not None:
            return result, None, Xc
        return result, scoring.reasons(champion, Xc, result.decisions,
                                       self.settings.reason_codes), Xc

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
                  codes: list[list[str]] | None, inputs: np.ndarray, champion: Slot) -> None:
        """The verdicts (the flagged ones later when their reason codes come from the
        background pass) and their counts."""
        if codes is None:
            flagged = np.flatnonzero(result.decisions != "approve")
            approved = np.flatnonzero(result.decisions == "approve").tolist()
            self._produce_verdicts(records, X, result, [[] for _ in records], approved)
            pool = self._reasons_pool
            if len(flagged) and pool is not None:
                rows = inputs[flagged]
                future = pool.submit(champion.model.reasons, rows, self.settings.reason_codes)
                self._flagged.append(_Flagged(records, X, result, flagged.tolist(), rows,
                                              champion.model, future))
        else:
            self._produce_verdicts(records, X, result, codes, None)
        self.metrics.observe_decisions([d != "approve" for d in result.decisions])
        m = self.metrics
        m.transactions.labels(outcome="scored").inc(len(records))
        for decision, count in zip(*np.unique(result.decisions.astype(str), return_counts=True),
                                   strict=True):
            m.verdicts.labels(decision=decision, model_version=result.version).inc(int(count))

    def _produce_verdicts(self, records: list[Handoff], X: np.ndarray, result: scoring.Scored,
                          codes: list[list[str]], only: list[int] | None) -> None:
        topic, produce = self.topics.verdicts, self.out.produce
        rows = X if self.settings.verdict_features else None
        for key, value in scoring.verdicts(records, X, result, codes, rows, only):
            produce(topic, key, value)
        done, observe = time.time(), self.metrics.event_to_verdict.observe
        for i in range(len(records)) if only is None else only:
            observe(max(0.0, done - records[i].arrival_ms / 1000.0))

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
