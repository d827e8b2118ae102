"""Fraud reports: the contract, the pure intake (report -> labels), and the card stage's
handling of reports on the labels topic: complete ones at once, others resolved in their
card's state (``features.reports``) whatever the order of reports and payments."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from features import CardState, FeatureConfig
from features.clock import to_micros
from features.reports import lookback_us
from schemas import (
    DeadLetter,
    FraudReport,
    LabelFeedback,
    SchemaValidationError,
    Transaction,
    decode,
    encode,
)
from stream_app.card_stage import CardStage
from stream_app.handoff import Handoff
from stream_app.metrics import WorkerMetrics
from stream_app.partitioning import partition_for
from stream_app.reports import KnownPayment, ReportError, intake, labels_for, parse_report
from stream_app.store import StateStore
from stream_app.topology import Topics

T0 = datetime(2018, 8, 1, 12, tzinfo=UTC)
HOUR = timedelta(hours=1)
KNOWN = [
    KnownPayment("tx1", "c1", "m1", T0),
    KnownPayment("tx2", "c1", "m2", T0 + HOUR),
    KnownPayment("tx3", "c1", "m3", T0 + 3 * HOUR),
    KnownPayment("tx4", "c2", "m1", T0 + HOUR),
]


def _report(**kw: Any) -> FraudReport:
    return FraudReport(**({"report_id": "r1", "card_id": "c1", "reported_at": T0 + 5 * HOUR} | kw))


def test_a_complete_report_becomes_its_label_without_a_lookup() -> None:
    report = _report(transaction_id="tx9", terminal_id="m9", transaction_time=T0)
    [label] = labels_for(report)
    assert label == LabelFeedback(transaction_id="tx9", card_id="c1", terminal_id="m9",
                                  is_fraud=True, transaction_time=T0,
                                  reported_at=T0 + 5 * HOUR, source="report")


def test_a_report_by_id_is_resolved_against_known_payments() -> None:
    [label] = labels_for(_report(transaction_id="tx2"), KNOWN)
    assert (label.terminal_id, label.transaction_time) == ("m2", T0 + HOUR)
    with pytest.raises(ReportError, match="not known here"):
        labels_for(_report(transaction_id="tx7"), KNOWN)
    with pytest.raises(ReportError, match="not a payment of card"):
        labels_for(_report(transaction_id="tx4"), KNOWN)


def test_a_card_range_report_labels_the_cards_payments_in_the_range_only() -> None:
    labels = labels_for(_report(start=T0, end=T0 + 2 * HOUR), reversed(KNOWN))
    assert [x.transaction_id for x in labels] == ["tx1", "tx2"]  # not tx3 (after), tx4 (card)
    assert {x.source for x in labels} == {"report"} and all(x.is_fraud for x in labels)


def test_payments_at_or_after_the_report_are_not_labelled() -> None:
    report = _report(start=T0, end=T0 + 4 * HOUR, reported_at=T0 + HOUR)
    assert [x.transaction_id for x in labels_for(report, KNOWN)] == ["tx1"]


@pytest.mark.parametrize("body, reason", [
    (b"", "empty|JSON"),
    (b"{not json", "not JSON"),
    (b'{"report_id": "r", "card_id": "c1", "reported_at": "2018-08-01T00:00:00Z"}', "either"),
    (b'{"report_id": "r", "card_id": "c1", "transaction_id": "t", "start": '
     b'"2018-08-01T00:00:00Z", "end": "2018-08-02T00:00:00Z", '
     b'"reported_at": "2018-08-03T00:00:00Z"}', "either"),
    (b'{"report_id": "r", "card_id": "c1", "start": "2018-08-02T00:00:00Z", '
     b'"end": "2018-08-01T00:00:00Z", "reported_at": "2018-08-03T00:00:00Z"}', "start < end"),
    (b'{"report_id": "r", "card_id": "c1", "transaction_id": "t", "terminal_id": "m", '
     b'"reported_at": "2018-08-03T00:00:00Z"}', "together"),
    (b'{"report_id": "r", "card_id": "c1", "transaction_id": "t", "extra": 1, '
     b'"reported_at": "2018-08-03T00:00:00Z"}', "unknown field"),
    (b"x" * 70_000, "over"),
])
def test_bad_bodies_are_one_line_errors(body: bytes, reason: str) -> None:
    with pytest.raises(ReportError, match=reason) as caught:
        parse_report(body)
    assert "\n" not in str(caught.value)


def test_a_good_body_parses_and_round_trips() -> None:
    report = _report(start=T0, end=T0 + HOUR)
    assert parse_report(encode(report)) == report
    assert decode(FraudReport, encode(report)) == report
    with pytest.raises(SchemaValidationError):
        decode(LabelFeedback, encode(report))


class _Out:
    sequence = 0

    def __init__(self) -> None:
        self.sent: list[tuple[str, Any, bytes, int | None]] = []
        self.finished: list[tuple[str, int, int]] = []

    def produce(self, topic: str, key: Any, value: bytes, partition: int | None = None) -> None:
        self.sent.append((topic, key, value, partition))

    def done(self, topic: str, partition: int, next_offset: int) -> None:
        self.finished.append((topic, partition, next_offset))

    def take(self, topic: str) -> list[tuple[Any, bytes, int | None]]:
        out = [(k, v, p) for t, k, v, p in self.sent if t == topic]
        self.sent = [x for x in self.sent if x[0] != topic]
        return out


class _Msg:
    def __init__(self, value: bytes | None, offset: int = 4, topic: str = "labels",
                 partition: int = 1, key: bytes | None = b"k") -> None:
        self._value, self._offset, self._topic = value, offset, topic
        self._partition, self._key = partition, key

    def topic(self) -> str:
        return self._topic

    def partition(self) -> int:
        return self._partition

    def offset(self) -> int:
        return self._offset

    def key(self) -> bytes | None:
        return self._key

    def value(self) -> bytes | None:
        return self._value

    def timestamp(self) -> tuple[int, int]:
        return (1, 0)


TOPICS = Topics("transactions", "labels", "verdicts", "shadow", "dead", "alerts", "models",
                "app-cards", "app-terminals", "app-labels", "app-cc", "app-tc",
                card_partitions=2, terminal_partitions=2, label_partitions=2)


def _stage(local: bool = True) -> tuple[CardStage, _Out]:
    store: StateStore[CardState] = StateStore("cards", "app-cc", CardState.from_dict, CardState)
    for p in range(TOPICS.card_partitions):
        store.assign(p, {})
    out = _Out()
    stage = CardStage(TOPICS, store, out, WorkerMetrics(), FeatureConfig(label_delay_days=0),
                      3600.0, 1000, False, local=lambda p: local, clock=lambda: T0 + 10 * HOUR,
                      lookback_us=lookback_us(120))
    return stage, out


def _home(card: str) -> int:
    return partition_for(card.encode(), TOPICS.card_partitions)


def _pay(stage: CardStage, tx_id: str, at: datetime, card: str = "c1", offset: int = 0) -> None:
    tx = Transaction(transaction_id=tx_id, card_id=card, terminal_id=f"m-{tx_id}", amount=5.0,
                     event_time=at)
    stage.transaction(_Msg(encode(tx), offset, "transactions", _home(card), card.encode()), 0)
    stage.flush_handoffs()


def _labels(out: _Out) -> list[LabelFeedback]:
    return [decode(LabelFeedback, v) for _, v, _ in out.take("app-labels")]


def _handoffs(out: _Out) -> dict[str, int | None]:
    return {h.transaction_id: h.reported_us for _, v, _ in out.take("app-terminals")
            for h in Handoff.decode_many(v)}


def test_the_labels_topic_takes_a_complete_report_as_its_label() -> None:
    stage, out = _stage()
    report = _report(transaction_id="tx9", terminal_id="m9", transaction_time=T0)
    stage.label(_Msg(encode(report)))
    [(topic, key, value, _)] = out.sent
    assert (topic, key) == ("app-labels", b"m9")
    assert decode(LabelFeedback, value) == labels_for(report)[0]
    assert out.finished == [("labels", 1, 5)]
    assert stage.reported[1] > 0


def test_a_range_report_labels_the_payments_read_before_and_after_it() -> None:
    """Payments read before the report become labels at once; those read after it (a
    backlog) carry their label in the hand-off; the first payment at or after reported_at
    closes the report."""
    stage, out = _stage()
    _pay(stage, "before", T0)
    _pay(stage, "outside", T0 - 2 * HOUR)  # before the range
    report = _report(start=T0 - HOUR, end=T0 + 3 * HOUR, reported_at=T0 + 4 * HOUR)
    stage.label(_Msg(encode(report), offset=7))
    [label] = _labels(out)
    assert (label.transaction_id, label.reported_at, label.source) == (
        "before", T0 + 4 * HOUR, "report")
    assert label.terminal_id == "m-before" and label.transaction_time == T0
    assert ("labels", 1, 8) in out.finished and stage.reported[1] == to_micros(T0 + 4 * HOUR)
    _handoffs(out)
    _pay(stage, "late", T0 + 2 * HOUR)
    _pay(stage, "after-range", T0 + 3 * HOUR + timedelta(minutes=1))
    _pay(stage, "past", T0 + 4 * HOUR)
    _pay(stage, "later", T0 + HOUR)  # the report is closed: out of order is not labelled
    assert _handoffs(out) == {"late": to_micros(T0 + 4 * HOUR), "after-range": None,
                              "past": None, "later": None}
    assert out.take("dead") == [] and _labels(out) == []


def test_an_id_report_resolves_at_once_or_when_its_payment_is_read() -> None:
    stage, out = _stage()
    _pay(stage, "known", T0)
    stage.label(_Msg(encode(_report(transaction_id="known"))))
    assert [x.transaction_id for x in _labels(out)] == ["known"]
    stage.label(_Msg(encode(_report(report_id="r2", transaction_id="unread"))))
    assert _labels(out) == [] and out.take("dead") == []
    _handoffs(out)
    _pay(stage, "unread", T0 + HOUR)
    assert _handoffs(out) == {"unread": to_micros(T0 + 5 * HOUR)}


def test_an_id_report_the_card_never_had_is_dead_lettered_once_the_card_passes_it() -> None:
    stage, out = _stage()
    raw = encode(_report(transaction_id="ghost"))
    stage.label(_Msg(raw, offset=11, key=b"c1"))
    assert out.take("dead") == []  # the card is not read up to reported_at: maybe a backlog
    _pay(stage, "p1", T0 + HOUR)
    assert out.take("dead") == []
    _pay(stage, "p2", T0 + 6 * HOUR)  # past reported_at, no ghost
    [(key, value, _)] = out.take("dead")
    letter = decode(DeadLetter, value)
    assert (letter.reason, letter.source_topic, letter.source_partition, letter.source_offset,
            key) == ("report_unresolved", "labels", 1, 11, b"c1")
    assert base64.b64decode(letter.original_base64) == raw
    assert "'ghost' is not a payment of card 'c1'" in (letter.detail or "")
    # read after the card passed it: at once
    stage.label(_Msg(encode(_report(report_id="r3", transaction_id="ghost"))))
    assert [decode(DeadLetter, v).reason for _, v, _ in out.take("dead")] == [
        "report_unresolved"]


def test_a_report_goes_to_its_cards_partition_through_the_cards_topic() -> None:
    """When another worker owns the card's partition, the report travels on <app>-cards
    like a transaction, and resolves there."""
    away, out = _stage(local=False)
    raw = encode(_report(start=T0 - HOUR, end=T0 + HOUR))
    away.label(_Msg(raw, offset=3))
    [(key, value, partition)] = out.take("app-cards")
    assert (key, partition) == (b"c1", _home("c1")) and out.finished == [("labels", 1, 4)]
    owner, theirs = _stage()
    _pay(owner, "mine", T0)
    owner.rekeyed(_Msg(value, 9, "app-cards", _home("c1")))
    assert [x.transaction_id for x in _labels(theirs)] == ["mine"]
    assert ("app-cards", _home("c1"), 10) in theirs.finished
    owner.rekeyed(_Msg(b"F\x00junk", 10, "app-cards", _home("c1")))
    [(_, letter, _)] = theirs.take("dead")
    assert decode(DeadLetter, letter).reason == "internal_undecodable"


def test_plain_labels_still_pass_through_unchanged() -> None:
    stage, out = _stage()
    label = labels_for(_report(transaction_id="tx9", terminal_id="m9", transaction_time=T0))[0]
    raw = encode(label)
    stage.label(_Msg(raw))
    assert out.sent[0][2] == raw


def test_the_http_intake_sends_a_complete_reports_label_and_forwards_any_other() -> None:
    sent: list[LabelFeedback] = []
    forwarded: list[FraudReport] = []
    body = {"report_id": "r7", "card_id": "c1", "start": T0.isoformat(),
            "end": (T0 + 2 * HOUR).isoformat(), "reported_at": (T0 + 5 * HOUR).isoformat()}
    assert intake(body, sent.append, forwarded.append) == (
        202, {"report_id": "r7", "accepted": True})
    by_id = {"report_id": "r8", "card_id": "c1", "transaction_id": "tx2",
             "reported_at": T0.isoformat()}
    assert intake(by_id, sent.append, forwarded.append)[0] == 202
    assert [x.report_id for x in forwarded] == ["r7", "r8"] and sent == []
    complete = json.loads(encode(_report(transaction_id="tx9", terminal_id="m9",
                                         transaction_time=T0)))
    status, answer = intake(complete, sent.append, forwarded.append)
    assert (status, answer["transaction_ids"]) == (202, ["tx9"]) and len(sent) == 1


def test_the_http_intake_refuses_bad_reports_in_one_line_and_sends_nothing() -> None:
    sent: list[Any] = []
    for body in ({"report_id": "r"}, [1, 2], {"report_id": "r", "card_id": "c",
                                              "start": T0.isoformat(), "end": T0.isoformat(),
                                              "reported_at": T0.isoformat()}):
        status, answer = intake(body, sent.append, sent.append)
        assert status == 422 and "\n" not in answer["error"]
    assert sent == []


def test_without_a_forward_only_complete_reports_are_accepted() -> None:
    sent: list[LabelFeedback] = []
    complete = encode(_report(transaction_id="tx9", terminal_id="m9", transaction_time=T0))
    assert intake(json.loads(complete), sent.append)[0] == 202 and len(sent) == 1
    status, answer = intake(json.loads(encode(_report(start=T0, end=T0 + HOUR))), sent.append)
    assert status == 422 and "cannot forward" in answer["error"] and len(sent) == 1
