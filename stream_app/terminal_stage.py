"""Stage 2, partitioned by terminal: apply labels, hold hand-offs until the frontier has
passed them, compute the terminal features and hand the rows to the scorer.

Inputs are ``<app>-terminals`` (hand-off messages, then the frontier's transaction marks) and
``<app>-labels`` (re-keyed labels, then its label marks), co-partitioned. A hand-off record may
carry its payment's fraud label (a report read before the payment, ``features.reports``): it is
applied with the payment, ahead of any transaction mark that passed the payment. Everything is
applied to the terminal state as soon as it is read: a label counts only from its
``reported_at`` and a transaction only in windows that end before a later one
(``features.spec``), so early is safe, and the order in which card partitions (and workers) hand
transactions over does not matter. A hand-off message is scored once
:class:`~stream_app.alignment.Frontier` says everything that can count in its features has been
read; its offset is done only once its transactions are scored or dead-lettered.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass

from features import FeatureConfig, LabelRecord, TerminalState
from schemas import LabelFeedback, decode
from stream_app.alignment import MARKER, Frontier, decode_marker
from stream_app.card_stage import CardStage, Input, Output
from stream_app.handoff import Handoff
from stream_app.metrics import WorkerMetrics
from stream_app.store import StateStore
from stream_app.topology import Topics

logger = logging.getLogger(__name__)


@dataclass(slots=True)
class Held:
    """A hand-off message waiting to be scored."""

    partition: int
    offset: int
    records: list[Handoff]
    max_event_us: int
    read_ms: int
    min_event_us: int = -1
    raw: bytes | None = None  # an undecodable message, dead-lettered when its turn comes
    counted: bool = False  # counted as held (no champion) once


class TerminalStage:
    """Stage 2's state logic; :class:`~stream_app.scorer.Scorer` scores what it releases."""

    def __init__(self, topics: Topics, store: StateStore[TerminalState], out: Output,
                 metrics: WorkerMetrics, config: FeatureConfig, rejects: CardStage,
                 grace_ms: int = 0) -> None:
        self.topics = topics
        self.store = store
        self.out = out
        self.metrics = metrics
        self.config = config
        self.rejects = rejects  # one dead-letter path for both stages
        self.grace_ms = grace_ms
        self.held: dict[int, deque[Held]] = {}
        self.frontiers: dict[int, Frontier] = {}

    def assign(self, partition: int) -> None:
        self.held[partition] = deque()
        self.frontiers[partition] = Frontier(self.topics.label_partitions,
                                             self.topics.card_partitions, self.config.delay_us,
                                             self.grace_ms)

    def revoke(self, partition: int) -> None:
        self.held.pop(partition, None)
        self.frontiers.pop(partition, None)

    # -- inputs ----------------------------------------------------------------------------------
    def label(self, msg: Input) -> None:
        """A message of ``<app>-labels``: a label to apply, or a frontier marker."""
        partition, value = msg.partition() or 0, msg.value() or b""
        try:
            if value[:1] == MARKER:
                labels, _, _, via_labels = decode_marker(value)
                self.frontiers[partition].update(labels, {}, None, via_labels)
            else:
                label = LabelRecord.from_event(decode(LabelFeedback, value))
                entry = self.store.get(partition, label.terminal_id)
                entry.state.apply_label(label.transaction_id, label.transaction_time_us,
                                        label.is_fraud, label.label_time_us)
                self.metrics.labels.inc()
        except Exception as exc:  # a hostile record on an internal topic
            self.rejects.reject(msg, exc, "internal_undecodable")
            return
        self.out.done(self.topics.labels_internal, partition, (msg.offset() or 0) + 1)

    def handoff(self, msg: Input) -> None:
        """A message of ``<app>-terminals``: its transactions enter the terminal state at once;
        the message is held until the frontier passes it. Or a frontier marker."""
        partition, offset = msg.partition() or 0, msg.offset() or 0
        value = msg.value() or b""
        if value[:1] == MARKER:
            try:
                _, transactions, via, _ = decode_marker(value)
                self.frontiers[partition].update({}, transactions, via)
            except Exception as exc:
                self.rejects.reject(msg, exc, "internal_undecodable")
                return
            if not self.held[partition]:
                self.out.done(self.topics.terminals, partition, offset + 1)
            return
        try:
            records = Handoff.decode_many(value)
            max_event = max(h.event_time_us for h in records)
            min_event = min(h.event_time_us for h in records)
            read_ms = max(int(h.read_ms) for h in records)
        except Exception as exc:
            if self.held[partition]:  # keep offsets in order: dead-letter it when released
                self.held[partition].append(Held(partition, offset, [], -1, -1,
                                                 raw=msg.value() or b""))
                logger.error("hand-off undecodable partition=%d offset=%d error=%s",
                             partition, offset, exc)
                self.metrics.dead_letters.labels(reason="internal_undecodable").inc()
            else:
                self.rejects.reject(msg, exc, "internal_undecodable")
            return
        for h in records:
            state = self.store.get(partition, h.terminal_id).state
            state.insert(h.transaction_id, h.event_time_us)
            if h.reported_us is not None:  # a fraud report read before the payment
                state.apply_label(h.transaction_id, h.event_time_us, True, h.reported_us)
                self.metrics.labels.inc()
        self.held[partition].append(Held(partition, offset, records, max_event, read_ms,
                                         min_event))

    # -- release ---------------------------------------------------------------------------------
    def releasable(self) -> Iterator[Held]:
        """Pop the held messages whose labels are all applied, in partition order."""
        for partition, queue in self.held.items():
            frontier = self.frontiers[partition]
            while queue and frontier.passes(queue[0].max_event_us, queue[0].read_ms):
                yield queue.popleft()

    def held_count(self) -> int:
        return sum(len(q) for q in self.held.values())

    def features(self, held: Held, safe: int | None) -> list[list[float]]:
        """The full feature rows of a released message's transactions; ``safe`` is the oldest
        event time the partition may still score (:meth:`safe_times`), which eviction keeps."""
        config, rows = self.config, []
        for h in held.records:
            state = self.store.get(held.partition, h.terminal_id).state
            t = h.event_time_us
            rows.append([*h.head, *state.features(t, config)])
            state.advance(t, config, safe)
        return rows

    def safe_times(self, released: list[Held]) -> dict[int, int | None]:
        """Per partition of ``released``: the oldest event time it may still score, among the
        released and held messages and what is not read yet (None: unknown)."""
        out: dict[int, int | None] = {}
        for partition in {h.partition for h in released}:
            safe = self.frontiers[partition].safe_us()
            if safe is not None:
                pending = [h for h in (*released, *self.held[partition])
                           if h.partition == partition and h.records]
                safe = min([safe, *(h.min_event_us for h in pending)])
            out[partition] = safe
        return out

    def finish(self, held: Held) -> None:
        self.out.done(self.topics.terminals, held.partition, held.offset + 1)
