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
says ``reported >= t`` (every label due by ``t`` is already applied) or ``caught_up_ms >= r``
(every label produced before the transactions was forwarded). Nothing here reads a clock.

>>> f = Frontier(partitions=2)
>>> f.update({0: (500, None), 1: (100, 900)})
>>> f.passes(max_event_us=400, read_ms=800)
True
>>> f.passes(max_event_us=400, read_ms=1000)  # partition 1 is behind and not caught up since
False
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

MARKER = b"W"  # first byte of a frontier marker on the internal labels topic


@dataclass
class Frontier:
    """The label frontier of one internal labels partition, from the markers read on it."""

    partitions: int
    sources: dict[int, tuple[int, int | None]] = field(default_factory=dict)

    def update(self, marks: dict[int, tuple[int, int | None]]) -> None:
        """Take a marker's marks. What a mark states stays true, so each part only moves
        forward (a later "not caught up" does not undo an earlier "caught up at w")."""
        for q, (reported, caught_up) in marks.items():
            old_reported, old_caught_up = self.sources.get(q, (reported, caught_up))
            known = [c for c in (caught_up, old_caught_up) if c is not None]
            self.sources[q] = (max(reported, old_reported), max(known) if known else None)

    def passes(self, max_event_us: int, read_ms: int) -> bool:
        for q in range(self.partitions):
            mark = self.sources.get(q)
            if mark is None:
                return False
            reported, caught_up = mark
            if reported < max_event_us and (caught_up is None or caught_up < read_ms):
                return False
        return True


def encode_marker(marks: dict[int, tuple[int, int | None]]) -> bytes:
    return MARKER + json.dumps({str(q): [r, c] for q, (r, c) in marks.items()}).encode()


def decode_marker(value: bytes) -> dict[int, tuple[int, int | None]]:
    """The marks of a marker; ValueError on anything malformed (a hostile internal record)."""
    data = json.loads(value[1:])
    if not isinstance(data, dict):
        raise ValueError("frontier marker is not an object")
    out: dict[int, tuple[int, int | None]] = {}
    for q, pair in data.items():
        reported, caught_up = pair
        if not isinstance(reported, int) or not (caught_up is None or isinstance(caught_up, int)):
            raise ValueError("frontier marker holds non-integer times")
        out[int(q)] = (reported, caught_up)
    return out
