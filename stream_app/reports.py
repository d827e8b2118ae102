"""Fraud-report intake, the pure part: a report (``schemas.FraudReport``) becomes labels.

``POST /reports`` and the labels topic take the same contract. A *complete* report (id,
terminal and time) becomes one ``LabelFeedback`` at once, without any lookup. A report by
transaction id alone, or of a card's time range, needs the card's payments, which only the
card's stage holds (possibly on another worker): ``POST /reports`` therefore produces it
to the labels topic keyed by card and answers 202 ``{"report_id", "accepted": true}``; the
card stage resolves it in the stream (``stream_app.card_stage``, ``features.reports``), and
dead-letters it ``report_unresolved`` when it names a payment the card never had. Every
label is a fraud with ``source="report"`` known at the report's ``reported_at``; a payment at
or after ``reported_at`` is not labelled (a report is not about the future, and the features
ignore a label known no later than its payment anyway).

:func:`labels_for` resolves a report against payments given as :class:`KnownPayment` (the
definition is ``features.reports.ReportRecord.names``); :func:`intake` is the HTTP route's
logic (``stream_app.http_api`` owns the route); :func:`parse_report` validates raw bytes.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from features.clock import to_micros
from features.reports import LOOKBACK_DAYS, ReportRecord, lookback_us
from schemas import FraudReport, LabelFeedback, SchemaValidationError, decode, validate
from stream_app.errors import WorkerError

MAX_BODY_BYTES = 64 * 1024


class ReportError(WorkerError):
    """A fraud report that cannot be accepted; the message is one line for the caller."""


@dataclass(frozen=True)
class KnownPayment:
    """A payment the worker has seen, as far as a report needs it."""

    transaction_id: str
    card_id: str
    terminal_id: str
    event_time: datetime


def parse_report(body: bytes | str | None) -> FraudReport:
    """Validate a request body (JSON ``FraudReport``); :class:`ReportError` says what is wrong."""
    if body is not None and len(body) > MAX_BODY_BYTES:
        raise ReportError(f"report body over {MAX_BODY_BYTES} bytes")
    if isinstance(body, bytes | str) and body:
        try:
            json.loads(body)
        except ValueError as exc:
            raise ReportError(f"report body is not JSON: {exc}") from None
    try:
        return decode(FraudReport, body)
    except SchemaValidationError as exc:
        raise ReportError(" ".join(str(exc).split())) from None


def labels_for(report: FraudReport, known: Iterable[KnownPayment] = (),
               lookback_days: float = LOOKBACK_DAYS) -> list[LabelFeedback]:
    """The fraud labels a report stands for (raise :class:`ReportError` when it names nothing
    the worker knows). ``known`` needs only the reported card's payments."""
    if report.complete:
        assert report.terminal_id is not None and report.transaction_time is not None  # noqa: S101
        hits = [KnownPayment(str(report.transaction_id), report.card_id, report.terminal_id,
                             report.transaction_time)]
        return _labels(report, [p for p in hits if p.event_time < report.reported_at])
    record, lookback = ReportRecord.from_event(report), lookback_us(lookback_days)
    if report.transaction_id is not None:
        same = [p for p in known if p.transaction_id == report.transaction_id]
        if not same:
            raise ReportError(f"transaction {report.transaction_id!r} is not known here: "
                              "give its terminal_id and transaction_time")
        if same[0].card_id != report.card_id:
            raise ReportError(f"transaction {report.transaction_id!r} is not a payment of card "
                              f"{report.card_id!r}")
        known = same[:1]
    hits = sorted((p for p in known if p.card_id == report.card_id
                   and record.names(p.transaction_id, to_micros(p.event_time), lookback)),
                  key=lambda p: (p.event_time, p.transaction_id))
    return _labels(report, hits)


def _labels(report: FraudReport, payments: list[KnownPayment]) -> list[LabelFeedback]:
    return [LabelFeedback(transaction_id=p.transaction_id, card_id=p.card_id,
                          terminal_id=p.terminal_id, is_fraud=True,
                          transaction_time=p.event_time, reported_at=report.reported_at,
                          source="report") for p in payments]


def intake(payload: Any, send: Callable[[LabelFeedback], None],
           forward: Callable[[FraudReport], None] | None = None) -> tuple[int, Any]:
    """``POST /reports``: validate the parsed body; a complete report's label is sent at once
    (202 ``{"report_id", "labels", "transaction_ids"}``), any other report is forwarded to
    the labels topic for the stream to resolve (202 ``{"report_id", "accepted": true}``).

    422 ``{"error": one line}`` when the body is invalid. Without ``forward`` only complete
    reports are accepted.
    """
    try:
        try:
            report = validate(FraudReport, payload if isinstance(payload, dict) else {})
        except SchemaValidationError as exc:
            raise ReportError(" ".join(str(exc).split())) from None
        if not isinstance(payload, dict):
            raise ReportError("report body must be a JSON object")
        if not report.complete and forward is None:
            raise ReportError("this worker cannot forward reports: report a transaction_id "
                              "with its terminal_id and transaction_time")
    except ReportError as exc:
        return 422, {"error": str(exc)}
    if not report.complete:
        assert forward is not None  # noqa: S101 - checked above
        forward(report)
        return 202, {"report_id": report.report_id, "accepted": True}
    labels = labels_for(report)
    for label in labels:
        send(label)
    return 202, {"report_id": report.report_id, "labels": len(labels),
                 "transaction_ids": [x.transaction_id for x in labels]}
