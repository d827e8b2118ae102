"""Event-time alignment of labels with transactions at the terminal stage.

A terminal feature at event time ``t`` counts a fraud label only if the label was known at ``t``
(``reported_at <= t``, :mod:`features.spec`). Labels may therefore be applied as early as they
arrive; what must never happen is scoring a transaction at ``t`` before a label with
``reported_at <= t`` has been applied. Labels and transactions travel on different topics at
different lags (a backlog, a slow chargeback feed), so the terminal stage holds each hand-off
message until the *label frontier* of its partition has passed it.

The card stage, which reads the external labels topic, writes a frontier marker into every
internal labels partition at each checkpoint, after the labels it forwarded in that same
transaction. For each external labels partition ``q`` it owns, the marker says:

- ``reported``: the newest ``reported_at`` forwarded from ``q`` (labels of a partition are
  expected in ``reported_at`` order, as a chargeback feed sends them);
- ``caught_up_ms``: the wall time just before a fresh look at ``q``'s end found nothing left to
  forward, or None.

A hand-off message whose newest event time is ``t`` and whose transactions were first read at
wall time ``r`` may be scored when, for every external labels partition ``q``, the latest marker
says ``reported >= t`` (every label due by ``t`` is already applied) or ``caught_up_ms >= r +
grace_ms`` (every label that reached the broker up to ``grace_ms`` after the transactions was
forwarded: a producer's batches for two partitions can land in either order, so a label sent
just before a payment may arrive just after it; the grace is Kafka Streams' max.task.idle.ms).

Transactions need the same care: terminal windows end ``D`` (the label delay) before ``t``, so
every transaction older than ``t - D`` must reach the terminal stage before the one at ``t`` is
scored, whichever card partition (and worker) it came through. The marker therefore also holds,
per external transactions partition ``p``, the newest event time read from it and its own
``caught_up_ms``; a message passes when each ``p`` has been read past ``t - D`` or was caught up
after ``r``. Both rules assume each partition is roughly in event-time order, as producers send.
Nothing here reads a clock.

A transaction whose card lives on a card partition owned by another worker takes one more hop:
re-keyed through ``<app>-cards`` before its hand-off, and so does a fraud report that must be
resolved in its card's state before it becomes labels. So each owner of external partitions
also writes its marks into every ``<app>-cards`` partition, after what it re-keyed there; the
owner of ``<app>-cards`` partition ``c`` relays the latest marks it read on ``c`` (``via`` for
transactions, ``via_labels`` for labels) in its own markers, after the hand-offs and labels
of what preceded them. A message passes only when every rule holds both directly and through
every ``c``: a backlog re-keyed to a slower worker holds it back.

>>> f = Frontier(label_partitions=2, transaction_partitions=1, delay_us=100, grace_ms=0)
>>> f.update({0: (500, None), 1: (100, 900)}, {0: (350, None)}, {0: {0: (350, None)}},
...          {0: {0: (500, None), 1: (100, 900)}})
>>> f.passes(max_event_us=400, read_ms=800)
True
>>> f.passes(max_event_us=400, read_ms=1000)  # labels partition 1 is behind
False
>>> f.passes(max_event_us=460, read_ms=800)  # transactions before 360 may be missing
False
>>> g = Frontier(label_partitions=1, transaction_partitions=2, delay_us=100)
>>> g.update({0: (900, None)}, {0: (800, None), 1: (800, None)}, None,
...          {0: {0: (900, None)}, 1: {0: (900, None)}})
>>> g.passes(max_event_us=400, read_ms=0)  # nothing relayed through <app>-cards yet
False
>>> g.update({}, {}, {0: {0: (800, None), 1: (800, None)}, 1: {0: (350, None), 1: (800, None)}})
>>> g.passes(max_event_us=400, read_ms=0)  # every payment before 300 reached the stage
True
>>> g.passes(max_event_us=500, read_ms=0)  # but not those before 400: card partition 1 lags
False
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

MARKER = b"W"  # first byte of a frontier marker on the internal labels topic


Marks = dict[int, tuple[int, int | None]]
Via = dict[int, Marks]  # <app>-cards partition -> the transaction marks relayed through it


@dataclass
class Frontier:
    """The frontier of one terminal-stage partition, from the markers read on it."""

    label_partitions: int
    transaction_partitions: int
    delay_us: int
    grace_ms: int = 0
    labels: Marks = field(default_factory=dict)
    transactions: Marks = field(default_factory=dict)
    via: Via = field(default_factory=dict)
    via_labels: Via = field(default_factory=dict)  # label marks relayed (reports via -cards)
    # the latest mark said: caught up; per (card partition relayed through, or -1: direct, p)
    idle: dict[tuple[int, int], bool] = field(default_factory=dict)

    def update(self, labels: Marks, transactions: Marks, via: Via | None = None,
               via_labels: Via | None = None) -> None:
        """Take a marker's marks. What a mark states stays true, so each part only moves
        forward (a later "not caught up" does not undo an earlier "caught up at w")."""
        merge_marks(self.labels, labels)
        merge_marks(self.transactions, transactions)
        self.idle.update({(-1, p): c is not None for p, (_, c) in transactions.items()})
        for card, marks in (via_labels or {}).items():
            merge_marks(self.via_labels.setdefault(card, {}), marks)
        for card, marks in (via or {}).items():
            merge_marks(self.via.setdefault(card, {}), marks)
            self.idle.update({(card, p): c is not None for p, (_, c) in marks.items()})

    def passes(self, max_event_us: int, read_ms: int) -> bool:
        after, older = read_ms + self.grace_ms, max_event_us - self.delay_us
        n, q = self.transaction_partitions, self.label_partitions
        return (_passed(self.labels, q, max_event_us, after)
                and all(_passed(self.via_labels.get(c, {}), q, max_event_us, after)
                        for c in range(n))
                and _passed(self.transactions, n, older, after)
                and all(_passed(self.via.get(c, {}), n, older, after) for c in range(n)))


    def safe_us(self) -> int | None:
        """The oldest event time a transaction not yet read may have: the slowest transactions
        partition's newest read time (one whose latest mark says it is caught up does not hold
        it back: what arrives later is new); None while a partition has no mark yet."""
        oldest = 2**62
        n = self.transaction_partitions
        paths = [(-1, self.transactions), *((c, self.via.get(c, {})) for c in range(n))]
        for path, marks in paths:
            for p in range(n):
                mark = marks.get(p)
                if mark is None:
                    return None
                if not self.idle.get((path, p), False):
                    oldest = min(oldest, mark[0])
        return oldest


def merge_marks(into: Marks, marks: Marks) -> None:
    for q, (time_us, caught_up) in marks.items():
        old_time, old_caught_up = into.get(q, (time_us, caught_up))
        known = [c for c in (caught_up, old_caught_up) if c is not None]
        into[q] = (max(time_us, old_time), max(known) if known else None)


def _passed(marks: Marks, partitions: int, time_us: int, read_ms: int) -> bool:
    for q in range(partitions):
        mark = marks.get(q)
        if mark is None:
            return False
        seen, caught_up = mark
        if seen < time_us and (caught_up is None or caught_up < read_ms):
            return False
    return True


def encode_marker(labels: Marks, transactions: Marks, via: Via | None = None,
                  via_labels: Via | None = None) -> bytes:
    data: dict[str, object] = {"l": _plain(labels), "t": _plain(transactions)}
    if via:
        data["v"] = {str(c): _plain(marks) for c, marks in via.items()}
    if via_labels:
        data["w"] = {str(c): _plain(marks) for c, marks in via_labels.items()}
    return MARKER + json.dumps(data).encode()


def _plain(marks: Marks) -> dict[str, list[int | None]]:
    return {str(q): [r, c] for q, (r, c) in marks.items()}


def decode_marker(value: bytes) -> tuple[Marks, Marks, Via, Via]:
    """(label marks, transaction marks, relayed transaction marks, relayed label marks) of a
    marker; ValueError on anything malformed (a hostile internal record)."""
    data = json.loads(value[1:])
    if not isinstance(data, dict):
        raise ValueError("frontier marker is not an object")
    return (_marks(data.get("l", {})), _marks(data.get("t", {})), _via(data.get("v", {})),
            _via(data.get("w", {})))


def _via(data: object) -> Via:
    if not isinstance(data, dict):
        raise ValueError("relayed frontier marks are not an object")
    return {int(c): _marks(marks) for c, marks in data.items()}


def _marks(data: object) -> Marks:
    if not isinstance(data, dict):
        raise ValueError("frontier marks are not an object")
    out: Marks = {}
    for q, pair in data.items():
        time_us, caught_up = pair
        if not isinstance(time_us, int) or not (caught_up is None or isinstance(caught_up, int)):
            raise ValueError("frontier marker holds non-integer times")
        out[int(q)] = (time_us, caught_up)
    return out
