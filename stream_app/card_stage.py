"""Stage 1, partitioned by card: validate inputs, re-key what is not where its card lives,
compute the stateless and card features, and hand each transaction to the terminal stage.

It reads the external ``transactions`` topic, its own re-key topic ``<app>-cards`` (same
partition count, co-partitioned by the range assignor) and the external ``labels`` topic.

- A transaction is processed in place only if its partition is the one this worker's
  partitioner (CRC32 of the card id, as librdkafka's default) gives its card; anything else
  (another partitioner such as the Java client's murmur2, a null key, a key that is not the
  card id) goes to its card's partition: directly when this worker owns that partition (same
  transaction, no extra hop), else re-keyed through ``<app>-cards``. So a card's state is never
  split across tasks.
- Per external transactions partition, the stage tracks the newest event time it read, for the
  terminal stage's frontier (``stream_app.alignment``).
- Labels are validated and re-keyed by terminal to ``<app>-labels``; the stage tracks, per
  external labels partition, the newest ``reported_at`` it forwarded (``stream_app.alignment``).
  A fraud report that names its payment fully (``FraudReport`` with transaction id, terminal
  and time) is accepted there too and forwarded as its label.
- A report by transaction id alone, or of a card's time range, goes to its card's partition
  like a transaction (in place when this worker owns it, else through ``<app>-cards``). There
  the card's state (``features.reports.CardPayments``: its payments of the last
  ``reports.lookback_days``) resolves it: each payment already read that it names becomes a
  label (``source="report"``) forwarded like a chargeback; while the card has not been read up
  to ``reported_at`` the report stays open in the card's state and each payment it names that
  is read later carries its label in its hand-off. A by-id report whose payment the card
  never had is dead-lettered ``report_unresolved`` once the card has been read past
  ``reported_at``.
- Bad input is dead-lettered with its reason; it never stops the stage.
"""

from __future__ import annotations

import logging
import marshal
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from features import (
    CardState,
    FeatureConfig,
    TransactionRecord,
    card_stage,
    transaction_stage,
)
from features.attributes import attributes_of
from features.clock import from_micros, to_micros
from features.reports import OpenReport, ReportRecord
from schemas import FraudReport, LabelFeedback, Transaction, decode, decode_label, encode
from schemas.codec import decode_transaction
from stream_app.alignment import MARKER, Via, decode_marker, merge_marks
from stream_app.dead_letter import category, dead_letter
from stream_app.handoff import Handoff, Packed, pack_floats
from stream_app.metrics import WorkerMetrics
from stream_app.partitioning import partition_for
from stream_app.reports import labels_for
from stream_app.store import StateStore
from stream_app.topology import Topics

logger = logging.getLogger(__name__)

REKEYED = b"R"  # first byte of a re-keyed transaction on <app>-cards
REPORTED = b"F"  # first byte of a fraud report sent to its card's partition on <app>-cards
NOTE_MAX = 4096  # bytes of a report kept in card state for its dead letter
HANDOFF_CHUNK = 500  # records per hand-off message (about 200 KB, well under 1 MB)


class Output(Protocol):
    """Where a stage's results go: the checkpoint (``stream_app.checkpoint``)."""

    sequence: int

    def produce(self, topic: str, key: bytes | str | None, value: bytes,
                partition: int | None = None) -> None: ...

    def done(self, topic: str, partition: int, next_offset: int) -> None: ...


class Input(Protocol):
    """What a stage needs of a consumed message (confluent-kafka's ``Message``)."""

    def topic(self) -> str | None: ...
    def partition(self) -> int | None: ...
    def offset(self) -> int | None: ...
    def key(self) -> bytes | None: ...
    def value(self) -> bytes | None: ...
    def timestamp(self) -> tuple[int, int]: ...


class SkewError(ValueError):
    """An event time too far ahead of the wall clock."""


class CardStage:
    """Stage 1's logic; the engine feeds it messages and flushes its hand-offs."""

    def __init__(self, topics: Topics, store: StateStore[CardState], out: Output,
                 metrics: WorkerMetrics, config: FeatureConfig, max_skew_s: float,
                 dead_letter_bytes: int, remember: bool,
                 local: Callable[[int], bool] = lambda partition: False,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC),
                 lookback_us: int = 0) -> None:
        self.topics = topics
        self.store = store
        self.out = out
        self.metrics = metrics
        self.config = config
        self.max_skew = timedelta(seconds=max_skew_s)
        self.dead_letter_bytes = dead_letter_bytes
        self.remember = remember  # at_least_once: replayed transactions get the same features
        self.local = local  # is this card partition's state here (owned and restored)?
        self.clock = clock
        self.lookback = lookback_us  # reports.lookback_days (features.reports)
        self.reported: dict[int, int] = {}  # external labels partition -> newest reported_at
        self.read_event: dict[int, int] = {}  # external transactions partition -> newest time
        self.via: Via = {}  # <app>-cards partition -> the latest transaction marks read on it
        self.via_labels: Via = {}  # ... and the latest label marks
        self._handoffs: dict[int, list[Handoff]] = {}

    # -- inputs ----------------------------------------------------------------------------------
    def transaction(self, msg: Input, read_ms: int) -> None:
        """A message of the external transactions topic."""
        value = msg.value()
        try:
            tx, numeric = decode_transaction(value)
            self._valid(tx, "event_time")
        except Exception as exc:  # bad input never stops the worker
            self.reject(msg, exc)
            return
        partition = _partition(msg)
        event_us = to_micros(tx.event_time)
        if event_us > self.read_event.get(partition, -1):
            self.read_event[partition] = event_us
        home = partition_for(tx.card_id.encode(), self.topics.card_partitions)
        if home == partition or self.local(home):
            self._card(tx, numeric, home, _timestamp(msg), read_ms, _offset(msg))
            if home != partition:
                self.metrics.rekeyed.labels(topic="transactions").inc()
        else:
            rekeyed = REKEYED + marshal.dumps((_timestamp(msg), read_ms, value), 4)
            self.out.produce(self.topics.cards, tx.card_id.encode(), rekeyed, home)
            self.metrics.rekeyed.labels(topic="transactions").inc()
        self.out.done(self.topics.transactions, partition, _offset(msg) + 1)

    def rekeyed(self, msg: Input) -> None:
        """A message of the internal ``<app>-cards`` topic (written by a card stage): a
        transaction, or a fraud report, sent to its card's partition; or the transaction
        marks of the partition owner that wrote them before it, to relay
        (``stream_app.alignment``)."""
        value, partition = msg.value() or b"", _partition(msg)
        if value[:1] == MARKER:
            try:
                labels, marks, _, _ = decode_marker(value)
            except Exception as exc:  # a hostile record on an internal topic
                self.reject(msg, exc, "internal_undecodable")
                return
            merge_marks(self.via.setdefault(partition, {}), marks)
            merge_marks(self.via_labels.setdefault(partition, {}), labels)
            self.out.done(self.topics.cards, partition, _offset(msg) + 1)
            return
        try:
            if value[:1] == REPORTED:
                note = value[1:]
                report = decode(FraudReport, _unnote(note)[4])
            else:
                arrival_ms, read_ms, raw = _rekeyed(value)
                tx, numeric = decode_transaction(raw)
        except Exception as exc:  # a hostile record on an internal topic
            self.reject(msg, exc, "internal_undecodable")
            return
        if value[:1] == REPORTED:
            self._report(report, partition, note)
        else:
            self._card(tx, numeric, partition, arrival_ms, read_ms, _offset(msg))
        self.out.done(self.topics.cards, partition, _offset(msg) + 1)

    def label(self, msg: Input) -> None:
        """A message of the external labels topic: validated, re-keyed by terminal. A complete
        fraud report (``FraudReport`` naming the payment's terminal and time) becomes its label
        here (``stream_app.reports``); any other report goes to its card's partition."""
        value = msg.value()
        try:
            event: LabelFeedback | FraudReport = self._valid(decode_label(value), "reported_at")
        except Exception as exc:
            self.reject(msg, exc)
            return
        if isinstance(event, FraudReport) and not event.complete:
            self._route_report(event, msg)
        elif isinstance(event, FraudReport):
            for label in labels_for(event):
                self._forward(label, encode(label))
        else:
            assert value is not None  # noqa: S101 - decode refused None
            self._forward(event, value)
        q = _partition(msg)
        reported = to_micros(event.reported_at)
        if reported > self.reported.get(q, -1):
            self.reported[q] = reported
        self.out.done(self.topics.labels, q, _offset(msg) + 1)

    def _forward(self, label: LabelFeedback, raw: bytes) -> None:
        target = partition_for(label.terminal_id.encode(), self.topics.terminal_partitions)
        self.out.produce(self.topics.labels_internal, label.terminal_id.encode(), raw, target)

    # -- fraud reports by id or range ----------------------------------------------------------
    def _route_report(self, report: FraudReport, msg: Input) -> None:
        """To the card's partition, as a transaction of that card would go."""
        self.metrics.reports.labels(outcome="received").inc()
        value = msg.value() or b""
        if len(value) > NOTE_MAX:  # only padding can make a valid report this long
            value = encode(report)
        note = marshal.dumps((msg.topic() or "", _partition(msg), _offset(msg), msg.key(),
                              value), 4)
        home = partition_for(report.card_id.encode(), self.topics.card_partitions)
        if self.local(home):
            self._report(report, home, note)
        else:
            self.out.produce(self.topics.cards, report.card_id.encode(), REPORTED + note, home)
            self.metrics.rekeyed.labels(topic="labels").inc()

    def _report(self, report: FraudReport, partition: int, note: bytes) -> None:
        """Resolve a report in its card's state: labels for the payments read so far that it
        names; it stays open for those not read yet (``features.reports``)."""
        entry = self.store.get(partition, report.card_id)
        hits, closed = entry.state.payments.report(ReportRecord.from_event(report), note,
                                                   self.lookback)
        for transaction_id, terminal_id, time_us in hits:
            label = LabelFeedback(transaction_id=transaction_id, card_id=report.card_id,
                                  terminal_id=terminal_id, is_fraud=True,
                                  transaction_time=from_micros(time_us),
                                  reported_at=report.reported_at, source="report")
            self._forward(label, encode(label))
        self.metrics.report_labels.inc(len(hits))
        for unresolved in closed:
            self._unresolved(unresolved)

    def _unresolved(self, report: OpenReport) -> None:
        """Dead-letter a by-id report whose payment its card never had (within the lookback,
        before ``reported_at``), with the report's original bytes and source."""
        record = report.record
        days = self.lookback / 86_400_000_000
        exc = _Rejected("report_unresolved", (
            f"report {record.report_id!r}: transaction {record.transaction_id!r} is not a payment "
            f"of card {record.card_id!r} in the {days:g} days before reported_at "
            f"{from_micros(record.reported_us).isoformat()}"))
        try:
            topic, partition, offset, key, value = _unnote(report.note)
        except Exception:  # a note that is not ours (a hostile changelog): its bytes
            topic, partition, offset, key, value = "", -1, -1, None, report.note
        self.out.produce(self.topics.dead_letters, key, dead_letter(
            value, key, exc.reason, exc, topic, partition, offset, self.dead_letter_bytes))
        self.metrics.dead_letters.labels(reason=exc.reason).inc()
        self.metrics.reports.labels(outcome="unresolved").inc()

    # -- outputs ---------------------------------------------------------------------------------
    def flush_handoffs(self) -> None:
        """Send the hand-offs of this batch: one message per terminal partition and chunk, in
        the order the transactions were processed."""
        for partition, records in self._handoffs.items():
            for i in range(0, len(records), HANDOFF_CHUNK):
                self.out.produce(self.topics.terminals, None,
                                 Handoff.encode_batch(records[i:i + HANDOFF_CHUNK]), partition)
        self._handoffs.clear()

    def reject(self, msg: Input, exc: Exception, reason: str | None = None) -> None:
        """Dead-letter one input and mark it done."""
        reason = reason or (exc.reason if isinstance(exc, _Rejected) else category(exc))
        topic, partition, offset = msg.topic() or "", _partition(msg), _offset(msg)
        self.out.produce(self.topics.dead_letters, msg.key(), dead_letter(
            msg.value(), msg.key(), reason, exc, topic, partition, offset,
            self.dead_letter_bytes))
        self.metrics.dead_letters.labels(reason=reason).inc()
        if topic != self.topics.labels:
            self.metrics.transactions.labels(outcome="dead_lettered").inc()
        self.out.done(topic, partition, offset + 1)

    # -- internals -------------------------------------------------------------------------------
    def _valid(self, event: Any, time_field: str) -> Any:
        when: datetime = getattr(event, time_field)
        if when > self.clock() + self.max_skew:
            raise _Rejected("event_time_skew", f"{time_field} {when.isoformat()} is more than "
                            f"{self.max_skew.total_seconds():.0f}s ahead of the wall clock")
        return event

    def _card(self, tx: Transaction, numeric: bool, partition: int, arrival_ms: int,
              read_ms: int, offset: int) -> None:
        config = self.config
        rec = TransactionRecord.from_event(tx)
        entry = self.store.get(partition, rec.card_id)
        if self.remember:
            card = entry.features(rec.transaction_id, self.out.sequence,
                                  lambda s: card_stage(s, rec, config))
        else:
            card = tuple(card_stage(entry.state, rec, config))
        reported, closed = entry.state.payments.payment(
            rec.transaction_id, rec.terminal_id, rec.event_time_us, self.lookback)
        if reported is not None:
            self.metrics.report_labels.inc()
        for unresolved in closed:
            self._unresolved(unresolved)
        handoff = Handoff(rec.transaction_id, rec.card_id, rec.terminal_id, rec.amount,
                          tx.event_time.isoformat(), rec.event_time_us, arrival_ms,
                          [*transaction_stage(rec), *card], read_ms, _inputs(tx, numeric),
                          reported)
        target = partition_for(rec.terminal_id.encode(), self.topics.terminal_partitions)
        self._handoffs.setdefault(target, []).append(handoff)


class _Rejected(ValueError):
    """A valid-looking input refused for a named reason (the dead letter's reason)."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def _inputs(tx: Transaction, numeric: bool) -> dict[str, Any] | Packed | None:
    """What the hand-off carries for a model's attribute inputs: packed at once when the
    decoder found only floats (``decode_transaction``), else as ``attributes_of`` gives them
    (packed when the hand-off is encoded)."""
    if numeric and tx.attributes and tx.merchant_category is None and tx.channel is None:
        return pack_floats(tx.attributes)  # type: ignore[arg-type]
    return attributes_of(tx)


def _rekeyed(value: bytes | None) -> tuple[int, int, bytes]:
    if not value or value[:1] != REKEYED:
        raise ValueError("not a re-keyed transaction")
    fields = marshal.loads(value[1:])  # noqa: S302 - checked below; internal topic
    if (not isinstance(fields, tuple) or len(fields) != 3 or not isinstance(fields[0], int)
            or not isinstance(fields[1], int) or not isinstance(fields[2], bytes)):
        raise ValueError("re-keyed transaction has the wrong shape")
    return fields


def _unnote(note: bytes) -> tuple[str, int, int, bytes | None, bytes]:
    """(topic, partition, offset, key, value) of a report's note (``_route_report``)."""
    fields = marshal.loads(note)  # noqa: S302 - checked below; internal topic and state
    if (not isinstance(fields, tuple) or len(fields) != 5 or not isinstance(fields[0], str)
            or not isinstance(fields[1], int) or not isinstance(fields[2], int)
            or not isinstance(fields[3], bytes | None) or not isinstance(fields[4], bytes)):
        raise ValueError("a report note has the wrong shape")
    return fields


def _partition(msg: Input) -> int:
    return msg.partition() or 0


def _offset(msg: Input) -> int:
    return msg.offset() or 0


def _timestamp(msg: Input) -> int:
    return msg.timestamp()[1]
