"""Fraud reports resolved to the payments they name: one definition, online and offline.

A fraud report (``schemas.FraudReport``) of card ``c`` made at ``r`` (its ``reported_at``)
names payments of ``c``: one by transaction id, or every payment in ``[start, end)``. It
labels as a fraud, known at ``r``, each payment ``p`` of ``c`` it names with

    r - lookback < p.time < r

(a report is not about the future, and a label known no later than its payment never counts:
``features.spec``); ``lookback`` is the ``reports.lookback_days`` setting. A report by id
whose payment is not such a payment of ``c`` is *unresolved*. A *complete* report (id,
terminal and time given) is its own label without any lookup.

Two forms, proven equal on seeded streams in shuffled orders
(``tests/unit/test_report_resolution.py``):

- offline, :func:`resolve_reports`: the labels (and the unresolved reports) of a history of
  transactions and reports, for the offline features, training and the simulator;
- online, :class:`CardPayments`: one card's payments of the last ``lookback`` and its *open*
  reports, kept in the card stage's changelogged state. A report is resolved against the
  payments already read; while the card has not been read up to ``r`` the report stays open
  and labels each later-read payment of the card that it names (a backlog, another producer's
  timing). The first payment at or after ``r`` closes it: the engine reads a card's payments
  in event-time order (its card features assume the same), so nothing the report names can
  come after. A by-id report closed without its payment is unresolved.

Payments are kept while newer than the card's newest payment minus ``lookback``. So the forms
agree as long as, when a report is read, its card's newest payment is less than ``lookback``
after the oldest payment the report names (with 120 days: any report read within months).

>>> day = 86_400_000_000
>>> card = CardPayments()
>>> card.payment("tx1", "m1", 1 * day, 120 * day)
(None, [])
>>> late = ReportRecord("r1", "c1", 3 * day, start_us=0, end_us=10 * day)
>>> card.report(late, b"", 120 * day)  # tx1 is known; the card is not read up to day 3
([('tx1', 'm1', 86400000000)], [])
>>> card.payment("tx2", "m2", 2 * day, 120 * day)  # read after the report: labelled at once
(259200000000, [])
>>> card.payment("tx3", "m1", 4 * day, 120 * day)  # past the report: it is closed
(None, [])
>>> len(card.open)
0
"""

from __future__ import annotations

import sys
from array import array
from bisect import bisect_left, bisect_right
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from features import packed
from features.clock import series_to_micros, to_micros
from features.spec import DAY_US

if TYPE_CHECKING:
    from schemas.events import FraudReport

LOOKBACK_DAYS = 120.0
"""The default of ``reports.lookback_days``."""
MAX_OPEN = 64
"""Open reports kept per card; beyond that the one made earliest is closed."""
LABEL_COLUMNS = ("transaction_id", "card_id", "terminal_id", "is_fraud", "transaction_time",
                 "label_time", "label_source")
REPORT_COLUMNS = ("report_id", "card_id", "reported_at", "transaction_id", "terminal_id",
                  "transaction_time", "start", "end")


def lookback_us(days: float) -> int:
    """The lookback in microseconds."""
    return round(days * DAY_US)


@dataclass(frozen=True, slots=True)
class ReportRecord:
    """What resolution needs of a report that is not complete: by id, or a ``[start, end)``
    range (times in microseconds since the epoch)."""

    report_id: str
    card_id: str
    reported_us: int
    transaction_id: str | None = None
    start_us: int = 0
    end_us: int = 0

    @classmethod
    def from_event(cls, event: FraudReport) -> ReportRecord:
        if event.transaction_id is not None:
            return cls(event.report_id, event.card_id, to_micros(event.reported_at),
                       event.transaction_id)
        assert event.start is not None and event.end is not None  # noqa: S101 - the contract
        return cls(event.report_id, event.card_id, to_micros(event.reported_at), None,
                   to_micros(event.start), to_micros(event.end))

    @property
    def by_id(self) -> bool:
        return self.transaction_id is not None

    def names(self, transaction_id: str, time_us: int, lookback: int) -> bool:
        """Whether this report labels the card's payment ``transaction_id`` at ``time_us``."""
        r = self.reported_us
        if not r - lookback < time_us < r:
            return False
        if self.transaction_id is not None:
            return transaction_id == self.transaction_id
        return self.start_us <= time_us < self.end_us

    def fields(self) -> list[Any]:
        return [self.report_id, self.card_id, self.reported_us, self.transaction_id,
                self.start_us, self.end_us]


@dataclass(slots=True)
class OpenReport:
    """A report waiting for payments of its card that are not read yet. ``note`` is the
    caller's (the card stage keeps what a dead letter needs); ``matched``: its id was found."""

    record: ReportRecord
    note: bytes
    matched: bool = False


Payment = tuple[str, str, int]  # (transaction id, terminal id, time in microseconds)


class CardPayments:
    """One card's payments of the last ``lookback`` (sorted by time) and its open reports."""

    __slots__ = ("ids", "open", "terminals", "times", "watermark")

    def __init__(self) -> None:
        self.times = array("q")
        self.ids: list[str] = []
        self.terminals: list[str] = []
        self.open: list[OpenReport] = []
        self.watermark: int | None = None  # the newest payment's time

    def __len__(self) -> int:
        return len(self.times)

    def payment(self, transaction_id: str, terminal_id: str, time_us: int, lookback: int,
                ) -> tuple[int | None, list[OpenReport]]:
        """Remember a payment (idempotent). Returns when it is reported (the earliest
        ``reported_at`` of the open reports naming it, or None) and the by-id reports this
        payment closes unresolved (it is at or after their ``reported_at``)."""
        if not self._holds(transaction_id, time_us):
            pos = bisect_right(self.times, time_us)
            self.times.insert(pos, time_us)
            self.ids.insert(pos, transaction_id)
            self.terminals.insert(pos, sys.intern(terminal_id))
        reported: int | None = None
        for report in self.open:
            if report.record.names(transaction_id, time_us, lookback):
                report.matched = True
                r = report.record.reported_us
                reported = r if reported is None else min(reported, r)
        if self.watermark is None or time_us > self.watermark:
            self.watermark = time_us
        closed = self._close(self.watermark)
        self._evict(self.watermark - lookback)
        return reported, closed

    def report(self, record: ReportRecord, note: bytes, lookback: int,
               ) -> tuple[list[Payment], list[OpenReport]]:
        """Resolve a report against the payments read so far: the payments it names, and the
        reports closed unresolved now (this one, when the card was read past its
        ``reported_at`` without its payment; the earliest open one beyond :data:`MAX_OPEN`).
        It stays open while the card has not been read up to its ``reported_at``."""
        r = record.reported_us
        lo = bisect_right(self.times, r - lookback)
        if not record.by_id:
            lo = max(lo, bisect_left(self.times, record.start_us))
        hi = bisect_left(self.times, min(r, record.end_us) if not record.by_id else r)
        hits = [(self.ids[i], self.terminals[i], self.times[i]) for i in range(lo, hi)
                if record.transaction_id is None or self.ids[i] == record.transaction_id]
        entry = OpenReport(record, note, bool(hits))
        if self.watermark is not None and self.watermark >= r:
            return hits, [entry] if record.by_id and not hits else []
        if all(x.record.report_id != record.report_id for x in self.open):
            self.open.append(entry)
        closed: list[OpenReport] = []
        if len(self.open) > MAX_OPEN:
            first = min(self.open, key=lambda x: x.record.reported_us)
            self.open.remove(first)
            if first.record.by_id and not first.matched:
                closed.append(first)
        return hits, closed

    def _close(self, watermark: int) -> list[OpenReport]:
        if not self.open or min(x.record.reported_us for x in self.open) > watermark:
            return []
        keep, closed = [], []
        for report in self.open:
            if report.record.reported_us > watermark:
                keep.append(report)
            elif report.record.by_id and not report.matched:
                closed.append(report)
        self.open = keep
        return closed

    def _holds(self, transaction_id: str, time_us: int) -> bool:
        i = bisect_left(self.times, time_us)
        while i < len(self.times) and self.times[i] == time_us:
            if self.ids[i] == transaction_id:
                return True
            i += 1
        return False

    def _evict(self, horizon: int) -> None:
        if self.times and self.times[0] <= horizon:
            k = bisect_right(self.times, horizon)
            del self.times[:k], self.ids[:k], self.terminals[:k]

    # -- changelog form ------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """A JSON-able form (notes as hex)."""
        return self._columns(packed.plain_ints, packed.plain_strings, bytes.hex)

    def pack(self) -> dict[str, Any]:
        """:meth:`to_dict` with packed columns (the changelog form, ``features.packed``)."""
        return self._columns(packed.pack_ints, packed.pack_strings, bytes)

    def _columns(self, ints: Callable[[Any], Any], strings: Callable[[Any], Any],
                 note: Callable[[bytes], Any]) -> dict[str, Any]:
        out: dict[str, Any] = {"t": ints(self.times), "i": strings(self.ids),
                               "k": strings(self.terminals), "w": self.watermark}
        if self.open:
            out["o"] = [[*x.record.fields(), x.matched, note(x.note)] for x in self.open]
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CardPayments:
        state = cls()
        state.times = packed.unpack_ints(data["t"])
        state.ids = packed.unpack_strings(data["i"])
        state.terminals = [sys.intern(k) for k in packed.unpack_strings(data["k"])]
        state.watermark = data.get("w")
        state.open = [OpenReport(ReportRecord(*fields[:6]), _note(fields[7]), bool(fields[6]))
                      for fields in data.get("o", [])]
        return state


def _note(stored: bytes | str) -> bytes:
    return bytes.fromhex(stored) if isinstance(stored, str) else bytes(stored)


# -- offline --------------------------------------------------------------------------------------
def report_frame(reports: Any) -> pd.DataFrame:
    """Reports (``FraudReport`` events, or anything with their fields) as the frame
    :func:`resolve_reports` reads."""
    rows = [{c: getattr(x, c) for c in REPORT_COLUMNS} for x in reports]
    frame = pd.DataFrame(rows, columns=list(REPORT_COLUMNS))
    for column in ("reported_at", "transaction_time", "start", "end"):
        frame[column] = pd.to_datetime(frame[column], utc=True)
    return frame


def resolve_reports(transactions: pd.DataFrame, reports: pd.DataFrame,
                    lookback_days: float = LOOKBACK_DAYS) -> tuple[pd.DataFrame, list[str]]:
    """The fraud labels a history of reports stands for, and the ids of the unresolved ones.

    ``transactions``: transaction_id, card_id, terminal_id, event_time. ``reports``: the
    columns of :func:`report_frame` (missing optional ones are empty). The labels have the
    columns :data:`LABEL_COLUMNS` (``is_fraud`` True, ``label_time`` = ``reported_at``,
    ``label_source`` = ``report``), one per (report, payment): a payment named by several
    reports counts from the earliest (``features.offline``).
    """
    reports = reports.copy()
    for column in REPORT_COLUMNS:
        if column not in reports:
            reports[column] = None
    lookback = lookback_us(lookback_days)
    tx = pd.DataFrame({"transaction_id": transactions["transaction_id"].to_numpy(),
                       "card_id": transactions["card_id"].to_numpy(),
                       "terminal_id": transactions["terminal_id"].to_numpy(),
                       "transaction_time": pd.to_datetime(transactions["event_time"], utc=True),
                       "t": series_to_micros(transactions["event_time"])})
    complete = reports["terminal_id"].notna() & reports["transaction_id"].notna()
    by_id = reports["transaction_id"].notna() & ~complete
    parts = []

    own = reports[complete]
    if len(own):
        own_t = series_to_micros(own["transaction_time"])
        parts.append(own.loc[own_t < series_to_micros(own["reported_at"]),
                             ["transaction_id", "card_id", "terminal_id", "transaction_time",
                              "reported_at"]])
    ids = reports[by_id][["report_id", "card_id", "transaction_id", "reported_at"]].merge(
        tx, on=["card_id", "transaction_id"])
    ids = ids[_eligible(ids, lookback)]
    parts.append(ids)
    ranges = reports[reports["transaction_id"].isna()][
        ["report_id", "card_id", "reported_at", "start", "end"]].merge(tx, on="card_id")
    if len(ranges):
        in_range = ((ranges["t"] >= series_to_micros(ranges["start"]))
                    & (ranges["t"] < series_to_micros(ranges["end"])))
        ranges = ranges[in_range.to_numpy() & _eligible(ranges, lookback)]
    parts.append(ranges)

    columns = ["transaction_id", "card_id", "terminal_id", "transaction_time", "reported_at"]
    labels = pd.concat([p[columns] for p in parts if len(p)] or [pd.DataFrame(columns=columns)],
                       ignore_index=True)
    labels = labels.rename(columns={"reported_at": "label_time"})
    labels["is_fraud"] = True
    labels["label_source"] = "report"
    labels = labels[list(LABEL_COLUMNS)].sort_values(["label_time", "transaction_id"],
                                                     kind="stable", ignore_index=True)
    unresolved = sorted(set(reports.loc[by_id, "report_id"]) - set(ids["report_id"]))
    return labels, unresolved


def _eligible(frame: pd.DataFrame, lookback: int) -> np.ndarray:
    if not len(frame):
        return np.zeros(0, dtype=bool)
    r = series_to_micros(frame["reported_at"])
    t = frame["t"].to_numpy()
    return (t > r - lookback) & (t < r)  # type: ignore[no-any-return]
