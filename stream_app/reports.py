"""Fraud-report intake, the pure part: a report (``schemas.FraudReport``) becomes labels.

``POST /reports`` and the labels topic take the same contract. A report of one payment that
names its terminal and time becomes one ``LabelFeedback`` at once; a report by transaction id
alone, or of a card's time range, is resolved against the payments the worker knows
(:class:`KnownPayment`: id, card, terminal, time). Every label is a fraud with
``source="report"`` known at the report's ``reported_at``; a payment at or after
``reported_at`` is not labelled (a report cannot be about the future, and the features ignore
a label known no later than its payment anyway).

The HTTP route (owned by ``stream_app.http_api``) calls :func:`intake` with the parsed JSON
body, a ``send`` that produces one label to the labels topic keyed by terminal, and a
``known`` lookup of a card's recent payments; it answers 202 with the labelled ids, or 422
with the one-line reason (:func:`parse_report` does the same from raw bytes).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

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


def labels_for(report: FraudReport, known: Iterable[KnownPayment] = ()) -> list[LabelFeedback]:
    """The fraud labels a report stands for (raise :class:`ReportError` when it names nothing
    the worker knows). ``known`` needs only the reported card's payments."""
    if report.complete:
        assert report.terminal_id is not None and report.transaction_time is not None  # noqa: S101
        hits = [KnownPayment(str(report.transaction_id), report.card_id, report.terminal_id,
                             report.transaction_time)]
    elif report.transaction_id is not None:
        hits = [p for p in known if p.transaction_id == report.transaction_id]
        if not hits:
            raise ReportError(f"transaction {report.transaction_id!r} is not known here: "
                              "give its terminal_id and transaction_time")
        if hits[0].card_id != report.card_id:
            raise ReportError(f"transaction {report.transaction_id!r} is not a payment of card "
                              f"{report.card_id!r}")
        hits = hits[:1]
    else:
        assert report.start is not None and report.end is not None  # noqa: S101
        start, end = report.start, report.end
        hits = sorted((p for p in known
                       if p.card_id == report.card_id and start <= p.event_time < end),
                      key=lambda p: (p.event_time, p.transaction_id))
    return [
        LabelFeedback(transaction_id=p.transaction_id, card_id=p.card_id,
                      terminal_id=p.terminal_id, is_fraud=True, transaction_time=p.event_time,
                      reported_at=report.reported_at, source="report")
        for p in hits if p.event_time < report.reported_at
    ]


def intake(payload: Any, send: Callable[[LabelFeedback], None],
           known: Callable[[str], Iterable[KnownPayment]] | None = None) -> tuple[int, Any]:
    """``POST /reports``: validate the parsed body, turn the report into labels, send each.

    Returns (status, JSON body): 202 ``{"report_id", "labels", "transaction_ids"}``, or 422
    ``{"error": one line}`` when the body is invalid or names nothing known. Without a
    ``known`` lookup only complete reports (id, terminal and time) are accepted.
    """
    try:
        try:
            report = validate(FraudReport, payload if isinstance(payload, dict) else {})
        except SchemaValidationError as exc:
            raise ReportError(" ".join(str(exc).split())) from None
        if not isinstance(payload, dict):
            raise ReportError("report body must be a JSON object")
        if not report.complete and known is None:
            raise ReportError("this worker cannot look up a card's payments: report a "
                              "transaction_id with its terminal_id and transaction_time")
        lookup = () if report.complete or known is None else known(report.card_id)
        labels = labels_for(report, lookup)
    except ReportError as exc:
        return 422, {"error": str(exc)}
    for label in labels:
        send(label)
    return 202, {"report_id": report.report_id, "labels": len(labels),
                 "transaction_ids": [x.transaction_id for x in labels]}
