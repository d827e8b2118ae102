"""Fraud reports: the contract, the pure intake (report -> labels) and the card stage's
acceptance of complete reports on the labels topic."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from schemas import FraudReport, LabelFeedback, SchemaValidationError, decode, encode
from stream_app.card_stage import CardStage
from stream_app.metrics import WorkerMetrics
from stream_app.reports import KnownPayment, ReportError, intake, labels_for, parse_report
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


class _Msg:
    def __init__(self, value: bytes, offset: int = 4) -> None:
        self._value, self._offset = value, offset

    def topic(self) -> str:
        return "labels"

    def partition(self) -> int:
        return 1

    def offset(self) -> int:
        return self._offset

    def key(self) -> bytes:
        return b"k"

    def value(self) -> bytes:
        return self._value

    def timestamp(self) -> tuple[int, int]:
        return (1, 0)


def _stage() -> tuple[CardStage, _Out]:
    names = ("transactions", "labels", "verdicts", "shadow", "dead", "alerts", "models",
             "app-cards", "app-terminals", "app-labels", "app-cc", "app-tc")
    topics = Topics(*names, card_partitions=2, terminal_partitions=2, label_partitions=2)
    out = _Out()
    stage = CardStage(topics, None, out, WorkerMetrics(), None, 3600.0, 1000,  # type: ignore[arg-type]
                      False, clock=lambda: T0 + 10 * HOUR)
    return stage, out


def test_the_labels_topic_takes_a_complete_report_as_its_label() -> None:
    stage, out = _stage()
    report = _report(transaction_id="tx9", terminal_id="m9", transaction_time=T0)
    stage.label(_Msg(encode(report)))
    [(topic, key, value, _)] = out.sent
    assert (topic, key) == ("app-labels", b"m9")
    assert decode(LabelFeedback, value) == labels_for(report)[0]
    assert out.finished == [("labels", 1, 5)]
    assert stage.reported[1] > 0


def test_an_unresolved_report_on_the_labels_topic_is_dead_lettered_with_its_reason() -> None:
    stage, out = _stage()
    stage.label(_Msg(encode(_report(start=T0, end=T0 + HOUR))))
    [(topic, _, value, _)] = out.sent
    assert topic == "dead" and b"report_unresolved" in value
    assert out.finished == [("labels", 1, 5)]


def test_plain_labels_still_pass_through_unchanged() -> None:
    stage, out = _stage()
    label = labels_for(_report(transaction_id="tx9", terminal_id="m9", transaction_time=T0))[0]
    raw = encode(label)
    stage.label(_Msg(raw))
    assert out.sent[0][2] == raw


def test_the_http_intake_sends_each_label_and_answers_with_the_ids() -> None:
    sent: list[LabelFeedback] = []
    body = {"report_id": "r7", "card_id": "c1", "start": T0.isoformat(),
            "end": (T0 + 2 * HOUR).isoformat(), "reported_at": (T0 + 5 * HOUR).isoformat()}
    lookups: list[str] = []

    def known(card: str) -> list[KnownPayment]:
        lookups.append(card)
        return KNOWN

    status, answer = intake(body, sent.append, known)
    assert (status, answer) == (202, {"report_id": "r7", "labels": 2,
                                      "transaction_ids": ["tx1", "tx2"]})
    assert [x.transaction_id for x in sent] == ["tx1", "tx2"] and lookups == ["c1"]


def test_the_http_intake_refuses_bad_or_unknown_reports_in_one_line_and_sends_nothing() -> None:
    sent: list[LabelFeedback] = []
    unknown = {"report_id": "r", "card_id": "c1", "transaction_id": "tx7",
               "reported_at": T0.isoformat()}
    for body in ({"report_id": "r"}, [1, 2], unknown):
        status, answer = intake(body, sent.append, lambda card: KNOWN)
        assert status == 422 and "\n" not in answer["error"]
    assert sent == []


def test_without_a_lookup_only_complete_reports_are_accepted() -> None:
    sent: list[LabelFeedback] = []
    complete = encode(_report(transaction_id="tx9", terminal_id="m9", transaction_time=T0))
    assert intake(json.loads(complete), sent.append)[0] == 202 and len(sent) == 1
    status, answer = intake(json.loads(encode(_report(start=T0, end=T0 + HOUR))), sent.append)
    assert status == 422 and "cannot look up" in answer["error"] and len(sent) == 1
