"""Stage 2, partitioned by terminal: apply labels, hold hand-offs until the label frontier has
passed them, compute the terminal features and hand the rows to the scorer.

Inputs are ``<app>-terminals`` (hand-off messages) and ``<app>-labels`` (re-keyed labels and
frontier markers), co-partitioned. Labels are applied as soon as they are read (a label counts
only from its ``reported_at``, so early is safe; one whose transaction has not arrived waits in
the terminal state). A hand-off message is held until :class:`~stream_app.alignment.Frontier`
says every label due by its transactions' event times has been applied; its offset is done
only once its transactions are scored or dead-lettered.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass

from features import FeatureConfig, LabelRecord, TerminalState, TransactionRecord, terminal_stage
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
    raw: bytes | None = None  # an undecodable message, dead-lettered when its turn comes
    counted: bool = False  # counted as held (no champion) once


class TerminalStage:
    """Stage 2's state logic; :class:`~stream_app.scorer.Scorer` scores what it releases."""

    def __init__(self, topics: Topics, store: StateStore[TerminalState], out: Output,
                 metrics: WorkerMetrics, config: FeatureConfig, rejects: CardStage,
                 remember: bool) -> None:
        self.topics = topics
        self.store = store
        self.out = out
        self.metrics = metrics
        self.config = config
        self.rejects = rejects  # one dead-letter path for both stages
        self.remember = remember
        self.held: dict[int, deque[Held]] = {}
        self.frontiers: dict[int, Frontier] = {}

    def assign(self, partition: int) -> None:
        self.held[partition] = deque()
        self.frontiers[partition] = Frontier(self.topics.label_partitions)

    def revoke(self, partition: int) -> None:
        self.held.pop(partition, None)
        self.frontiers.pop(partition, None)

    # -- inputs ----------------------------------------------------------------------------------
    def label(self, msg: Input) -> None:
        """A message of ``<app>-labels``: a label to apply, or a frontier marker."""
        partition, value = msg.partition() or 0, msg.value() or b""
        try:
            if value[:1] == MARKER:
                self.frontiers[partition].update(decode_marker(value))
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
        """A message of ``<app>-terminals``: held until the frontier passes it."""
        partition, offset = msg.partition() or 0, msg.offset() or 0
        try:
            records = Handoff.decode_many(msg.value() or b"")
            max_event = max(h.event_time_us for h in records)
            read_ms = max(int(h.read_ms) for h in records)
        except Exception as exc:
            if self.held[partition]:  # keep offsets in order: dead-letter it when released
                self.held[partition].append(Held(partition, offset, [], -1, -1,
                                                 msg.value() or b""))
                logger.error("hand-off undecodable partition=%d offset=%d error=%s",
                             partition, offset, exc)
                self.metrics.dead_letters.labels(reason="internal_undecodable").inc()
            else:
                self.rejects.reject(msg, exc, "internal_undecodable")
            return
        self.held[partition].append(Held(partition, offset, records, max_event, read_ms))

    # -- release ---------------------------------------------------------------------------------
    def releasable(self) -> Iterator[Held]:
        """Pop the held messages whose labels are all applied, in partition order."""
        for partition, queue in self.held.items():
            frontier = self.frontiers[partition]
            while queue and frontier.passes(queue[0].max_event_us, queue[0].read_ms):
                yield queue.popleft()

    def held_count(self) -> int:
        return sum(len(q) for q in self.held.values())

    def features(self, held: Held) -> list[list[float]]:
        """The full feature rows of a released message's transactions (updates the state)."""
        config, rows = self.config, []
        for h in held.records:
            rec = TransactionRecord(h.transaction_id, h.card_id, h.terminal_id, h.amount,
                                    h.event_time_us)
            entry = self.store.get(held.partition, h.terminal_id)
            if self.remember:
                terminal = entry.features(h.transaction_id, self.out.sequence,
                                          lambda s, r=rec: terminal_stage(s, r, config))  # type: ignore[misc]
            else:
                terminal = tuple(terminal_stage(entry.state, rec, config))
            rows.append([*h.head, *terminal])
        return rows

    def finish(self, held: Held) -> None:
        self.out.done(self.topics.terminals, held.partition, held.offset + 1)
