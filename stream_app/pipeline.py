"""The two stages of the scorer, independent of Faust: they take decoded batches and act
through a :class:`~stream_app.sink.Sink` and two state caches.

Stage 1 (cards, partitioned by card): validate, compute stateless and card features, hand off
to the repartition topic keyed by terminal. Stage 2 (terminals, co-partitioned with labels):
apply labels, compute terminal features, score the batch with the champion (candidate beside
it, off the verdict path), publish verdicts, shadow results and drift alerts.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar

import numpy as np

from features import (
    CardState,
    FeatureConfig,
    LabelRecord,
    TerminalState,
    TransactionRecord,
    card_stage,
    terminal_stage,
    transaction_stage,
)
from schemas import DeadLetter, LabelFeedback, SchemaValidationError, Transaction, decode, encode
from sentinel.settings import Settings
from stream_app import scoring
from stream_app.handoff import Handoff
from stream_app.metrics import WorkerMetrics
from stream_app.models import ServingModels, Slot
from stream_app.sequence import Gap, OffsetSequence, expected_key, splice
from stream_app.sink import Sink, partition_for
from stream_app.state import KeyedState

logger = logging.getLogger(__name__)

S = TypeVar("S", CardState, TerminalState)
HANDOFF_CHUNK = 500  # records per hand-off message (about 200 KB, well under 1 MB)
OFFLOAD_MIN_ROWS = 200  # champion batches at least this large are scored in a thread


@dataclass(slots=True)  # not frozen: built once per message, frozen __init__ is slower
class Source:
    """Where a message came from (for dead letters, changelog partitions and latency)."""

    topic: str
    partition: int
    offset: int
    timestamp_ms: int
    key: bytes | None
    value: bytes


class StateCache(Generic[S]):
    """Live state objects over a key -> dict store (a Faust table's data), written back once
    per key per batch through ``persist(partition, key, dict)``; ``committed(partition)`` is
    the source partition's committed offset (replay memory below it is pruned on write)."""

    def __init__(self, store: Any, load: Callable[[dict[str, Any]], S], new: Callable[[], S],
                 persist: Callable[[int, str, dict[str, Any]], None],
                 committed: Callable[[int], int | None] = lambda _p: None) -> None:
        self._store = store
        self._load: Callable[[dict[str, Any]], S] = load
        self._new: Callable[[], S] = new
        self._persist = persist
        self._committed = committed
        self._live: dict[str, KeyedState[S]] = {}
        self._dirty: dict[str, int] = {}

    def get(self, key: str) -> KeyedState[S]:
        entry = self._live.get(key)
        if entry is None:
            data = self._store.get(key)
            entry = KeyedState(self._new()) if data is None else KeyedState.from_dict(
                data, self._load)
            self._live[key] = entry
        return entry

    def peek(self, key: str) -> KeyedState[S] | None:
        """A copy of the key's state for read-only use (e.g. /predict), or None."""
        entry = self._live.get(key)
        data = entry.to_dict() if entry is not None else self._store.get(key)
        return None if data is None else KeyedState.from_dict(data, self._load)

    def touch(self, key: str, partition: int) -> None:
        self._dirty[key] = partition

    def flush(self) -> None:
        committed: dict[int, int | None] = {}
        for key, partition in self._dirty.items():
            if partition not in committed:
                committed[partition] = self._committed(partition)
            entry = self._live[key]
            entry.prune(committed[partition])
            self._persist(partition, key, entry.to_dict())
        self._dirty.clear()

    def clear(self) -> None:
        """Forget live objects (after a rebalance the store is the truth)."""
        self._live.clear()
        self._dirty.clear()

    def next_offset(self, topic: str, partition: int) -> int | None:
        """The persisted next expected offset of a source partition (see ``sequence``)."""
        data = self._store.get(expected_key(topic, partition))
        return None if data is None else int(data["o"])

    def put_next_offsets(self, moved: dict[tuple[str, int], int]) -> None:
        """Persist next expected offsets; called after ``flush`` so that on the changelog
        partition an offset never precedes the state it covers."""
        for (topic, partition), offset in moved.items():
            self._persist(partition, expected_key(topic, partition), {"o": offset})


@dataclass
class Topics:
    transactions: str
    labels: str
    handoff: str
    verdicts: str
    shadow: str
    dead_letters: str
    drift_alerts: str
    partitions: int

    @classmethod
    def of(cls, settings: Settings, handoff: str) -> Topics:
        t = settings.topics
        return cls(t.name("transactions"), t.name("labels"), handoff, t.name("verdicts"),
                   t.name("shadow"), t.name("dead_letters"), t.name("drift_alerts"), t.partitions)


def dead_letter(src: Source, reason: str, exc: Exception) -> DeadLetter:
    return DeadLetter(
        original_base64=base64.b64encode(src.value or b"").decode(),
        original_key_base64=base64.b64encode(src.key).decode() if src.key else None,
        reason=reason, error_type=type(exc).__name__, source_topic=src.topic,
        source_partition=src.partition, source_offset=src.offset, at=datetime.now(UTC))


def _category(exc: Exception) -> str:
    if isinstance(exc, SchemaValidationError) and any(
            r.startswith("not valid JSON") for _, r in exc.problems):
        return "invalid_json"
    return "schema" if isinstance(exc, SchemaValidationError) else "undecodable"


@dataclass
class Scorer:
    """Both stages' logic; the Faust app feeds it batches of :class:`Source`."""

    settings: Settings
    topics: Topics
    sink: Sink
    models: ServingModels
    metrics: WorkerMetrics
    cards: StateCache[CardState]
    terminals: StateCache[TerminalState]
    drift: Any = None
    fetch_gap: Callable[[Gap], Awaitable[list[Source]]] | None = None
    verify_state: Callable[[str, int], Awaitable[int]] | None = None
    config: FeatureConfig = field(init=False)

    def __post_init__(self) -> None:
        self.config = FeatureConfig.from_settings(self.settings.features)
        self._column_cache: dict[str, np.ndarray] = {}
        self.card_offsets = OffsetSequence(self.cards.next_offset)
        self.terminal_offsets = OffsetSequence(self.terminals.next_offset)
        self._verified: set[tuple[str, int]] = set()

    def on_rebalance(self) -> None:
        """Live state is dropped; the (recovered) tables are the truth again."""
        for cache in (self.cards, self.terminals):
            cache.clear()
        self.card_offsets.forget()
        self.terminal_offsets.forget()
        self._verified.clear()

    async def _verify(self, table: str, batch: list[Source]) -> None:
        """Before a partition's first batch after a rebalance, check the recovered table
        partition against its changelog (``verify_state`` repairs and counts differences)."""
        if self.verify_state is None:
            return
        repaired = 0
        for partition in sorted({src.partition for src in batch}):
            if (table, partition) not in self._verified:
                repaired += await self.verify_state(table, partition)
                self._verified.add((table, partition))
        if repaired:
            (self.cards if table == "cards" else self.terminals).clear()

    async def _complete(self, batch: list[Source], offsets: OffsetSequence,
                        table: str) -> list[Source]:
        """The batch with any skipped offsets read back from the broker, in order."""
        await self._verify(table, batch)
        gaps = offsets.gaps(batch)
        if not gaps or self.fetch_gap is None:
            return batch
        filled = []
        for index, gap in gaps:
            records = await self.fetch_gap(gap)
            logger.warning("offset gap topic=%s partition=%d offsets=%d..%d: %d records read "
                           "back from the broker", gap.topic, gap.partition, gap.start,
                           gap.end - 1, len(records))
            self.metrics.offset_gaps.labels(topic=gap.topic).inc()
            self.metrics.offset_gap_records.labels(topic=gap.topic).inc(len(records))
            filled.append((index, records))
        return splice(batch, filled)

    # -- shared --------------------------------------------------------------------------------
    def reject(self, src: Source, reason: str, exc: Exception) -> None:
        self.sink.send(self.topics.dead_letters, src.key, encode(dead_letter(src, reason, exc)))
        self.metrics.dead_letters.labels(reason=reason).inc()
        self.metrics.transactions.labels(outcome="dead_lettered").inc()

    # -- stage 1 -------------------------------------------------------------------------------
    async def cards_batch(self, batch: list[Source]) -> None:
        config, n = self.config, self.topics.partitions
        await self.sink.ready()
        batch = await self._complete(batch, self.card_offsets, "cards")
        out: dict[int, list[Handoff]] = {}
        for src in batch:
            try:
                tx = decode(Transaction, src.value)
            except Exception as exc:  # bad input never stops the worker
                self.reject(src, _category(exc), exc)
                continue
            rec = TransactionRecord.from_event(tx)
            entry = self.cards.get(rec.card_id)
            card = entry.features(rec.transaction_id, src.offset,
                                  lambda s, r=rec: card_stage(s, r, config))  # type: ignore[misc]
            self.cards.touch(rec.card_id, src.partition)
            handoff = Handoff(rec.transaction_id, rec.card_id, rec.terminal_id, rec.amount,
                              tx.event_time.isoformat(), rec.event_time_us, src.timestamp_ms,
                              [*transaction_stage(rec), *card])
            out.setdefault(partition_for(rec.terminal_id.encode(), n), []).append(handoff)
        self.cards.flush()
        self.cards.put_next_offsets(self.card_offsets.advance(batch))
        for partition, records in out.items():  # batch order is kept within a partition
            for i in range(0, len(records), HANDOFF_CHUNK):
                self.sink.send(self.topics.handoff, None,
                               Handoff.encode_batch(records[i:i + HANDOFF_CHUNK]), partition)
        self.sink.poll()  # delivered before the offsets are committed (Sink.barrier)

    # -- stage 2 -------------------------------------------------------------------------------
    async def terminals_batch(self, batch: list[Source]) -> None:
        pending: list[Handoff] = []
        rows: list[list[float]] = []
        config = self.config
        await self.sink.ready()
        batch = await self._complete(batch, self.terminal_offsets, "terminals")
        for src in batch:
            if src.topic == self.topics.labels:
                self._label(src)
                continue
            for h in Handoff.decode_many(src.value):
                rec = TransactionRecord(h.transaction_id, h.card_id, h.terminal_id, h.amount,
                                        h.event_time_us)
                entry = self.terminals.get(h.terminal_id)
                terminal = entry.features(h.transaction_id, src.offset,
                                          lambda s, r=rec: terminal_stage(s, r, config))  # type: ignore[misc]
                self.terminals.touch(h.terminal_id, src.partition)
                pending.append(h)
                rows.append([*h.head, *terminal])
        self.terminals.flush()
        self.terminals.put_next_offsets(self.terminal_offsets.advance(batch))
        # hand-off messages carry up to HANDOFF_CHUNK records each: score in batch_size slices
        size = self.settings.scoring.batch_size
        X = np.asarray(rows, dtype=np.float64)
        for i in range(0, len(pending), size):
            await self._score(pending[i:i + size], X[i:i + size], batch)
        self.sink.poll()
        if pending:  # sent: what the event-to-verdict latency measures (as the message time)
            done = time.time()
            for h in pending:
                self.metrics.event_to_verdict.observe(max(0.0, done - h.arrival_ms / 1000.0))

    def _label(self, src: Source) -> None:
        try:
            label = LabelRecord.from_event(decode(LabelFeedback, src.value))
        except Exception as exc:
            self.sink.send(self.topics.dead_letters, src.key,
                           encode(dead_letter(src, _category(exc), exc)))
            self.metrics.dead_letters.labels(reason=_category(exc)).inc()
            return
        self.terminals.get(label.terminal_id).state.apply_label(
            label.transaction_id, label.transaction_time_us, label.is_fraud, label.label_time_us)
        self.terminals.touch(label.terminal_id, src.partition)
        self.metrics.labels.inc()

    async def _champion(self, n: int, batch: list[Source]) -> Slot | None:
        """The champion to score with; under ``hold`` waits for one (consumption pauses)."""
        champion = self.models.champion
        if champion is not None or self.settings.scoring.no_champion_policy == "dead_letter":
            return champion
        self.metrics.transactions.labels(outcome="held").inc(n)
        logger.warning("no champion: holding %d transactions until one is promoted", n)
        while self.models.champion is None:
            await asyncio.sleep(0.2)
        return self.models.champion

    async def _score(self, pending: list[Handoff], X: np.ndarray, batch: list[Source]) -> None:
        champion = await self._champion(len(pending), batch)
        if champion is None:
            self._dead_letter_unscored(pending)
            return
        candidate = self.models.candidate
        loop = asyncio.get_running_loop()
        shadow = None if candidate is None else loop.run_in_executor(
            None, lambda: scoring.score(candidate, X[:, self._columns(candidate)]))
        if len(pending) >= OFFLOAD_MIN_ROWS:
            # LightGBM releases the GIL while it predicts: in a thread, the event loop meanwhile
            # runs the other stage and Faust's consumer (about a tenth of the loop's time)
            result, codes = await loop.run_in_executor(None, self._champion_scores, champion, X)
        else:  # small batches (a stream that keeps up): the thread hop would only add latency
            result, codes = self._champion_scores(champion, X)
        self.metrics.scoring_latency.observe(result.seconds)
        self.metrics.batch_size.observe(len(pending))
        self._publish_verdicts(pending, X, result, codes)
        self._observe_drift(X, result, pending)
        await self._shadow(pending, result, candidate, shadow)

    def _champion_scores(self, champion: Slot, X: np.ndarray,
                         ) -> tuple[scoring.Scored, list[list[str]]]:
        Xc = X[:, self._columns(champion)]
        result = scoring.score(champion, Xc)
        return result, scoring.reasons(champion, Xc, result.decisions,
                                       self.settings.scoring.reason_codes)

    def _columns(self, slot: Slot) -> np.ndarray:
        cols = self._column_cache.get(slot.version)
        if cols is None:
            cols = scoring.columns(tuple(slot.model.feature_names), self.config.names)
            self._column_cache[slot.version] = cols
        return cols

    def _publish_verdicts(self, pending: list[Handoff], X: np.ndarray, result: scoring.Scored,
                          codes: list[list[str]]) -> None:
        topic, send = self.topics.verdicts, self.sink.send
        for key, value in scoring.verdicts(pending, X, result, codes):
            send(topic, key, value)
        flagged = [d != "approve" for d in result.decisions]
        self.metrics.observe_decisions(flagged)
        m = self.metrics
        m.transactions.labels(outcome="scored").inc(len(pending))
        for decision, count in zip(*np.unique(result.decisions.astype(str), return_counts=True),
                                   strict=True):
            m.verdicts.labels(decision=decision, model_version=result.version).inc(int(count))

    async def _shadow(self, pending: list[Handoff], champion: scoring.Scored,
                      candidate: Slot | None, future: Any) -> None:
        failures = self.metrics.candidate_failures
        if candidate is None or future is None:
            failures.labels(kind="missing").inc(len(pending))
            return
        try:
            result = await asyncio.wait_for(future, self.settings.scoring.candidate_timeout_s)
        except TimeoutError:
            failures.labels(kind="timeout").inc(len(pending))
            return
        except Exception as exc:
            logger.warning("candidate failed version=%s error=%s", candidate.version, exc)
            failures.labels(kind="error").inc(len(pending))
            return
        agree = 0
        send, topic = self.sink.send, self.topics.shadow
        for key, value, agreed in scoring.shadow_results(pending, champion, result):
            send(topic, key, value)
            agree += agreed
        self.metrics.shadow_results.labels(agree="true").inc(agree)
        self.metrics.shadow_results.labels(agree="false").inc(len(pending) - agree)

    def _observe_drift(self, X: np.ndarray, result: scoring.Scored,
                       pending: list[Handoff]) -> None:
        if self.drift is None:
            return
        try:
            alerts = self.drift.observe_batch(X, result.scores, result.decisions,
                                              [h.event_datetime for h in pending])
        except Exception as exc:  # drift must never stop scoring
            logger.error("drift monitor failed error=%s", exc)
            return
        for alert in alerts:
            self.sink.send(self.topics.drift_alerts, alert.signal, encode(alert))
            self.metrics.drift_alerts.labels(detector=alert.detector, signal=alert.signal).inc()

    def _dead_letter_unscored(self, pending: list[Handoff]) -> None:
        exc = RuntimeError("no @champion model is loaded")
        for h in pending:
            src = Source(self.topics.transactions, -1, -1, h.arrival_ms, h.card_id.encode(),
                         h.encode())
            self.reject(src, "no_champion", exc)
